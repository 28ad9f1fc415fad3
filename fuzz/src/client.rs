//! `client`: the client state machine fed arbitrary server messages (raw text and structured
//! `krmx/` messages) interleaved with client commands and transport facts.
//!
//! Input: steps, each an opcode byte and its operands (see [`Step`]).
//!
//! Checked after every input: a refused input changes nothing and produces nothing; an
//! accepted one moves the status exactly as the status table says and produces exactly the
//! outputs it should; whatever the server sends only ever produces events (never a send, a
//! connect or a close), at most one per message, a custom message only while linked; and the
//! state holds together: no users and no username without a connection, a username while
//! linking, linked or unlinking, none while closing, and the own user, when listed while linked
//! or unlinking, listed as linked. `is_listed` only while linked; it turns true only on the own
//! `krmx/linked` and stays true while the client stays linked.

use crate::{Seed, byte, raw, vocab};
use arbitrary::Unstructured;
use krmx_core::{
    ClientConfig, ClientEvent, ClientInput, ClientOutput, ClientStatus, ClientUser, KrmxClient,
    Message,
};
use serde_json::{Value, json};

/// One step.
#[derive(Debug, Clone)]
pub enum Step {
    /// 0: `connect`.
    Connect,
    /// 1: `link` (name, auth: none, `tok`, empty).
    Link(u8, u8),
    /// 2: `unlink`.
    Unlink,
    /// 3: `leave`.
    Leave,
    /// 4: `send` (a custom or a reserved type).
    Send(u8),
    /// 5: `disconnect` (force when odd).
    Disconnect(u8),
    /// 6: the transport opened the connection.
    Opened,
    /// 7: the transport closed the connection.
    Closed,
    /// 8: raw text from the server (invalid UTF-8 replaced).
    Raw(Vec<u8>),
    /// 9-11: a structured message from the server (kind, name).
    Server(u8, u8),
}

const OPCODES: u8 = 12;

impl Step {
    fn decode(u: &mut Unstructured<'_>) -> Self {
        match byte(u) % OPCODES {
            0 => Self::Connect,
            1 => Self::Link(byte(u), byte(u)),
            2 => Self::Unlink,
            3 => Self::Leave,
            4 => Self::Send(byte(u)),
            5 => Self::Disconnect(byte(u)),
            6 => Self::Opened,
            7 => Self::Closed,
            8 => Self::Raw(raw(u).to_vec()),
            _ => Self::Server(byte(u), byte(u)),
        }
    }
}

/// The text of a server message of kind `kind` about `name`.
fn server_text(kind: u8, name: &str, arg: u8) -> String {
    let presence = |kind: &str| json!({"type": kind, "payload": {"username": name}});
    let value = match kind % 12 {
        0 => json!({"type": "krmx/accepted"}),
        1 => json!({"type": "krmx/rejected", "payload": {"reason": vocab::reason(arg)}}),
        2 => presence("krmx/joined"),
        3 => presence("krmx/linked"),
        4 => presence("krmx/unlinked"),
        5 => presence("krmx/left"),
        6 => json!({"type": "chat/say", "payload": {"n": arg}, "extra": [name]}),
        7 => json!({"type": "krmx/whatever", "payload": {"username": name}}),
        8 => json!({"type": "krmx/rejected"}),
        9 => json!({"type": "krmx/joined", "payload": {"username": arg}}),
        10 => json!({"type": "krmx/accepted", "payload": [name]}),
        _ => json!({"type": "krmx/linked", "payload": {"username": name, "extra": 1}, "x": 2}),
    };
    value.to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    status: ClientStatus,
    username: Option<String>,
    users: Vec<ClientUser>,
    listed: bool,
}

fn snapshot(client: &KrmxClient) -> Snapshot {
    Snapshot {
        status: client.status(),
        username: client.username().map(str::to_owned),
        users: client.users().cloned().collect(),
        listed: client.is_listed(),
    }
}

fn is_send_of(output: Option<&ClientOutput>, expected: &Value) -> bool {
    matches!(output, Some(ClientOutput::Send { text })
        if serde_json::from_str::<Value>(text).ok().as_ref() == Some(expected))
}

fn event(output: Option<&ClientOutput>) -> Option<&ClientEvent> {
    match output {
        Some(ClientOutput::Event(event)) => Some(event),
        _ => None,
    }
}

