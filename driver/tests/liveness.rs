//! Pings on a virtual clock: a pong the server has not read yet, because it was busy, is not
//! the peer's fault; a ping nobody answers still ends its connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Event, KrmxConfig};
use krmx_driver::{Readiness, TransportConfig};
use std::time::Duration;
use support::World;

const EVERY: Duration = Duration::from_secs(1);

/// A masked, empty pong from the client.
const PONG: [u8; 6] = [0x8a, 0x80, 1, 2, 3, 4];

fn got_ping(texts: &[String]) -> bool {
    texts.iter().any(|text| text == "<opcode 9: []>")
}

/// How the round comes due: the pump's tick, or another connection's message read after the
/// round's time (the core fires what is due with any input).
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Tick,
    OtherMessage,
}

#[test]
fn a_pong_left_unread_by_a_busy_server_is_read_before_its_ping_is_judged() {
    let config = KrmxConfig::default().ping_interval(EVERY);
    for readiness in [Readiness::Edge, Readiness::OnRequest] {
        for trigger in [Trigger::Tick, Trigger::OtherMessage] {
            unread_pong(&config, readiness, trigger);
        }
    }
}

fn unread_pong(config: &KrmxConfig, readiness: Readiness, trigger: Trigger) {
    {
        let mut world = World::with(config.clone(), TransportConfig::default(), readiness);
        let (_, answers) = world.link("answers");
        let (_, silent) = world.link("silent");
        let (busy, other) = world.link("other");
        // Up to the first ping round: both get their ping, which goes out at once.
        let mut step = 0;
        while !got_ping(&answers.texts()) {
            step += 1;
            assert!(step < 50, "no ping within five seconds");
            world.now += Duration::from_millis(100);
            world.driver.tick(world.now);
            world.events();
        }
        // The answer arrives, but no readiness is reported before the next round, as when
        // the pump is busy with a backlog of other connections' reads.
        answers.send(&PONG);
        other.send(&PONG);
        let mut events = Vec::new();
        match trigger {
            Trigger::Tick => {
                for _ in 0..12 {
                    world.now += Duration::from_millis(100);
                    world.driver.tick(world.now);
                    events.extend(world.events());
                }
            }
            Trigger::OtherMessage => {
                world.now += Duration::from_millis(1_200);
                other.send_text(r#"{"type":"chat","payload":"read first"}"#);
                world.driver.readable(world.now, busy);
                events.extend(world.events());
                world.driver.tick(world.now);
                events.extend(world.events());
            }
        }
        let context = format!("{readiness:?}, {trigger:?}");
        let unlinked: Vec<&str> = events
            .iter()
            .filter_map(|event| match event {
                Event::Unlinked { username, .. } => Some(username.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(unlinked, ["silent"], "{context}: {events:?}");
        let texts = answers.texts();
        assert!(
            texts.iter().any(|text| text.contains("krmx/unlinked")),
            "{context}: {texts:?}"
        );
        assert!(
            !texts.iter().any(|text| text.starts_with("<opcode 8")),
            "{context}: the answering client was closed: {texts:?}"
        );
        let closed = silent.texts();
        assert!(
            closed.iter().any(|text| text.starts_with("<opcode 8")),
            "{context}: {closed:?}"
        );
    }
}
