//! Plays a scripted session through the state machine and prints every output.
//!
//! `cargo run -p krmx-core --example scripted_session`

use krmx_core::{ConnectionId, Error, Frame, Input, Krmx, KrmxConfig, Output};
use std::time::{Duration, Instant};

fn main() -> Result<(), Error> {
    let mut krmx = Krmx::new(KrmxConfig::default());
    let start = Instant::now();
    let link = |name: &str| {
        Frame::Text(format!(
            r#"{{"type":"krmx/link","payload":{{"username":"{name}","version":"0.6.0"}}}}"#
        ))
    };
    let (alice, bob) = (ConnectionId::new(1), ConnectionId::new(2));
    let script = [
        Input::Listen { port: 8082 },
        Input::ConnectionOpened {
            conn: alice,
            target: "/".into(),
        },
        Input::Frame {
            conn: alice,
            frame: link("alice"),
        },
        Input::ConnectionOpened {
            conn: bob,
            target: "/".into(),
        },
        Input::Frame {
            conn: bob,
            frame: link("bob"),
        },
        Input::Frame {
            conn: bob,
            frame: Frame::Text(r#"{"type":"chat/say","payload":"hi"}"#.into()),
        },
        Input::Frame {
            conn: alice,
            frame: Frame::Text(r#"{"type":"krmx/leave"}"#.into()),
        },
        Input::ConnectionClosed { conn: bob },
        Input::Close,
    ];
    for (step, input) in script.into_iter().enumerate() {
        println!("> {input:?}");
        let now = start + Duration::from_millis(step as u64 * 10);
        krmx.handle_input(now, input)?;
        while let Some(output) = krmx.poll_output() {
            match output {
                Output::Send { to, text } => println!("  send  {to}  {text}"),
                Output::Broadcast { to, text } => {
                    for to in to {
                        println!("  send  {to}  {text}");
                    }
                }
                Output::Ping { to } => println!("  ping  {to}"),
                Output::Close { to, code, reason } => println!("  close {to}  {code} {reason}"),
                Output::Event(event) => println!("  event {event:?}"),
            }
        }
    }
    Ok(())
}
