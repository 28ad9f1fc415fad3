//! [`ClientInput`]: everything that can happen to a client, one enum so that any run can be
//! recorded, replayed and fuzzed.

use crate::Message;

/// Something that happened, fed to [`KrmxClient::handle_input`](crate::KrmxClient::handle_input).
///
/// Transport facts (the connection opened, a message arrived, the connection closed) come from
/// the socket; commands (connect, link, unlink, leave, send, disconnect) come from the
/// application, and are refused with a [`ClientError`](crate::ClientError) in a status that does
/// not allow them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientInput {
    /// Command (`connect(url)`): open a connection to the server at `url`. Allowed while
    /// initializing or closed; queues [`ClientOutput::Connect`](crate::ClientOutput::Connect).
    Connect {
        /// The `ws://` or `wss://` URL, handed to the transport as is.
        url: String,
    },
    /// Command (`link(username, auth)`): link the connection to a user. Allowed while connected.
    Link {
        /// The user to link to. Not checked here: the server applies its username rule.
        username: String,
        /// An optional auth string for the server's authentication.
        auth: Option<String>,
    },
    /// Command (`unlink()`): unlink from the user; the connection stays open. Allowed while
    /// linked.
    Unlink,
    /// Command (`leave()`): the user leaves the server; the connection stays open and the client
    /// is `connected` at once. Allowed while linked.
    Leave,
    /// Command (`send(message)`): send a custom message to the server. Allowed while linked; a
    /// type in the reserved `krmx/` namespace is refused.
    Send {
        /// The message.
        message: Message,
    },
    /// Command (`disconnect(force)`): close the connection. Allowed while connected, linking or
    /// unlinking; with `force` also while connecting, linked or closing.
    Disconnect {
        /// Close even while linked (or connecting, or closing).
        force: bool,
    },
    /// Transport fact: the connection asked for by
    /// [`ClientOutput::Connect`](crate::ClientOutput::Connect) is open.
    ConnectionOpened,
    /// Transport fact: one complete text message arrived from the server.
    Received {
        /// The raw text.
        text: String,
    },
    /// Transport fact: the connection is closed (by either side, or it failed to open).
    /// Reporting it when the client has no connection is harmless.
    ConnectionClosed,
}
