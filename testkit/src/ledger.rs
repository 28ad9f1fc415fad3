//! [`Ledger`]: which custom messages the server owes each connection, and which arrived.
//!
//! A custom message the server sends to a connection while it is linked is owed to the client
//! at the other end for that link (its *epoch*: the links accepted on the connection so far).
//! The client must pass owed messages on exactly once, in the order sent, with their exact
//! content; and once the network has settled, a client still linked on the same link must have
//! passed on every one of them. (A client that asked to unlink discards what arrives
//! afterwards, as the protocol says; that ends its epoch's claim to completeness.)

use krmx_core::{ConnectionId, Message};
use serde_json::Value;
use std::collections::BTreeMap;

/// The owed custom messages per connection and link, and how many were passed on.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Links accepted per connection, as the server sent them.
    sent_epochs: BTreeMap<ConnectionId, u64>,
    /// Links accepted per connection, as they arrived at the client.
    arrived_epochs: BTreeMap<ConnectionId, u64>,
    owed: BTreeMap<(ConnectionId, u64), Vec<Value>>,
    passed_on: BTreeMap<(ConnectionId, u64), usize>,
}

/// The `type` of a sent text, if it is a JSON object with one.
fn kind(text: &str) -> Option<(String, Value)> {
    let value: Value = serde_json::from_str(text).ok()?;
    let kind = value.get("type")?.as_str()?.to_owned();
    Some((kind, value))
}

impl Ledger {
    /// The server sent `text` to `to`.
    pub fn sent(&mut self, to: ConnectionId, text: &str) {
        let Some((kind, value)) = kind(text) else {
            return;
        };
        let epoch = self.sent_epochs.entry(to).or_default();
        if kind == "krmx/accepted" {
            *epoch += 1;
        } else if !kind.starts_with("krmx/") {
            let key = (to, *epoch);
            self.owed.entry(key).or_default().push(value);
        }
    }

    /// `text` arrived at the client end of `conn` (before the client handles it).
    pub fn arrived(&mut self, conn: ConnectionId, text: &str) {
        if kind(text).is_some_and(|(kind, _)| kind == "krmx/accepted") {
            *self.arrived_epochs.entry(conn).or_default() += 1;
        }
    }

    /// The client at the end of `conn` passed `message` on to its application.
    ///
    /// # Errors
    /// The message was not owed next on its link: never sent, duplicated, out of order, or
    /// changed on the way.
    pub fn passed_on(&mut self, conn: ConnectionId, message: &Message) -> Result<(), String> {
        let epoch = self.arrived_epochs.get(&conn).copied().unwrap_or(0);
        let key = (conn, epoch);
        let index = self.passed_on.get(&key).copied().unwrap_or(0);
        let expected = self.owed.get(&key).and_then(|owed| owed.get(index));
        let got = message.clone().into_value();
        match expected {
            Some(expected) if *expected == got => {
                self.passed_on.insert(key, index + 1);
                Ok(())
            }
            Some(expected) => Err(format!(
                "{conn} passed on {got} as message {index} of its link {epoch}, but the server \
                 sent {expected} there"
            )),
            None => Err(format!(
                "{conn} passed on {got}, which the server never sent it on its link {epoch} \
                 (or sent fewer messages)"
            )),
        }
    }

    /// The owed messages of `conn`'s current link that its client has not passed on.
    #[must_use]
    pub fn outstanding(&self, conn: ConnectionId) -> &[Value] {
        let epoch = self.arrived_epochs.get(&conn).copied().unwrap_or(0);
        let key = (conn, epoch);
        let index = self.passed_on.get(&key).copied().unwrap_or(0);
        self.owed
            .get(&key)
            .and_then(|owed| owed.get(index..))
            .unwrap_or_default()
    }
}
