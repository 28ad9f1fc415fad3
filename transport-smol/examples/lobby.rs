//! A lobby with a chat, on the smol transport.
//!
//! - Authentication is deferred: each link's token is checked by a (simulated) asynchronous
//!   lookup that takes a little while; the link waits for it, within the auth timeout.
//!   A user's token is `token-` followed by its name (`token-alice` for `alice`).
//! - `{"type":"chat/say","payload":"hi"}` is broadcast to everyone as
//!   `{"type":"chat/said","payload":{"from":"alice","text":"hi"}}`.
//! - `{"type":"lobby/who"}` is answered with the users and whether each is online.
//! - A user whose connection is gone for longer than the inactivity timeout is kicked from the
//!   lobby (everyone sees `krmx/left`).
//!
//! ```text
//! cargo run -p krmx-transport-smol --example lobby -- 127.0.0.1:8082 [INACTIVITY_SECS]
//! ```
//!
//! Then connect with any Krmx client (or a WebSocket tool) and send, for example,
//! `{"type":"krmx/link","payload":{"username":"alice","version":"0.6.0","auth":"token-alice"}}`.

use krmx_core::Event as CoreEvent;
use krmx_core::{AuthMode, KrmxConfig, Message};
use krmx_transport_smol::{AuthResponder, Event, Handle, Server, TransportConfig};
use serde_json::json;
use smol::Timer;
use std::time::Duration;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8082".to_owned());
    let inactivity = args
        .next()
        .and_then(|secs| secs.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs);

    let config = KrmxConfig::default()
        .auth(AuthMode::Application)
        .auth_timeout(Duration::from_secs(2))
        .inactivity_timeout(Some(inactivity));

    smol::block_on(async {
        let mut server = Server::bind(addr.as_str(), config, TransportConfig::default()).await?;
        let mut events = server.events();
        let handle = server.handle();
        let driver = smol::spawn(server.run());

        while let Some(Event { event, responder }) = events.next_event().await {
            match event {
                CoreEvent::Listening { port } => println!("lobby listening on port {port}"),
                CoreEvent::AuthRequested { username, auth, .. } => {
                    let Some(responder) = responder else {
                        continue;
                    };
                    // The check runs on its own task: the server keeps serving meanwhile.
                    let username = username.as_str().to_owned();
                    smol::spawn(check_token(username, auth, responder)).detach();
                }
                CoreEvent::Joined { username } => {
                    announce(&handle, format!("{username} joined the lobby")).await;
                }
                CoreEvent::Left { username } => {
                    announce(&handle, format!("{username} left the lobby")).await;
                }
                CoreEvent::Message { username, message } => match message.kind() {
                    "chat/say" => {
                        let text = message.payload().cloned().unwrap_or_default();
                        let said = Message::new("chat/said")
                            .with_payload(json!({ "from": username.as_str(), "text": text }));
                        let _ = handle.broadcast(said, None).await;
                    }
                    "lobby/who" => {
                        let users: Vec<_> = handle
                            .users()
                            .await
                            .unwrap_or_default()
                            .into_iter()
                            .map(|user| {
                                json!({ "username": user.username.as_str(), "online": user.is_linked })
                            })
                            .collect();
                        let who = Message::new("lobby/who").with_payload(json!(users));
                        let _ = handle.send(username.as_str(), who).await;
                    }
                    other => {
                        let error = Message::new("lobby/error")
                            .with_payload(json!(format!("unknown message type {other}")));
                        let _ = handle.send(username.as_str(), error).await;
                    }
                },
                CoreEvent::Closed => println!("lobby closed"),
                CoreEvent::Linked { .. } | CoreEvent::Unlinked { .. } => {}
            }
        }
        driver.await;
        Ok(())
    })
}

/// The token check: a (simulated) database lookup, then the answer.
async fn check_token(username: String, auth: Option<String>, responder: AuthResponder) {
    Timer::after(Duration::from_millis(50)).await;
    if auth.as_deref() == Some(format!("token-{username}").as_str()) {
        responder.accept();
    } else {
        responder.reject("invalid token");
    }
}

/// A system line for everyone in the lobby.
async fn announce(handle: &Handle, text: String) {
    let message = Message::new("lobby/system").with_payload(json!(text));
    let _ = handle.broadcast(message, None).await;
}
