//! Linking: the accepted sequence, message by message, and relinking.

use super::{link_users, quiet_config, start_default};
use crate::msg::{accepted, joined, left, linked, unlinked};
use crate::server::{Command, Setup, to_message};
use crate::{Client, ServerEvent, Transport};
use serde_json::json;

/// A new third user receives exactly: accepted, joined A, linked A, joined B, linked B, joined
/// self, linked self; A and B receive joined and linked of the new user.
pub fn third_user_receives_the_roster_in_join_order(transport: Transport) {
    let mut server = start_default(transport);
    let addr = server.addr();

    let mut alice = Client::connect(addr);
    alice.link("alice");
    alice.expect_jsons(&[accepted(), joined("alice"), linked("alice")]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);

    let mut bob = Client::connect(addr);
    bob.link("bob");
    bob.expect_jsons(&[
        accepted(),
        joined("alice"),
        linked("alice"),
        joined("bob"),
        linked("bob"),
    ]);
    alice.expect_jsons(&[joined("bob"), linked("bob")]);
    server.expect_events(&[ServerEvent::joined("bob"), ServerEvent::linked("bob")]);

    let mut carol = Client::connect(addr);
    carol.link("carol");
    carol.expect_jsons(&[
        accepted(),
        joined("alice"),
        linked("alice"),
        joined("bob"),
        linked("bob"),
        joined("carol"),
        linked("carol"),
    ]);
    for other in [&mut alice, &mut bob] {
        other.expect_jsons(&[joined("carol"), linked("carol")]);
        other.expect_nothing_for(std::time::Duration::from_millis(50));
    }
    carol.expect_nothing_for(std::time::Duration::from_millis(50));
    server.expect_events(&[ServerEvent::joined("carol"), ServerEvent::linked("carol")]);
    assert_eq!(
        server.users(),
        [
            ("alice".to_owned(), true),
            ("bob".to_owned(), true),
            ("carol".to_owned(), true)
        ]
    );
}

/// A joined but unlinked user appears in a newcomer's roster with `joined` only.
pub fn roster_lists_unlinked_users_without_linked(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    clients[1].send_json(&json!({"type": "krmx/unlink"}));
    for client in &mut clients {
        client.expect_json(&unlinked("bob"));
    }
    server.expect_event(&ServerEvent::unlinked("bob"));
    server.join("dave");
    clients[0].expect_json(&joined("dave"));
    server.expect_event(&ServerEvent::joined("dave"));

    let mut carol = Client::connect(server.addr());
    carol.link("carol");
    carol.expect_linked(&[
        ("alice", true),
        ("bob", false),
        ("dave", false),
        ("carol", true),
    ]);
    clients[0].expect_jsons(&[joined("carol"), linked("carol")]);
    // bob's connection is unlinked: it hears nothing.
    clients[1].expect_nothing_for(std::time::Duration::from_millis(50));
}

/// Messages the application sends in its `link` handler reach the new user after the whole
/// link sequence, and its broadcasts reach the others after their `joined` and `linked`.
///
/// The reference fails a send to the new user from its `join` handler (not linked yet). Here
/// events reach the application once the link input is fully handled, so by the time the
/// `join` handler runs the user is linked: such a send succeeds, and (what this checks) it
/// still never overtakes the link sequence.
pub fn link_handler_messages_arrive_after_the_link_sequence(transport: Transport) {
    let setup = Setup::new(quiet_config()).on_event(|event| match event {
        ServerEvent::Joined(name) => vec![Command::Send(
            name.clone(),
            to_message(&json!({"type": "app/on-join", "payload": name})),
        )],
        ServerEvent::Linked(name) => vec![
            Command::Send(
                name.clone(),
                to_message(&json!({"type": "app/welcome", "payload": name})),
            ),
            Command::Broadcast(
                to_message(&json!({"type": "app/arrived", "payload": name})),
                Some(name.clone()),
            ),
        ],
        _ => Vec::new(),
    });
    let mut server = transport.start_with(setup);
    let mut alice = Client::connect(server.addr());
    alice.link("alice");
    alice.expect_jsons(&[
        accepted(),
        joined("alice"),
        linked("alice"),
        json!({"type": "app/on-join", "payload": "alice"}),
        json!({"type": "app/welcome", "payload": "alice"}),
    ]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);

    let mut bob = Client::connect(server.addr());
    bob.link("bob");
    bob.expect_jsons(&[
        accepted(),
        joined("alice"),
        linked("alice"),
        joined("bob"),
        linked("bob"),
        json!({"type": "app/on-join", "payload": "bob"}),
        json!({"type": "app/welcome", "payload": "bob"}),
    ]);
    alice.expect_jsons(&[
        joined("bob"),
        linked("bob"),
        json!({"type": "app/arrived", "payload": "bob"}),
    ]);
    bob.expect_nothing_for(std::time::Duration::from_millis(50));
}

