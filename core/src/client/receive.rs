//! What the client does with a text from the server.

use super::{ClientError, ClientEvent, ClientStatus, ClientUser, KrmxClient};
use crate::Message;
use serde_json::Value;

/// The server's answer to a message other than `krmx/link` on an unlinked connection.
const UNLINKED_CONNECTION: &str = "unlinked connection";

impl KrmxClient {
    pub(super) fn received(&mut self, text: &str) -> Result<(), ClientError> {
        match self.status {
            ClientStatus::Connected
            | ClientStatus::Linking
            | ClientStatus::Linked
            | ClientStatus::Unlinking => {}
            // Closing: the connection is going away; nothing that arrives may change the state.
            ClientStatus::Closing => return Ok(()),
            status => {
                return Err(ClientError::UnexpectedTransport {
                    fact: "a received message",
                    status,
                });
            }
        }
        let Ok(message) = Message::parse(text) else {
            tracing::warn!("dropped an invalid message from the server");
            return Ok(());
        };
        if message.is_reserved() {
            self.internal(&message);
        } else if self.status == ClientStatus::Linked {
            self.emit(ClientEvent::Message { message });
        } else {
            tracing::warn!(
                kind = message.kind(),
                status = %self.status,
                "unexpectedly received a custom message"
            );
        }
        Ok(())
    }

    fn internal(&mut self, message: &Message) {
        let field = |name: &str| match message.payload() {
            Some(Value::Object(payload)) => match payload.get(name) {
                Some(Value::String(value)) => Some(value.clone()),
                _ => None,
            },
            _ => None,
        };
        match message.kind() {
            "krmx/accepted" => self.accepted(),
            // A rejection without a reason still ends the link attempt.
            "krmx/rejected" => self.rejected(field("reason").unwrap_or_default()),
            kind => match (kind, field("username")) {
                ("krmx/joined", Some(username)) => self.joined(username),
                ("krmx/linked", Some(username)) => self.user_linked(username),
                ("krmx/unlinked", Some(username)) => self.user_unlinked(username),
                ("krmx/left", Some(username)) => self.user_left(username),
                _ => tracing::warn!(kind, "dropped an unexpected krmx message"),
            },
        }
    }

    fn accepted(&mut self) {
        let (ClientStatus::Linking, Some(username)) = (self.status, self.username.clone()) else {
            tracing::warn!(status = %self.status, "dropped krmx/accepted with no link pending");
            return;
        };
        self.status = ClientStatus::Linked;
        self.listed = false;
        self.possible_strays = 0;
        self.unlinked_self = None;
        self.users.clear();
        self.users.insert(
            username.clone(),
            ClientUser {
                username,
                is_linked: true,
            },
        );
        self.emit(ClientEvent::Accepted);
    }

    fn rejected(&mut self, reason: String) {
        if reason == UNLINKED_CONNECTION && self.possible_strays > 0 {
            // The answer to a message sent while the server had unlinked this client already.
            self.possible_strays -= 1;
            tracing::debug!("dropped the rejection of a message sent after a server-side unlink");
            return;
        }
        if self.status != ClientStatus::Linking {
            tracing::warn!(%reason, status = %self.status, "dropped krmx/rejected with no link pending");
            return;
        }
        self.status = ClientStatus::Connected;
        self.username = None;
        self.possible_strays = 0;
        self.emit(ClientEvent::Rejected { reason });
    }

    fn joined(&mut self, username: String) {
        let is_linked = self.username.as_deref() == Some(username.as_str());
        // Re-listed users move to the end, so that after the list the server sends on accept
        // (every user in join order) the order is the server's join order.
        self.users.shift_remove(&username);
        self.users.insert(
            username.clone(),
            ClientUser {
                username: username.clone(),
                is_linked,
            },
        );
        self.emit(ClientEvent::Joined { username });
    }

    fn user_linked(&mut self, username: String) {
        match self.users.get_mut(&username) {
            Some(user) => user.is_linked = true,
            None => tracing::warn!(%username, "krmx/linked for a user that did not join"),
        }
        if self.status == ClientStatus::Linked && self.username.as_deref() == Some(&username) {
            // The server's list reached this client's own place in join order.
            self.listed = true;
        }
        self.emit(ClientEvent::Linked { username });
    }

    fn user_unlinked(&mut self, username: String) {
        if let Some(user) = self.users.get_mut(&username) {
            user.is_linked = false;
        }
        if self.leaving.as_deref() == Some(username.as_str()) {
            // The own unlink of a leave. A link given since then keeps its status and name.
            self.leaving = None;
            self.unlinked_self = Some(username.clone());
            self.users.clear();
            if self.status == ClientStatus::Connected {
                self.username = None;
            }
        } else if self.username.as_deref() == Some(username.as_str())
            && matches!(self.status, ClientStatus::Linked | ClientStatus::Unlinking)
        {
            self.status = ClientStatus::Connected;
            self.username = None;
            self.unlinked_self = Some(username.clone());
            self.users.clear();
        }
        self.emit(ClientEvent::Unlinked { username });
    }

    fn user_left(&mut self, username: String) {
        if self.unlinked_self.as_deref() == Some(username.as_str()) {
            self.unlinked_self = None;
            tracing::debug!(%username, "own krmx/left after its unlink: not reported");
            return;
        }
        self.users.shift_remove(&username);
        self.emit(ClientEvent::Left { username });
    }
}
