//! Linking a connection to a user: the exact messages and events, in order, and every rejection
//! reason in the protocol's check order.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Input, KrmxConfig, ProtocolVersion, UsernameRule};
use serde_json::json;
use support::*;

#[test]
fn first_user_receives_accepted_then_joined_and_linked_for_itself() {
    let mut server = Server::default_listening();
    assert_eq!(server.open(1), []);
    assert_eq!(
        server.link(1, "alice"),
        [
            send(1, accepted()),
            ev_joined("alice"),
            send(1, joined("alice")),
            send(1, linked("alice")),
            ev_linked("alice", 1),
        ]
    );
    assert_eq!(server.users(), users(&[("alice", true)]));
    assert_eq!(server.krmx.linked_connection("alice"), Some(id(1)));
    assert_eq!(server.krmx.linked_user(id(1)).unwrap(), "alice");
}

#[test]
fn second_user_is_announced_to_the_first_before_its_join_event() {
    let mut server = Server::default_listening();
    server.connect(1, "alice");
    assert_eq!(server.open(2), []);
    assert_eq!(
        server.link(2, "bob"),
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
fn third_user_receives_six_messages_in_join_order() {
    let mut server = alice_and_bob();
    assert_eq!(server.open(3), []);
    assert_eq!(
        server.link(3, "carol"),
        [
            send(3, accepted()),
            send(1, joined("carol")),
            send(2, joined("carol")),
            ev_joined("carol"),
            send(3, joined("alice")),
            send(3, linked("alice")),
            send(3, joined("bob")),
            send(3, linked("bob")),
            send(3, joined("carol")),
            send(3, linked("carol")),
            send(1, linked("carol")),
            send(2, linked("carol")),
            ev_linked("carol", 3),
        ]
    );
    assert_eq!(
        server.users(),
        users(&[("alice", true), ("bob", true), ("carol", true)])
    );
}

#[test]
fn new_user_learns_unlinked_users_without_a_linked_message() {
    let mut server = Server::default_listening();
    server.connect(1, "alice");
    server.input(Input::Join {
        username: "bob".into(),
    });
    assert_eq!(server.open(3), []);
    assert_eq!(
        server.link(3, "carol"),
        [
            send(3, accepted()),
            send(1, joined("carol")),
            ev_joined("carol"),
            send(3, joined("alice")),
            send(3, linked("alice")),
            send(3, joined("bob")),
            send(3, joined("carol")),
            send(3, linked("carol")),
            send(1, linked("carol")),
            ev_linked("carol", 3),
        ]
    );
}

#[test]
fn existing_unlinked_user_links_without_joining_again() {
    let mut server = alice_and_bob();
    server.text(2, r#"{"type":"krmx/unlink"}"#);
    assert_eq!(
        server.link(2, "bob"),
        [
            send(2, accepted()),
            send(2, joined("alice")),
            send(2, linked("alice")),
            send(2, joined("bob")),
            send(2, linked("bob")),
            send(1, linked("bob")),
            ev_linked("bob", 2),
        ]
    );
    assert_eq!(server.users(), users(&[("alice", true), ("bob", true)]));
}

#[test]
fn server_joined_user_is_linked_from_a_new_connection_keeping_its_place() {
    let mut server = Server::default_listening();
    server.input(Input::Join {
        username: "bob".into(),
    });
    server.connect(1, "alice");
    assert_eq!(server.open(2), []);
    assert_eq!(
        server.link(2, "bob"),
        [
            send(2, accepted()),
            send(2, joined("bob")),
            send(2, linked("bob")),
            send(2, joined("alice")),
            send(2, linked("alice")),
            send(1, linked("bob")),
            ev_linked("bob", 2),
        ]
    );
    assert_eq!(server.users(), users(&[("bob", true), ("alice", true)]));
}

#[test]
fn link_frame_sent_as_valid_utf8_binary_links_like_text() {
    let mut server = Server::default_listening();
    server.open(1);
    assert_eq!(
        server.binary(1, link_frame("alice", "0.6.0", None).as_bytes()),
        [
            send(1, accepted()),
            ev_joined("alice"),
            send(1, joined("alice")),
            send(1, linked("alice")),
            ev_linked("alice", 1),
        ]
    );
}

#[test]
fn link_with_an_auth_string_links_when_the_application_does_not_authenticate() {
    let mut server = Server::default_listening();
    server.open(1);
    let outputs = server.text(1, &link_frame("alice", "0.6.0", Some("token")));
    assert_eq!(outputs.first(), Some(&send(1, accepted())));
    assert_eq!(outputs.last(), Some(&ev_linked("alice", 1)));
}

#[test]
fn malformed_link_requests_are_rejected_as_invalid_link_request() {
    let mut server = Server::default_listening();
    server.open(1);
    let requests = [
        r#"{"type":"krmx/link"}"#.to_owned(),
        link_with_payload(&json!(null)),
        link_with_payload(&json!("alice")),
        link_with_payload(&json!(["alice", "0.6.0"])),
        link_with_payload(&json!(3)),
        link_with_payload(&json!({})),
        link_with_payload(&json!({"version": "0.6.0"})),
        link_with_payload(&json!({"username": "alice"})),
        link_with_payload(&json!({"username": 1, "version": "0.6.0"})),
        link_with_payload(&json!({"username": null, "version": "0.6.0"})),
        link_with_payload(&json!({"username": "alice", "version": 0.6})),
        link_with_payload(&json!({"username": "alice", "version": "0.6.0", "auth": null})),
        link_with_payload(&json!({"username": "alice", "version": "0.6.0", "auth": 5})),
        link_with_payload(&json!({"username": "alice", "version": "0.6.0", "auth": {}})),
    ];
    for request in requests {
        assert_eq!(
            server.text(1, &request),
            [send(1, rejected("invalid link request"))],
            "{request}"
        );
    }
    // The connection stays open and unlinked: it may still link.
    assert_eq!(server.users(), []);
    assert_eq!(server.link(1, "alice").first(), Some(&send(1, accepted())));
}

#[test]
fn link_request_with_extra_fields_is_accepted() {
    let mut server = Server::default_listening();
    server.open(1);
    let request = link_with_payload(&json!({"username": "alice", "version": "0.6.0", "x": 1}));
    assert_eq!(server.text(1, &request).first(), Some(&send(1, accepted())));
}

#[test]
fn invalid_link_request_is_checked_before_the_version() {
    let mut server = Server::default_listening();
    server.open(1);
    assert_eq!(
        server.text(
            1,
            &link_with_payload(&json!({"username": 7, "version": "9.9.9"}))
        ),
        [send(1, rejected("invalid link request"))]
    );
}

#[test]
fn version_mismatch_names_the_served_and_the_sent_version() {
    let mut server = Server::default_listening();
    server.open(1);
    for version in ["0.5.4", "1.6.0", "0.7", "0.6x", "0", "", "v0.6.0", "0.06.1"] {
        assert_eq!(
            server.text(1, &link_frame("alice", version, None)),
            [send(
                1,
                rejected(&format!(
                    "krmx server version mismatch (server=0.6.*,client={version})"
                ))
            )],
            "{version}"
        );
    }
}

#[test]
fn version_0_60_1_is_rejected_unlike_the_reference_prefix_test() {
    let mut server = Server::default_listening();
    server.open(1);
    assert_eq!(
        server.text(1, &link_frame("alice", "0.60.1", None)),
        [send(
            1,
            rejected("krmx server version mismatch (server=0.6.*,client=0.60.1)")
        )]
    );
}

#[test]
fn any_patch_of_the_served_version_is_accepted() {
    for version in ["0.6", "0.6.0", "0.6.17", "0.6.1-beta"] {
        let mut server = Server::default_listening();
        server.open(1);
        assert_eq!(
            server.text(1, &link_frame("alice", version, None)).first(),
            Some(&send(1, accepted())),
            "{version}"
        );
    }
}

#[test]
fn configured_version_is_served_and_named_in_the_mismatch() {
    let mut server = Server::listening(KrmxConfig::default().version(ProtocolVersion::new(1, 12)));
    server.open(1);
    assert_eq!(
        server.text(1, &link_frame("alice", "0.6.0", None)),
        [send(
            1,
            rejected("krmx server version mismatch (server=1.12.*,client=0.6.0)")
        )]
    );
    assert_eq!(
        server.text(1, &link_frame("alice", "1.12.3", None)).first(),
        Some(&send(1, accepted()))
    );
}

#[test]
fn version_is_checked_before_the_username() {
    let mut server = Server::default_listening();
    server.open(1);
    assert_eq!(
        server.text(1, &link_frame("!", "0.5.0", None)),
        [send(
            1,
            rejected("krmx server version mismatch (server=0.6.*,client=0.5.0)")
        )]
    );
}

#[test]
fn usernames_breaking_the_default_rule_are_rejected() {
    let mut server = Server::default_listening();
    server.open(1);
    for name in [
        "",
        "a",
        "1abc",
        ".ab",
        "ab.",
        "a..b",
        "a.-b",
        "a b",
        "ä-ok",
        "simon!",
        "abcdefghijklmnopqrstuvwxyzabcdefg",
    ] {
        assert_eq!(
            server.link(1, name),
            [send(1, rejected("invalid username"))],
            "{name:?}"
        );
    }
    assert_eq!(server.users(), []);
}

#[test]
fn custom_username_rule_replaces_the_default() {
    let config = KrmxConfig::default().username_rule(UsernameRule::custom(|n| n.len() == 3));
    let mut server = Server::listening(config);
    server.open(1);
    assert_eq!(
        server.link(1, "alice"),
        [send(1, rejected("invalid username"))]
    );
    assert_eq!(server.link(1, "7@!").first(), Some(&send(1, accepted())));
    assert_eq!(server.users(), users(&[("7@!", true)]));
}

#[test]
fn presence_texts_escape_usernames_as_json() {
    let config = KrmxConfig::default().username_rule(UsernameRule::custom(|_| true));
    let mut server = Server::listening(config);
    server.open(1);
    assert_eq!(
        server.link(1, r#"a"b\c"#),
        [
            send(1, accepted()),
            ev_joined(r#"a"b\c"#),
            send(
                1,
                r#"{"type":"krmx/joined","payload":{"username":"a\"b\\c"}}"#
            ),
            send(
                1,
                r#"{"type":"krmx/linked","payload":{"username":"a\"b\\c"}}"#
            ),
            ev_linked(r#"a"b\c"#, 1),
        ]
    );
}

#[test]
fn username_is_checked_before_accepting_new_users() {
    let mut server = Server::listening(KrmxConfig::default().accept_new_users(false));
    server.open(1);
    assert_eq!(
        server.link(1, "1x"),
        [send(1, rejected("invalid username"))]
    );
}

#[test]
fn new_user_is_rejected_when_the_server_does_not_accept_new_users() {
    let mut server = Server::listening(KrmxConfig::default().accept_new_users(false));
    server.open(1);
    assert_eq!(
        server.link(1, "alice"),
        [send(1, rejected("server is not accepting new users"))]
    );
    assert_eq!(server.users(), []);
}

#[test]
fn server_joined_user_links_when_the_server_does_not_accept_new_users() {
    let mut server = Server::listening(KrmxConfig::default().accept_new_users(false));
    assert_eq!(
        server.input(Input::Join {
            username: "alice".into()
        }),
        [ev_joined("alice")]
    );
    server.open(1);
    assert_eq!(
        server.link(1, "alice"),
        [
            send(1, accepted()),
            send(1, joined("alice")),
            send(1, linked("alice")),
            ev_linked("alice", 1),
        ]
    );
}

#[test]
fn user_linked_elsewhere_is_rejected_and_the_link_stays() {
    let mut server = Server::default_listening();
    server.connect(1, "alice");
    server.open(2);
    assert_eq!(
        server.link(2, "alice"),
        [send(
            2,
            rejected("user alice is already linked to a connection")
        )]
    );
    assert_eq!(server.krmx.linked_connection("alice"), Some(id(1)));
    assert_eq!(server.krmx.linked_user(id(2)), None);
}

#[test]
fn rejected_connection_stays_open_and_may_link_to_another_user() {
    let mut server = Server::default_listening();
    server.connect(1, "alice");
    server.open(2);
    server.link(2, "alice");
    assert_eq!(
        server.link(2, "bob"),
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
fn unlinked_connection_sending_anything_but_a_link_is_rejected_as_unlinked() {
    let mut server = Server::default_listening();
    server.open(1);
    for text in [
        r#"{"type":"chat/say","payload":"hi"}"#,
        r#"{"type":"krmx/unlink"}"#,
        r#"{"type":"krmx/leave"}"#,
        r#"{"type":"krmx/accepted"}"#,
        r#"{"type":"krmx/whatever"}"#,
        r#"{"type":""}"#,
    ] {
        assert_eq!(
            server.text(1, text),
            [send(1, rejected("unlinked connection"))],
            "{text}"
        );
    }
}

#[test]
fn unlinked_connection_sending_an_invalid_message_is_rejected_as_invalid() {
    let mut server = Server::default_listening();
    server.open(1);
    for text in [
        "",
        "not json",
        "[]",
        "\"s\"",
        "3",
        "true",
        "null",
        "{}",
        r#"{"type":3}"#,
        r#"{"type":null}"#,
        r#"{"payload":1}"#,
        r#"[{"type":"a"}]"#,
        r#"{"type":"a""#,
    ] {
        assert_eq!(
            server.text(1, text),
            [send(1, rejected("invalid message"))],
            "{text:?}"
        );
    }
}

#[test]
fn binary_frame_with_invalid_utf8_is_an_invalid_message() {
    let mut server = Server::default_listening();
    server.open(1);
    assert_eq!(
        server.binary(1, &[0x7b, 0xff, 0xfe, 0x7d]),
        [send(1, rejected("invalid message"))]
    );
}

#[test]
fn binary_frame_with_valid_utf8_is_handled_as_text() {
    let mut server = Server::default_listening();
    server.open(1);
    assert_eq!(
        server.binary(1, br#"{"type":"chat/say"}"#),
        [send(1, rejected("unlinked connection"))]
    );
    assert_eq!(
        server.binary(1, b"[1]"),
        [send(1, rejected("invalid message"))]
    );
}

#[test]
fn application_send_after_the_link_reaches_the_new_user_after_its_presence_messages() {
    let mut server = Server::default_listening();
    server.connect(1, "alice");
    server.open(2);
    server
        .krmx
        .handle_input(
            server.now,
            Input::Frame {
                conn: id(2),
                frame: krmx_core::Frame::Text(link_frame("bob", "0.6.0", None)),
            },
        )
        .unwrap();
    // The application reacts to `link` while draining, as a transport loop does.
    let mut seen = Vec::new();
    while let Some(output) = server.krmx.poll_output() {
        for out in outs(output) {
            if out == ev_linked("bob", 2) {
                server
                    .krmx
                    .handle_input(
                        server.now,
                        Input::Send {
                            username: "bob".into(),
                            message: message("game/welcome", json!(1)),
                        },
                    )
                    .unwrap();
            }
            seen.push(out);
        }
    }
    assert_eq!(
        seen,
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
            send(2, r#"{"type":"game/welcome","payload":1}"#),
        ]
    );
}

#[test]
fn send_in_reaction_to_the_join_event_reaches_the_new_user_after_its_link() {
    // The core handles the whole link before the application sees `Joined`, so (unlike the
    // reference, where the user is not linked yet in its `join` handler) the send succeeds and
    // is queued after every presence message.
    let mut server = Server::default_listening();
    server.open(1);
    server
        .krmx
        .handle_input(
            server.now,
            Input::Frame {
                conn: id(1),
                frame: krmx_core::Frame::Text(link_frame("alice", "0.6.0", None)),
            },
        )
        .unwrap();
    let mut seen = Vec::new();
    while let Some(output) = server.krmx.poll_output() {
        let out = Out::from(output);
        if out == ev_joined("alice") {
            server
                .krmx
                .handle_input(
                    server.now,
                    Input::Send {
                        username: "alice".into(),
                        message: message("game/hello", json!(null)),
                    },
                )
                .unwrap();
        }
        seen.push(out);
    }
    assert_eq!(
        seen,
        [
            send(1, accepted()),
            ev_joined("alice"),
            send(1, joined("alice")),
            send(1, linked("alice")),
            ev_linked("alice", 1),
            send(1, r#"{"type":"game/hello","payload":null}"#),
        ]
    );
}