/// A custom message from a linked user reaches the application as the whole object (extra
/// fields kept); a binary frame of valid UTF-8 counts as text; the sender gets nothing back.
pub fn custom_messages_reach_the_application_whole(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice"]);
    let message =
        json!({"type": "chat/say", "payload": {"text": "hi", "n": [1, 2]}, "seq": 7, "meta": null});
    clients[0].send_json(&message);
    server.expect_event(&ServerEvent::message("alice", message));

    let binary = json!({"type": "chat/bin"});
    clients[0].send_binary(binary.to_string().as_bytes());
    server.expect_event(&ServerEvent::message("alice", binary));

    clients[0].send_json(&json!({"type": "no-payload"}));
    server.expect_event(&ServerEvent::message(
        "alice",
        json!({"type": "no-payload"}),
    ));
    clients[0].expect_nothing_for(std::time::Duration::from_millis(50));
}

/// The server's send reaches one user, broadcast every linked user, and broadcast with a skip
/// every linked user but that one; unlinked connections receive none of them.
pub fn server_send_and_broadcast_reach_linked_users(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice", "bob", "carol"]);
    let mut stranger = Client::connect(server.addr());

    let one = json!({"type": "app/one", "payload": 1});
    server.send("bob", &one);
    clients[1].expect_json(&one);

    let all = json!({"type": "app/all", "payload": [true], "extra": "kept"});
    server.broadcast(&all, None);
    for client in &mut clients {
        client.expect_json(&all);
    }

    let most = json!({"type": "app/most"});
    server.broadcast(&most, Some("alice"));
    clients[1].expect_json(&most);
    clients[2].expect_json(&most);
    for client in &mut clients {
        client.expect_nothing_for(std::time::Duration::from_millis(30));
    }
    stranger.expect_nothing_for(std::time::Duration::from_millis(30));
}

/// A user whose connection dropped stays joined and unlinked; a new connection links to it
/// again: it receives the roster with itself at its join position, others only `linked`.
pub fn user_relinks_after_its_connection_dropped(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    let mut bob = clients.pop().expect("bob");
    let alice = clients.pop().expect("alice");

    alice.drop_connection();
    bob.expect_json(&unlinked("alice"));
    server.expect_event(&ServerEvent::unlinked("alice"));
    assert_eq!(
        server.users(),
        [("alice".to_owned(), false), ("bob".to_owned(), true)]
    );

    let mut alice = Client::connect(server.addr());
    alice.link("alice");
    alice.expect_linked(&[("alice", true), ("bob", true)]);
    bob.expect_json(&linked("alice"));
    server.expect_event(&ServerEvent::linked("alice"));
    bob.expect_nothing_for(std::time::Duration::from_millis(50));

    // And once more after a clean close from the client side.
    alice.close();
    bob.expect_json(&unlinked("alice"));
    server.expect_event(&ServerEvent::unlinked("alice"));
    let mut again = Client::connect(server.addr());
    again.link("alice");
    again.expect_linked(&[("alice", true), ("bob", true)]);
    bob.expect_json(&linked("alice"));
    server.expect_event(&ServerEvent::linked("alice"));
}

/// After `krmx/unlink` the same connection may link to any user, a new one included.
pub fn connection_links_to_another_user_after_unlinking(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    clients[0].send_json(&json!({"type": "krmx/unlink"}));
    for client in &mut clients {
        client.expect_json(&unlinked("alice"));
    }
    server.expect_event(&ServerEvent::unlinked("alice"));

    clients[0].link("carol");
    clients[0].expect_linked(&[("alice", false), ("bob", true), ("carol", true)]);
    clients[1].expect_jsons(&[joined("carol"), linked("carol")]);
    server.expect_events(&[ServerEvent::joined("carol"), ServerEvent::linked("carol")]);

    // carol leaves and the connection links to alice again.
    clients[0].send_json(&json!({"type": "krmx/leave"}));
    clients[0].expect_jsons(&[unlinked("carol"), left("carol")]);
    clients[1].expect_jsons(&[unlinked("carol"), left("carol")]);
    server.expect_events(&[ServerEvent::unlinked("carol"), ServerEvent::left("carol")]);
    clients[0].link("alice");
    clients[0].expect_linked(&[("alice", true), ("bob", true)]);
    clients[1].expect_json(&linked("alice"));
    server.expect_event(&ServerEvent::linked("alice"));
}
