//! The driver without sockets: in-memory streams, a virtual clock, every fact handed in by
//! hand. What a pump must be able to rely on is pinned here, transport by transport being only
//! readiness around it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Control, Event, KrmxConfig, Message};
use krmx_driver::{Io, Readiness, TransportConfig};
use std::time::Duration;
use support::{Fake, UPGRADE, World};

#[test]
fn a_write_that_fails_shows_its_unlink_before_the_drain_ends() {
    // The lost wakeup of both transports: a broadcast queued for a connection that was reset;
    // the write fails when the outboxes are flushed, after the application drained its
    // events. The drain must not end before that unlink is out.
    let mut world = World::new(Readiness::Edge);
    let (_, _alice) = world.link("alice");
    let (_, bob) = world.link("bob");
    bob.0.borrow_mut().reset = true;
    world
        .driver
        .broadcast(Message::parse(r#"{"type":"chat/say"}"#).unwrap(), None)
        .unwrap();
    let events = world.events();
    assert!(
        matches!(events.as_slice(), [Event::Unlinked { username, .. }] if username.as_str() == "bob"),
        "{events:?}"
    );
    assert!(matches!(world.io().as_slice(), [Io::Released(_)]));
    assert!(!world.driver.has_pending());
}

#[test]
fn every_reset_connection_is_unlinked_within_the_turn_that_saw_it() {
    let mut world = World::new(Readiness::Edge);
    let linked: Vec<_> = (0..20).map(|i| world.link(&format!("user{i}"))).collect();
    // Half end with a FIN, half with a reset; each readiness is handed in, then one drain.
    for (i, (key, fake)) in linked.iter().enumerate() {
        if i % 2 == 0 {
            fake.0.borrow_mut().eof = true;
        } else {
            fake.0.borrow_mut().reset = true;
        }
        world.driver.readable(world.now, *key);
    }
    let unlinked = world
        .events()
        .into_iter()
        .filter(|event| matches!(event, Event::Unlinked { .. }))
        .count();
    assert_eq!(unlinked, 20);
    assert_eq!(
        world.io().len(),
        20,
        "without a close handshake, each is gone at once"
    );
    assert!(!world.driver.has_pending());
}

#[test]
fn poll_event_writes_what_commands_queued_before_it_returns_none() {
    let mut world = World::new(Readiness::Edge);
    let (_, alice) = world.link("alice");
    world
        .driver
        .send("alice", Message::parse(r#"{"type":"game/hello"}"#).unwrap())
        .unwrap();
    assert!(world.driver.has_pending(), "queued, not written yet");
    assert!(world.events().is_empty());
    assert_eq!(alice.texts(), [r#"{"type":"game/hello"}"#]);
    assert!(!world.driver.has_pending());
}

#[test]
fn on_request_readiness_asks_for_reads_and_for_writes_that_would_block() {
    let mut world = World::new(Readiness::OnRequest);
    let (key, fake) = world.link("alice");
    assert!(
        world
            .io()
            .iter()
            .any(|io| matches!(io, Io::WaitReadable(k) if *k == key))
    );
    fake.0.borrow_mut().room = Some(0);
    world
        .driver
        .send("alice", Message::parse(r#"{"type":"game/hello"}"#).unwrap())
        .unwrap();
    assert!(world.events().is_empty());
    let io = world.io();
    assert!(
        matches!(io.as_slice(), [Io::WaitWritable(k)] if *k == key),
        "{io:?}"
    );
    fake.0.borrow_mut().room = None;
    world.driver.writable(world.now, key);
    assert_eq!(fake.texts(), [r#"{"type":"game/hello"}"#]);
}

#[test]
fn edge_readiness_asks_for_no_waits() {
    let mut world = World::new(Readiness::Edge);
    let (_, fake) = world.link("alice");
    fake.0.borrow_mut().room = Some(0);
    world
        .driver
        .send("alice", Message::parse(r#"{"type":"game/hello"}"#).unwrap())
        .unwrap();
    assert!(world.events().is_empty());
    assert!(world.io().is_empty());
}

#[test]
fn a_silent_connection_is_released_at_its_handshake_timeout_not_before() {
    let timeout = Duration::from_secs(5);
    let mut world = World::with_handshake_timeout(timeout);
    let key = world.driver.accept(world.now, Fake::default()).unwrap();
    assert_eq!(world.driver.poll_timeout(), Some(world.now + timeout));
    world
        .driver
        .tick(world.now + timeout - Duration::from_millis(1));
    assert!(world.io().is_empty());
    world.driver.tick(world.now + timeout);
    let io = world.io();
    assert!(
        matches!(io.as_slice(), [Io::Released(k)] if *k == key),
        "{io:?}"
    );
    assert!(world.events().is_empty(), "it never reached the core");
}

#[test]
fn a_peers_close_is_answered_then_the_connection_ends_within_the_linger() {
    let linger = Duration::from_secs(2);
    let mut world = World::with(
        KrmxConfig::default(),
        TransportConfig::default().close_linger(linger),
        Readiness::Edge,
    );
    let (key, fake) = world.link("alice");
    // A masked close frame with code 1000.
    fake.send(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2]);
    world.driver.readable(world.now, key);
    let events = world.events();
    assert!(
        matches!(events.as_slice(), [Event::Unlinked { .. }]),
        "{events:?}"
    );
    assert_eq!(fake.texts(), ["<opcode 8: [3, 232]>"], "the close reply");
    assert!(fake.0.borrow().shut, "shut down once the reply is out");
    world.driver.tick(world.now + linger);
    assert!(matches!(world.io().as_slice(), [Io::Released(k)] if *k == key));
}

#[test]
fn closing_the_server_stops_accepting_and_refuses_adopted_streams() {
    let mut world = World::new(Readiness::Edge);
    let pending = world.driver.accept(world.now, Fake::default()).unwrap();
    world.driver.close().unwrap();
    assert_eq!(world.events(), [Event::Closed]);
    let io = world.io();
    assert!(
        matches!(io.as_slice(), [Io::StopAccepting, Io::Released(k)] if *k == pending),
        "{io:?}"
    );
    assert!(!world.driver.is_accepting());
    assert!(world.driver.is_finished());
    assert!(world.driver.accept(world.now, Fake::default()).is_err());
}

/// The frame a server sends for `text` (short texts only).
fn frame_len(text: &str) -> usize {
    2 + text.len()
}

#[test]
fn exactly_the_buffered_bound_is_kept_one_byte_more_is_a_slow_consumer() {
    let hello = r#"{"type":"game/hello"}"#;
    let bound = 3 * frame_len(hello);
    let config = KrmxConfig::default().max_buffered_bytes(bound);
    // (frames sent, frames the kernel takes, closed): exactly the bound queued after a write
    // is kept; a byte more is a slow consumer.
    for (sends, taken, closed) in [(3, 0, false), (4, 1, false), (4, 0, true), (5, 1, true)] {
        let mut world = World::with(config.clone(), TransportConfig::default(), Readiness::Edge);
        let (_, alice) = world.link("alice");
        alice.0.borrow_mut().room = Some(taken * frame_len(hello));
        for _ in 0..sends {
            world
                .driver
                .send("alice", Message::parse(hello).unwrap())
                .unwrap();
        }
        let events = world.events();
        let unlinked = events
            .iter()
            .any(|event| matches!(event, Event::Unlinked { .. }));
        assert_eq!(
            unlinked,
            closed,
            "{sends} frames of {} bytes, {taken} taken, against a bound of {bound}: {events:?}",
            frame_len(hello)
        );
    }
}

#[test]
fn a_request_waiting_unread_at_the_handshake_deadline_is_still_upgraded() {
    let timeout = Duration::from_secs(5);
    let mut world = World::with_handshake_timeout(timeout);
    let fake = Fake::default();
    let key = world.driver.accept(world.now, fake.clone()).unwrap();
    // The request arrived, but the pump was busy and has not reported it yet.
    fake.send(UPGRADE);
    world.driver.tick(world.now + timeout);
    assert!(fake.0.borrow().outbound.starts_with(b"HTTP/1.1 101"));
    assert!(world.io().is_empty(), "not released");
    fake.send_text(r#"{"type":"krmx/link","payload":{"username":"alice","version":"0.6.0"}}"#);
    world.driver.readable(world.now + timeout, key);
    assert!(
        world
            .events()
            .iter()
            .any(|event| matches!(event, Event::Linked { .. }))
    );
}

#[test]
fn a_flush_writes_what_a_failed_write_queued_for_others() {
    let mut world = World::new(Readiness::Edge);
    let (_, alice) = world.link("alice");
    let (_, bob) = world.link("bob");
    alice.texts();
    bob.0.borrow_mut().reset = true;
    world
        .driver
        .broadcast(Message::parse(r#"{"type":"chat/say"}"#).unwrap(), None)
        .unwrap();
    // One flush, as a pump does before it waits: bob's write fails, which unlinks him and
    // queues `krmx/unlinked` for alice; that goes out in the same flush.
    world.driver.flush();
    let texts = alice.texts();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[0], r#"{"type":"chat/say"}"#);
    assert!(texts[1].contains(r#""type":"krmx/unlinked""#), "{texts:?}");
}

#[test]
fn readiness_for_a_released_connection_does_not_reach_the_one_reusing_its_slot() {
    let timeout = Duration::from_secs(5);
    let mut world = World::with_handshake_timeout(timeout);
    let old = world.driver.accept(world.now, Fake::default()).unwrap();
    world.driver.tick(world.now + timeout);
    assert!(matches!(world.io().as_slice(), [Io::Released(k)] if *k == old));
    let fake = Fake::default();
    fake.send(UPGRADE);
    let new = world
        .driver
        .accept(world.now + timeout, fake.clone())
        .unwrap();
    assert_eq!(new.slot(), old.slot(), "the slot is reused");
    assert_ne!(new, old);
    world.driver.readable(world.now + timeout, old);
    assert!(
        fake.0.borrow().outbound.is_empty(),
        "a stale key is ignored: the new connection's request stays unread"
    );
    world.driver.readable(world.now + timeout, new);
    assert!(fake.0.borrow().outbound.starts_with(b"HTTP/1.1 101"));
}
