//! Authentication by the application (`AuthMode::Application`): decisions now or later,
//! rejections, failures, the timeout, and the beyond rules (re-run checks, forgotten connections,
//! queued messages, final decisions).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{AuthDecision, AuthMode, Input, KrmxConfig, Violation};
use std::time::Duration;
use support::*;

/// Application authentication, default 10 s timeout, pings off so `poll_timeout` shows only the
/// authentication deadlines.
fn config() -> KrmxConfig {
    KrmxConfig::default()
        .auth(AuthMode::Application)
        .ping_interval(Duration::ZERO)
}

fn server() -> Server {
    Server::listening(config())
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

#[test]
fn link_waits_for_the_application_with_username_newness_and_auth() {
    let mut server = server();
    server.open(1);
    assert_eq!(
        server.text(1, &link_frame("alice", "0.6.0", Some("token"))),
        [ev_auth(1, 1, "alice", true, Some("token"))]
    );
    assert_eq!(server.krmx.pending_auths(), 1);
    assert_eq!(server.users(), []);
    assert_eq!(server.timeout_ms(), Some(10_000));
}

#[test]
fn existing_user_is_announced_as_not_new_and_missing_auth_as_none() {
    let mut server = server();
    server.input(Input::Join {
        username: "alice".into(),
    });
    server.open(1);
    assert_eq!(
        server.link(1, "alice"),
        [ev_auth(1, 1, "alice", false, None)]
    );
}

#[test]
fn accepted_at_once_links_like_without_authentication() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(
        server.decide(1, AuthDecision::Accept),
        first_link(1, "alice")
    );
    assert_eq!(server.krmx.pending_auths(), 0);
}

#[test]
fn accepted_later_links_and_others_are_told_then() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.decide(1, AuthDecision::Accept);
    server.open(2);
    assert_eq!(server.link(2, "bob"), [ev_auth(2, 2, "bob", true, None)]);
    server.at(5_000);
    assert_eq!(
        server.decide(2, AuthDecision::Accept),
        [
            send(2, accepted()),
            send(1, joined("bob")),
            ev_joined("bob"),
            send(2, joined("alice")),
            send(2, linked("alice")),
            send(2, joined("bob")),
            send(2, linked("bob")),
            send(1, linked("bob")),
            ev_linked("bob", 2),
        ]
    );
}

#[test]
fn decision_made_while_draining_the_request_links_in_the_same_run() {
    let mut server = server();
    server.open(1);
    server
        .krmx
        .handle_input(
            server.now,
            Input::Frame {
                conn: id(1),
                frame: krmx_core::Frame::Text(link_frame("alice", "0.6.0", Some("ok"))),
            },
        )
        .unwrap();
    let mut seen = Vec::new();
    while let Some(output) = server.krmx.poll_output() {
        let out = Out::from(output);
        if let Out::AuthRequested { id, .. } = out {
            server
                .krmx
                .handle_input(
                    server.now,
                    Input::AuthDecided {
                        id: krmx_core::AuthId::from_number(id),
                        decision: AuthDecision::Accept,
                    },
                )
                .unwrap();
        }
        seen.push(out);
    }
    let mut expected = vec![ev_auth(1, 1, "alice", true, Some("ok"))];
    expected.extend(first_link(1, "alice"));
    assert_eq!(seen, expected);
}

#[test]
fn rejection_sends_the_applications_reason_and_keeps_the_connection_open() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(
        server.decide(1, AuthDecision::reject("bad token")),
        [send(1, rejected("bad token"))]
    );
    assert_eq!(server.users(), []);
    assert_eq!(server.krmx.pending_auths(), 0);
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(
        server.link(1, "alice"),
        [ev_auth(2, 1, "alice", true, None)]
    );
}

