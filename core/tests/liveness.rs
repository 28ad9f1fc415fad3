//! Time-driven rules: liveness pings, the inactivity-timeout option, and the clock itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{AuthMode, Input, KrmxConfig};
use std::time::Duration;
use support::*;

fn no_pings() -> KrmxConfig {
    KrmxConfig::default().ping_interval(Duration::ZERO)
}

fn inactivity(seconds: u64) -> KrmxConfig {
    no_pings().inactivity_timeout(Some(Duration::from_secs(seconds)))
}

#[test]
fn first_ping_round_is_due_one_default_interval_after_listening() {
    let mut server = Server::new(KrmxConfig::default());
    assert_eq!(server.timeout_ms(), None);
    server.at(500);
    server.input(Input::Listen { port: PORT });
    assert_eq!(server.timeout_ms(), Some(15_500));
}

#[test]
fn every_open_connection_is_pinged_each_interval() {
    let mut server = alice_and_bob();
    server.open(3);
    assert_eq!(server.tick_at(14_999), []);
    assert_eq!(
        server.tick_at(15_000),
        [Out::Ping(1), Out::Ping(2), Out::Ping(3)]
    );
    assert_eq!(server.timeout_ms(), Some(30_000));
    server.pong(1);
    server.pong(2);
    server.pong(3);
    assert_eq!(
        server.tick_at(30_000),
        [Out::Ping(1), Out::Ping(2), Out::Ping(3)]
    );
}

#[test]
fn pong_is_not_required_before_the_next_round() {
    let mut server = alice_and_bob();
    server.tick_at(15_000);
    server.at(29_999);
    assert_eq!(server.pong(1), []);
    assert_eq!(server.pong(2), []);
    assert_eq!(server.tick_at(30_000), [Out::Ping(1), Out::Ping(2)]);
}

#[test]
fn linked_connection_that_did_not_pong_is_closed_and_its_user_unlinked() {
    let mut server = alice_and_bob();
    server.tick_at(15_000);
    server.pong(1);
    assert_eq!(
        server.tick_at(30_000),
        [
            Out::Ping(1),
            send(1, unlinked("bob")),
            send(2, unlinked("bob")),
            ev_unlinked("bob", 2),
            Out::Close(2, 1001, "ping timeout"),
        ]
    );
    assert_eq!(server.users(), users(&[("alice", true), ("bob", false)]));
    assert_eq!(server.krmx.connections().collect::<Vec<_>>(), [id(1)]);
}

#[test]
fn unlinked_connection_that_did_not_pong_is_closed_without_events() {
    let mut server = Server::default_listening();
    server.open(1);
    server.tick_at(15_000);
    assert_eq!(
        server.tick_at(30_000),
        [Out::Close(1, 1001, "ping timeout")]
    );
    assert_eq!(server.tick_at(45_000), []);
}

#[test]
fn connection_opened_after_a_round_is_pinged_at_the_next_and_not_closed() {
    let mut server = Server::default_listening();
    server.open(1);
    server.tick_at(15_000);
    server.pong(1);
    server.at(20_000);
    server.open(2);
    assert_eq!(server.tick_at(30_000), [Out::Ping(1), Out::Ping(2)]);
}

#[test]
fn pending_link_whose_connection_did_not_pong_is_forgotten() {
    let mut server = Server::listening(
        KrmxConfig::default()
            .auth(AuthMode::Application)
            .auth_timeout(Duration::from_secs(60)),
    );
    server.open(1);
    server.tick_at(15_000);
    server.link(1, "alice");
    assert_eq!(
        server.tick_at(30_000),
        [Out::Close(1, 1001, "ping timeout")]
    );
    assert_eq!(server.krmx.pending_auths(), 0);
    assert_eq!(server.decide(1, krmx_core::AuthDecision::Accept), []);
}

