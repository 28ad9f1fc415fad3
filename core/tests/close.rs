//! Closing the server: every user leaves in join order with its messages, every connection is
//! closed with 1001, then `close`, and the server stays closed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{AuthDecision, AuthMode, Error, Input, KrmxConfig, Status};
use support::*;

fn closed_with_1001(conn: u64) -> Out {
    Out::Close(conn, 1001, "server closing")
}

#[test]
fn every_user_leaves_in_join_order_then_every_connection_closes_then_closed() {
    let mut server = alice_and_bob();
    server.input(Input::Join {
        username: "carol".into(),
    });
    server.open(3);
    assert_eq!(
        server.input(Input::Close),
        [
            // alice leaves
            send(1, unlinked("alice")),
            send(2, unlinked("alice")),
            ev_unlinked("alice", 1),
            send(1, left("alice")),
            send(2, left("alice")),
            ev_left("alice"),
            // bob leaves
            send(2, unlinked("bob")),
            ev_unlinked("bob", 2),
            send(2, left("bob")),
            ev_left("bob"),
            // carol (never linked) leaves
            ev_left("carol"),
            closed_with_1001(1),
            closed_with_1001(2),
            closed_with_1001(3),
            Out::Closed,
        ]
    );
    assert_eq!(server.status(), Status::Closed);
    assert_eq!(server.users(), []);
    assert_eq!(server.krmx.connections().count(), 0);
    assert_eq!(server.timeout_ms(), None);
}

#[test]
fn closing_an_empty_server_only_emits_closed() {
    let mut server = Server::default_listening();
    assert_eq!(server.input(Input::Close), [Out::Closed]);
    assert_eq!(server.timeout_ms(), None);
}

#[test]
fn closing_while_starting_closes() {
    let mut server = Server::new(KrmxConfig::default());
    server.input(Input::Start);
    assert_eq!(server.input(Input::Close), [Out::Closed]);
    assert_eq!(server.status(), Status::Closed);
}

#[test]
fn closed_server_refuses_new_connections_and_forgets_old_ones() {
    let mut server = alice_and_bob();
    server.input(Input::Close);
    assert_eq!(
        server.open(3),
        [Out::Close(3, 1001, "server is not listening")]
    );
    assert_eq!(
        server.try_input(Input::Frame {
            conn: id(1),
            frame: krmx_core::Frame::Text(r#"{"type":"a"}"#.into()),
        }),
        Err(Error::UnknownConnection(id(1)))
    );
    assert_eq!(server.closed(1), []);
    assert_eq!(server.tick_at(60_000), []);
}

#[test]
fn connection_opened_before_listening_is_closed_with_1001() {
    let mut server = Server::new(KrmxConfig::default());
    assert_eq!(
        server.open(1),
        [Out::Close(1, 1001, "server is not listening")]
    );
    server.input(Input::Start);
    assert_eq!(
        server.open(2),
        [Out::Close(2, 1001, "server is not listening")]
    );
    assert_eq!(server.krmx.connections().count(), 0);
}

#[test]
fn close_forgets_pending_authentications() {
    let mut server = Server::listening(KrmxConfig::default().auth(AuthMode::Application));
    server.open(1);
    assert_eq!(
        server.link(1, "alice"),
        [ev_auth(1, 1, "alice", true, None)]
    );
    assert_eq!(
        server.input(Input::Close),
        [closed_with_1001(1), Out::Closed]
    );
    assert_eq!(server.krmx.pending_auths(), 0);
    assert_eq!(server.decide(1, AuthDecision::Accept), []);
    assert_eq!(server.users(), []);
    assert_eq!(server.timeout_ms(), None);
}

#[test]
fn a_close_queues_one_leave_at_a_time_and_the_next_when_the_queue_ran_dry() {
    let mut server = alice_and_bob();
    server.krmx.handle_input(server.now, Input::Close).unwrap();
    assert_eq!(server.status(), Status::Closing);
    // Only alice's leave is queued; bob's is produced once it is drained.
    let mut first = Vec::new();
    for _ in 0..5 {
        first.extend(outs(server.krmx.poll_output().unwrap()));
    }
    assert_eq!(
        first,
        [
            send(1, unlinked("alice")),
            send(2, unlinked("alice")),
            ev_unlinked("alice", 1),
            send(1, left("alice")),
            send(2, left("alice")),
            ev_left("alice"),
        ]
    );
    assert_eq!(server.users(), users(&[("bob", true)]));
    assert_eq!(server.status(), Status::Closing);
    assert_eq!(
        server.drain(),
        [
            send(2, unlinked("bob")),
            ev_unlinked("bob", 2),
            send(2, left("bob")),
            ev_left("bob"),
            closed_with_1001(1),
            closed_with_1001(2),
            Out::Closed,
        ]
    );
    assert_eq!(server.status(), Status::Closed);
}

#[test]
fn while_closing_frames_and_pongs_are_ignored_and_a_dropped_connection_unlinks_quietly() {
    let mut server = alice_and_bob();
    server.connect(3, "carol");
    server.krmx.handle_input(server.now, Input::Close).unwrap();
    server
        .krmx
        .handle_input(server.now, Input::ConnectionClosed { conn: id(2) })
        .unwrap();
    server
        .krmx
        .handle_input(server.now, Input::Pong { conn: id(3) })
        .unwrap();
    server
        .krmx
        .handle_input(
            server.now,
            Input::Frame {
                conn: id(3),
                frame: krmx_core::Frame::Text(r#"{"type":"krmx/leave"}"#.into()),
            },
        )
        .unwrap();
    assert_eq!(
        server.drain(),
        [
            // alice's leave, queued by the close
            send(1, unlinked("alice")),
            send(2, unlinked("alice")),
            send(3, unlinked("alice")),
            ev_unlinked("alice", 1),
            send(1, left("alice")),
            send(2, left("alice")),
            send(3, left("alice")),
            ev_left("alice"),
            // bob's connection dropped: unlinked without a broadcast
            ev_unlinked("bob", 2),
            send(3, left("bob")),
            ev_left("bob"),
            // carol's krmx/leave was ignored: she leaves with the close
            send(3, unlinked("carol")),
            ev_unlinked("carol", 3),
            send(3, left("carol")),
            ev_left("carol"),
            closed_with_1001(1),
            closed_with_1001(3),
            Out::Closed,
        ]
    );
}

#[test]
fn once_nobody_is_linked_the_remaining_users_leave_together() {
    let mut server = alice_and_bob();
    for name in ["carol", "dave"] {
        server.input(Input::Join {
            username: name.into(),
        });
    }
    server.krmx.handle_input(server.now, Input::Close).unwrap();
    server
        .krmx
        .handle_input(server.now, Input::ConnectionClosed { conn: id(1) })
        .unwrap();
    server
        .krmx
        .handle_input(server.now, Input::ConnectionClosed { conn: id(2) })
        .unwrap();
    let all = server.drain();
    assert_eq!(
        all[6..],
        [
            ev_unlinked("bob", 2),
            ev_left("bob"),
            ev_left("carol"),
            ev_left("dave"),
            // no connection is left to close
            Out::Closed,
        ]
    );
}