#[test]
fn rejection_reason_is_escaped_as_json() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(
        server.decide(1, AuthDecision::reject(r#"say "no""#)),
        [send(
            1,
            r#"{"type":"krmx/rejected","payload":{"reason":"say \"no\""}}"#
        )]
    );
}

#[test]
fn empty_rejection_reason_is_sent_as_given() {
    // Only `AuthDecision::Failed` stands for "an error with no message"; an explicit reason,
    // even empty, is the application's choice.
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(
        server.decide(1, AuthDecision::reject("")),
        [send(1, rejected(""))]
    );
}

#[test]
fn failure_without_a_reason_is_rejected_as_authentication_failed() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(
        server.decide(1, AuthDecision::Failed),
        [send(1, rejected("authentication failed"))]
    );
}

#[test]
fn undecided_link_is_rejected_with_authentication_timeout_exactly_at_the_deadline() {
    let mut server = server();
    server.at(1_000);
    server.open(1);
    server.link(1, "alice");
    assert_eq!(server.timeout_ms(), Some(11_000));
    assert_eq!(server.tick_at(10_999), []);
    assert_eq!(
        server.tick_at(11_000),
        [send(1, rejected("authentication timeout"))]
    );
    assert_eq!(server.krmx.pending_auths(), 0);
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.tick_at(30_000), []);
}

#[test]
fn late_tick_still_times_out_once() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(
        server.tick_at(25_000),
        [send(1, rejected("authentication timeout"))]
    );
    assert_eq!(server.tick(), []);
}

#[test]
fn decision_after_the_timeout_is_ignored() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.tick_at(10_000);
    assert_eq!(server.decide(1, AuthDecision::Accept), []);
    assert_eq!(server.users(), []);
    assert_eq!(server.krmx.linked_user(id(1)), None);
}

#[test]
fn decision_arriving_at_the_deadline_loses_to_the_timeout() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.at(10_000);
    assert_eq!(
        server.decide(1, AuthDecision::Accept),
        [send(1, rejected("authentication timeout"))]
    );
    assert_eq!(server.users(), []);
}

#[test]
fn configured_auth_timeout_has_a_one_millisecond_floor() {
    let mut server = Server::listening(config().auth_timeout(Duration::ZERO));
    server.open(1);
    server.link(1, "alice");
    assert_eq!(server.timeout_ms(), Some(1));
    assert_eq!(
        server.tick_at(1),
        [send(1, rejected("authentication timeout"))]
    );

    let mut server = Server::listening(config().auth_timeout(Duration::from_millis(250)));
    server.open(1);
    server.link(1, "alice");
    assert_eq!(server.timeout_ms(), Some(250));
}

#[test]
fn second_decision_for_the_same_link_is_ignored() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.decide(1, AuthDecision::reject("first"));
    assert_eq!(server.decide(1, AuthDecision::reject("second")), []);
    assert_eq!(server.decide(1, AuthDecision::Accept), []);
    assert_eq!(server.users(), []);
}

#[test]
fn decision_for_an_unknown_id_is_ignored() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(server.decide(99, AuthDecision::Accept), []);
    assert_eq!(server.krmx.pending_auths(), 1);
}

#[test]
fn decided_link_cancels_its_deadline() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.at(1_000);
    server.decide(1, AuthDecision::Accept);
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.tick_at(10_000), []);
    assert_eq!(server.tick_at(60_000), []);
    assert_eq!(server.users(), users(&[("alice", true)]));
}

#[test]
fn rejected_link_cancels_its_deadline_and_a_new_attempt_gets_its_own() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.at(4_000);
    server.decide(1, AuthDecision::reject("no"));
    server.at(6_000);
    assert_eq!(
        server.link(1, "alice"),
        [ev_auth(2, 1, "alice", true, None)]
    );
    assert_eq!(server.timeout_ms(), Some(16_000));
    assert_eq!(server.tick_at(10_000), []);
    assert_eq!(
        server.tick_at(16_000),
        [send(1, rejected("authentication timeout"))]
    );
}

