//! [`Output`] and [`Event`]: what the server asks its transport and application to do or know.

use crate::{AuthId, ConnectionId, Message, Text, Username};
use std::fmt;

/// One thing to carry out, pulled with [`Krmx::poll_output`](crate::Krmx::poll_output) in the
/// order the server produced them.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a text message to a connection.
    Send {
        /// The connection.
        to: ConnectionId,
        /// The message text, shared among all recipients of a broadcast.
        text: Text,
    },
    /// Send the same text message to each of several connections, in this order: a broadcast
    /// comes whole, as one output, so a transport carries it out without one output (and one
    /// reference count of the shared text) per recipient. Each recipient's send is ordered
    /// exactly as an [`Output::Send`] in its place would be.
    Broadcast {
        /// The connections, in the order their sends were produced (join order).
        to: Vec<ConnectionId>,
        /// The message text, shared by every recipient.
        text: Text,
    },
    /// Send a WebSocket ping, and report [`Input::PingSent`](crate::Input::PingSent) once it
    /// left the transport's buffer for the socket; the peer must answer within a ping interval
    /// from then.
    Ping {
        /// The connection.
        to: ConnectionId,
    },
    /// Close the connection with a close frame, after the sends queued before it. The core has
    /// forgotten the connection already: it addresses no further output to it.
    Close {
        /// The connection.
        to: ConnectionId,
        /// The WebSocket close code.
        code: CloseCode,
        /// The close reason.
        reason: &'static str,
    },
    /// Tell the application something happened.
    Event(Event),
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The server listens on this port.
    Listening {
        /// The port.
        port: u16,
    },
    /// The server closed: every user left and every connection was closed.
    Closed,
    /// A link waits for the application's decision ([`AuthMode::Application`](crate::AuthMode)):
    /// answer with [`Input::AuthDecided`](crate::Input::AuthDecided), now or later.
    AuthRequested {
        /// The id to answer with.
        id: AuthId,
        /// The connection asking.
        conn: ConnectionId,
        /// The user it wants to link to.
        username: Username,
        /// Whether that user does not exist yet.
        is_new_user: bool,
        /// The auth string the client sent, if any.
        auth: Option<String>,
    },
    /// A user joined.
    Joined {
        /// The user.
        username: Username,
    },
    /// A connection linked to a user.
    Linked {
        /// The user.
        username: Username,
        /// The connection.
        conn: ConnectionId,
    },
    /// A user's connection unlinked.
    Unlinked {
        /// The user.
        username: Username,
        /// The connection it was linked to (it may be closed by now).
        conn: ConnectionId,
    },
    /// A user left.
    Left {
        /// The user.
        username: Username,
    },
    /// A linked user sent a custom message.
    Message {
        /// The sender.
        username: Username,
        /// The whole message, every field kept.
        message: Message,
    },
}

/// A WebSocket close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1001: the server is going away, or the peer stopped answering pings.
    pub const GOING_AWAY: Self = Self(1001);
    /// 1007: a text message was not valid UTF-8.
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: the peer broke a server policy (query check, slow consumer, queue bound, unlinked
    /// timeout).
    pub const POLICY: Self = Self(1008);
    /// 1009: a message was larger than the server accepts.
    pub const TOO_BIG: Self = Self(1009);
    /// 1013: try again later (too many unlinked connections).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
