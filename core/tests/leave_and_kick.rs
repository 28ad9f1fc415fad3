//! Users leaving: by `krmx/leave`, by the server's kick; and connections that close or drop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Error, Input};
use support::*;

fn kick(username: &str) -> Input {
    Input::Kick {
        username: username.into(),
    }
}

#[test]
fn leaving_user_is_unlinked_then_told_it_left_then_everyone_is_told() {
    let mut server = alice_and_bob();
    server.connect(3, "carol");
    assert_eq!(
        server.text(2, r#"{"type":"krmx/leave"}"#),
        [
            send(1, unlinked("bob")),
            send(2, unlinked("bob")),
            send(3, unlinked("bob")),
            ev_unlinked("bob", 2),
            send(2, left("bob")),
            send(1, left("bob")),
            send(3, left("bob")),
            ev_left("bob"),
        ]
    );
    assert_eq!(server.users(), users(&[("alice", true), ("carol", true)]));
}

#[test]
fn left_user_may_join_again_as_a_new_user_at_the_end_of_the_join_order() {
    let mut server = alice_and_bob();
    server.text(1, r#"{"type":"krmx/leave"}"#);
    assert_eq!(
        server.link(1, "alice"),
        [
            send(1, accepted()),
            send(2, joined("alice")),
            ev_joined("alice"),
            send(1, joined("bob")),
            send(1, linked("bob")),
            send(1, joined("alice")),
            send(1, linked("alice")),
            send(2, linked("alice")),
            ev_linked("alice", 1),
        ]
    );
    assert_eq!(server.users(), users(&[("bob", true), ("alice", true)]));
}

#[test]
fn kicked_linked_user_is_unlinked_then_leaves() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.input(kick("bob")),
        [
            send(1, unlinked("bob")),
            send(2, unlinked("bob")),
            ev_unlinked("bob", 2),
            send(2, left("bob")),
            send(1, left("bob")),
            ev_left("bob"),
        ]
    );
    assert_eq!(server.users(), users(&[("alice", true)]));
}

#[test]
fn kicked_connection_stays_open_and_unlinked() {
    let mut server = alice_and_bob();
    server.input(kick("bob"));
    assert_eq!(server.krmx.connections().count(), 2);
    assert_eq!(
        server.text(2, r#"{"type":"chat/say"}"#),
        [send(2, rejected("unlinked connection"))]
    );
    assert_eq!(server.link(2, "bob").first(), Some(&send(2, accepted())));
}

#[test]
fn kicked_unlinked_user_only_causes_left_to_the_linked_connections() {
    let mut server = alice_and_bob();
    server.input(Input::Join {
        username: "carol".into(),
    });
    assert_eq!(
        server.input(kick("carol")),
        [
            send(1, left("carol")),
            send(2, left("carol")),
            ev_left("carol")
        ]
    );
    assert_eq!(server.users(), users(&[("alice", true), ("bob", true)]));
}

#[test]
fn kicking_the_only_unlinked_user_emits_only_the_leave_event() {
    let mut server = Server::default_listening();
    server.input(Input::Join {
        username: "alice".into(),
    });
    assert_eq!(server.input(kick("alice")), [ev_left("alice")]);
    assert_eq!(server.users(), []);
}

#[test]
fn kicking_an_unknown_user_fails() {
    let mut server = alice_and_bob();
    assert_eq!(server.try_input(kick("carol")), Err(Error::KickUnknownUser));
    assert_eq!(
        server.refused(kick("carol")),
        "cannot kick a user that does not exist"
    );
}

#[test]
fn kicking_a_user_twice_fails_the_second_time() {
    let mut server = alice_and_bob();
    server.input(kick("bob"));
    assert_eq!(
        server.refused(kick("bob")),
        "cannot kick a user that does not exist"
    );
}

#[test]
fn closed_linked_connection_unlinks_its_user() {
    let mut server = alice_and_bob();
    // Nothing is addressed to bob's own connection: it is gone.
    assert_eq!(
        server.closed(2),
        [send(1, unlinked("bob")), ev_unlinked("bob", 2)]
    );
    assert_eq!(server.users(), users(&[("alice", true), ("bob", false)]));
    assert_eq!(server.krmx.connections().count(), 1);
}

#[test]
fn closed_unlinked_user_connection_is_forgotten_without_events() {
    let mut server = alice_and_bob();
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    assert_eq!(server.closed(2), []);
    assert_eq!(server.users(), users(&[("alice", true), ("bob", false)]));
}

#[test]
fn closed_connection_that_never_linked_emits_nothing() {
    let mut server = alice_and_bob();
    server.open(3);
    server.text(3, r#"{"type":"chat/say"}"#);
    server.link(3, "alice");
    assert_eq!(server.closed(3), []);
    assert_eq!(server.krmx.connections().count(), 2);
}

#[test]
fn reporting_an_unknown_or_already_closed_connection_closed_is_harmless() {
    let mut server = alice_and_bob();
    server.closed(2);
    assert_eq!(server.closed(2), []);
    assert_eq!(server.closed(99), []);
}

#[test]
fn inputs_for_a_closed_connection_are_an_unknown_connection_error() {
    let mut server = alice_and_bob();
    server.closed(2);
    assert_eq!(
        server.try_input(Input::Frame {
            conn: id(2),
            frame: krmx_core::Frame::Text(r#"{"type":"a"}"#.into()),
        }),
        Err(Error::UnknownConnection(id(2)))
    );
    assert_eq!(
        server.refused(Input::Pong { conn: id(2) }),
        "connection cn-2 is not open"
    );
    assert_eq!(
        server.try_input(Input::Violation {
            conn: id(2),
            violation: krmx_core::Violation::SlowConsumer,
        }),
        Err(Error::UnknownConnection(id(2)))
    );
}

#[test]
fn inputs_for_a_never_opened_connection_are_an_unknown_connection_error() {
    let mut server = Server::default_listening();
    assert_eq!(
        server.refused(Input::Frame {
            conn: id(7),
            frame: krmx_core::Frame::Binary(vec![]),
        }),
        "connection cn-7 is not open"
    );
    assert_eq!(
        server.try_input(Input::Pong { conn: id(7) }),
        Err(Error::UnknownConnection(id(7)))
    );
}

#[test]
fn user_leaving_from_the_middle_keeps_the_join_order_of_the_others() {
    let mut server = alice_and_bob();
    server.connect(3, "carol");
    server.connect(4, "dave");
    server.input(kick("bob"));
    assert_eq!(
        server.users(),
        users(&[("alice", true), ("carol", true), ("dave", true)])
    );
    server.open(5);
    assert_eq!(
        server.link(5, "eve"),
        [
            send(5, accepted()),
            send(1, joined("eve")),
            send(3, joined("eve")),
            send(4, joined("eve")),
            ev_joined("eve"),
            send(5, joined("alice")),
            send(5, linked("alice")),
            send(5, joined("carol")),
            send(5, linked("carol")),
            send(5, joined("dave")),
            send(5, linked("dave")),
            send(5, joined("eve")),
            send(5, linked("eve")),
            send(1, linked("eve")),
            send(3, linked("eve")),
            send(4, linked("eve")),
            ev_linked("eve", 5),
        ]
    );
}
