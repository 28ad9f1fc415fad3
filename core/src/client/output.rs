//! [`ClientOutput`] and [`ClientEvent`]: what the client asks its transport and application to do
//! or know.

use crate::{Message, Text};

/// One thing to carry out, pulled with
/// [`KrmxClient::poll_output`](crate::KrmxClient::poll_output) in the order produced.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientOutput {
    /// Open a WebSocket connection to `url`; report
    /// [`ClientInput::ConnectionOpened`](crate::ClientInput::ConnectionOpened) once open, or
    /// [`ClientInput::ConnectionClosed`](crate::ClientInput::ConnectionClosed) if it fails.
    Connect {
        /// The URL given to [`ClientInput::Connect`](crate::ClientInput::Connect).
        url: String,
    },
    /// Send a text message to the server.
    Send {
        /// The message text.
        text: Text,
    },
    /// Close the connection; report
    /// [`ClientInput::ConnectionClosed`](crate::ClientInput::ConnectionClosed) once closed.
    Close,
    /// Tell the application something happened.
    Event(ClientEvent),
}

/// What happened, for the application. Each variant is one of the JavaScript client's events,
/// named in its docs; [`name`](Self::name) gives that event's name.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `connecting`: a connect command was accepted; the transport is opening the connection.
    Connecting,
    /// `connect`: the connection is open.
    Connected,
    /// `closing`: a disconnect command was accepted; the transport is closing the connection.
    Closing,
    /// `close`: the connection closed; the user list is cleared.
    Closed,
    /// `linking`: a link command was accepted and `krmx/link` sent.
    Linking,
    /// `accept`: the server accepted the link. The `join` and `link` events of every user
    /// (itself included) follow in join order, with no marker after the last: the client's own
    /// `link` marks its place in that order (see
    /// [`KrmxClient::is_listed`](crate::KrmxClient::is_listed)).
    Accepted,
    /// `reject`: the server rejected the link, with its reason (for example `invalid username`).
    Rejected {
        /// The server's reason.
        reason: String,
    },
    /// `join`: a user joined (also for every user the server lists right after `accept`).
    Joined {
        /// The user.
        username: String,
    },
    /// `link`: a user's connection linked (also for every linked user right after `accept`).
    Linked {
        /// The user.
        username: String,
    },
    /// `unlinking`: an unlink or leave command was accepted and sent.
    Unlinking,
    /// `unlink`: a user's connection unlinked. When it is this client's own user, the client is
    /// `connected` again and its user list is empty.
    Unlinked {
        /// The user.
        username: String,
    },
    /// `leave`: another user left. A client is never told that its own user left (after a leave
    /// command or a kick): the last event about itself is its own `unlink`, as the JavaScript
    /// client documents. (Its 0.5.4 build does emit it, against its own docs.)
    Left {
        /// The user.
        username: String,
    },
    /// `message`: the server sent a custom message while the client was linked.
    Message {
        /// The whole message, every field kept.
        message: Message,
    },
}

impl ClientEvent {
    /// The JavaScript client's name for this event (`connect`, `accept`, `join`, ...).
    ///
    /// ```
    /// use krmx_core::ClientEvent;
    /// assert_eq!(ClientEvent::Accepted.name(), "accept");
    /// assert_eq!(ClientEvent::Left { username: "simon".into() }.name(), "leave");
    /// ```
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connect",
            Self::Closing => "closing",
            Self::Closed => "close",
            Self::Linking => "linking",
            Self::Accepted => "accept",
            Self::Rejected { .. } => "reject",
            Self::Joined { .. } => "join",
            Self::Linked { .. } => "link",
            Self::Unlinking => "unlinking",
            Self::Unlinked { .. } => "unlink",
            Self::Left { .. } => "leave",
            Self::Message { .. } => "message",
        }
    }
}
