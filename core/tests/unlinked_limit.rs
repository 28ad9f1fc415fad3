//! The limits on connections that do not link: the unlinked timeout (close 1008 `unlinked
//! timeout`) and the cap on unlinked connections (close 1013 `too many unlinked connections`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{
    AuthDecision, AuthMode, Input, KrmxConfig, TOO_MANY_UNLINKED_REASON, UNLINKED_TIMEOUT_REASON,
    Violation,
};
use std::time::Duration;
use support::*;

/// Pings off (so `poll_timeout` shows only the deadlines under test), unlinked timeout 1 s.
fn timeout_config() -> KrmxConfig {
    KrmxConfig::default()
        .ping_interval(Duration::ZERO)
        .unlinked_timeout(Some(Duration::from_secs(1)))
}

fn timed_out(conn: u64) -> Out {
    Out::Close(conn, 1008, "unlinked timeout")
}

fn refused(conn: u64) -> Out {
    Out::Close(conn, 1013, "too many unlinked connections")
}

/// What a first user's connection `conn` sees when its link to `name` is accepted.
fn first_link(conn: u64, name: &str) -> Vec<Out> {
    vec![
        send(conn, accepted()),
        ev_joined(name),
        send(conn, joined(name)),
        send(conn, linked(name)),
        ev_linked(name, conn),
    ]
}

fn open_ids(server: &Server) -> Vec<u64> {
    server.krmx.connections().map(|conn| conn.get()).collect()
}

#[test]
fn both_limits_are_off_by_default() {
    let mut server = Server::listening(KrmxConfig::default().ping_interval(Duration::ZERO));
    for conn in 1..=100 {
        assert_eq!(server.open(conn), []);
    }
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.tick_at(24 * 3600 * 1000), []);
    assert_eq!(server.krmx.unlinked_connections(), 100);
}

#[test]
fn reasons_are_exported_as_constants() {
    assert_eq!(UNLINKED_TIMEOUT_REASON, "unlinked timeout");
    assert_eq!(TOO_MANY_UNLINKED_REASON, "too many unlinked connections");
}

#[test]
fn connection_that_never_links_is_closed_with_1008_at_the_timeout() {
    let mut server = Server::listening(timeout_config());
    server.at(200);
    assert_eq!(server.open(1), []);
    assert_eq!(server.timeout_ms(), Some(1200));
    assert_eq!(server.tick_at(1199), []);
    assert_eq!(server.tick_at(1200), [timed_out(1)]);
    assert_eq!(open_ids(&server), Vec::<u64>::new());
    assert_eq!(server.timeout_ms(), None);
    // The transport reports the close it carried out: harmless.
    assert_eq!(server.closed(1), []);
}

#[test]
fn connection_that_links_in_time_is_never_closed() {
    let mut server = Server::listening(timeout_config());
    server.open(1);
    server.at(999);
    assert_eq!(server.link(1, "alice"), first_link(1, "alice"));
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.tick_at(60_000), []);
    assert_eq!(open_ids(&server), [1]);
}

