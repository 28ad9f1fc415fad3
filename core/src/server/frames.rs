//! Handling one complete WebSocket message from a connection.

use super::Krmx;
use super::connection::LinkState;
use crate::wire::{self, LEAVE, LINK, UNLINK};
use crate::{CloseCode, ConnectionId, Event, Frame, Message, Rejection, Username, Violation};
use std::time::Instant;

impl Krmx {
    /// A frame arrived: enforce the size limit, keep it while a link is pending, else handle it.
    pub(super) fn receive_frame(&mut self, now: Instant, conn: ConnectionId, frame: Frame) {
        if frame.len() > self.config.max_message_bytes {
            self.violation(now, conn, Violation::MessageTooLarge);
            return;
        }
        let bound = self.config.max_queued_during_auth;
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if matches!(connection.link, LinkState::Pending(_)) || !connection.queued.is_empty() {
            if connection.queued.len() >= bound {
                tracing::debug!(%conn, "too many messages during a pending link");
                self.close_connection(
                    now,
                    conn,
                    CloseCode::POLICY,
                    "too many messages during authentication",
                );
            } else {
                connection.queued.push_back(frame);
            }
            return;
        }
        self.handle_frame(now, conn, frame);
    }

    /// Handles the frames kept during a pending link, in order, until the connection is pending
    /// again or gone.
    pub(super) fn drain_queued(&mut self, now: Instant, conn: ConnectionId) {
        loop {
            let Some(connection) = self.connections.get_mut(&conn) else {
                return;
            };
            if matches!(connection.link, LinkState::Pending(_)) {
                return;
            }
            let Some(frame) = connection.queued.pop_front() else {
                return;
            };
            self.handle_frame(now, conn, frame);
        }
    }

    fn handle_frame(&mut self, now: Instant, conn: ConnectionId, frame: Frame) {
        let message = match &frame {
            Frame::Text(text) => Message::parse(text).ok(),
            Frame::Binary(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| Message::parse(text).ok()),
        };
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        match (connection.link.clone(), message) {
            (LinkState::Linked(username), Some(message)) => {
                self.linked_message(now, &username, message);
            }
            (LinkState::Linked(username), None) => {
                tracing::warn!(%conn, %username, "invalid message, unlinking");
                self.unlink(now, &username);
            }
            (_, Some(message)) if message.kind() == LINK => self.request_link(now, conn, &message),
            (_, Some(_)) => self.reject(conn, Rejection::UnlinkedConnection, "unlinked connection"),
            (_, None) => {
                tracing::debug!(%conn, "invalid message from an unlinked connection");
                self.reject(conn, Rejection::InvalidMessage, "invalid message");
            }
        }
    }

    fn linked_message(&mut self, now: Instant, username: &Username, message: Message) {
        match message.kind() {
            LINK | UNLINK => self.unlink(now, username),
            LEAVE => self.leave(now, username),
            kind if message.is_reserved() => {
                tracing::warn!(
                    %username,
                    kind,
                    "unknown krmx/ message, unlinking: the krmx/ prefix is reserved for the protocol"
                );
                self.unlink(now, username);
            }
            _ => self.emit(Event::Message {
                username: username.clone(),
                message,
            }),
        }
    }

    /// Answers `krmx/rejected` with `reason`, counted as `kind`.
    pub(super) fn reject(&mut self, conn: ConnectionId, kind: Rejection, reason: &str) {
        tracing::debug!(%conn, reason, "rejected");
        self.counters.rejected(kind);
        self.send(conn, wire::rejected(reason));
    }
}
