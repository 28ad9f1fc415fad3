//! The limits this implementation adds: message size, transport violations, the queue bound
//! during a pending link, and the cap on pending authentications.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{
    AuthDecision, AuthMode, DEFAULT_BUFFERED_BUDGET, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_PENDING_AUTHS, DEFAULT_MAX_QUEUED_DURING_AUTH, DEFAULT_SOFT_BUFFERED_BYTES,
    DEFAULT_SOFT_BUFFERED_PERIOD, DEFAULT_WRITE_STALL_TIMEOUT, Input, KrmxConfig, Violation,
};
use std::time::Duration;
use support::*;

/// A custom message of exactly `bytes` bytes.
fn message_of(bytes: usize) -> String {
    let frame = r#"{"type":"x","payload":""}"#;
    let padding = "a".repeat(bytes - frame.len());
    format!(r#"{{"type":"x","payload":"{padding}"}}"#)
}

fn violation(conn: u64, violation: Violation) -> Input {
    Input::Violation {
        conn: id(conn),
        violation,
    }
}

fn application_auth() -> KrmxConfig {
    KrmxConfig::default()
        .auth(AuthMode::Application)
        .ping_interval(Duration::ZERO)
}

#[test]
fn defaults_are_one_mebibyte_64_queued_4096_pending_and_the_buffer_limits() {
    assert_eq!(DEFAULT_MAX_MESSAGE_BYTES, 1 << 20);
    assert_eq!(DEFAULT_MAX_QUEUED_DURING_AUTH, 64);
    assert_eq!(DEFAULT_MAX_PENDING_AUTHS, 4096);
    let config = KrmxConfig::default();
    assert_eq!(config.max_message_bytes_value(), 1 << 20);
    assert_eq!(config.max_buffered_bytes_value(), 64 << 20);
    assert_eq!(
        config.soft_buffered_bytes_value(),
        DEFAULT_SOFT_BUFFERED_BYTES
    );
    assert_eq!(
        config.soft_buffered_period_value(),
        DEFAULT_SOFT_BUFFERED_PERIOD
    );
    assert_eq!(DEFAULT_SOFT_BUFFERED_BYTES, 8 << 20);
    assert_eq!(DEFAULT_SOFT_BUFFERED_PERIOD, Duration::from_secs(60));
    assert_eq!(
        config.write_stall_timeout_value(),
        DEFAULT_WRITE_STALL_TIMEOUT
    );
    assert_eq!(config.buffered_budget_value(), DEFAULT_BUFFERED_BUDGET);
}

#[test]
fn message_of_exactly_the_maximum_size_is_handled() {
    let mut server = alice_and_bob_with(KrmxConfig::default().max_message_bytes(100));
    let text = message_of(100);
    assert_eq!(server.text(2, &text), [ev_message("bob", &text)]);
}

#[test]
fn larger_message_closes_its_connection_with_1009_and_unlinks_its_user() {
    let mut server = alice_and_bob_with(KrmxConfig::default().max_message_bytes(100));
    assert_eq!(
        server.text(2, &message_of(101)),
        [
            send(1, unlinked("bob")),
            send(2, unlinked("bob")),
            ev_unlinked("bob", 2),
            Out::Close(2, 1009, "message too large"),
        ]
    );
    assert_eq!(server.users(), users(&[("alice", true), ("bob", false)]));
    assert_eq!(server.krmx.connections().collect::<Vec<_>>(), [id(1)]);
}

#[test]
fn larger_binary_frame_closes_its_connection_with_1009() {
    let mut server = Server::listening(KrmxConfig::default().max_message_bytes(8));
    server.open(1);
    assert_eq!(
        server.binary(1, &[0xff; 9]),
        [Out::Close(1, 1009, "message too large")]
    );
}

#[test]
fn default_maximum_is_one_mebibyte() {
    let mut server = alice_and_bob();
    let text = message_of(1 << 20);
    assert_eq!(server.text(2, &text), [ev_message("bob", &text)]);
    assert_eq!(
        server.text(1, &message_of((1 << 20) + 1)),
        [
            send(1, unlinked("alice")),
            send(2, unlinked("alice")),
            ev_unlinked("alice", 1),
            Out::Close(1, 1009, "message too large"),
        ]
    );
}

#[test]
fn too_large_violation_closes_with_1009() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.input(violation(2, Violation::MessageTooLarge)),
        [
            send(1, unlinked("bob")),
            send(2, unlinked("bob")),
            ev_unlinked("bob", 2),
            Out::Close(2, 1009, "message too large"),
        ]
    );
}