/// Checks one accepted input: the status move and the outputs it produced.
fn check_transition(
    before: &Snapshot,
    input: &ClientInput,
    outputs: &[ClientOutput],
    after: &Snapshot,
) {
    use ClientStatus::{
        Closed, Closing, Connected, Connecting, Initializing, Linked, Linking, Unlinking,
    };
    let first = outputs.first();
    let second = outputs.get(1);
    match input {
        ClientInput::Connect { url } => {
            assert!(matches!(before.status, Initializing | Closed));
            assert_eq!(after.status, Connecting);
            assert_eq!(
                outputs,
                [
                    ClientOutput::Event(ClientEvent::Connecting),
                    ClientOutput::Connect { url: url.clone() }
                ]
            );
        }
        ClientInput::Link { username, auth } => {
            assert_eq!((before.status, after.status), (Connected, Linking));
            assert_eq!(after.username.as_deref(), Some(username.as_str()));
            let mut payload = json!({"username": username, "version": "0.6.0"});
            if let Some(auth) = auth {
                payload["auth"] = json!(auth);
            }
            assert_eq!(outputs.len(), 2);
            assert_eq!(event(first), Some(&ClientEvent::Linking));
            let link = json!({"type": "krmx/link", "payload": payload});
            assert!(is_send_of(second, &link), "{outputs:?}");
        }
        ClientInput::Unlink => {
            assert_eq!((before.status, after.status), (Linked, Unlinking));
            assert_eq!(after.users, before.users);
            assert_eq!(outputs.len(), 2);
            assert_eq!(event(first), Some(&ClientEvent::Unlinking));
            assert!(is_send_of(second, &json!({"type": "krmx/unlink"})));
        }
        ClientInput::Leave => {
            assert_eq!((before.status, after.status), (Linked, Connected));
            assert_eq!(outputs.len(), 2);
            assert_eq!(event(first), Some(&ClientEvent::Unlinking));
            assert!(is_send_of(second, &json!({"type": "krmx/leave"})));
        }
        ClientInput::Send { message } => {
            assert_eq!(before.status, Linked);
            assert!(!message.is_reserved());
            assert_eq!(after, before);
            assert_eq!(
                outputs,
                [ClientOutput::Send {
                    text: message.to_text()
                }]
            );
        }
        ClientInput::Disconnect { force } => {
            let allowed = if *force {
                vec![Connected, Linking, Unlinking, Connecting, Linked, Closing]
            } else {
                vec![Connected, Linking, Unlinking]
            };
            assert!(allowed.contains(&before.status));
            assert_eq!(after.status, Closing);
            assert_eq!(
                outputs,
                [
                    ClientOutput::Event(ClientEvent::Closing),
                    ClientOutput::Close
                ]
            );
        }
        ClientInput::ConnectionOpened => match before.status {
            Connecting => {
                assert_eq!(after.status, Connected);
                assert_eq!(outputs, [ClientOutput::Event(ClientEvent::Connected)]);
            }
            Closing => {
                assert_eq!(after, before);
                assert!(outputs.is_empty());
            }
            status => panic!("an opened connection accepted while {status}"),
        },
        ClientInput::ConnectionClosed => {
            if matches!(before.status, Initializing | Closed) {
                assert_eq!(after, before);
                assert!(outputs.is_empty());
            } else {
                assert_eq!(after.status, Closed);
                assert_eq!(outputs, [ClientOutput::Event(ClientEvent::Closed)]);
                assert!(after.users.is_empty());
            }
        }
        ClientInput::Received { text } => {
            assert!(
                matches!(
                    before.status,
                    Connected | Linking | Linked | Unlinking | Closing
                ),
                "a message accepted while {}",
                before.status
            );
            assert!(
                outputs.len() <= 1,
                "one message, one event at most: {outputs:?}"
            );
            if let Some(output) = first {
                assert!(
                    matches!(output, ClientOutput::Event(_)),
                    "a server message made the client act: {output:?}"
                );
            }
            if before.status == Closing {
                assert_eq!(after, before, "a closing client changed on {text}");
                assert!(outputs.is_empty());
            }
            if matches!(event(first), Some(ClientEvent::Message { .. })) {
                assert_eq!((before.status, after.status), (Linked, Linked));
            }
            match (before.status, after.status) {
                (b, a) if b == a => {}
                (Linking, Linked) => {
                    assert_eq!(event(first), Some(&ClientEvent::Accepted));
                    assert_eq!(after.username, before.username);
                    let own = ClientUser {
                        username: after.username.clone().unwrap_or_default(),
                        is_linked: true,
                    };
                    assert_eq!(after.users, [own]);
                }
                (Linking, Connected) => {
                    assert!(matches!(event(first), Some(ClientEvent::Rejected { .. })));
                }
                (Linked | Unlinking, Connected) => {
                    let own = before.username.clone().unwrap_or_default();
                    assert_eq!(event(first), Some(&ClientEvent::Unlinked { username: own }));
                    assert!(after.users.is_empty());
                }
                (b, a) => panic!("{text} moved the client from {b} to {a}"),
            }
        }
        other => panic!("unknown input {other:?}"),
    }
}