#[test]
fn network_input_read_at_a_ping_round_is_handled_before_the_round() {
    let mut server = alice_and_bob();
    server.at(15_000);
    assert_eq!(
        server.text(2, r#"{"type":"chat/a"}"#),
        [
            ev_message("bob", r#"{"type":"chat/a"}"#),
            Out::Ping(1),
            Out::Ping(2),
        ]
    );
}

#[test]
fn pong_read_by_a_loop_that_woke_late_still_counts() {
    let mut server = Server::default_listening();
    server.open(1);
    assert_eq!(server.tick_at(15_000), [Out::Ping(1)]);
    // The pong arrived in time but the loop only reads it when the next round is due.
    server.at(30_000);
    assert_eq!(
        server.input(krmx_core::Input::Pong { conn: id(1) }),
        [Out::Ping(1)]
    );
}

#[test]
fn late_tick_runs_one_round_and_schedules_the_next_from_now() {
    let mut server = Server::default_listening();
    server.open(1);
    assert_eq!(server.tick_at(40_000), [Out::Ping(1)]);
    assert_eq!(server.timeout_ms(), Some(55_000));
}

#[test]
fn configured_ping_interval_is_used() {
    let mut server = Server::listening(KrmxConfig::default().ping_interval(Duration::from_secs(2)));
    server.open(1);
    assert_eq!(server.timeout_ms(), Some(2_000));
    assert_eq!(server.tick_at(2_000), [Out::Ping(1)]);
    assert_eq!(server.tick_at(4_000), [Out::Close(1, 1001, "ping timeout")]);
}

#[test]
fn zero_ping_interval_disables_pings() {
    let mut server = Server::listening(no_pings());
    server.open(1);
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.tick_at(3_600_000), []);
    assert_eq!(server.tick_at(7_200_000), []);
    assert_eq!(server.krmx.connections().count(), 1);
}

#[test]
fn ping_intervals_below_100_ms_mean_100_ms() {
    for ms in [1, 50, 99] {
        let mut server =
            Server::listening(KrmxConfig::default().ping_interval(Duration::from_millis(ms)));
        server.open(1);
        assert_eq!(server.timeout_ms(), Some(100), "{ms}");
        assert_eq!(server.tick_at(99), [], "{ms}");
        assert_eq!(server.tick_at(100), [Out::Ping(1)], "{ms}");
    }
}

#[test]
fn pong_for_an_unknown_connection_is_an_error() {
    let mut server = Server::default_listening();
    assert_eq!(
        server.refused(Input::Pong { conn: id(3) }),
        "connection cn-3 is not open"
    );
}

#[test]
fn unlinked_user_is_kicked_after_the_inactivity_timeout() {
    let mut server = alice_and_bob_with(inactivity(60));
    assert_eq!(server.timeout_ms(), None);
    server.at(10_000);
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    assert_eq!(server.timeout_ms(), Some(70_000));
    assert_eq!(server.tick_at(69_999), []);
    assert_eq!(
        server.tick_at(70_000),
        [send(1, left("bob")), ev_left("bob")]
    );
    assert_eq!(server.users(), users(&[("alice", true)]));
    assert_eq!(server.timeout_ms(), None);
}

#[test]
fn relink_cancels_the_inactivity_kick() {
    let mut server = alice_and_bob_with(inactivity(60));
    server.at(10_000);
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    server.at(20_000);
    server.link(2, "bob");
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.tick_at(70_000), []);
    assert_eq!(server.users(), users(&[("alice", true), ("bob", true)]));
}

#[test]
fn inactivity_is_measured_from_the_latest_unlink() {
    let mut server = alice_and_bob_with(inactivity(60));
    server.at(10_000);
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    server.at(20_000);
    server.link(2, "bob");
    server.at(30_000);
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    assert_eq!(server.timeout_ms(), Some(90_000));
    assert_eq!(server.tick_at(70_000), []);
    assert_eq!(
        server.tick_at(90_000),
        [send(1, left("bob")), ev_left("bob")]
    );
}

#[test]
fn closed_connection_starts_the_inactivity_timeout() {
    let mut server = alice_and_bob_with(inactivity(1));
    server.closed(2);
    assert_eq!(
        server.tick_at(1_000),
        [send(1, left("bob")), ev_left("bob")]
    );
}

#[test]
fn server_joined_user_that_never_links_is_kicked_after_the_inactivity_timeout() {
    let mut server = Server::listening(inactivity(5));
    server.connect(1, "alice");
    server.at(1_000);
    server.input(Input::Join {
        username: "bob".into(),
    });
    assert_eq!(server.timeout_ms(), Some(6_000));
    assert_eq!(
        server.tick_at(6_000),
        [send(1, left("bob")), ev_left("bob")]
    );
}

#[test]
fn user_that_left_is_not_kicked_again_by_its_inactivity_timer() {
    let mut server = alice_and_bob_with(inactivity(60));
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    server.input(Input::Kick {
        username: "bob".into(),
    });
    assert_eq!(server.timeout_ms(), None);
    // A new bob, linked later, is not affected by the old bob's timer.
    server.at(5_000);
    server.link(2, "bob");
    assert_eq!(server.tick_at(60_000), []);
    assert_eq!(server.users(), users(&[("alice", true), ("bob", true)]));
}

#[test]
fn inactivity_timeout_is_off_by_default() {
    let mut server = alice_and_bob_with(no_pings());
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.tick_at(86_400_000), []);
    assert_eq!(server.users(), users(&[("alice", true), ("bob", false)]));
}

