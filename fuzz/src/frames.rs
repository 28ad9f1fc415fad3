//! `frames`: raw bytes as text and binary frames into message parsing and handling, on linked,
//! unlinked and pending connections.
//!
//! Input: one flags byte, then frames separated by `0xff` (a byte that never occurs in UTF-8).
//! Flags: bit 0 [`AuthMode::Application`] (the pending connection exists); bit 1 binary frames
//! (else text frames, a chunk that is not UTF-8 being reported as
//! [`Violation::InvalidUtf8`] as a transport would); bits 2-3 the receiving connection: the
//! linked `alice`, the unlinked one, the one whose link is pending, or each in turn.
//!
//! Each frame's outcome is checked against an independent classification of its bytes with
//! `serde_json::Value` (a message is a UTF-8 JSON object with a string `type`), on top of the
//! [`ServerChecker`] invariants: every output is well-formed JSON to an open connection.

use crate::Seed;
use crate::check::ServerChecker;
use krmx_core::{
    AuthDecision, AuthId, AuthMode, CloseCode, ConnectionId, Event, Frame, Input, Krmx, KrmxConfig,
    Message, Output, Violation,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const MAX_MESSAGE_BYTES: usize = 300;
const MAX_QUEUED: usize = 4;

/// Flag: application authentication.
pub const APPLICATION: u8 = 1;
/// Flag: binary frames.
pub const BINARY: u8 = 2;
/// Receiver: the linked connection of `alice` (bits 2-3 zero).
pub const TO_LINKED: u8 = 0;
/// Receiver: an unlinked connection.
pub const TO_UNLINKED: u8 = 4;
/// Receiver: the connection whose link is pending (the unlinked one without application auth).
pub const TO_PENDING: u8 = 8;
/// Receiver: linked, unlinked and pending in turn.
pub const ROUND_ROBIN: u8 = 12;

struct Harness {
    krmx: Krmx,
    checker: ServerChecker,
    now: Instant,
    /// alice (linked), bob (linked), unlinked, pending.
    conns: [ConnectionId; 4],
    pending: Option<AuthId>,
    /// Frames kept for the pending connection.
    queued: usize,
    outputs: Vec<Output>,
}

impl Harness {
    fn new(application: bool) -> Self {
        let config = KrmxConfig::default()
            .auth(if application {
                AuthMode::Application
            } else {
                AuthMode::None
            })
            .ping_interval(Duration::ZERO)
            .max_message_bytes(MAX_MESSAGE_BYTES)
            .max_queued_during_auth(MAX_QUEUED);
        let mut harness = Self {
            krmx: Krmx::new(config),
            checker: ServerChecker::new(),
            now: Instant::now(),
            conns: [1, 2, 3, 4].map(ConnectionId::new),
            pending: None,
            queued: 0,
            outputs: Vec::new(),
        };
        harness.feed(Input::Listen { port: 8082 }, true);
        for conn in harness.conns {
            harness.checker.opened(conn);
            harness.feed(
                Input::ConnectionOpened {
                    conn,
                    target: "/".into(),
                },
                true,
            );
        }
        for (i, name) in [(0, "alice"), (1, "bob"), (3, "dave.k")] {
            let link =
                json!({"type": "krmx/link", "payload": {"username": name, "version": "0.6.0"}});
            let conn = harness.conns[i];
            let frame = Frame::Text(link.to_string());
            // Every link but the last is accepted at once.
            harness.feed(Input::Frame { conn, frame }, i != 3);
        }
        if application {
            assert!(harness.pending.is_some(), "dave.k's link is pending");
        }
        harness
    }

    /// Feeds an input, drains and checks every output; authentication requests are accepted
    /// at once when `accept`, else the first one stays pending.
    fn feed(&mut self, input: Input, accept: bool) {
        let result = self.krmx.handle_input(self.now, input);
        assert_eq!(result, Ok(()), "input refused");
        self.outputs.clear();
        while let Some(output) = self.krmx.poll_output() {
            if let Err(error) = self.checker.observe(&output) {
                panic!("{error}");
            }
            if let Output::Event(Event::AuthRequested { id, .. }) = &output {
                if accept || self.pending.is_some() {
                    let decision = Input::AuthDecided {
                        id: *id,
                        decision: AuthDecision::Accept,
                    };
                    assert_eq!(self.krmx.handle_input(self.now, decision), Ok(()));
                } else {
                    self.pending = Some(*id);
                }
            }
            self.outputs.push(output);
        }
        self.checker.drained();
        if let Err(error) = self.checker.check(&self.krmx, self.now) {
            panic!("{error}");
        }
    }

    fn is_send_of(&self, i: usize, conn: ConnectionId, expected: &Value) -> bool {
        matches!(
            self.outputs.get(i),
            Some(Output::Send { to, text })
                if *to == conn && serde_json::from_str::<Value>(text).ok().as_ref() == Some(expected)
        )
    }

    fn closed_with(&self, conn: ConnectionId, code: CloseCode) -> bool {
        matches!(self.outputs.last(), Some(Output::Close { to, code: c, .. }) if *to == conn && *c == code)
            && !self.checker.is_open(conn)
    }

    /// Feeds one chunk to `conn` and checks its outcome.
    fn chunk(&mut self, conn: ConnectionId, bytes: &[u8], binary: bool) {
        if !self.checker.is_open(conn) {
            return;
        }
        let text = std::str::from_utf8(bytes).ok();
        let message = classify(bytes);
        let pending =
            self.pending.is_some_and(|id| self.krmx.is_auth_pending(id)) && conn == self.conns[3];
        let linked = self.krmx.linked_user(conn).map(ToString::to_string);
        let existed = linked
            .as_ref()
            .is_some_and(|name| self.krmx.users().any(|user| user.username.as_str() == name));
        let input = match (binary, text) {
            (true, _) => Input::Frame {
                conn,
                frame: Frame::Binary(bytes.to_vec()),
            },
            (false, Some(text)) => Input::Frame {
                conn,
                frame: Frame::Text(text.to_owned()),
            },
            (false, None) => Input::Violation {
                conn,
                violation: Violation::InvalidUtf8,
            },
        };
        self.feed(input, true);
        let outputs = &self.outputs;
        if !binary && text.is_none() {
            assert!(
                self.closed_with(conn, CloseCode::INVALID_PAYLOAD),
                "{outputs:?}"
            );
            return;
        }
        if bytes.len() > MAX_MESSAGE_BYTES {
            assert!(self.closed_with(conn, CloseCode::TOO_BIG), "{outputs:?}");
            return;
        }
        if pending {
            if self.queued >= MAX_QUEUED {
                assert!(self.closed_with(conn, CloseCode::POLICY), "{outputs:?}");
            } else {
                assert!(
                    outputs.is_empty(),
                    "a frame during a pending link: {outputs:?}"
                );
                self.queued += 1;
            }
            return;
        }
        match (linked, message) {
            (Some(username), Some((message, value))) if !message.is_reserved() => {
                let [
                    Output::Event(Event::Message {
                        username: from,
                        message: got,
                    }),
                ] = outputs.as_slice()
                else {
                    panic!("expected one message event, got {outputs:?}");
                };
                assert_eq!(from.as_str(), username);
                assert_eq!(got, &message);
                assert_eq!(serde_json::to_value(got).ok(), Some(value));
                if let Some(text) = text {
                    assert_eq!(got.to_text().as_str(), text, "the original text is relayed");
                }
            }
            (Some(username), message) => {
                let leave = message.is_some_and(|(m, _)| m.kind() == "krmx/leave");
                assert!(
                    outputs.iter().any(|o| matches!(o,
                        Output::Event(Event::Unlinked { username: u, conn: c })
                            if u.as_str() == username && *c == conn)),
                    "{username} not unlinked: {outputs:?}"
                );
                assert_eq!(self.krmx.linked_user(conn), None);
                let exists = self
                    .krmx
                    .users()
                    .any(|user| user.username.as_str() == username);
                assert_eq!(exists, existed && !leave, "{username} after {outputs:?}");
            }
            (None, Some((message, _))) if message.kind() == "krmx/link" => {
                let answered = self.outputs.first().is_some_and(|o| match o {
                    Output::Send { to, .. } => *to == conn,
                    Output::Event(Event::AuthRequested { conn: c, .. }) => *c == conn,
                    _ => false,
                });
                assert!(answered, "a link request is answered: {outputs:?}");
            }
            (None, Some(_)) => {
                let reason =
                    json!({"type": "krmx/rejected", "payload": {"reason": "unlinked connection"}});
                assert!(
                    outputs.len() == 1 && self.is_send_of(0, conn, &reason),
                    "{outputs:?}"
                );
            }
            (None, None) => {
                let reason =
                    json!({"type": "krmx/rejected", "payload": {"reason": "invalid message"}});
                assert!(
                    outputs.len() == 1 && self.is_send_of(0, conn, &reason),
                    "{outputs:?}"
                );
            }
        }
    }
}

/// The message in `bytes`, by an independent reading: UTF-8, a JSON object, a string `type`.
/// Also checks that [`Message::parse`] agrees and keeps the original text and every field.
fn classify(bytes: &[u8]) -> Option<(Message, Value)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let value: Option<Value> = serde_json::from_str(text).ok();
    let valid = value
        .as_ref()
        .is_some_and(|v| v.is_object() && v.get("type").is_some_and(Value::is_string));
    let parsed = Message::parse(text);
    assert_eq!(
        parsed.is_ok(),
        valid,
        "Message::parse disagrees on {text:?}"
    );
    let message = parsed.ok()?;
    let value = value?;
    assert_eq!(message.to_text().as_str(), text);
    assert_eq!(
        Some(message.kind()),
        value.get("type").and_then(Value::as_str)
    );
    assert_eq!(message.clone().into_value(), value);
    let reparsed = Message::parse(&serde_json::to_string(&message).ok()?).ok();
    assert_eq!(reparsed.map(Message::into_value).as_ref(), Some(&value));
    Some((message, value))
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let application = flags & APPLICATION != 0;
    let binary = flags & BINARY != 0;
    let mut harness = Harness::new(application);
    let receivers: Vec<ConnectionId> = match (flags >> 2) & 3 {
        0 => vec![harness.conns[0]],
        1 => vec![harness.conns[2]],
        2 if application => vec![harness.conns[3]],
        2 => vec![harness.conns[2]],
        _ => vec![harness.conns[0], harness.conns[2], harness.conns[3]],
    };
    for (i, chunk) in rest.split(|&b| b == 0xff).take(64).enumerate() {
        let conn = receivers[i % receivers.len()];
        harness.chunk(conn, chunk, binary);
    }
    // The pending link is decided: the frames kept for it are handled now, in order.
    if let Some(id) = harness.pending {
        harness.feed(
            Input::AuthDecided {
                id,
                decision: AuthDecision::Accept,
            },
            true,
        );
    }
    // Every user's connection goes away.
    for conn in harness.conns {
        harness.checker.peer_closed(conn);
        harness.feed(Input::ConnectionClosed { conn }, true);
    }
    assert!(harness.krmx.users().all(|user| !user.is_linked));
}