/// Checks when `is_listed` may change: it turns true only on the own `krmx/linked` and stays
/// true while the client stays linked.
fn check_listing(
    before: &Snapshot,
    input: &ClientInput,
    outputs: &[ClientOutput],
    after: &Snapshot,
) {
    if after.listed && !before.listed {
        assert!(matches!(input, ClientInput::Received { .. }), "{input:?}");
        let own = ClientEvent::Linked {
            username: after.username.clone().unwrap_or_default(),
        };
        assert_eq!(outputs, [ClientOutput::Event(own)], "listed on {input:?}");
    }
    if before.listed && after.status == ClientStatus::Linked {
        assert!(after.listed, "unlisted while linked on {input:?}");
    }
}

/// Checks that the state holds together.
fn check_state(state: &Snapshot) {
    use ClientStatus::{Closed, Closing, Connecting, Initializing, Linked, Linking, Unlinking};
    match state.status {
        Initializing | Connecting | Closed => {
            assert!(
                state.users.is_empty(),
                "users without a connection: {state:?}"
            );
            assert_eq!(state.username, None, "{state:?}");
        }
        Linking | Linked | Unlinking => {
            let own = state.username.as_deref();
            assert!(own.is_some(), "no username: {state:?}");
            if state.status != Linking {
                let listed = state
                    .users
                    .iter()
                    .find(|u| Some(u.username.as_str()) == own);
                assert!(listed.is_none_or(|u| u.is_linked), "{state:?}");
            }
        }
        Closing => assert_eq!(state.username, None, "{state:?}"),
        _ => {}
    }
    assert!(!state.listed || state.status == Linked, "{state:?}");
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut client = KrmxClient::new(ClientConfig::default());
    let mut steps = 0;
    while !u.is_empty() && steps < 2000 {
        steps += 1;
        let own = client.username().unwrap_or("alice").to_owned();
        let input = match Step::decode(&mut u) {
            Step::Connect => ClientInput::Connect {
                url: "ws://localhost:8082".into(),
            },
            Step::Link(n, a) => ClientInput::Link {
                username: vocab::name(n).to_owned(),
                auth: match a % 3 {
                    0 => None,
                    1 => Some("tok".to_owned()),
                    _ => Some(String::new()),
                },
            },
            Step::Unlink => ClientInput::Unlink,
            Step::Leave => ClientInput::Leave,
            Step::Send(k) => {
                let kind = ["chat/say", "krmx/leave", "", "krmx/", "KRMX/x"][usize::from(k) % 5];
                ClientInput::Send {
                    message: Message::new(kind).with_payload(json!(k)),
                }
            }
            Step::Disconnect(f) => ClientInput::Disconnect { force: f % 2 == 1 },
            Step::Opened => ClientInput::ConnectionOpened,
            Step::Closed => ClientInput::ConnectionClosed,
            Step::Raw(bytes) => ClientInput::Received {
                text: String::from_utf8_lossy(&bytes).into_owned(),
            },
            Step::Server(kind, n) => {
                // A third of the time about the client's own user.
                let name = if n % 3 == 0 {
                    own.as_str()
                } else {
                    vocab::name(n / 3)
                };
                ClientInput::Received {
                    text: server_text(kind, name, n),
                }
            }
        };
        let before = snapshot(&client);
        let result = client.handle_input(input.clone());
        let mut outputs = Vec::new();
        while let Some(output) = client.poll_output() {
            outputs.push(output);
        }
        let after = snapshot(&client);
        match result {
            Err(error) => {
                assert!(
                    outputs.is_empty(),
                    "refused ({error}) but produced {outputs:?}"
                );
                assert_eq!(after, before, "refused ({error}) but changed");
            }
            Ok(()) => {
                check_transition(&before, &input, &outputs, &after);
                check_listing(&before, &input, &outputs, &after);
            }
        }
        check_state(&after);
    }
}

