//! [`Seats`]: the table as a Krmx [`Application`].

use crate::table::{Bug, Refusal, Table};
use krmx_core::{Application, Control, Event, Message, Username};
use serde_json::{Value, json};

/// The game as a Krmx application. Messages from players:
/// - `seats/sit` `{"seat": 0 | 1}`: take a free seat;
/// - `seats/move` `{"cell": 0..=8}`: mark a cell, on your turn, both seats taken;
/// - `seats/restart`: a seated player starts a new game once this one is over.
///
/// Every change is broadcast as `seats/state` (see [`Table::state`]); a user who links is sent
/// it at once; a refused request is answered `seats/refused` `{"reason": ...}` to its sender
/// only. A player keeps their seat while unlinked (a dropped connection, a reload) and loses it
/// when they leave.
#[derive(Debug, Clone, Default)]
pub struct Seats {
    table: Table,
}

impl Seats {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table with `bug` in its rules (for the property tests' demonstration).
    #[must_use]
    pub fn with_bug(bug: Bug) -> Self {
        Self {
            table: Table::with_bug(bug),
        }
    }

    /// The table.
    #[must_use]
    pub fn table(&self) -> &Table {
        &self.table
    }

    fn state(&self) -> Message {
        Message::new("seats/state").with_payload(self.table.state())
    }

    fn publish(&self, server: &mut dyn Control) {
        // Broadcast fails only when the server is closing; nothing is owed then.
        let _ = server.broadcast(self.state(), None);
    }

    fn request(&mut self, username: &Username, message: &Message) -> Result<(), Refusal> {
        let number = |field: &str| {
            message
                .payload()
                .and_then(|p| p.get(field))
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
        };
        let player = username.as_str();
        match message.kind() {
            "seats/sit" => self
                .table
                .sit(player, number("seat").ok_or(Refusal::NoSuchSeat)?),
            "seats/move" => self
                .table
                .play(player, number("cell").ok_or(Refusal::NoSuchCell)?),
            "seats/restart" => self.table.restart(player),
            _ => Ok(()),
        }
    }
}

impl Application for Seats {
    fn on_event(&mut self, server: &mut dyn Control, event: Event) {
        match event {
            Event::Linked { username, .. } => {
                let _ = server.send(username.as_str(), self.state());
            }
            Event::Unlinked { username, .. } => {
                if self.table.bug() == Some(Bug::FreeSeatOnUnlink)
                    && self.table.stand(username.as_str())
                {
                    self.publish(server);
                }
            }
            Event::Left { username } => {
                if self.table.stand(username.as_str()) {
                    self.publish(server);
                }
            }
            Event::Message { username, message } => match self.request(&username, &message) {
                Ok(()) => self.publish(server),
                Err(refusal) => {
                    let refused = Message::new("seats/refused")
                        .with_payload(json!({ "reason": refusal.as_str() }));
                    let _ = server.send(username.as_str(), refused);
                }
            },
            Event::Listening { .. }
            | Event::Closed
            | Event::AuthRequested { .. }
            | Event::Joined { .. } => {}
        }
    }
}
