//! Replies still on their way when the application acts again. The JavaScript client loses
//! track in each of these (noted per test); this client keeps agreeing with the server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod client_support;

use client_support::{Net, message, users};
use krmx_core::{ClientConfig, ClientInput, ClientStatus, Input, KrmxConfig};

fn link(username: &str) -> ClientInput {
    ClientInput::Link {
        username: username.into(),
        auth: None,
    }
}

fn send() -> ClientInput {
    ClientInput::Send {
        message: message(r#"{"type":"chat/say"}"#),
    }
}

/// JavaScript: the late own unlink turns `linking` into `connected` and clears the name, so the
/// accept that follows links a user named `undefined`.
#[test]
fn linking_again_as_the_same_user_right_after_a_leave() {
    let mut net = Net::new(KrmxConfig::default());
    let other = net.linked_client("lisa");
    let simon = net.linked_client("simon");
    net.command(simon, ClientInput::Leave).unwrap();
    net.command(simon, link("simon")).unwrap();
    assert_eq!(net.status(simon), ClientStatus::Linking);
    net.settle();
    assert_eq!(
        net.take(simon),
        [
            "unlinking",
            "linking",
            "unlink(simon)",
            "accept",
            "join(lisa)",
            "link(lisa)",
            "join(simon)",
            "link(simon)"
        ]
    );
    assert_eq!(net.status(simon), ClientStatus::Linked);
    assert_eq!(net.username(simon).as_deref(), Some("simon"));
    assert_eq!(net.users(simon), users(&["lisa+", "simon+"]));
    assert_eq!(
        net.take(other),
        [
            "unlink(simon)",
            "leave(simon)",
            "join(simon)",
            "link(simon)"
        ]
    );
    net.check_agreement();
}

#[test]
fn linking_as_another_user_right_after_a_leave() {
    let mut net = Net::new(KrmxConfig::default());
    net.linked_client("lisa");
    let simon = net.linked_client("simon");
    net.command(simon, ClientInput::Leave).unwrap();
    net.command(simon, link("carol")).unwrap();
    net.settle();
    assert_eq!(net.status(simon), ClientStatus::Linked);
    assert_eq!(net.username(simon).as_deref(), Some("carol"));
    assert_eq!(net.users(simon), users(&["lisa+", "carol+"]));
    net.check_agreement();
}

/// JavaScript: the server's `unlinked connection` answer to the message is taken as the answer
/// to the new link (`reject`), and the real accept then links with no username.
#[test]
fn a_message_racing_a_server_unlink_does_not_reject_the_next_link() {
    let mut net = Net::new(KrmxConfig::default());
    let simon = net.linked_client("simon");
    net.server_input(Input::Unlink {
        username: "simon".into(),
    })
    .unwrap();
    net.command(simon, send()).unwrap();
    // The unlink arrives; the message is still on its way to the server.
    assert!(net.deliver_to_client(simon));
    assert_eq!(net.status(simon), ClientStatus::Connected);
    net.command(simon, link("simon")).unwrap();
    net.settle();
    assert_eq!(
        net.take(simon),
        [
            "unlink(simon)",
            "linking",
            "accept",
            "join(simon)",
            "link(simon)"
        ]
    );
    assert_eq!(net.status(simon), ClientStatus::Linked);
    net.check_agreement();
}

#[test]
fn an_unlink_racing_a_kick_ends_connected_without_a_rejection() {
    let mut net = Net::new(KrmxConfig::default());
    let simon = net.linked_client("simon");
    net.command(simon, ClientInput::Unlink).unwrap();
    net.server_input(Input::Kick {
        username: "simon".into(),
    })
    .unwrap();
    net.settle();
    assert_eq!(net.take(simon), ["unlinking", "unlink(simon)"]);
    assert_eq!(net.status(simon), ClientStatus::Connected);
    net.check_agreement();
    net.link(simon, "simon");
    assert_eq!(net.status(simon), ClientStatus::Linked);
    net.check_agreement();
}

#[test]
fn a_leave_and_messages_racing_a_server_unlink_then_a_link() {
    let mut net = Net::new(KrmxConfig::default());
    let simon = net.linked_client("simon");
    net.server_input(Input::Unlink {
        username: "simon".into(),
    })
    .unwrap();
    net.command(simon, send()).unwrap();
    net.command(simon, send()).unwrap();
    net.command(simon, ClientInput::Leave).unwrap();
    assert!(net.deliver_to_client(simon));
    net.command(simon, link("simon")).unwrap();
    net.settle();
    assert_eq!(
        net.take(simon),
        [
            "unlinking",
            "unlink(simon)",
            "linking",
            "accept",
            "join(simon)",
            "link(simon)"
        ]
    );
    // The leave reached an unlinked connection: simon never left.
    assert_eq!(net.server_users(), users(&["simon+"]));
    net.check_agreement();
}

/// JavaScript: the accept still on its way turns `closing` into `linked`.
#[test]
fn a_disconnect_while_linking_ignores_the_late_accept() {
    let mut net = Net::new(KrmxConfig::default());
    let other = net.linked_client("lisa");
    let simon = net.add_client(ClientConfig::default());
    net.connect(simon);
    net.take(simon);
    net.command(simon, link("simon")).unwrap();
    assert!(net.deliver_to_server(simon));
    net.command(simon, ClientInput::Disconnect { force: false })
        .unwrap();
    assert!(net.deliver_to_client(simon));
    assert_eq!(net.status(simon), ClientStatus::Closing);
    net.settle();
    assert_eq!(net.take(simon), ["linking", "closing", "close"]);
    assert_eq!(net.status(simon), ClientStatus::Closed);
    assert_eq!(net.users(simon), users(&[]));
    assert_eq!(
        net.take(other),
        ["join(simon)", "link(simon)", "unlink(simon)"]
    );
    net.check_agreement();
}

#[test]
fn a_forced_disconnect_while_connecting_never_reports_connect() {
    let mut net = Net::new(KrmxConfig::default());
    let simon = net.add_client(ClientConfig::default());
    net.command(
        simon,
        ClientInput::Connect {
            url: "ws://localhost:8082".into(),
        },
    )
    .unwrap();
    net.command(simon, ClientInput::Disconnect { force: true })
        .unwrap();
    net.settle();
    assert_eq!(net.take(simon), ["connecting", "closing", "close"]);
    assert_eq!(net.status(simon), ClientStatus::Closed);
    assert_eq!(net.server.connections().count(), 0);
    net.check_agreement();
}
