//! The server commands (join, kick, unlink, send, broadcast), the status lifecycle and its rules,
//! `users()`, and the reference's error texts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Error, Input, KrmxConfig, Message, Status};
use serde_json::json;
use support::*;

fn join(username: &str) -> Input {
    Input::Join {
        username: username.into(),
    }
}

fn kick(username: &str) -> Input {
    Input::Kick {
        username: username.into(),
    }
}

fn unlink(username: &str) -> Input {
    Input::Unlink {
        username: username.into(),
    }
}

fn send_to(username: &str, message: Message) -> Input {
    Input::Send {
        username: username.into(),
        message,
    }
}

fn broadcast(message: Message, skip: Option<&str>) -> Input {
    Input::Broadcast {
        message,
        skip: skip.map(str::to_owned),
    }
}

fn chat() -> Message {
    message("chat/say", json!({"text": "hi"}))
}

const CHAT: &str = r#"{"type":"chat/say","payload":{"text":"hi"}}"#;

#[test]
fn status_goes_from_initializing_through_starting_and_listening_to_closed() {
    let mut server = Server::new(KrmxConfig::default());
    assert_eq!(server.status(), Status::Initializing);
    assert_eq!(server.input(Input::Start), []);
    assert_eq!(server.status(), Status::Starting);
    assert_eq!(
        server.input(Input::Listen { port: 1234 }),
        [Out::Listening(1234)]
    );
    assert_eq!(server.status(), Status::Listening);
    assert_eq!(server.input(Input::Close), [Out::Closed]);
    assert_eq!(server.status(), Status::Closed);
}

#[test]
fn listen_goes_straight_from_initializing_to_listening() {
    let mut server = Server::new(KrmxConfig::default());
    assert_eq!(server.input(Input::Listen { port: 0 }), [Out::Listening(0)]);
    assert_eq!(server.status(), Status::Listening);
}

#[test]
fn status_names_are_the_references() {
    let names: Vec<String> = [
        Status::Initializing,
        Status::Starting,
        Status::Listening,
        Status::Closing,
        Status::Closed,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        names,
        ["initializing", "starting", "listening", "closing", "closed"]
    );
}

#[test]
fn listening_again_fails_with_the_current_status() {
    let mut server = Server::default_listening();
    assert_eq!(
        server.refused(Input::Listen { port: 1 }),
        "cannot start listening when the server is listening"
    );
    assert_eq!(
        server.refused(Input::Start),
        "cannot start listening when the server is listening"
    );
    let mut starting = Server::new(KrmxConfig::default());
    starting.input(Input::Start);
    assert_eq!(
        starting.refused(Input::Start),
        "cannot start listening when the server is starting"
    );
    server.input(Input::Close);
    assert_eq!(
        server.refused(Input::Listen { port: 1 }),
        "cannot start listening when the server is closed"
    );
}

#[test]
fn close_is_only_possible_while_starting_or_listening() {
    let mut server = Server::new(KrmxConfig::default());
    assert_eq!(
        server.try_input(Input::Close),
        Err(Error::WrongStatus {
            action: "close",
            status: Status::Initializing
        })
    );
    assert_eq!(
        server.refused(Input::Close),
        "cannot close when the server is initializing"
    );
    server.input(Input::Start);
    assert_eq!(server.input(Input::Close), [Out::Closed]);
    assert_eq!(
        server.refused(Input::Close),
        "cannot close when the server is closed"
    );
}

#[test]
fn commands_before_listening_fail_with_the_status_in_the_text() {
    let mut server = Server::new(KrmxConfig::default());
    for status in ["initializing", "starting"] {
        assert_eq!(
            server.refused(join("alice")),
            format!("cannot join a user when the server is {status}")
        );
        assert_eq!(
            server.refused(kick("alice")),
            format!("cannot kick a user when the server is {status}")
        );
        assert_eq!(
            server.refused(unlink("alice")),
            format!("cannot unlink a connection from a user when the server is {status}")
        );
        assert_eq!(
            server.refused(send_to("alice", chat())),
            format!("cannot send a message when the server is {status}")
        );
        assert_eq!(
            server.refused(broadcast(chat(), None)),
            format!("cannot broadcast a message when the server is {status}")
        );
        if server.status() == Status::Initializing {
            server.input(Input::Start);
        }
    }
}

#[test]
fn commands_after_close_fail_with_the_status_in_the_text() {
    let mut server = alice_and_bob();
    server.input(Input::Close);
    assert_eq!(
        server.refused(join("carol")),
        "cannot join a user when the server is closed"
    );
    assert_eq!(
        server.refused(kick("alice")),
        "cannot kick a user when the server is closed"
    );
    assert_eq!(
        server.refused(unlink("alice")),
        "cannot unlink a connection from a user when the server is closed"
    );
    assert_eq!(
        server.refused(send_to("alice", chat())),
        "cannot send a message when the server is closed"
    );
    assert_eq!(
        server.refused(broadcast(chat(), None)),
        "cannot broadcast a message when the server is closed"
    );
}

#[test]
fn status_is_checked_before_the_user() {
    let mut server = Server::new(KrmxConfig::default());
    assert_eq!(
        server.try_input(kick("nobody")),
        Err(Error::WrongStatus {
            action: "kick a user",
            status: Status::Initializing
        })
    );
}

#[test]
fn server_join_while_others_are_linked_broadcasts_joined_in_join_order() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.input(join("carol")),
        [
            send(1, joined("carol")),
            send(2, joined("carol")),
            ev_joined("carol"),
        ]
    );
    assert_eq!(
        server.users(),
        users(&[("alice", true), ("bob", true), ("carol", false)])
    );
}