// Opcodes and server message kinds, for seeds.
const CONNECT: u8 = 0;
const LINK: u8 = 1;
const UNLINK: u8 = 2;
const LEAVE: u8 = 3;
const SEND: u8 = 4;
const DISCONNECT: u8 = 5;
const OPENED: u8 = 6;
const CLOSED: u8 = 7;
const RAW: u8 = 8;
const SERVER: u8 = 9;
const ACCEPTED: u8 = 0;
const REJECTED: u8 = 1;
const JOINED: u8 = 2;
const LINKED: u8 = 3;
const UNLINKED: u8 = 4;
const LEFT: u8 = 5;
const CUSTOM: u8 = 6;
/// Name operand for the client's own user.
const OWN: u8 = 0;
/// Name operand for `bob`.
const BOB: u8 = 4;

/// The committed seeds.
#[must_use]
pub fn seeds() -> crate::Seeds {
    let honest_session = Seed::new()
        .b(&[CONNECT, OPENED, LINK, 0, 0])
        .b(&[
            SERVER, ACCEPTED, OWN, SERVER, JOINED, BOB, SERVER, LINKED, BOB,
        ])
        .b(&[SERVER, JOINED, OWN, SERVER, LINKED, OWN, SERVER, CUSTOM, 1])
        .b(&[SEND, 0, SEND, 1, SERVER, UNLINKED, BOB, SERVER, LEFT, BOB])
        .b(&[UNLINK, SERVER, CUSTOM, 2, SERVER, UNLINKED, OWN])
        .b(&[DISCONNECT, 0, CLOSED]);
    let leave_and_relink = Seed::new()
        .b(&[CONNECT, OPENED, LINK, 0, 1, SERVER, ACCEPTED, OWN])
        .b(&[SERVER, JOINED, OWN, SERVER, LINKED, OWN])
        .b(&[LEAVE, LINK, 0, 0, SERVER, UNLINKED, OWN, SERVER, LEFT, OWN])
        .b(&[
            SERVER, ACCEPTED, OWN, SERVER, JOINED, OWN, SERVER, LINKED, OWN,
        ]);
    let rejections = Seed::new()
        .b(&[CONNECT, OPENED, LINK, 5, 0, SERVER, REJECTED, 1])
        .b(&[LINK, 0, 0, SERVER, REJECTED, 3, SERVER, ACCEPTED, OWN])
        .b(&[SEND, 0, SERVER, REJECTED, 3, SERVER, REJECTED, 1]);
    let closing_ignores = Seed::new()
        .b(&[CONNECT, OPENED, LINK, 0, 0, DISCONNECT, 1])
        .b(&[
            SERVER, ACCEPTED, OWN, OPENED, CLOSED, CLOSED, CONNECT, DISCONNECT, 1, OPENED,
        ]);
    let raw_texts = Seed::new()
        .b(&[CONNECT, OPENED, RAW])
        .raw(b"not json")
        .b(&[RAW])
        .raw(br#"{"type":"krmx/accepted"}"#)
        .b(&[LINK, 1, 0, RAW])
        .raw(br#"{"type":"krmx/accepted","payload":null}"#)
        .b(&[RAW])
        .raw(br#"{"type":"krmx/joined","payload":{"username":"bob"}}"#)
        .b(&[RAW])
        .raw(b"\xff{\"type\":\"krmx/left\"}");
    let unexpected_facts = Seed::new()
        .b(&[
            OPENED, SERVER, ACCEPTED, OWN, UNLINK, LEAVE, SEND, 0, DISCONNECT, 0,
        ])
        .b(&[
            CONNECT, CONNECT, SERVER, JOINED, BOB, OPENED, OPENED, CLOSED, OPENED,
        ]);
    vec![
        ("honest_session", honest_session.0),
        ("leave_and_relink", leave_and_relink.0),
        ("rejections", rejections.0),
        ("closing_ignores", closing_ignores.0),
        ("raw_texts", raw_texts.0),
        ("unexpected_facts", unexpected_facts.0),
    ]
}