#[test]
fn closed_connection_forgets_its_pending_decision() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(server.closed(1), []);
    assert_eq!(server.krmx.pending_auths(), 0);
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.decide(1, AuthDecision::Accept), []);
    assert_eq!(server.users(), []);
    assert_eq!(server.tick_at(10_000), []);
}

#[test]
fn two_pending_links_for_one_new_user_join_it_once() {
    let mut server = server();
    server.open(1);
    server.open(2);
    assert_eq!(
        server.link(1, "alice"),
        [ev_auth(1, 1, "alice", true, None)]
    );
    assert_eq!(
        server.link(2, "alice"),
        [ev_auth(2, 2, "alice", true, None)]
    );
    assert_eq!(
        server.decide(1, AuthDecision::Accept),
        first_link(1, "alice")
    );
    assert_eq!(
        server.decide(2, AuthDecision::Accept),
        [send(
            2,
            rejected("user alice is already linked to a connection")
        )]
    );
    assert_eq!(server.users(), users(&[("alice", true)]));
    assert_eq!(server.krmx.linked_connection("alice"), Some(id(1)));
}

#[test]
fn second_pending_link_succeeds_when_the_first_unlinked_meanwhile() {
    let mut server = server();
    server.open(1);
    server.open(2);
    server.link(1, "alice");
    server.link(2, "alice");
    server.decide(1, AuthDecision::Accept);
    server.text(1, r#"{"type":"krmx/unlink"}"#);
    assert_eq!(
        server.decide(2, AuthDecision::Accept),
        [
            send(2, accepted()),
            send(2, joined("alice")),
            send(2, linked("alice")),
            ev_linked("alice", 2),
        ]
    );
}

#[test]
fn user_joined_by_the_server_while_pending_is_not_joined_again() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(
        server.input(Input::Join {
            username: "alice".into()
        }),
        [ev_joined("alice")]
    );
    assert_eq!(
        server.decide(1, AuthDecision::Accept),
        [
            send(1, accepted()),
            send(1, joined("alice")),
            send(1, linked("alice")),
            ev_linked("alice", 1),
        ]
    );
}

#[test]
fn existing_user_kicked_while_pending_is_rejected_when_new_users_are_not_accepted() {
    let mut server = Server::listening(config().accept_new_users(false));
    server.input(Input::Join {
        username: "alice".into(),
    });
    server.open(1);
    assert_eq!(
        server.link(1, "alice"),
        [ev_auth(1, 1, "alice", false, None)]
    );
    server.input(Input::Kick {
        username: "alice".into(),
    });
    assert_eq!(
        server.decide(1, AuthDecision::Accept),
        [send(1, rejected("server is not accepting new users"))]
    );
    assert_eq!(server.users(), []);
}

#[test]
fn already_linked_user_is_rejected_before_the_application_is_asked() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.decide(1, AuthDecision::Accept);
    server.open(2);
    assert_eq!(
        server.link(2, "alice"),
        [send(
            2,
            rejected("user alice is already linked to a connection")
        )]
    );
    assert_eq!(server.krmx.pending_auths(), 0);
}

