//! The async Rust client of `krmx-client` against `krmx serve` on both transports: every
//! client scenario (each call run with `smol::block_on`), and clients driven concurrently in
//! one executor.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use krmx_client::{AsyncClient, Client};
use krmx_core::{ClientEvent, Message};
use krmx_tests::TIMEOUT;
use krmx_tests::cli::CliServer;
use krmx_tests::rust_client::{joined, linked, options, pairs, url, users};
use std::time::Duration;

krmx_tests::client_scenario_tests!(krmx_tests::rust_client::Async);

/// The next event that is not presence or lifecycle, within [`TIMEOUT`].
async fn next_message(client: &mut AsyncClient) -> Message {
    loop {
        match client.next_event_timeout(TIMEOUT).await {
            Some(ClientEvent::Message { message }) => return message,
            Some(_) => {}
            None => panic!("no message within {TIMEOUT:?}"),
        }
    }
}

/// Alice waits for events while bob links and sends, in one executor: presence and messages
/// reach her as they happen, and her wait, raced against a timer, loses nothing.
fn clients_run_concurrently_in_one_executor(transport: &str) {
    let server = CliServer::start(transport, &["--relay"]);
    let url = url(server.addr());
    smol::block_on(async {
        let mut alice = AsyncClient::connect_with(&url, options()).await.unwrap();
        alice.link("alice", None).await.unwrap();
        while alice
            .next_event_timeout(Duration::from_millis(20))
            .await
            .is_some()
        {}

        // A wait raced against a short timer and dropped: cancel-safe, nothing is lost.
        let raced = smol::future::or(async { alice.next_event().await }, async {
            smol::Timer::after(Duration::from_millis(30)).await;
            None
        })
        .await;
        assert_eq!(raced, None);

        let bob_side = async {
            let mut bob = AsyncClient::connect_with(&url, options()).await.unwrap();
            bob.link("bob", None).await.unwrap();
            bob.send(Message::parse(r#"{"type":"chat/say","payload":"hi"}"#).unwrap())
                .await
                .unwrap();
            assert_eq!(next_message(&mut bob).await.payload(), Some(&"hi".into()));
            bob
        };
        let alice_side = async {
            let mut seen = Vec::new();
            while seen.len() < 2 {
                let event = alice.next_event_timeout(TIMEOUT).await.expect("presence");
                seen.push(event);
            }
            assert_eq!(seen, [joined("bob"), linked("bob")]);
            next_message(&mut alice).await
        };
        let (said, mut bob) = smol::future::zip(alice_side, bob_side).await;
        assert_eq!(said.kind(), "chat/say");
        assert_eq!(
            pairs(alice.users()),
            users(&[("alice", true), ("bob", true)])
        );

        bob.leave().await.unwrap();
        bob.close().await.unwrap();
        let mut tail = Vec::new();
        while let Some(event) = alice.next_event_timeout(Duration::from_millis(100)).await {
            tail.push(event);
        }
        assert_eq!(
            tail,
            [
                ClientEvent::Unlinked {
                    username: "bob".into()
                },
                ClientEvent::Left {
                    username: "bob".into()
                },
            ]
        );
        alice.close().await.unwrap();
    });
}

#[test]
fn clients_run_concurrently_in_one_executor_on_mio() {
    clients_run_concurrently_in_one_executor("mio");
}

#[test]
fn clients_run_concurrently_in_one_executor_on_smol() {
    clients_run_concurrently_in_one_executor("smol");
}

#[test]
fn both_clients_can_move_between_threads_and_tasks() {
    fn send<T: Send + 'static>() {}
    send::<AsyncClient>();
    send::<Client>();
}
