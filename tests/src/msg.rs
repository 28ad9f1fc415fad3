//! Builders for the JSON messages the server sends, to compare with exactly.

use serde_json::{Value, json};

/// `krmx/accepted`.
#[must_use]
pub fn accepted() -> Value {
    json!({"type": "krmx/accepted"})
}

/// `krmx/rejected` with a reason.
#[must_use]
pub fn rejected(reason: &str) -> Value {
    json!({"type": "krmx/rejected", "payload": {"reason": reason}})
}

/// `krmx/joined`.
#[must_use]
pub fn joined(username: &str) -> Value {
    presence("joined", username)
}

/// `krmx/linked`.
#[must_use]
pub fn linked(username: &str) -> Value {
    presence("linked", username)
}

/// `krmx/unlinked`.
#[must_use]
pub fn unlinked(username: &str) -> Value {
    presence("unlinked", username)
}

/// `krmx/left`.
#[must_use]
pub fn left(username: &str) -> Value {
    presence("left", username)
}

/// A `krmx/link` request.
#[must_use]
pub fn link(username: &str, version: &str, auth: Option<&str>) -> Value {
    match auth {
        Some(auth) => {
            json!({"type": "krmx/link", "payload": {"username": username, "version": version, "auth": auth}})
        }
        None => json!({"type": "krmx/link", "payload": {"username": username, "version": version}}),
    }
}

/// A custom message with a payload.
#[must_use]
pub fn custom(kind: &str, payload: Value) -> Value {
    json!({"type": kind, "payload": payload})
}

fn presence(kind: &str, username: &str) -> Value {
    json!({"type": format!("krmx/{kind}"), "payload": {"username": username}})
}