#[test]
fn protocol_checks_run_before_the_application_is_asked() {
    let mut server = Server::listening(config().accept_new_users(false));
    server.open(1);
    assert_eq!(
        server.text(1, r#"{"type":"krmx/link","payload":{}}"#),
        [send(1, rejected("invalid link request"))]
    );
    assert_eq!(
        server.text(1, &link_frame("alice", "0.5.0", None)),
        [send(
            1,
            rejected("krmx server version mismatch (server=0.6.*,client=0.5.0)")
        )]
    );
    assert_eq!(server.link(1, "a"), [send(1, rejected("invalid username"))]);
    assert_eq!(
        server.link(1, "alice"),
        [send(1, rejected("server is not accepting new users"))]
    );
    assert_eq!(server.krmx.pending_auths(), 0);
}

#[test]
fn messages_sent_while_pending_are_handled_in_order_after_acceptance() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(server.text(1, r#"{"type":"chat/a"}"#), []);
    assert_eq!(server.text(1, r#"{"type":"chat/b"}"#), []);
    let mut expected = first_link(1, "alice");
    expected.push(ev_message("alice", r#"{"type":"chat/a"}"#));
    expected.push(ev_message("alice", r#"{"type":"chat/b"}"#));
    assert_eq!(server.decide(1, AuthDecision::Accept), expected);
}

#[test]
fn messages_sent_while_pending_are_answered_as_unlinked_after_rejection() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.text(1, r#"{"type":"chat/a"}"#);
    server.text(1, "not json");
    assert_eq!(
        server.decide(1, AuthDecision::reject("no")),
        [
            send(1, rejected("no")),
            send(1, rejected("unlinked connection")),
            send(1, rejected("invalid message")),
        ]
    );
}

#[test]
fn protocol_messages_sent_while_pending_apply_after_acceptance() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.text(1, r#"{"type":"chat/a"}"#);
    server.text(1, r#"{"type":"krmx/leave"}"#);
    server.text(1, r#"{"type":"chat/b"}"#);
    let mut expected = first_link(1, "alice");
    expected.extend([
        ev_message("alice", r#"{"type":"chat/a"}"#),
        send(1, unlinked("alice")),
        ev_unlinked("alice", 1),
        send(1, left("alice")),
        ev_left("alice"),
        send(1, rejected("unlinked connection")),
    ]);
    assert_eq!(server.decide(1, AuthDecision::Accept), expected);
}

#[test]
fn link_queued_behind_a_rejected_link_waits_for_its_own_decision() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.link(1, "bob");
    server.text(1, r#"{"type":"chat/a"}"#);
    assert_eq!(
        server.decide(1, AuthDecision::reject("no")),
        [send(1, rejected("no")), ev_auth(2, 1, "bob", true, None)]
    );
    assert_eq!(server.text(1, r#"{"type":"chat/b"}"#), []);
    let mut expected = first_link(1, "bob");
    expected.push(ev_message("bob", r#"{"type":"chat/a"}"#));
    expected.push(ev_message("bob", r#"{"type":"chat/b"}"#));
    assert_eq!(server.decide(2, AuthDecision::Accept), expected);
}

#[test]
fn queued_messages_are_handled_after_a_timeout_before_a_frame_arriving_at_the_deadline() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    server.text(1, r#"{"type":"chat/a"}"#);
    server.at(10_000);
    assert_eq!(
        server.text(1, r#"{"type":"chat/b"}"#),
        [
            send(1, rejected("authentication timeout")),
            send(1, rejected("unlinked connection")),
            send(1, rejected("unlinked connection")),
        ]
    );
}

#[test]
fn violation_while_pending_closes_and_forgets_the_decision() {
    let mut server = server();
    server.open(1);
    server.link(1, "alice");
    assert_eq!(
        server.input(Input::Violation {
            conn: id(1),
            violation: Violation::InvalidUtf8,
        }),
        [Out::Close(1, 1007, "invalid utf-8")]
    );
    assert_eq!(server.krmx.pending_auths(), 0);
    assert_eq!(server.timeout_ms(), None);
    assert_eq!(server.decide(1, AuthDecision::Accept), []);
    assert_eq!(server.users(), []);
}

#[test]
fn pending_decisions_time_out_in_deadline_order() {
    let mut server = server();
    server.open(1);
    server.open(2);
    server.at(2_000);
    server.link(2, "bob");
    server.at(3_000);
    server.link(1, "alice");
    assert_eq!(server.timeout_ms(), Some(12_000));
    assert_eq!(
        server.tick_at(20_000),
        [
            send(2, rejected("authentication timeout")),
            send(1, rejected("authentication timeout")),
        ]
    );
}
