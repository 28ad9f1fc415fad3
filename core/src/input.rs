//! [`Input`]: everything that can happen to a server, one enum so that any run can be recorded,
//! replayed and fuzzed.

use crate::{AuthId, ConnectionId, Message};

/// Something that happened, fed to [`Krmx::handle_input`](crate::Krmx::handle_input) together
/// with the current time.
///
/// Network facts come from the transport; server commands (join, kick, send, ...) come from the
/// application; [`Input::Tick`] only tells the time.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Input {
    /// The transport is binding its listener: `initializing` becomes `starting`.
    Start,
    /// The transport listens on `port`: the status becomes `listening` and
    /// [`Event::Listening`](crate::Event::Listening) is emitted. Allowed while initializing or
    /// starting.
    Listen {
        /// The port bound.
        port: u16,
    },
    /// Close gracefully: every user leaves, every connection is closed, then
    /// [`Event::Closed`](crate::Event::Closed). Allowed while starting or listening.
    ///
    /// The status is `closing` until then. The users leave one at a time, in join order, each
    /// when [`Krmx::poll_output`](crate::Krmx::poll_output) finds the queue empty, so a
    /// transport that stops polling while its connections take what was sent bounds the
    /// memory of a close. While closing, frames, pings and pongs are ignored, and a
    /// connection that drops unlinks its user without a `krmx/unlinked` broadcast (its
    /// `krmx/left` follows); once no connection is linked, the users left leave at once.
    Close,
    /// A WebSocket connection finished its handshake.
    ConnectionOpened {
        /// Fresh id minted by the transport.
        conn: ConnectionId,
        /// The HTTP request target, such as `/game?room=1`, for the path and query checks.
        target: String,
    },
    /// One complete WebSocket message arrived.
    Frame {
        /// The connection it arrived on.
        conn: ConnectionId,
        /// Its content.
        frame: Frame,
    },
    /// The ping of [`Output::Ping`](crate::Output::Ping) left the transport's own buffer for
    /// the socket: the pong is awaited from now on, and a ping round that finds it unanswered
    /// a whole interval later terminates the connection. A transport that writes a ping at
    /// once reports this right after carrying out the output; until it is reported, the ping
    /// is not awaited (a connection whose backlog does not drain is closed as a slow consumer
    /// instead), so a transport that never reports it turns the liveness timeout off.
    PingSent {
        /// The connection pinged.
        conn: ConnectionId,
    },
    /// A pong arrived (the answer to [`Output::Ping`](crate::Output::Ping)).
    Pong {
        /// The connection it arrived on.
        conn: ConnectionId,
    },
    /// The transport saw the connection break a rule it enforces while framing.
    Violation {
        /// The connection at fault.
        conn: ConnectionId,
        /// What it did.
        violation: Violation,
    },
    /// The connection is gone (closed by the peer, reset, or closed after an
    /// [`Output::Close`](crate::Output::Close)). Reporting an unknown or already closed
    /// connection is harmless.
    ConnectionClosed {
        /// The connection.
        conn: ConnectionId,
    },
    /// The application's answer to [`Event::AuthRequested`](crate::Event::AuthRequested). An
    /// answer for an attempt that timed out, was decided already or whose connection closed is
    /// ignored.
    AuthDecided {
        /// The attempt.
        id: AuthId,
        /// The answer.
        decision: AuthDecision,
    },
    /// Only time passed; due timers fire. Ticking early or twice is harmless.
    Tick,
    /// Server command: join a user that is not linked (`join(name)`).
    Join {
        /// The user's name.
        username: String,
    },
    /// Server command: the user leaves, unlinked first if linked (`kick(name)`).
    Kick {
        /// The user's name.
        username: String,
    },
    /// Server command: unlink the user's connection; the user stays (`unlink(name)`).
    Unlink {
        /// The user's name.
        username: String,
    },
    /// Server command: send a message to one linked user (`send(name, message)`).
    Send {
        /// The recipient.
        username: String,
        /// The message.
        message: Message,
    },
    /// Server command: send a message to every linked user but `skip`
    /// (`broadcast(message, skip)`). The message is serialised once.
    Broadcast {
        /// The message.
        message: Message,
        /// A user not to send it to.
        skip: Option<String>,
    },
}

impl Input {
    /// Whether this reports something a peer did (it may have waited in a socket while the
    /// caller was busy), rather than a command, a decision or the passing of time.
    #[must_use]
    pub fn is_network_fact(&self) -> bool {
        matches!(
            self,
            Self::ConnectionOpened { .. }
                | Self::Frame { .. }
                | Self::PingSent { .. }
                | Self::Pong { .. }
                | Self::Violation { .. }
                | Self::ConnectionClosed { .. }
        )
    }
}

/// The content of one complete WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message (the transport has validated its UTF-8, else it reports
    /// [`Violation::InvalidUtf8`]).
    Text(String),
    /// A binary message: treated as text when its bytes are valid UTF-8, else invalid.
    Binary(Vec<u8>),
}

impl Frame {
    /// The size of the content in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether the content is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rule the transport enforces while framing, reported as a fact; the core decides the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A message (or its fragments together) exceeded the maximum message size: close 1009.
    MessageTooLarge,
    /// A text message was not valid UTF-8: close 1007.
    InvalidUtf8,
    /// The connection does not read and its buffered outbound bytes passed the bound: close 1008.
    SlowConsumer,
}

/// The application's answer to a pending authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthDecision {
    /// Link the connection (the protocol's checks are re-run first).
    Accept,
    /// Reject the link with this reason.
    Reject(String),
    /// The application failed without a reason: rejected with `authentication failed`.
    Failed,
}

impl AuthDecision {
    /// A rejection with a reason.
    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject(reason.into())
    }
}