fn frames(flags: u8, chunks: &[&[u8]]) -> Vec<u8> {
    let mut seed = Seed::new().b(&[flags]);
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            seed = seed.b(&[0xff]);
        }
        seed = seed.b(chunk);
    }
    seed.0
}

/// The committed seeds.
#[must_use]
pub fn seeds() -> crate::Seeds {
    let big = format!(r#"{{"type":"chat/say","payload":"{}"}}"#, "x".repeat(300));
    let deep = format!(
        r#"{{"type":"a","p":{}{}}}"#,
        "[".repeat(129),
        "]".repeat(129)
    );
    let deep_enough = format!(r#"{{"type":"a","p":{}{}}}"#, "[".repeat(60), "]".repeat(60));
    vec![
        (
            "linked_messages",
            frames(
                TO_LINKED,
                &[
                    br#"{"type":"chat/say","payload":1}"#,
                    br#"{ "payload" : [1, {"a":null}], "type" : "move", "extra": true }"#,
                    br#"{"type":"","payload":"\u00e9\ud83d\ude00"}"#,
                    br#"{"type":"krmx/leave"}"#,
                ],
            ),
        ),
        (
            "linked_invalid",
            frames(TO_LINKED, &[br#"{"type":"chat"}"#, b"[1,2]"]),
        ),
        (
            "linked_reserved",
            frames(
                TO_LINKED,
                &[br#"{"type":"krmx/whatever"}"#, br#"{"type":"chat"}"#],
            ),
        ),
        (
            "unlinked_link",
            frames(
                TO_UNLINKED,
                &[
                    br#"{"type":"chat/say"}"#,
                    b"{}",
                    br#"{"type":3}"#,
                    br#"{"type":"krmx/link","payload":{"username":"carol","version":"0.6.0"}}"#,
                    br#"{"type":"chat/say","payload":2}"#,
                    br#"{"type":"krmx/unlink"}"#,
                    br#"{"type":"krmx/link","payload":{"username":"alice","version":"0.6.1"}}"#,
                    br#"{"type":"krmx/link","payload":{"username":"carol","version":"0.60.1"}}"#,
                ],
            ),
        ),
        (
            "binary_frames",
            frames(
                BINARY | ROUND_ROBIN,
                &[
                    br#"{"type":"chat/say"}"#,
                    b"\xc3\x28",
                    br#"{"type":"a","payload":"\xe2\x82"}"#,
                    b"\xef\xbb\xbf{\"type\":\"bom\"}",
                ],
            ),
        ),
        (
            "text_not_utf8",
            frames(
                TO_LINKED,
                &[b"{\"type\":\"chat\",\"payload\":\"\xc0\xaf\"}"],
            ),
        ),
        (
            "pending_queue",
            frames(
                APPLICATION | TO_PENDING,
                &[
                    br#"{"type":"chat/say","payload":1}"#,
                    br#"{"type":"chat/say","payload":2}"#,
                    b"nope",
                    br#"{"type":"krmx/unlink"}"#,
                    br#"{"type":"chat/say","payload":3}"#,
                ],
            ),
        ),
        // Found by this target: texts whose fields cannot be built were accepted (a message
        // with no fields at all).
        (
            "unbuildable_fields",
            frames(
                TO_LINKED,
                &[
                    br#"{"type":"chat","payload":"\udc00"}"#,
                    br#"{"type":"chat","payload":{"\ud800":1}}"#,
                    br#"{"type":"chat","payload":-1e400}"#,
                    br#"{"type":"chat/say","payload":2}"#,
                ],
            ),
        ),
        (
            "deep_nesting",
            frames(TO_UNLINKED, &[deep.as_bytes(), deep_enough.as_bytes()]),
        ),
        (
            "round_robin_edges",
            frames(
                APPLICATION | ROUND_ROBIN,
                &[
                    br#"{"type":"chat","payload":1e999}"#,
                    br#"{"type":"chat","payload":"\ud800"}"#,
                    br#"{"type":"x","type":"krmx/leave"}"#,
                    br#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"#,
                    b"",
                    big.as_bytes(),
                ],
            ),
        ),
    ]
}
