//! Link rejections (every reason, the connection staying open) and the answers to unlinked
//! connections.

use super::{link_users, quiet_config, start_default};
use crate::msg::{self, joined, linked, rejected, unlinked};
use crate::{Client, ServerEvent, Transport, VERSION, frames};
use serde_json::json;
use std::time::Duration;

const MISMATCH_050: &str = "krmx server version mismatch (server=0.6.*,client=0.5.0)";

/// Every rejection reason the protocol checks answer `krmx/rejected` with the exact text and
/// leaves the connection open: a valid link on the same connection succeeds afterwards.
pub fn link_rejections_keep_the_connection_open(transport: Transport) {
    let mut server = start_default(transport);
    let mut alice = link_users(&mut server, &["alice"]).pop().expect("alice");
    let mut client = Client::connect(server.addr());

    for payload in [
        json!(null),
        json!("bob"),
        json!([]),
        json!({"username": "bob"}),
        json!({"version": VERSION}),
        json!({"username": 3, "version": VERSION}),
        json!({"username": "bob", "version": 0.6}),
        json!({"username": "bob", "version": VERSION, "auth": 42}),
        json!({"username": "bob", "version": VERSION, "auth": null}),
    ] {
        client.send_json(&json!({"type": "krmx/link", "payload": payload}));
        client.expect_json(&rejected("invalid link request"));
    }
    client.send_json(&json!({"type": "krmx/link"}));
    client.expect_json(&rejected("invalid link request"));

    for version in ["0.5.0", "0.60.1", "1.6.0", "0.6x", "", "0"] {
        client.link_with("bob", version, None);
        client.expect_json(&rejected(&format!(
            "krmx server version mismatch (server=0.6.*,client={version})"
        )));
    }

    for username in [
        "b",
        "1bob",
        "bob-",
        "bo..b",
        "_bob",
        "b ob",
        "bob!",
        &"b".repeat(33),
    ] {
        client.link(username);
        client.expect_json(&rejected("invalid username"));
    }

    client.link("alice");
    client.expect_json(&rejected("user alice is already linked to a connection"));

    // Patch versions are free; the connection is still usable.
    client.link_with("bob", "0.6.17", Some("any"));
    client.expect_linked(&[("alice", true), ("bob", true)]);
    alice.expect_jsons(&[joined("bob"), linked("bob")]);
    server.expect_events(&[ServerEvent::joined("bob"), ServerEvent::linked("bob")]);
    alice.expect_nothing_for(Duration::from_millis(30));
}

/// The checks run in order: request shape, version, username, new users, already linked.
pub fn link_checks_run_in_the_documented_order(transport: Transport) {
    let mut server = transport.start(quiet_config().accept_new_users(false));
    server.join("alice");
    server.expect_event(&ServerEvent::joined("alice"));
    let mut alice = Client::connect(server.addr());
    alice.link("alice");
    alice.expect_linked(&[("alice", true)]);
    server.expect_event(&ServerEvent::linked("alice"));

    let mut client = Client::connect(server.addr());
    // Bad version and bad name: the version is checked first.
    client.link_with("1x", "0.5.0", None);
    client.expect_json(&rejected(MISMATCH_050));
    // Bad name and new user: the name first.
    client.link("1x");
    client.expect_json(&rejected("invalid username"));
    // New user while none are accepted.
    client.link("bob");
    client.expect_json(&rejected("server is not accepting new users"));
    // Wrong version for a linked user: the version first.
    client.link_with("alice", "0.5.0", None);
    client.expect_json(&rejected(MISMATCH_050));
    client.link("alice");
    client.expect_json(&rejected("user alice is already linked to a connection"));
    client.expect_nothing_for(Duration::from_millis(30));
    server.expect_no_event_for(Duration::from_millis(30));
}

/// With new users refused, only users joined by the server may link.
pub fn no_new_users_admits_only_joined_users(transport: Transport) {
    let mut server = transport.start(quiet_config().accept_new_users(false));
    let mut client = Client::connect(server.addr());
    client.link("bob");
    client.expect_json(&rejected("server is not accepting new users"));
    server.join("bob");
    server.expect_event(&ServerEvent::joined("bob"));
    client.link("bob");
    client.expect_linked(&[("bob", true)]);
    server.expect_event(&ServerEvent::linked("bob"));
    assert_eq!(server.users(), [("bob".to_owned(), true)]);
}

/// An unlinked connection sending anything but `krmx/link` gets `unlinked connection`; an
/// invalid message gets `invalid message`. No event is emitted for it.
pub fn unlinked_connection_gets_rejected_answers(transport: Transport) {
    let mut server = start_default(transport);
    let mut client = Client::connect(server.addr());
    for message in [
        json!({"type": "chat/say", "payload": "hi"}),
        json!({"type": "krmx/unlink"}),
        json!({"type": "krmx/leave"}),
        json!({"type": "krmx/whatever"}),
        json!({"type": ""}),
    ] {
        client.send_json(&message);
        client.expect_json(&rejected("unlinked connection"));
    }
    for text in [
        "not json",
        "[]",
        "{}",
        "{\"type\":3}",
        "null",
        "\"s\"",
        "3",
        "true",
        "",
    ] {
        client.send_text(text);
        client.expect_json(&rejected("invalid message"));
    }
    client.send_binary(&[0xff, 0xfe, 0x00]);
    client.expect_json(&rejected("invalid message"));
    client.send_binary(json!({"type": "chat/say"}).to_string().as_bytes());
    client.expect_json(&rejected("unlinked connection"));
    server.expect_no_event_for(Duration::from_millis(50));

    // Still open and usable.
    client.link("alice");
    client.expect_linked(&[("alice", true)]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);
}

/// A linked user is unlinked (not closed) by an invalid message, an unknown `krmx/` message, a
/// second `krmx/link`, or a binary frame that is not UTF-8.
pub fn invalid_or_reserved_messages_unlink_a_linked_user(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    let offences: [fn(&mut Client); 7] = [
        |c| c.send_text("not json"),
        |c| c.send_text("{}"),
        |c| c.send_json(&json!({"type": "krmx/unknown", "payload": 1})),
        |c| c.link("alice"),
        |c| c.link("carol"),
        |c| c.send_binary(&[0xc3, 0x28]),
        |c| c.send_raw(&frames::masked(true, frames::BINARY, b"[1]")),
    ];
    for offence in offences {
        offence(&mut clients[0]);
        for client in &mut clients {
            client.expect_json(&unlinked("alice"));
        }
        server.expect_event(&ServerEvent::unlinked("alice"));
        clients[0].link("alice");
        clients[0].expect_linked(&[("alice", true), ("bob", true)]);
        clients[1].expect_json(&msg::linked("alice"));
        server.expect_event(&ServerEvent::linked("alice"));
    }
    clients[1].expect_nothing_for(Duration::from_millis(30));
}
