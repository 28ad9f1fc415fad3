//! Commands in a wrong status fail with the JavaScript client's exact texts and change nothing;
//! impossible transport facts are errors; whatever a server sends is never one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod client_support;

use client_support::{Net, message};
use krmx_core::{
    ClientConfig, ClientError, ClientEvent, ClientInput, ClientOutput, ClientStatus, KrmxClient,
    KrmxConfig,
};

const ALL: [ClientStatus; 8] = [
    ClientStatus::Initializing,
    ClientStatus::Connecting,
    ClientStatus::Connected,
    ClientStatus::Linking,
    ClientStatus::Linked,
    ClientStatus::Unlinking,
    ClientStatus::Closing,
    ClientStatus::Closed,
];

/// A network with one client (index 0) in `status`, its events and sent texts forgotten.
fn client_in(status: ClientStatus) -> Net {
    let mut net = Net::new(KrmxConfig::default());
    let i = net.add_client(ClientConfig::default());
    let connect = ClientInput::Connect {
        url: "ws://localhost:8082".into(),
    };
    let link = ClientInput::Link {
        username: "simon".into(),
        auth: None,
    };
    match status {
        ClientStatus::Initializing => {}
        ClientStatus::Connecting => net.command(i, connect).unwrap(),
        ClientStatus::Connected => net.connect(i),
        ClientStatus::Linking => {
            net.connect(i);
            net.command(i, link).unwrap();
        }
        ClientStatus::Linked => {
            net.connect(i);
            net.link(i, "simon");
        }
        ClientStatus::Unlinking => {
            net.connect(i);
            net.link(i, "simon");
            net.command(i, ClientInput::Unlink).unwrap();
        }
        ClientStatus::Closing => {
            net.connect(i);
            net.command(i, ClientInput::Disconnect { force: false })
                .unwrap();
        }
        ClientStatus::Closed => {
            net.connect(i);
            net.command(i, ClientInput::Disconnect { force: false })
                .unwrap();
            net.settle();
        }
        other => panic!("unknown status {other}"),
    }
    assert_eq!(net.status(i), status);
    net.take(i);
    net.take_sent(i);
    net
}

