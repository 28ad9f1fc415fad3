//! A broadcast comes out whole: one [`Output::Broadcast`] with every recipient in join order,
//! in its place among the other outputs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Input, Message, Output};
use support::*;

fn broadcast(server: &mut Server, skip: Option<&str>) {
    server
        .krmx
        .handle_input(
            server.now,
            Input::Broadcast {
                message: Message::new("chat"),
                skip: skip.map(str::to_owned),
            },
        )
        .unwrap();
}

#[test]
fn a_broadcast_is_one_output_with_every_recipient_in_join_order() {
    let mut server = alice_and_bob();
    server.connect(3, "carol");
    broadcast(&mut server, None);
    let Some(Output::Broadcast { to, text }) = server.krmx.poll_output() else {
        panic!("expected a broadcast");
    };
    assert_eq!(text.as_str(), r#"{"type":"chat"}"#);
    assert_eq!(to, [id(1), id(2), id(3)]);
    assert_eq!(server.krmx.poll_output(), None);
}

#[test]
fn a_skipped_user_is_left_out_and_the_order_with_other_outputs_is_kept() {
    let mut server = alice_and_bob();
    server.connect(3, "carol");
    broadcast(&mut server, Some("bob"));
    server
        .krmx
        .handle_input(
            server.now,
            Input::Send {
                username: "alice".into(),
                message: Message::new("direct"),
            },
        )
        .unwrap();
    broadcast(&mut server, None);
    let outputs: Vec<_> = std::iter::from_fn(|| server.krmx.poll_output()).collect();
    assert!(
        matches!(&outputs[..], [
            Output::Broadcast { to: first, .. },
            Output::Send { to: direct, .. },
            Output::Broadcast { to: second, .. },
        ] if *first == [id(1), id(3)] && *direct == id(1) && *second == [id(1), id(2), id(3)]),
        "{outputs:?}"
    );
}

#[test]
fn a_broadcast_with_nobody_linked_queues_nothing() {
    let mut server = Server::listening(krmx_core::KrmxConfig::default());
    broadcast(&mut server, None);
    assert_eq!(server.krmx.poll_output(), None);
}
