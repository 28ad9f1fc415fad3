//! The small vocabulary that steps pick from: names, versions, request targets and messages a
//! client may send (well-formed, malformed and hostile).

use serde_json::{Value, json};

/// Usernames: the first five pass the default rule, the rest do not.
pub const NAMES: [&str; 8] = [
    "alice", "bob", "carol", "dave.k", "Eve_2", "a", "1bob", "bob..x",
];

/// Client versions; the first four are accepted by the default served version (0.6).
pub const VERSIONS: [&str; 8] = [
    "0.6.0",
    "0.6",
    "0.6.12",
    "0.6.1-beta",
    "0.5.9",
    "0.60.1",
    "",
    "v0.6.0",
];

/// Request targets for new connections.
pub const TARGETS: [&str; 8] = [
    "/",
    "/game",
    "/game?room=1",
    "/game?room",
    "/other?room=1",
    "ws://host:8082/game?room=a+b",
    "/game?x=1&room=2#frag",
    "/game?debug&room=",
];

/// Rejection reasons an application gives.
pub const REASONS: [&str; 4] = ["no thanks", "say \"no\"", "", "unlinked connection"];

/// A name by choice byte.
#[must_use]
pub fn name(b: u8) -> &'static str {
    NAMES[usize::from(b) % NAMES.len()]
}

/// A reason by choice byte.
#[must_use]
pub fn reason(b: u8) -> &'static str {
    REASONS[usize::from(b) % REASONS.len()]
}

/// A request target by choice byte.
#[must_use]
pub fn target(b: u8) -> &'static str {
    TARGETS[usize::from(b) % TARGETS.len()]
}

/// How many message kinds [`message`] knows.
pub const MESSAGE_KINDS: u8 = 14;

/// The text of a message a client could send, picked by `kind`, varied by `arg`.
#[must_use]
pub fn message(kind: u8, arg: u8) -> String {
    let a = usize::from(arg);
    match kind % MESSAGE_KINDS {
        0 => {
            let mut payload = json!({
                "username": NAMES[a % NAMES.len()],
                "version": VERSIONS[(a / 8) % VERSIONS.len()],
            });
            match (a / 64) % 4 {
                0 => {}
                1 => payload["auth"] = json!("tok"),
                2 => payload["auth"] = json!("other"),
                _ => payload["auth"] = json!(5),
            }
            json!({"type": "krmx/link", "payload": payload}).to_string()
        }
        1 => r#"{"type":"krmx/unlink"}"#.to_owned(),
        2 => r#"{"type":"krmx/leave"}"#.to_owned(),
        3 => json!({"type": "chat/say", "payload": {"n": arg}}).to_string(),
        4 => json!({"payload": [arg, null], "type": "move", "seq": arg, "extra": {"k": "v"}})
            .to_string(),
        5 => {
            let kinds = ["krmx/whatever", "krmx/", "krmx/accepted", "krmx/joined"];
            json!({"type": kinds[a % kinds.len()], "payload": {"username": "alice"}}).to_string()
        }
        6 => [
            "not json",
            "{",
            "",
            "{\"type\":\"chat\"",
            "\u{0}",
            "{\"type\":\"a\"}}",
        ][a % 6]
            .to_owned(),
        7 => [
            "[]",
            "3",
            "\"krmx/leave\"",
            "null",
            "true",
            "[{\"type\":\"chat\"}]",
        ][a % 6]
            .to_owned(),
        8 => ["{}", "{\"type\":3}", "{\"type\":null}", "{\"payload\":1}"][a % 4].to_owned(),
        9 => {
            let payloads = [
                "null",
                "\"alice\"",
                "{\"version\":\"0.6.0\"}",
                "{\"username\":\"alice\"}",
                "{\"username\":\"alice\",\"version\":0.6}",
                "{\"username\":\"alice\",\"version\":\"0.6.0\",\"auth\":null}",
            ];
            format!(
                "{{\"type\":\"krmx/link\",\"payload\":{}}}",
                payloads[a % payloads.len()]
            )
        }
        10 => json!({"type": "chat/say", "payload": "x".repeat(a * 2)}).to_string(),
        11 => json!({"type": "", "payload": "\u{1f600}\u{0}\"\\"}).to_string(),
        12 => json!({"type": "KRMX/x", "type2": "krmx/leave"}).to_string(),
        _ => r#"{"type":"chat/say","type":"krmx/leave"}"#.to_owned(),
    }
}

/// A custom (never reserved) message the server application sends, picked by `arg`.
#[must_use]
pub fn app_message(arg: u8) -> krmx_core::Message {
    let value: Value = match arg % 3 {
        0 => json!({"type": "game/tick", "payload": arg}),
        1 => json!({"type": "chat/say", "payload": {"from": "server"}, "extra": true}),
        _ => json!({"type": "", "payload": null}),
    };
    krmx_core::Message::from_value(value).unwrap_or_else(|_| krmx_core::Message::new("x"))
}