#[test]
fn unlink_restarts_the_clock_and_the_user_stays() {
    let mut server = Server::listening(timeout_config());
    server.connect(1, "alice");
    server.at(5_000);
    assert_eq!(
        server.text(1, r#"{"type":"krmx/unlink"}"#),
        [send(1, unlinked("alice")), ev_unlinked("alice", 1)]
    );
    assert_eq!(server.timeout_ms(), Some(6_000));
    assert_eq!(server.tick_at(5_999), []);
    assert_eq!(server.tick_at(6_000), [timed_out(1)]);
    assert_eq!(server.users(), users(&[("alice", false)]));
}

#[test]
fn every_way_of_being_unlinked_restarts_the_clock() {
    let mut server = Server::listening(timeout_config());
    server.connect(1, "alice");
    server.connect(2, "bob");
    server.connect(3, "carol");
    server.at(100);
    // By the server: unlink and kick keep the connection open, unlinked.
    server.input(Input::Unlink {
        username: "alice".into(),
    });
    server.at(200);
    server.input(Input::Kick {
        username: "bob".into(),
    });
    // By an invalid message.
    server.at(300);
    server.text(3, "not json");
    assert_eq!(server.timeout_ms(), Some(1_100));
    assert_eq!(server.tick_at(1_100), [timed_out(1)]);
    assert_eq!(server.tick_at(1_200), [timed_out(2)]);
    assert_eq!(server.tick_at(1_300), [timed_out(3)]);
    assert_eq!(server.users(), users(&[("alice", false), ("carol", false)]));
}

#[test]
fn relinking_stops_the_clock_again() {
    let mut server = Server::listening(timeout_config());
    server.connect(1, "alice");
    server.at(100);
    server.text(1, r#"{"type":"krmx/unlink"}"#);
    server.at(900);
    server.link(1, "bob");
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.tick_at(10_000), []);
    assert_eq!(server.krmx.linked_user(id(1)).unwrap().as_str(), "bob");
}

#[test]
fn rejected_link_attempts_do_not_restart_the_clock() {
    let mut server = Server::listening(timeout_config());
    server.open(1);
    server.at(400);
    assert_eq!(server.link(1, "a"), [send(1, rejected("invalid username"))]);
    server.at(800);
    assert_eq!(
        server.text(1, r#"{"type":"chat"}"#),
        [send(1, rejected("unlinked connection"))]
    );
    assert_eq!(server.timeout_ms(), Some(1_000));
    assert_eq!(server.tick_at(1_000), [timed_out(1)]);
}

#[test]
fn closed_connection_leaves_no_deadline_behind() {
    let mut server = Server::listening(timeout_config());
    server.open(1);
    server.open(2);
    server.at(10);
    assert_eq!(server.closed(1), []);
    assert_eq!(
        server.input(Input::Violation {
            conn: id(2),
            violation: Violation::InvalidUtf8,
        }),
        [Out::Close(2, 1007, "invalid utf-8")]
    );
    assert_eq!(server.timeout_ms(), None);
}

#[test]
fn user_of_a_dropped_connection_is_unlinked_without_a_deadline() {
    let mut server = Server::listening(timeout_config());
    server.connect(1, "alice");
    server.connect(2, "bob");
    assert_eq!(
        server.closed(1),
        [send(2, unlinked("alice")), ev_unlinked("alice", 1)]
    );
    assert_eq!(server.timeout_ms(), None);
}

#[test]
fn connections_due_together_close_in_id_order() {
    let mut server = Server::listening(timeout_config());
    for conn in [3, 1, 2] {
        server.open(conn);
    }
    assert_eq!(
        server.tick_at(1_000),
        [timed_out(1), timed_out(2), timed_out(3)]
    );
}

#[test]
fn late_tick_closes_what_is_overdue_and_network_input_comes_first() {
    let mut server = Server::listening(timeout_config());
    server.open(1);
    server.open(2);
    // The loop woke late: the link from 2 was waiting in its socket and counts.
    server.at(1_500);
    let mut expected = first_link(2, "bob");
    expected.push(timed_out(1));
    assert_eq!(server.link(2, "bob"), expected);
    assert_eq!(open_ids(&server), [2]);
}

#[test]
fn server_close_clears_the_deadlines() {
    let mut server = Server::listening(timeout_config());
    server.open(1);
    assert_eq!(
        server.input(Input::Close),
        [Out::Close(1, 1001, "server closing"), Out::Closed]
    );
    assert_eq!(server.timeout_ms(), None);
}

// ----- during a pending link (AuthMode::Application) -----

fn application() -> KrmxConfig {
    timeout_config()
        .auth(AuthMode::Application)
        .auth_timeout(Duration::from_secs(5))
}

#[test]
fn pending_link_past_the_deadline_is_left_to_its_decision_and_accepted_stays() {
    let mut server = Server::listening(application());
    server.open(1);
    server.at(500);
    assert_eq!(
        server.link(1, "alice"),
        [ev_auth(1, 1, "alice", true, None)]
    );
    assert_eq!(server.timeout_ms(), Some(1_000));
    assert_eq!(server.tick_at(1_000), []);
    assert_eq!(open_ids(&server), [1]);
    server.at(2_000);
    assert_eq!(
        server.decide(1, AuthDecision::Accept),
        first_link(1, "alice")
    );
    assert_eq!(server.timeout_ms(), None);
    // Linked now: a later unlink starts a fresh second.
    server.at(3_000);
    server.text(1, r#"{"type":"krmx/unlink"}"#);
    assert_eq!(server.timeout_ms(), Some(4_000));
}

#[test]
fn pending_link_past_the_deadline_rejected_is_closed_right_after_the_rejection() {
    let mut server = Server::listening(application());
    server.open(1);
    server.link(1, "alice");
    server.text(1, r#"{"type":"queued"}"#);
    server.tick_at(1_000);
    server.at(1_200);
    assert_eq!(
        server.decide(1, AuthDecision::reject("no")),
        [send(1, rejected("no")), timed_out(1)]
    );
    assert_eq!(open_ids(&server), Vec::<u64>::new());
    assert_eq!(server.timeout_ms(), None);
}

#[test]
fn pending_link_past_the_deadline_that_times_out_is_closed_after_the_rejection() {
    let mut server = Server::listening(application());
    server.open(1);
    server.link(1, "alice");
    assert_eq!(server.tick_at(1_000), []);
    assert_eq!(server.timeout_ms(), Some(5_000));
    assert_eq!(
        server.tick_at(5_000),
        [send(1, rejected("authentication timeout")), timed_out(1)]
    );
}

#[test]
fn pending_link_rejected_before_the_deadline_keeps_the_connection_until_it() {
    let mut server = Server::listening(application());
    server.open(1);
    server.at(100);
    server.link(1, "alice");
    server.at(200);
    assert_eq!(
        server.decide(1, AuthDecision::reject("no")),
        [send(1, rejected("no"))]
    );
    assert_eq!(server.timeout_ms(), Some(1_000));
    assert_eq!(server.tick_at(1_000), [timed_out(1)]);
}

// ----- the cap on unlinked connections -----

fn capped(most: usize) -> KrmxConfig {
    KrmxConfig::default()
        .ping_interval(Duration::ZERO)
        .max_unlinked_connections(Some(most))
}

#[test]
fn connection_beyond_the_cap_is_closed_with_1013_before_any_message() {
    let mut server = Server::listening(capped(2));
    assert_eq!(server.open(1), []);
    assert_eq!(server.open(2), []);
    assert_eq!(server.open(3), [refused(3)]);
    assert_eq!(open_ids(&server), [1, 2]);
    assert_eq!(server.krmx.unlinked_connections(), 2);
    // The refused connection is unknown to the core.
    assert_eq!(
        server.refused(Input::Frame {
            conn: id(3),
            frame: krmx_core::Frame::Text("{}".into()),
        }),
        "connection cn-3 is not open"
    );
}

#[test]
fn linked_connections_do_not_count_against_the_cap() {
    let mut server = Server::listening(capped(1));
    server.connect(1, "alice");
    server.connect(2, "bob");
    server.connect(3, "carol");
    assert_eq!(server.krmx.unlinked_connections(), 0);
    assert_eq!(server.open(4), []);
    assert_eq!(server.open(5), [refused(5)]);
    // A closed unlinked connection frees its place.
    server.closed(4);
    assert_eq!(server.open(6), []);
}

#[test]
fn unlinking_past_the_cap_closes_nobody() {
    let mut server = Server::listening(capped(1));
    server.connect(1, "alice");
    server.connect(2, "bob");
    server.open(3);
    server.text(1, r#"{"type":"krmx/unlink"}"#);
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    assert_eq!(server.krmx.unlinked_connections(), 3);
    assert_eq!(open_ids(&server), [1, 2, 3]);
    assert_eq!(server.open(4), [refused(4)]);
    server.link(1, "alice");
    server.link(2, "bob");
    assert_eq!(server.open(5), [refused(5)]);
    server.link(3, "carol");
    assert_eq!(server.open(6), []);
}

#[test]
fn pending_links_count_as_unlinked() {
    let mut server = Server::listening(capped(1).auth(AuthMode::Application));
    server.open(1);
    server.link(1, "alice");
    assert_eq!(server.open(2), [refused(2)]);
    server.decide(1, AuthDecision::Accept);
    assert_eq!(server.open(3), []);
}

#[test]
fn cap_of_zero_refuses_every_connection() {
    let mut server = Server::listening(capped(0));
    assert_eq!(server.open(1), [refused(1)]);
    assert_eq!(server.krmx.unlinked_connections(), 0);
}

#[test]
fn failed_query_check_is_answered_before_the_cap() {
    let config = capped(0).query("room", krmx_core::QueryRequirement::Present);
    let mut server = Server::listening(config);
    assert_eq!(
        server.open(1),
        [Out::Close(1, 1008, "invalid query parameters")]
    );
}

#[test]
fn cap_and_timeout_together_free_places_over_time() {
    let mut server = Server::listening(capped(2).unlinked_timeout(Some(Duration::from_secs(1))));
    server.open(1);
    server.at(500);
    server.open(2);
    assert_eq!(server.open(3), [refused(3)]);
    assert_eq!(server.tick_at(1_000), [timed_out(1)]);
    assert_eq!(server.open(4), []);
    assert_eq!(server.open(5), [refused(5)]);
    assert_eq!(server.tick_at(1_500), [timed_out(2)]);
    assert_eq!(server.tick_at(2_000), [timed_out(4)]);
    assert_eq!(server.krmx.unlinked_connections(), 0);
}
