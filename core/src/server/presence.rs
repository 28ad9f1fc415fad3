//! The presence primitives: join, link, unlink, leave. Each sends the protocol's messages in the
//! protocol's order and emits its event last.

use super::connection::LinkState;
use super::queued::Queued;
use super::{Audience, Krmx, User};
use crate::timers::Timer;
use crate::{ConnectionId, Event, Username, wire};
use std::time::Instant;

impl Krmx {
    /// A new, unlinked user: `krmx/joined` to every linked connection, then the `join` event.
    pub(super) fn join(&mut self, now: Instant, username: Username) {
        tracing::info!(%username, "joined");
        let joined_text = wire::presence("joined", username.as_str());
        self.broadcast_text(&joined_text, None);
        let inactive_since = self.config.inactivity_timeout.map(|timeout| now + timeout);
        if let Some(at) = inactive_since {
            self.timers.arm(at, Timer::Inactivity(username.clone()));
        }
        self.users.insert(
            username.clone(),
            User {
                conn: None,
                joined_text,
                linked_text: wire::presence("linked", username.as_str()),
                inactive_since,
            },
        );
        self.emit(Event::Joined { username });
    }

    /// Links `conn` to an existing, unlinked user: the new connection learns every user (joined,
    /// and linked where linked), every other linked connection learns the link, then `link`.
    pub(super) fn link(&mut self, conn: ConnectionId, username: &Username) {
        tracing::info!(%username, %conn, "linked");
        let Some(user) = self.users.get_mut(username) else {
            return;
        };
        if user.conn.replace(conn).is_none() {
            self.linked_connections += 1;
        }
        if let Some(at) = user.inactive_since.take() {
            self.timers.disarm(at, Timer::Inactivity(username.clone()));
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.link = LinkState::Linked(username.clone());
        }
        self.disarm_unlinked_timeout(conn);
        let outputs = &mut self.outputs;
        for user in self.users.values() {
            outputs.push_back(Queued::Send {
                to: conn,
                text: user.joined_text.clone(),
            });
            if user.conn.is_some() {
                outputs.push_back(Queued::Send {
                    to: conn,
                    text: user.linked_text.clone(),
                });
            }
        }
        if let Some(user) = self.users.get(username) {
            let linked_text = user.linked_text.clone();
            self.broadcast_text(&linked_text, Some(username.as_str()));
        }
        self.emit(Event::Linked {
            username: username.clone(),
            conn,
        });
    }

    /// Unlinks a linked user: `krmx/unlinked` to every linked connection (its own included), then
    /// the link is cleared and `unlink` emitted. Does nothing for an unlinked user.
    pub(super) fn unlink(&mut self, now: Instant, username: &Username) {
        self.unlink_to(now, username, Audience::Everyone);
    }

    /// Unlinks, telling `audience`.
    pub(super) fn unlink_to(&mut self, now: Instant, username: &Username, audience: Audience) {
        let Some(conn) = self.users.get(username).and_then(|user| user.conn) else {
            return;
        };
        tracing::info!(%username, %conn, "unlinked");
        let text = wire::presence("unlinked", username.as_str());
        match audience {
            Audience::Everyone => self.broadcast_text(&text, None),
            Audience::Others => self.broadcast_text(&text, Some(username.as_str())),
            Audience::Nobody => {}
        }
        let inactive_since = self.config.inactivity_timeout.map(|timeout| now + timeout);
        if let Some(user) = self.users.get_mut(username) {
            user.conn = None;
            user.inactive_since = inactive_since;
        }
        if let Some(at) = inactive_since {
            self.timers.arm(at, Timer::Inactivity(username.clone()));
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.link = LinkState::Unlinked;
        }
        self.linked_connections = self.linked_connections.saturating_sub(1);
        self.arm_unlinked_timeout(now, conn);
        self.emit(Event::Unlinked {
            username: username.clone(),
            conn,
        });
    }

    /// The user leaves: unlinked first if linked (its old connection then gets `krmx/left`),
    /// `krmx/left` to every linked connection, removed, then `leave`.
    pub(super) fn leave(&mut self, now: Instant, username: &Username) {
        let Some(user) = self.users.get(username) else {
            return;
        };
        let left_text = wire::presence("left", username.as_str());
        if let Some(conn) = user.conn {
            self.unlink(now, username);
            self.send(conn, left_text.clone());
        }
        tracing::info!(%username, "left");
        self.broadcast_text(&left_text, None);
        if let Some(user) = self.users.shift_remove(username) {
            if let Some(at) = user.inactive_since {
                self.timers.disarm(at, Timer::Inactivity(username.clone()));
            }
        }
        self.emit(Event::Left {
            username: username.clone(),
        });
    }
}