#[test]
fn invalid_utf8_violation_closes_that_connection_alone_with_1007_and_unlinks() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.input(violation(1, Violation::InvalidUtf8)),
        [
            send(1, unlinked("alice")),
            send(2, unlinked("alice")),
            ev_unlinked("alice", 1),
            Out::Close(1, 1007, "invalid utf-8"),
        ]
    );
    assert_eq!(server.users(), users(&[("alice", false), ("bob", true)]));
    assert_eq!(
        server.text(2, r#"{"type":"a"}"#),
        [ev_message("bob", r#"{"type":"a"}"#)]
    );
}

#[test]
fn slow_consumer_violation_closes_with_1008_and_unlinks() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.input(violation(2, Violation::SlowConsumer)),
        [
            send(1, unlinked("bob")),
            send(2, unlinked("bob")),
            ev_unlinked("bob", 2),
            Out::Close(2, 1008, "slow consumer"),
        ]
    );
}

#[test]
fn violation_of_an_unlinked_connection_only_closes_it() {
    let mut server = alice_and_bob();
    server.open(3);
    assert_eq!(
        server.input(violation(3, Violation::SlowConsumer)),
        [Out::Close(3, 1008, "slow consumer")]
    );
}

#[test]
fn connection_closed_by_a_violation_is_forgotten() {
    let mut server = alice_and_bob();
    server.input(violation(2, Violation::InvalidUtf8));
    assert_eq!(server.closed(2), []);
    assert_eq!(
        server.refused(violation(2, Violation::InvalidUtf8)),
        "connection cn-2 is not open"
    );
    assert_eq!(
        server.refused(Input::Frame {
            conn: id(2),
            frame: krmx_core::Frame::Text("{}".into()),
        }),
        "connection cn-2 is not open"
    );
}

#[test]
fn default_queue_bound_keeps_64_messages_during_a_pending_link_and_closes_on_the_65th() {
    let mut server = Server::listening(application_auth());
    server.open(1);
    server.link(1, "alice");
    for n in 0..64 {
        assert_eq!(server.text(1, &format!(r#"{{"type":"m/{n}"}}"#)), [], "{n}");
    }
    assert_eq!(
        server.text(1, r#"{"type":"m/64"}"#),
        [Out::Close(
            1,
            1008,
            "too many messages during authentication"
        )]
    );
    assert_eq!(server.krmx.pending_auths(), 0);
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.decide(1, AuthDecision::Accept), []);
    assert_eq!(server.users(), []);
}

#[test]
fn configured_queue_bound_closes_one_past_it() {
    let mut server = Server::listening(application_auth().max_queued_during_auth(2));
    server.open(1);
    server.link(1, "alice");
    assert_eq!(server.text(1, r#"{"type":"a"}"#), []);
    assert_eq!(server.text(1, r#"{"type":"b"}"#), []);
    assert_eq!(
        server.text(1, r#"{"type":"c"}"#),
        [Out::Close(
            1,
            1008,
            "too many messages during authentication"
        )]
    );
}

#[test]
fn queue_bound_counts_per_pending_link() {
    let mut server = Server::listening(application_auth().max_queued_during_auth(2));
    server.open(1);
    server.link(1, "alice");
    server.text(1, r#"{"type":"a"}"#);
    server.text(1, r#"{"type":"b"}"#);
    server.decide(1, AuthDecision::Accept);
    server.text(1, r#"{"type":"krmx/unlink"}"#);
    server.link(1, "alice");
    assert_eq!(server.text(1, r#"{"type":"c"}"#), []);
    assert_eq!(server.text(1, r#"{"type":"d"}"#), []);
    let outputs = server.decide(2, AuthDecision::Accept);
    assert_eq!(
        outputs[outputs.len() - 2..],
        [
            ev_message("alice", r#"{"type":"c"}"#),
            ev_message("alice", r#"{"type":"d"}"#),
        ]
    );
}

#[test]
fn oversized_message_during_a_pending_link_closes_with_1009() {
    let mut server = Server::listening(application_auth().max_message_bytes(100));
    server.open(1);
    server.link(1, "alice");
    assert_eq!(
        server.text(1, &message_of(101)),
        [Out::Close(1, 1009, "message too large")]
    );
    assert_eq!(server.krmx.pending_auths(), 0);
}

#[test]
fn link_beyond_the_pending_authentication_cap_is_rejected() {
    let mut server = Server::listening(application_auth().max_pending_auths(2));
    for conn in 1..=3 {
        server.open(conn);
    }
    assert_eq!(
        server.link(1, "alice"),
        [ev_auth(1, 1, "alice", true, None)]
    );
    assert_eq!(server.link(2, "bob"), [ev_auth(2, 2, "bob", true, None)]);
    assert_eq!(
        server.link(3, "carol"),
        [send(3, rejected("too many pending authentications"))]
    );
    assert_eq!(server.krmx.pending_auths(), 2);
    // The rejected connection is open and unlinked; once a slot frees, it may try again.
    server.decide(1, AuthDecision::reject("no"));
    assert_eq!(
        server.link(3, "carol"),
        [ev_auth(3, 3, "carol", true, None)]
    );
}

#[test]
fn pending_authentication_cap_is_checked_after_the_protocol_checks() {
    let mut server = Server::listening(application_auth().max_pending_auths(1));
    server.open(1);
    server.open(2);
    server.link(1, "alice");
    assert_eq!(server.link(2, "a"), [send(2, rejected("invalid username"))]);
}