#[test]
fn server_join_with_nobody_linked_only_emits_the_join_event() {
    let mut server = Server::default_listening();
    assert_eq!(server.input(join("alice")), [ev_joined("alice")]);
    assert_eq!(server.users(), users(&[("alice", false)]));
}

#[test]
fn joining_an_existing_user_fails() {
    let mut server = alice_and_bob();
    server.input(join("carol"));
    for name in ["alice", "carol"] {
        assert_eq!(server.try_input(join(name)), Err(Error::JoinExistingUser));
        assert_eq!(
            server.refused(join(name)),
            "cannot join a user that already exist"
        );
    }
}

#[test]
fn joining_an_invalid_username_fails() {
    let mut server = Server::default_listening();
    for name in ["", "a", "1abc", "a..b"] {
        assert_eq!(
            server.refused(join(name)),
            "cannot join a user with an invalid username"
        );
    }
    assert_eq!(server.users(), []);
}

#[test]
fn server_unlink_unlinks_and_keeps_the_connection_open() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.input(unlink("bob")),
        [
            send(1, unlinked("bob")),
            send(2, unlinked("bob")),
            ev_unlinked("bob", 2),
        ]
    );
    assert_eq!(server.users(), users(&[("alice", true), ("bob", false)]));
    assert_eq!(server.link(2, "bob").first(), Some(&send(2, accepted())));
}

#[test]
fn server_unlink_fails_for_unknown_and_unlinked_users() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.try_input(unlink("carol")),
        Err(Error::UnlinkUnknownUser)
    );
    assert_eq!(
        server.refused(unlink("carol")),
        "cannot unlink a connection from a user that does not exist"
    );
    server.input(join("carol"));
    assert_eq!(
        server.try_input(unlink("carol")),
        Err(Error::UnlinkNotLinked)
    );
    assert_eq!(
        server.refused(unlink("carol")),
        "cannot unlink a connection from a user that is not linked"
    );
}

#[test]
fn server_send_reaches_only_that_user_as_exact_json() {
    let mut server = alice_and_bob();
    assert_eq!(server.input(send_to("bob", chat())), [send(2, CHAT)]);
}

#[test]
fn server_send_of_a_parsed_message_keeps_its_text_and_extra_fields() {
    let mut server = alice_and_bob();
    let text = r#"{"type":"relay", "payload":[1,2], "from":"alice"}"#;
    let message = Message::parse(text).unwrap();
    assert_eq!(server.input(send_to("bob", message)), [send(2, text)]);
}

#[test]
fn server_send_fails_for_unknown_and_unlinked_users() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.try_input(send_to("carol", chat())),
        Err(Error::SendUnknownUser)
    );
    assert_eq!(
        server.refused(send_to("carol", chat())),
        "cannot send a message to a user that does not exist"
    );
    server.input(join("carol"));
    assert_eq!(
        server.try_input(send_to("carol", chat())),
        Err(Error::SendNotLinked)
    );
    assert_eq!(
        server.refused(send_to("carol", chat())),
        "cannot send a message to a user that is not linked to a connection"
    );
}

#[test]
fn broadcast_reaches_every_linked_user_in_join_order() {
    let mut server = alice_and_bob();
    server.input(join("carol"));
    server.connect(3, "dave");
    assert_eq!(
        server.input(broadcast(chat(), None)),
        [send(1, CHAT), send(2, CHAT), send(3, CHAT)]
    );
}

#[test]
fn broadcast_skips_the_given_user() {
    let mut server = alice_and_bob();
    server.connect(3, "carol");
    assert_eq!(
        server.input(broadcast(chat(), Some("bob"))),
        [send(1, CHAT), send(3, CHAT)]
    );
    assert_eq!(
        server.input(broadcast(chat(), Some("nobody"))),
        [send(1, CHAT), send(2, CHAT), send(3, CHAT)]
    );
}

#[test]
fn broadcast_with_nobody_linked_sends_nothing() {
    let mut server = Server::default_listening();
    server.input(join("alice"));
    server.open(1);
    assert_eq!(server.input(broadcast(chat(), None)), []);
}

#[test]
fn broadcast_follows_join_order_not_connection_order() {
    let mut server = Server::default_listening();
    server.connect(5, "alice");
    server.connect(2, "bob");
    server.connect(9, "carol");
    assert_eq!(
        server.input(broadcast(chat(), None)),
        [send(5, CHAT), send(2, CHAT), send(9, CHAT)]
    );
}

#[test]
fn users_are_listed_in_join_order_with_their_link_state() {
    let mut server = Server::default_listening();
    assert_eq!(server.users(), []);
    server.input(join("zed"));
    server.connect(1, "alice");
    server.connect(2, "bob");
    server.text(1, r#"{"type":"krmx/unlink"}"#);
    assert_eq!(
        server.users(),
        users(&[("zed", false), ("alice", false), ("bob", true)])
    );
    // Relinking keeps a user's place.
    server.link(1, "alice");
    assert_eq!(
        server.users(),
        users(&[("zed", false), ("alice", true), ("bob", true)])
    );
    server.input(kick("zed"));
    assert_eq!(server.users(), users(&[("alice", true), ("bob", true)]));
}

#[test]
fn refused_commands_change_nothing() {
    let mut server = alice_and_bob();
    server.refused(join("alice"));
    server.refused(kick("carol"));
    server.refused(unlink("carol"));
    server.refused(send_to("carol", chat()));
    assert_eq!(server.users(), users(&[("alice", true), ("bob", true)]));
    assert_eq!(server.krmx.connections().count(), 2);
}
