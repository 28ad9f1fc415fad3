//! What a linked connection may send: protocol messages unlink or leave, anything malformed or
//! unknown in `krmx/` unlinks, everything else reaches the application whole.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Event, Output};
use serde_json::json;
use support::*;

/// What everyone sees when bob (connection 2) unlinks while alice (connection 1) is linked.
fn bob_unlinks() -> Vec<Out> {
    vec![
        send(1, unlinked("bob")),
        send(2, unlinked("bob")),
        ev_unlinked("bob", 2),
    ]
}

#[test]
fn unlink_message_unlinks_and_tells_every_linked_connection_including_its_own() {
    let mut server = alice_and_bob();
    assert_eq!(server.text(2, r#"{"type":"krmx/unlink"}"#), bob_unlinks());
    assert_eq!(server.users(), users(&[("alice", true), ("bob", false)]));
    assert_eq!(server.krmx.linked_user(id(2)), None);
    assert_eq!(server.krmx.connections().count(), 2);
}

#[test]
fn unlink_message_with_a_payload_also_unlinks() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.text(2, r#"{"type":"krmx/unlink","payload":{"any":true}}"#),
        bob_unlinks()
    );
}

#[test]
fn second_link_message_unlinks_whatever_its_payload() {
    let mut server = alice_and_bob();
    assert_eq!(server.link(2, "carol"), bob_unlinks());
    assert_eq!(server.users(), users(&[("alice", true), ("bob", false)]));

    let mut server = alice_and_bob();
    assert_eq!(server.text(2, r#"{"type":"krmx/link"}"#), bob_unlinks());
}

#[test]
fn leave_message_unlinks_then_sends_left_to_the_old_connection_then_to_everyone() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.text(2, r#"{"type":"krmx/leave"}"#),
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
    assert_eq!(server.krmx.connections().count(), 2);
}

#[test]
fn unknown_krmx_message_unlinks() {
    for text in [
        r#"{"type":"krmx/whatever"}"#,
        r#"{"type":"krmx/joined","payload":{"username":"bob"}}"#,
        r#"{"type":"krmx/accepted"}"#,
        r#"{"type":"krmx/"}"#,
    ] {
        let mut server = alice_and_bob();
        assert_eq!(server.text(2, text), bob_unlinks(), "{text}");
    }
}

#[test]
fn invalid_message_from_a_linked_connection_unlinks() {
    for text in [
        "not json",
        "[]",
        "null",
        "{}",
        r#"{"type":3}"#,
        "\"krmx/leave\"",
    ] {
        let mut server = alice_and_bob();
        assert_eq!(server.text(2, text), bob_unlinks(), "{text}");
    }
}

#[test]
fn binary_frame_with_invalid_utf8_from_a_linked_connection_unlinks() {
    let mut server = alice_and_bob();
    assert_eq!(server.binary(2, &[0xc3, 0x28]), bob_unlinks());
}

#[test]
fn custom_message_reaches_the_application_whole() {
    let mut server = alice_and_bob();
    let text = r#"{"type":"chat/say","payload":{"text":"hi"},"seq":3,"meta":[true]}"#;
    server
        .krmx
        .handle_input(
            server.now,
            krmx_core::Input::Frame {
                conn: id(2),
                frame: krmx_core::Frame::Text(text.to_owned()),
            },
        )
        .unwrap();
    let outputs = server.drain_raw();
    assert_eq!(outputs.len(), 1);
    let Some(Output::Event(Event::Message { username, message })) = outputs.first() else {
        panic!("expected a message event, got {outputs:?}");
    };
    assert_eq!(username, "bob");
    assert_eq!(message.kind(), "chat/say");
    assert_eq!(message.payload(), Some(&json!({"text": "hi"})));
    assert_eq!(message.get("seq"), Some(&json!(3)));
    assert_eq!(message.get("meta"), Some(&json!([true])));
    assert_eq!(message.fields().len(), 4);
    assert_eq!(message.to_text().as_str(), text);
    assert_eq!(server.drain(), []);
}

#[test]
fn custom_message_without_payload_is_passed_on_as_sent() {
    let mut server = alice_and_bob();
    let text = r#"{ "type" : "ping/me" }"#;
    assert_eq!(server.text(1, text), [ev_message("alice", text)]);
}

#[test]
fn custom_messages_in_namespaces_resembling_krmx_are_not_reserved() {
    let mut server = alice_and_bob();
    for text in [
        r#"{"type":"krmxx/a"}"#,
        r#"{"type":"krmx"}"#,
        r#"{"type":"KRMX/leave"}"#,
        r#"{"type":"x/krmx/leave"}"#,
        r#"{"type":""}"#,
    ] {
        assert_eq!(server.text(2, text), [ev_message("bob", text)], "{text}");
    }
    assert_eq!(server.users(), users(&[("alice", true), ("bob", true)]));
}

#[test]
fn custom_message_as_valid_utf8_binary_reaches_the_application() {
    let mut server = alice_and_bob();
    let text = r#"{"type":"chat/say","payload":"héllo"}"#;
    assert_eq!(server.binary(2, text.as_bytes()), [ev_message("bob", text)]);
}

#[test]
fn messages_are_handled_in_arrival_order() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.text(2, r#"{"type":"a/1"}"#),
        [ev_message("bob", r#"{"type":"a/1"}"#)]
    );
    assert_eq!(server.text(2, r#"{"type":"krmx/unlink"}"#), bob_unlinks());
    assert_eq!(
        server.text(2, r#"{"type":"a/2"}"#),
        [send(2, rejected("unlinked connection"))]
    );
}

#[test]
fn unlinked_connection_relinks_to_another_user() {
    let mut server = alice_and_bob();
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    assert_eq!(
        server.link(2, "carol"),
        [
            send(2, accepted()),
            send(1, joined("carol")),
            ev_joined("carol"),
            send(2, joined("alice")),
            send(2, linked("alice")),
            send(2, joined("bob")),
            send(2, joined("carol")),
            send(2, linked("carol")),
            send(1, linked("carol")),
            ev_linked("carol", 2),
        ]
    );
    assert_eq!(
        server.users(),
        users(&[("alice", true), ("bob", false), ("carol", true)])
    );
    assert_eq!(server.krmx.linked_user(id(2)).unwrap(), "carol");
    assert_eq!(
        server.text(2, r#"{"type":"x/y"}"#),
        [ev_message("carol", r#"{"type":"x/y"}"#)]
    );
}

#[test]
fn unlinked_user_relinks_from_another_connection() {
    let mut server = alice_and_bob();
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    server.open(3);
    assert_eq!(
        server.link(3, "bob"),
        [
            send(3, accepted()),
            send(3, joined("alice")),
            send(3, linked("alice")),
            send(3, joined("bob")),
            send(3, linked("bob")),
            send(1, linked("bob")),
            ev_linked("bob", 3),
        ]
    );
    // The old connection is open and unlinked.
    assert_eq!(
        server.text(2, r#"{"type":"x/y"}"#),
        [send(2, rejected("unlinked connection"))]
    );
}