#[test]
fn time_going_backwards_is_treated_as_the_latest_time_seen() {
    let mut server = Server::listening(
        no_pings()
            .auth(AuthMode::Application)
            .auth_timeout(Duration::from_secs(10)),
    );
    server.open(1);
    server.tick_at(20_000);
    // An input stamped earlier than 20 s counts as 20 s: the deadline is 30 s, not 10 s.
    server.at(0);
    server.link(1, "alice");
    assert_eq!(server.timeout_ms(), Some(30_000));
    assert_eq!(server.tick_at(15_000), []);
    assert_eq!(server.tick_at(29_999), []);
    assert_eq!(
        server.tick_at(30_000),
        [send(1, rejected("authentication timeout"))]
    );
}

#[test]
fn ticking_early_or_twice_is_harmless() {
    let mut server = alice_and_bob();
    assert_eq!(server.tick(), []);
    assert_eq!(server.tick(), []);
    assert_eq!(server.tick_at(15_000), [Out::Ping(1), Out::Ping(2)]);
    assert_eq!(server.tick(), []);
}

#[test]
fn ping_waiting_in_the_transport_buffer_is_not_awaited() {
    let mut server = alice_and_bob();
    server.pings_sent_at_once = false;
    assert_eq!(server.tick_at(15_000), [Out::Ping(1), Out::Ping(2)]);
    // Bob's ping went out at once; alice's waits behind a backlog for three rounds.
    server.input(Input::PingSent { conn: id(2) });
    server.pong(2);
    assert_eq!(server.tick_at(30_000), [Out::Ping(2)]);
    server.input(Input::PingSent { conn: id(2) });
    server.pong(2);
    assert_eq!(server.tick_at(45_000), [Out::Ping(2)]);
    server.input(Input::PingSent { conn: id(2) });
    server.pong(2);
    assert_eq!(server.tick_at(60_000), [Out::Ping(2)]);
    assert_eq!(server.users(), users(&[("alice", true), ("bob", true)]));
    // Alice's ping leaves the buffer: awaited from now, a whole interval.
    server.at(61_000);
    server.input(Input::PingSent { conn: id(1) });
    server.input(Input::PingSent { conn: id(2) });
    server.pong(2);
    assert_eq!(server.tick_at(75_000), [Out::Ping(2)]);
    server.input(Input::PingSent { conn: id(2) });
    server.pong(2);
    assert_eq!(
        server.tick_at(90_000),
        [
            send(1, unlinked("alice")),
            send(2, unlinked("alice")),
            ev_unlinked("alice", 1),
            Out::Close(1, 1001, "ping timeout"),
            Out::Ping(2),
        ]
    );
}

#[test]
fn busy_reader_that_answers_once_its_ping_arrives_survives_every_round() {
    let mut server = alice_and_bob();
    server.pings_sent_at_once = false;
    for round in 1..=6u64 {
        let at = round * 15_000;
        let pinged = server.tick_at(at);
        assert!(pinged.contains(&Out::Ping(1)), "round {round}: {pinged:?}");
        // The ping leaves after 14 s of backlog and is answered 0.9 s later.
        server.at(at + 14_000);
        server.input(Input::PingSent { conn: id(1) });
        server.input(Input::PingSent { conn: id(2) });
        server.pong(2);
        server.at(at + 14_900);
        server.pong(1);
    }
    assert_eq!(server.users(), users(&[("alice", true), ("bob", true)]));
}

#[test]
fn ping_that_went_out_unanswered_terminates_at_the_next_round_as_in_the_reference() {
    // A frozen peer whose kernel still takes bytes: the ping leaves at once, no pong comes.
    let mut server = alice_and_bob();
    assert_eq!(server.tick_at(15_000), [Out::Ping(1), Out::Ping(2)]);
    server.pong(2);
    assert_eq!(
        server.tick_at(30_000),
        [
            send(1, unlinked("alice")),
            send(2, unlinked("alice")),
            ev_unlinked("alice", 1),
            Out::Close(1, 1001, "ping timeout"),
            Out::Ping(2),
        ]
    );
}

#[test]
fn ping_sent_for_an_unknown_connection_is_an_error_and_a_repeat_is_harmless() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.refused(Input::PingSent { conn: id(9) }),
        "connection cn-9 is not open"
    );
    server.tick_at(15_000);
    assert_eq!(server.input(Input::PingSent { conn: id(1) }), []);
    assert_eq!(server.input(Input::PingSent { conn: id(1) }), []);
    // Reported without a ping out: nothing awaited.
    assert_eq!(server.pong(1), []);
    assert_eq!(server.input(Input::PingSent { conn: id(1) }), []);
    server.pong(2);
    assert_eq!(server.tick_at(30_000), [Out::Ping(1), Out::Ping(2)]);
}
