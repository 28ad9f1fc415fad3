//! The client state machine against the server state machine, in memory: every server scenario
//! seen from the client's side.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod client_support;

use client_support::{Net, message, users};
use krmx_core::{
    AuthDecision, AuthMode, ClientConfig, ClientInput, ClientStatus, Event, Input, KrmxConfig,
};
use serde_json::json;
use std::time::Duration;

fn link_input(username: &str, auth: Option<&str>) -> ClientInput {
    ClientInput::Link {
        username: username.into(),
        auth: auth.map(str::to_owned),
    }
}

#[test]
fn connects_links_and_gets_every_user_in_join_order() {
    let mut net = Net::new(KrmxConfig::default());
    net.server_input(Input::Join {
        username: "zed".into(),
    })
    .unwrap();
    let alice = net.add_client(ClientConfig::default());
    assert_eq!(net.status(alice), ClientStatus::Initializing);
    assert_eq!(net.username(alice), None);

    net.command(
        alice,
        ClientInput::Connect {
            url: "ws://localhost:8082".into(),
        },
    )
    .unwrap();
    assert_eq!(net.status(alice), ClientStatus::Connecting);
    net.settle();
    assert_eq!(net.status(alice), ClientStatus::Connected);
    assert_eq!(net.take(alice), ["connecting", "connect"]);

    net.command(alice, link_input("alice", None)).unwrap();
    assert_eq!(net.status(alice), ClientStatus::Linking);
    assert_eq!(net.username(alice).as_deref(), Some("alice"));
    assert_eq!(
        net.take_sent(alice),
        [r#"{"type":"krmx/link","payload":{"username":"alice","version":"0.6.0"}}"#]
    );
    net.settle();
    assert_eq!(net.status(alice), ClientStatus::Linked);
    assert_eq!(
        net.take(alice),
        [
            "linking",
            "accept",
            "join(zed)",
            "join(alice)",
            "link(alice)"
        ]
    );
    assert_eq!(net.users(alice), users(&["zed", "alice+"]));

    // A second client sees everyone in join order, itself last; the first sees it join and link.
    let bob = net.add_client(ClientConfig::default());
    net.connect(bob);
    net.command(bob, link_input("bob", Some("secret"))).unwrap();
    assert_eq!(
        net.take_sent(bob),
        [r#"{"type":"krmx/link","payload":{"username":"bob","version":"0.6.0","auth":"secret"}}"#]
    );
    net.settle();
    assert_eq!(
        net.take(bob),
        [
            "connecting",
            "connect",
            "linking",
            "accept",
            "join(zed)",
            "join(alice)",
            "link(alice)",
            "join(bob)",
            "link(bob)"
        ]
    );
    assert_eq!(net.take(alice), ["join(bob)", "link(bob)"]);
    assert_eq!(net.users(bob), users(&["zed", "alice+", "bob+"]));
    assert_eq!(net.users(alice), net.server_users());
    net.check_agreement();
}

#[test]
fn the_user_list_holds_only_the_client_itself_when_accept_is_handled() {
    let mut net = Net::new(KrmxConfig::default());
    net.linked_client("alice");
    let bob = net.add_client(ClientConfig::default());
    net.connect(bob);
    net.command(bob, link_input("bob", None)).unwrap();
    // Deliver the link, then only `krmx/accepted`.
    assert!(net.deliver_to_server(bob));
    assert!(net.deliver_to_client(bob));
    assert_eq!(net.status(bob), ClientStatus::Linked);
    assert_eq!(net.users(bob), users(&["bob+"]));
    // The list the server sends then moves bob to its place in join order.
    net.settle();
    assert_eq!(net.users(bob), users(&["alice+", "bob+"]));
}

/// Delivers the server's messages to client `i` one at a time and stops right after the one that
/// makes it listed: the moment a client adapter's `link` returns.
fn deliver_until_listed(net: &mut Net, i: usize) {
    while !net.peers[i].client.is_listed() {
        assert!(
            net.deliver_to_client(i),
            "the list ended before the own link"
        );
    }
}

#[test]
fn a_relinking_user_is_listed_at_its_place_and_the_users_who_joined_later_follow() {
    let mut net = Net::new(KrmxConfig::default());
    let alice = net.linked_client("alice");
    let bob = net.linked_client("bob");
    let carol = net.linked_client("carol");
    net.command(bob, ClientInput::Unlink).unwrap();
    net.settle();
    assert!(!net.peers[bob].client.is_listed());
    net.take(alice);
    net.take(bob);
    net.take(carol);

    net.command(bob, link_input("bob", None)).unwrap();
    assert!(net.deliver_to_server(bob));
    deliver_until_listed(&mut net, bob);
    // Where a link ends for the protocol: the own `krmx/linked`, at bob's place in join order.
    assert_eq!(net.status(bob), ClientStatus::Linked);
    assert_eq!(
        net.take(bob),
        [
            "linking",
            "accept",
            "join(alice)",
            "link(alice)",
            "join(bob)",
            "link(bob)"
        ]
    );
    assert_eq!(net.users(bob), users(&["alice+", "bob+"]));

    // The rest of the list: carol, who joined after bob. Nothing marks its end.
    net.settle();
    assert_eq!(net.take(bob), ["join(carol)", "link(carol)"]);
    assert!(net.peers[bob].client.is_listed());
    assert_eq!(net.users(bob), users(&["alice+", "bob+", "carol+"]));
    assert_eq!(net.take(alice), ["link(bob)"]);
    assert_eq!(net.take(carol), ["link(bob)"]);
    net.check_agreement();
}

#[test]
fn a_user_joined_by_the_server_is_listed_first_when_it_links_before_the_others() {
    let mut net = Net::new(KrmxConfig::default());
    net.server_input(Input::Join {
        username: "bob".into(),
    })
    .unwrap();
    let alice = net.linked_client("alice");
    let bob = net.add_client(ClientConfig::default());
    net.connect(bob);
    net.take(bob);

    net.command(bob, link_input("bob", None)).unwrap();
    assert!(net.deliver_to_server(bob));
    deliver_until_listed(&mut net, bob);
    assert_eq!(
        net.take(bob),
        ["linking", "accept", "join(bob)", "link(bob)"]
    );
    assert_eq!(net.users(bob), users(&["bob+"]));

    net.settle();
    assert_eq!(net.take(bob), ["join(alice)", "link(alice)"]);
    assert_eq!(net.users(bob), users(&["bob+", "alice+"]));
    assert_eq!(net.take(alice), ["link(bob)"]);
    net.check_agreement();
}

#[test]
fn a_new_user_is_listed_last_with_the_whole_list() {
    let mut net = Net::new(KrmxConfig::default());
    net.linked_client("alice");
    net.server_input(Input::Join {
        username: "zed".into(),
    })
    .unwrap();
    let bob = net.add_client(ClientConfig::default());
    net.connect(bob);
    net.take(bob);

    net.command(bob, link_input("bob", None)).unwrap();
    assert!(net.deliver_to_server(bob));
    assert!(net.deliver_to_client(bob));
    // Accepted, not listed yet: the list is still to come.
    assert_eq!(net.status(bob), ClientStatus::Linked);
    assert!(!net.peers[bob].client.is_listed());
    deliver_until_listed(&mut net, bob);
    assert_eq!(
        net.take(bob),
        [
            "linking",
            "accept",
            "join(alice)",
            "link(alice)",
            "join(zed)",
            "join(bob)",
            "link(bob)"
        ]
    );
    assert_eq!(net.users(bob), net.server_users());
    // Nothing of the list is left for bob.
    net.settle();
    assert_eq!(net.take(bob), Vec::<String>::new());

    // Listed until no longer linked.
    net.command(bob, ClientInput::Unlink).unwrap();
    assert!(!net.peers[bob].client.is_listed());
    net.settle();
    assert!(!net.peers[bob].client.is_listed());
    net.check_agreement();
}

#[test]
fn the_configured_version_is_sent_and_a_mismatch_is_rejected_with_the_server_reason() {
    let mut net = Net::new(KrmxConfig::default());
    let old = net.add_client(ClientConfig::new().version("0.5.4"));
    net.connect(old);
    net.take(old);
    net.link(old, "simon");
    assert_eq!(
        net.take_sent(old),
        [r#"{"type":"krmx/link","payload":{"username":"simon","version":"0.5.4"}}"#]
    );
    assert_eq!(
        net.take(old),
        [
            "linking",
            "reject(krmx server version mismatch (server=0.6.*,client=0.5.4))"
        ]
    );
    assert_eq!(net.status(old), ClientStatus::Connected);
    assert_eq!(net.username(old), None);
    net.check_agreement();
}

#[test]
fn rejection_reasons_come_through_and_the_client_may_link_again() {
    let mut net = Net::new(KrmxConfig::default().accept_new_users(false));
    net.server_input(Input::Join {
        username: "alice".into(),
    })
    .unwrap();
    let first = net.add_client(ClientConfig::default());
    net.connect(first);
    net.link(first, "alice");
    let client = net.add_client(ClientConfig::default());
    net.connect(client);
    net.take(client);

    for (name, reason) in [
        ("a", "invalid username"),
        ("1simon", "invalid username"),
        ("simon", "server is not accepting new users"),
        ("alice", "user alice is already linked to a connection"),
    ] {
        net.link(client, name);
        assert_eq!(
            net.take(client),
            ["linking".to_owned(), format!("reject({reason})")],
            "{name}"
        );
        assert_eq!(net.status(client), ClientStatus::Connected);
        assert_eq!(net.username(client), None);
        assert_eq!(net.users(client), users(&[]));
    }
    net.check_agreement();

    // Once alice is free, the same client links to it.
    net.command(first, ClientInput::Unlink).unwrap();
    net.settle();
    net.link(client, "alice");
    assert_eq!(net.status(client), ClientStatus::Linked);
    assert_eq!(net.users(client), users(&["alice+"]));
    net.check_agreement();
}

#[test]
fn application_authentication_reasons_come_through() {
    let mut net = Net::new(KrmxConfig::default().auth(AuthMode::Application));
    let client = net.add_client(ClientConfig::default());
    net.connect(client);
    net.take(client);

    for (decision, reason) in [
        (AuthDecision::reject("bad token"), "bad token"),
        (AuthDecision::Failed, "authentication failed"),
    ] {
        net.command(client, link_input("simon", Some("tok")))
            .unwrap();
        net.settle();
        assert_eq!(net.status(client), ClientStatus::Linking);
        let [(id, ref username)] = net.take_auth_requests()[..] else {
            panic!("one authentication request");
        };
        assert_eq!(username, "simon");
        net.server_input(Input::AuthDecided { id, decision })
            .unwrap();
        net.settle();
        assert_eq!(
            net.take(client),
            ["linking".to_owned(), format!("reject({reason})")]
        );
        assert_eq!(net.status(client), ClientStatus::Connected);
    }

    // A decision that never comes: the server's timeout reason.
    net.command(client, link_input("simon", None)).unwrap();
    net.settle();
    assert_eq!(net.take_auth_requests().len(), 1);
    net.advance(Duration::from_secs(11));
    net.settle();
    assert_eq!(
        net.take(client),
        ["linking", "reject(authentication timeout)"]
    );

    // An accepted decision links.
    net.command(client, link_input("simon", Some("tok")))
        .unwrap();
    net.settle();
    let [(id, _)] = net.take_auth_requests()[..] else {
        panic!("one authentication request");
    };
    net.server_input(Input::AuthDecided {
        id,
        decision: AuthDecision::Accept,
    })
    .unwrap();
    net.settle();
    assert_eq!(
        net.take(client),
        ["linking", "accept", "join(simon)", "link(simon)"]
    );
    net.check_agreement();
}

#[test]
fn sees_other_users_join_link_unlink_and_leave() {
    let mut net = Net::new(KrmxConfig::default());
    let simon = net.linked_client("simon");

    // Another client connecting is not a user yet.
    let other = net.add_client(ClientConfig::default());
    net.connect(other);
    assert_eq!(net.take(simon), Vec::<String>::new());

    net.link(other, "lisa");
    assert_eq!(net.take(simon), ["join(lisa)", "link(lisa)"]);
    assert_eq!(net.users(simon), users(&["simon+", "lisa+"]));

    net.command(other, ClientInput::Unlink).unwrap();
    net.settle();
    assert_eq!(net.take(simon), ["unlink(lisa)"]);
    assert_eq!(net.users(simon), users(&["simon+", "lisa"]));

    net.link(other, "marjolein");
    assert_eq!(net.take(simon), ["join(marjolein)", "link(marjolein)"]);
    assert_eq!(net.users(simon), users(&["simon+", "lisa", "marjolein+"]));

    net.command(other, ClientInput::Leave).unwrap();
    net.settle();
    assert_eq!(net.take(simon), ["unlink(marjolein)", "leave(marjolein)"]);
    assert_eq!(net.users(simon), users(&["simon+", "lisa"]));

    // The server joins and kicks users; a dropped connection unlinks its user.
    net.server_input(Input::Join {
        username: "zed".into(),
    })
    .unwrap();
    net.link(other, "lisa");
    net.settle();
    assert_eq!(net.take(simon), ["join(zed)", "link(lisa)"]);
    net.drop_connection(other);
    net.settle();
    assert_eq!(net.take(simon), ["unlink(lisa)"]);
    net.server_input(Input::Kick {
        username: "lisa".into(),
    })
    .unwrap();
    net.settle();
    assert_eq!(net.take(simon), ["leave(lisa)"]);
    assert_eq!(net.users(simon), users(&["simon+", "zed"]));
    net.check_agreement();
}

#[test]
fn unlinks_and_links_again_to_the_same_or_another_user() {
    let mut net = Net::new(KrmxConfig::default());
    let other = net.linked_client("lisa");
    let simon = net.linked_client("simon");

    net.command(simon, ClientInput::Unlink).unwrap();
    assert_eq!(net.status(simon), ClientStatus::Unlinking);
    assert_eq!(net.take_sent(simon), [r#"{"type":"krmx/unlink"}"#]);
    net.settle();
    assert_eq!(net.take(simon), ["unlinking", "unlink(simon)"]);
    assert_eq!(net.status(simon), ClientStatus::Connected);
    assert_eq!(net.username(simon), None);
    assert_eq!(net.users(simon), users(&[]));
    assert_eq!(net.take(other), ["unlink(simon)"]);
    assert_eq!(net.server_users(), users(&["lisa+", "simon"]));
    net.check_agreement();

    net.link(simon, "simon");
    assert_eq!(
        net.take(simon),
        [
            "linking",
            "accept",
            "join(lisa)",
            "link(lisa)",
            "join(simon)",
            "link(simon)"
        ]
    );
    assert_eq!(net.take(other), ["link(simon)"]);

    net.command(simon, ClientInput::Unlink).unwrap();
    net.settle();
    net.take(simon);
    net.link(simon, "carol");
    assert_eq!(net.users(simon), users(&["lisa+", "simon", "carol+"]));
    assert_eq!(
        net.take(other),
        ["unlink(simon)", "join(carol)", "link(carol)"]
    );
    net.check_agreement();
}

#[test]
fn leave_ends_connected_with_its_own_unlink_then_its_own_leave() {
    let mut net = Net::new(KrmxConfig::default());
    let other = net.linked_client("lisa");
    let simon = net.linked_client("simon");

    net.command(simon, ClientInput::Leave).unwrap();
    // As in the JavaScript client: connected at once, the username kept until the own unlink.
    assert_eq!(net.status(simon), ClientStatus::Connected);
    assert_eq!(net.username(simon).as_deref(), Some("simon"));
    assert_eq!(net.take_sent(simon), [r#"{"type":"krmx/leave"}"#]);
    assert_eq!(net.take(simon), ["unlinking"]);

    // Its own unlink empties the list and clears the name...
    assert!(net.deliver_to_server(simon));
    assert!(net.deliver_to_client(simon));
    assert_eq!(net.take(simon), ["unlink(simon)"]);
    assert_eq!(net.status(simon), ClientStatus::Connected);
    assert_eq!(net.username(simon), None);
    assert_eq!(net.users(simon), users(&[]));
    // ...and the server's `krmx/left` to the old connection that follows is not reported: the
    // last message a client gets about itself is its own unlink.
    net.settle();
    assert!(net.take(simon).is_empty());
    assert_eq!(net.status(simon), ClientStatus::Connected);
    assert_eq!(net.users(simon), users(&[]));
    assert_eq!(net.take(other), ["unlink(simon)", "leave(simon)"]);
    assert_eq!(net.server_users(), users(&["lisa+"]));
    net.check_agreement();

    // The connection stays open: linking again joins a new simon.
    net.link(simon, "simon");
    assert_eq!(
        net.take(simon),
        [
            "linking",
            "accept",
            "join(lisa)",
            "link(lisa)",
            "join(simon)",
            "link(simon)"
        ]
    );
    assert_eq!(net.take(other), ["join(simon)", "link(simon)"]);
    net.check_agreement();
}

#[test]
fn a_kick_by_the_server_unlinks_the_client_and_the_others_see_it_leave() {
    let mut net = Net::new(KrmxConfig::default());
    let other = net.linked_client("lisa");
    let simon = net.linked_client("simon");

    net.server_input(Input::Kick {
        username: "simon".into(),
    })
    .unwrap();
    net.settle();
    assert_eq!(net.take(simon), ["unlink(simon)"]);
    assert_eq!(net.status(simon), ClientStatus::Connected);
    assert_eq!(net.username(simon), None);
    assert_eq!(net.take(other), ["unlink(simon)", "leave(simon)"]);
    net.check_agreement();

    net.link(simon, "simon");
    net.take(simon);
    net.take(other);
    net.server_input(Input::Unlink {
        username: "simon".into(),
    })
    .unwrap();
    net.settle();
    assert_eq!(net.take(simon), ["unlink(simon)"]);
    assert_eq!(net.status(simon), ClientStatus::Connected);
    assert_eq!(net.take(other), ["unlink(simon)"]);
    assert_eq!(net.server_users(), users(&["lisa+", "simon"]));
    net.check_agreement();
}

#[test]
fn a_server_close_unlinks_leaves_and_closes_every_client() {
    let mut net = Net::new(KrmxConfig::default());
    let lisa = net.linked_client("lisa");
    let simon = net.linked_client("simon");
    let idle = net.add_client(ClientConfig::default());
    net.connect(idle);
    net.take(idle);

    net.server_input(Input::Close).unwrap();
    net.settle();
    assert_eq!(
        net.take(simon),
        ["unlink(lisa)", "leave(lisa)", "unlink(simon)", "close"]
    );
    // Lisa is unlinked before simon leaves: she hears nothing more about him.
    assert_eq!(net.take(lisa), ["unlink(lisa)", "close"]);
    assert_eq!(net.take(idle), ["close"]);
    for client in [lisa, simon, idle] {
        assert_eq!(net.status(client), ClientStatus::Closed);
        assert_eq!(net.username(client), None);
        assert_eq!(net.users(client), users(&[]));
    }
    net.check_agreement();

    // A closed client may connect again; a server that is gone closes it at once.
    net.connect(simon);
    assert_eq!(net.take(simon), ["connecting", "connect", "close"]);
    assert_eq!(net.status(simon), ClientStatus::Closed);
}

#[test]
fn disconnect_closes_and_the_server_unlinks() {
    let mut net = Net::new(KrmxConfig::default());
    let other = net.linked_client("lisa");
    let simon = net.linked_client("simon");

    let refused = net.command(simon, ClientInput::Disconnect { force: false });
    assert_eq!(
        refused.unwrap_err().to_string(),
        "cannot disconnect when the client is linked"
    );
    net.command(simon, ClientInput::Disconnect { force: true })
        .unwrap();
    assert_eq!(net.status(simon), ClientStatus::Closing);
    assert_eq!(net.username(simon), None);
    net.settle();
    assert_eq!(net.take(simon), ["closing", "close"]);
    assert_eq!(net.status(simon), ClientStatus::Closed);
    assert_eq!(net.users(simon), users(&[]));
    assert_eq!(net.take(other), ["unlink(simon)"]);
    assert_eq!(net.server_users(), users(&["lisa+", "simon"]));
    net.check_agreement();

    // Reconnect and link to the same user.
    net.connect(simon);
    net.link(simon, "simon");
    assert_eq!(net.status(simon), ClientStatus::Linked);
    assert_eq!(net.users(simon), users(&["lisa+", "simon+"]));
    net.check_agreement();
}

#[test]
fn a_connection_that_fails_to_open_closes_the_client() {
    let mut net = Net::new(KrmxConfig::default());
    let client = net.add_client(ClientConfig::default());
    net.command(
        client,
        ClientInput::Connect {
            url: "ws://localhost:8082".into(),
        },
    )
    .unwrap();
    net.drop_connection(client);
    assert_eq!(net.take(client), ["connecting", "close"]);
    assert_eq!(net.status(client), ClientStatus::Closed);
}

#[test]
fn custom_messages_go_both_ways_with_every_field() {
    let mut net = Net::new(KrmxConfig::default());
    let lisa = net.linked_client("lisa");
    let simon = net.linked_client("simon");
    net.take(lisa);
    net.server_events.clear();

    let text = r#"{"type":"chat/say","payload":{"text":"hi"},"seq":3}"#;
    net.command(
        simon,
        ClientInput::Send {
            message: message(text),
        },
    )
    .unwrap();
    assert_eq!(net.take_sent(simon), [text]);
    net.settle();
    let [
        Event::Message {
            username,
            message: received,
        },
    ] = &net.server_events[..]
    else {
        panic!("one message event: {:?}", net.server_events);
    };
    assert_eq!(username, "simon");
    assert_eq!(received.get("seq"), Some(&json!(3)));
    assert_eq!(received.payload(), Some(&json!({"text": "hi"})));

    net.server_input(Input::Send {
        username: "simon".into(),
        message: message(r#"{"type":"custom/server-message","payload":1,"extra":true}"#),
    })
    .unwrap();
    net.server_input(Input::Broadcast {
        message: message(r#"{"type":"custom/all"}"#),
        skip: None,
    })
    .unwrap();
    net.settle();
    assert_eq!(
        net.take(simon),
        [
            r#"message({"type":"custom/server-message","payload":1,"extra":true})"#,
            r#"message({"type":"custom/all"})"#
        ]
    );
    assert_eq!(net.take(lisa), [r#"message({"type":"custom/all"})"#]);
}

#[test]
fn custom_messages_arriving_while_not_linked_are_dropped() {
    let mut net = Net::new(KrmxConfig::default());
    let simon = net.linked_client("simon");
    // Sent by the server while simon is still linked there, read while unlinking.
    net.command(simon, ClientInput::Unlink).unwrap();
    net.server_input(Input::Send {
        username: "simon".into(),
        message: message(r#"{"type":"custom/late"}"#),
    })
    .unwrap();
    net.settle();
    assert_eq!(net.take(simon), ["unlinking", "unlink(simon)"]);

    // The same after a leave (the client is connected at once).
    net.link(simon, "simon");
    net.take(simon);
    net.command(simon, ClientInput::Leave).unwrap();
    net.server_input(Input::Send {
        username: "simon".into(),
        message: message(r#"{"type":"custom/late"}"#),
    })
    .unwrap();
    net.settle();
    assert_eq!(net.take(simon), ["unlinking", "unlink(simon)"]);
    net.check_agreement();
}

#[test]
fn a_reserved_type_is_refused_with_the_javascript_text_and_nothing_is_sent() {
    let mut net = Net::new(KrmxConfig::default());
    let simon = net.linked_client("simon");
    let refused = net.command(
        simon,
        ClientInput::Send {
            message: message(r#"{"type":"krmx/invalid"}"#),
        },
    );
    assert_eq!(
        refused.unwrap_err().to_string(),
        "cannot send custom messages with type starting with the internal 'krmx/' prefix"
    );
    assert_eq!(net.take_sent(simon), Vec::<String>::new());
    assert_eq!(net.status(simon), ClientStatus::Linked);
}
