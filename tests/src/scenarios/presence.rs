//! Unlink, leave and kick, message by message, and the server commands' error texts.

use super::{link_users, start_default};
use crate::msg::{joined, left, linked, unlinked};
use crate::server::{Command, to_message};
use crate::{Client, ServerEvent, Transport};
use serde_json::json;
use std::time::Duration;

/// `krmx/unlink`: every linked connection, the user's own included, gets `krmx/unlinked`; the
/// user stays, unlinked.
pub fn unlink_message_unlinks_and_keeps_the_user(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    clients[0].send_json(&json!({"type": "krmx/unlink"}));
    for client in &mut clients {
        client.expect_json(&unlinked("alice"));
    }
    server.expect_event(&ServerEvent::unlinked("alice"));
    assert_eq!(
        server.users(),
        [("alice".to_owned(), false), ("bob".to_owned(), true)]
    );
    // The unlinked connection no longer hears the others.
    server.broadcast(&json!({"type": "app/ping"}), None);
    clients[1].expect_json(&json!({"type": "app/ping"}));
    clients[0].expect_nothing_for(Duration::from_millis(50));
}

/// The server's unlink: the same as `krmx/unlink`.
pub fn server_unlink_unlinks_and_keeps_the_user(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    server.unlink("bob");
    for client in &mut clients {
        client.expect_json(&unlinked("bob"));
    }
    server.expect_event(&ServerEvent::unlinked("bob"));
    assert_eq!(
        server.users(),
        [("alice".to_owned(), true), ("bob".to_owned(), false)]
    );
    clients[1].link("bob");
    clients[1].expect_linked(&[("alice", true), ("bob", true)]);
    clients[0].expect_json(&linked("bob"));
    server.expect_event(&ServerEvent::linked("bob"));
}

/// `krmx/leave`: unlinked to everyone (the user included), then left to the user's own
/// connection and to everyone else; the user is gone, its connection stays open.
pub fn leave_message_unlinks_then_removes_the_user(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice", "bob", "carol"]);
    clients[1].send_json(&json!({"type": "krmx/leave"}));
    for client in &mut clients {
        client.expect_jsons(&[unlinked("bob"), left("bob")]);
    }
    server.expect_events(&[ServerEvent::unlinked("bob"), ServerEvent::left("bob")]);
    assert_eq!(
        server.users(),
        [("alice".to_owned(), true), ("carol".to_owned(), true)]
    );
    // The connection may link again: bob is a new user now, last in join order.
    clients[1].link("bob");
    clients[1].expect_linked(&[("alice", true), ("carol", true), ("bob", true)]);
    for i in [0, 2] {
        clients[i].expect_jsons(&[joined("bob"), linked("bob")]);
    }
    server.expect_events(&[ServerEvent::joined("bob"), ServerEvent::linked("bob")]);
}

/// The server's kick of a linked user: unlinked then left, to the user and the others; the
/// kicked connection stays open. Kicking an unlinked user only broadcasts left.
pub fn kick_removes_the_user_and_keeps_its_connection_open(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    server.kick("alice");
    for client in &mut clients {
        client.expect_jsons(&[unlinked("alice"), left("alice")]);
    }
    server.expect_events(&[ServerEvent::unlinked("alice"), ServerEvent::left("alice")]);
    assert_eq!(server.users(), [("bob".to_owned(), true)]);

    // The connection is open: it links again.
    clients[0].link("alice");
    clients[0].expect_linked(&[("bob", true), ("alice", true)]);
    clients[1].expect_jsons(&[joined("alice"), linked("alice")]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);

    // An unlinked user: only left is broadcast.
    server.join("dave");
    for client in &mut clients {
        client.expect_json(&joined("dave"));
    }
    server.expect_event(&ServerEvent::joined("dave"));
    server.kick("dave");
    for client in &mut clients {
        client.expect_json(&left("dave"));
        client.expect_nothing_for(Duration::from_millis(30));
    }
    server.expect_event(&ServerEvent::left("dave"));

    // A connection that never linked hears none of this.
    let mut stranger = Client::connect(server.addr());
    server.kick("bob");
    stranger.expect_nothing_for(Duration::from_millis(50));
}

/// Each server command fails with the reference's text when the user is missing or in the
/// wrong state, and nothing is sent or emitted.
pub fn server_commands_report_the_reference_errors(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice"]);
    server.join("bob");
    clients[0].expect_json(&joined("bob"));
    server.expect_event(&ServerEvent::joined("bob"));
    let message = to_message(&json!({"type": "app/x"}));
    let cases = [
        (
            Command::Join("alice".into()),
            "cannot join a user that already exist",
        ),
        (
            Command::Join("1bad".into()),
            "cannot join a user with an invalid username",
        ),
        (
            Command::Kick("zed".into()),
            "cannot kick a user that does not exist",
        ),
        (
            Command::Unlink("zed".into()),
            "cannot unlink a connection from a user that does not exist",
        ),
        (
            Command::Unlink("bob".into()),
            "cannot unlink a connection from a user that is not linked",
        ),
        (
            Command::Send("zed".into(), message.clone()),
            "cannot send a message to a user that does not exist",
        ),
        (
            Command::Send("bob".into(), message),
            "cannot send a message to a user that is not linked to a connection",
        ),
    ];
    for (command, text) in cases {
        let shown = format!("{command:?}");
        match server.command(command) {
            Err(error) => assert_eq!(error.to_string(), text, "{shown}"),
            Ok(()) => panic!("{shown} succeeded"),
        }
    }
    clients[0].expect_nothing_for(Duration::from_millis(50));
    server.expect_no_event_for(Duration::from_millis(20));
    assert_eq!(
        server.users(),
        [("alice".to_owned(), true), ("bob".to_owned(), false)]
    );
}

/// With an inactivity timeout, a user unlinked for longer than it is kicked: the others see it
/// leave. A user that relinks in time stays.
pub fn inactive_unlinked_user_is_kicked_after_the_inactivity_timeout(transport: Transport) {
    let timeout = Duration::from_millis(200);
    let mut server = transport.start(super::quiet_config().inactivity_timeout(Some(timeout)));
    let mut clients = link_users(&mut server, &["alice", "bob"]);

    // bob unlinks and relinks within the timeout: nothing happens.
    clients[1].send_json(&json!({"type": "krmx/unlink"}));
    for client in &mut clients {
        client.expect_json(&unlinked("bob"));
    }
    server.expect_event(&ServerEvent::unlinked("bob"));
    clients[1].link("bob");
    clients[1].expect_linked(&[("alice", true), ("bob", true)]);
    clients[0].expect_json(&linked("bob"));
    server.expect_event(&ServerEvent::linked("bob"));

    let started = std::time::Instant::now();
    clients[0].send_json(&json!({"type": "krmx/unlink"}));
    for client in &mut clients {
        client.expect_json(&unlinked("alice"));
    }
    server.expect_event(&ServerEvent::unlinked("alice"));
    clients[1].expect_json(&left("alice"));
    server.expect_event(&ServerEvent::left("alice"));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout - Duration::from_millis(20),
        "kicked after {elapsed:?}"
    );
    assert_eq!(server.users(), [("bob".to_owned(), true)]);
    clients[1].expect_nothing_for(timeout + Duration::from_millis(50));
    server.expect_no_event_for(Duration::from_millis(10));
}