/// Each command, the JavaScript client's word for it in its errors, the statuses that allow it,
/// and the status it leads to.
fn commands() -> Vec<(ClientInput, &'static str, Vec<ClientStatus>, ClientStatus)> {
    use ClientStatus::{
        Closed, Closing, Connected, Connecting, Initializing, Linked, Linking, Unlinking,
    };
    vec![
        (
            ClientInput::Connect {
                url: "ws://localhost:8082".into(),
            },
            "connect",
            vec![Initializing, Closed],
            Connecting,
        ),
        (
            ClientInput::Link {
                username: "lisa".into(),
                auth: None,
            },
            "link",
            vec![Connected],
            Linking,
        ),
        // The JavaScript client words an unlink in a wrong status as `send`.
        (ClientInput::Unlink, "send", vec![Linked], Unlinking),
        (ClientInput::Leave, "leave", vec![Linked], Connected),
        (
            ClientInput::Send {
                message: message(r#"{"type":"chat/say"}"#),
            },
            "send",
            vec![Linked],
            Linked,
        ),
        (
            ClientInput::Disconnect { force: false },
            "disconnect",
            vec![Connected, Linking, Unlinking],
            Closing,
        ),
        (
            ClientInput::Disconnect { force: true },
            "disconnect",
            vec![Connected, Linking, Unlinking, Connecting, Linked, Closing],
            Closing,
        ),
    ]
}

#[test]
fn every_command_in_every_status_is_allowed_or_refused_as_in_the_javascript_client() {
    for status in ALL {
        for (command, action, allowed, next) in commands() {
            let mut net = client_in(status);
            let users_before = net.users(0);
            let result = net.command(0, command.clone());
            if allowed.contains(&status) {
                assert_eq!(result, Ok(()), "{command:?} in {status}");
                assert_eq!(net.status(0), next, "{command:?} in {status}");
            } else {
                let error = result.expect_err("refused");
                assert_eq!(
                    error,
                    ClientError::WrongStatus { action, status },
                    "{command:?} in {status}"
                );
                assert_eq!(
                    error.to_string(),
                    format!("cannot {action} when the client is {status}")
                );
                // A refused command changes nothing and sends nothing.
                assert_eq!(net.status(0), status);
                assert_eq!(net.users(0), users_before);
                assert_eq!(net.take(0), Vec::<String>::new());
                assert_eq!(net.take_sent(0), Vec::<String>::new());
            }
        }
    }
}

#[test]
fn error_texts_are_the_javascript_clients() {
    let texts = [
        (
            ClientError::WrongStatus {
                action: "link",
                status: ClientStatus::Linked,
            },
            "cannot link when the client is linked",
        ),
        (
            ClientError::WrongStatus {
                action: "send",
                status: ClientStatus::Connected,
            },
            "cannot send when the client is connected",
        ),
        (
            ClientError::WrongStatus {
                action: "disconnect",
                status: ClientStatus::Linked,
            },
            "cannot disconnect when the client is linked",
        ),
        (
            ClientError::WrongStatus {
                action: "leave",
                status: ClientStatus::Connected,
            },
            "cannot leave when the client is connected",
        ),
        (
            ClientError::WrongStatus {
                action: "connect",
                status: ClientStatus::Closing,
            },
            "cannot connect when the client is closing",
        ),
        (
            ClientError::ReservedType,
            "cannot send custom messages with type starting with the internal 'krmx/' prefix",
        ),
    ];
    for (error, text) in texts {
        assert_eq!(error.to_string(), text);
    }
    let boxed: Box<dyn std::error::Error> = Box::new(ClientError::ReservedType);
    assert!(boxed.source().is_none());
}

#[test]
fn the_status_check_comes_before_the_reserved_type_check() {
    let mut net = client_in(ClientStatus::Connected);
    let refused = net.command(
        0,
        ClientInput::Send {
            message: message(r#"{"type":"krmx/link"}"#),
        },
    );
    assert_eq!(
        refused.unwrap_err().to_string(),
        "cannot send when the client is connected"
    );
}

fn drain(client: &mut KrmxClient) -> Vec<ClientOutput> {
    std::iter::from_fn(|| client.poll_output()).collect()
}

fn received(client: &mut KrmxClient, text: &str) -> Result<(), ClientError> {
    client.handle_input(ClientInput::Received { text: text.into() })
}

/// A client that is linked as simon, fed by hand.
fn linked_by_hand() -> KrmxClient {
    let mut client = KrmxClient::default();
    for input in [
        ClientInput::Connect {
            url: "ws://example.invalid".into(),
        },
        ClientInput::ConnectionOpened,
        ClientInput::Link {
            username: "simon".into(),
            auth: None,
        },
    ] {
        client.handle_input(input).unwrap();
    }
    for text in [
        r#"{"type":"krmx/accepted"}"#,
        r#"{"type":"krmx/joined","payload":{"username":"simon"}}"#,
        r#"{"type":"krmx/linked","payload":{"username":"simon"}}"#,
    ] {
        received(&mut client, text).unwrap();
    }
    drain(&mut client);
    assert_eq!(client.status(), ClientStatus::Linked);
    client
}

#[test]
fn impossible_transport_facts_are_errors_and_change_nothing() {
    let mut client = KrmxClient::default();
    let error = client
        .handle_input(ClientInput::ConnectionOpened)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the transport reported an opened connection when the client is initializing"
    );
    assert_eq!(
        received(&mut client, r#"{"type":"krmx/accepted"}"#)
            .unwrap_err()
            .to_string(),
        "the transport reported a received message when the client is initializing"
    );
    client
        .handle_input(ClientInput::Connect {
            url: "ws://example.invalid".into(),
        })
        .unwrap();
    drain(&mut client);
    assert!(received(&mut client, r#"{"type":"krmx/accepted"}"#).is_err());
    assert_eq!(client.status(), ClientStatus::Connecting);

    let mut linked = linked_by_hand();
    assert_eq!(
        linked.handle_input(ClientInput::ConnectionOpened),
        Err(ClientError::UnexpectedTransport {
            fact: "an opened connection",
            status: ClientStatus::Linked
        })
    );
    assert_eq!(linked.status(), ClientStatus::Linked);
    assert_eq!(drain(&mut linked), []);
}

#[test]
fn a_close_without_a_connection_is_harmless() {
    let mut client = KrmxClient::default();
    client.handle_input(ClientInput::ConnectionClosed).unwrap();
    assert_eq!(client.status(), ClientStatus::Initializing);
    assert_eq!(drain(&mut client), []);

    let mut linked = linked_by_hand();
    linked.handle_input(ClientInput::ConnectionClosed).unwrap();
    linked.handle_input(ClientInput::ConnectionClosed).unwrap();
    assert_eq!(
        drain(&mut linked),
        [ClientOutput::Event(ClientEvent::Closed)]
    );
    assert_eq!(linked.status(), ClientStatus::Closed);
    assert_eq!(linked.users().len(), 0);
}

#[test]
fn anything_a_server_sends_is_never_an_error() {
    let mut client = linked_by_hand();
    for text in [
        "not json",
        "",
        "[]",
        "{}",
        r#"{"type":3}"#,
        r#"{"type":"krmx/unknown"}"#,
        r#"{"type":"krmx/joined"}"#,
        r#"{"type":"krmx/joined","payload":{"username":7}}"#,
        r#"{"type":"krmx/left","payload":"simon"}"#,
        // No link is pending: dropped.
        r#"{"type":"krmx/accepted"}"#,
        r#"{"type":"krmx/rejected","payload":{"reason":"nope"}}"#,
    ] {
        assert_eq!(received(&mut client, text), Ok(()), "{text}");
        assert_eq!(drain(&mut client), [], "{text}");
        assert_eq!(client.status(), ClientStatus::Linked, "{text}");
        assert_eq!(client.username(), Some("simon"));
        assert_eq!(client.users().len(), 1);
    }
    // A presence message about a user that never joined is passed on; the list stays right.
    received(
        &mut client,
        r#"{"type":"krmx/linked","payload":{"username":"ghost"}}"#,
    )
    .unwrap();
    assert_eq!(
        drain(&mut client),
        [ClientOutput::Event(ClientEvent::Linked {
            username: "ghost".into()
        })]
    );
    assert_eq!(client.users().len(), 1);
}

#[test]
fn a_rejection_without_a_reason_still_ends_the_link_attempt() {
    let mut client = KrmxClient::default();
    for input in [
        ClientInput::Connect {
            url: "ws://example.invalid".into(),
        },
        ClientInput::ConnectionOpened,
        ClientInput::Link {
            username: "simon".into(),
            auth: None,
        },
    ] {
        client.handle_input(input).unwrap();
    }
    drain(&mut client);
    received(&mut client, r#"{"type":"krmx/rejected"}"#).unwrap();
    assert_eq!(
        drain(&mut client),
        [ClientOutput::Event(ClientEvent::Rejected {
            reason: String::new()
        })]
    );
    assert_eq!(client.status(), ClientStatus::Connected);
    assert_eq!(client.username(), None);
}
