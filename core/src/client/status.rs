//! [`ClientStatus`]: the client lifecycle.

use std::fmt;

/// Where a [`KrmxClient`](crate::KrmxClient) is in its lifecycle; the names and transitions are
/// the JavaScript client's (`@krmx/client`).
///
/// | from | by | to |
/// |---|---|---|
/// | initializing, closed | [`Connect`](crate::ClientInput::Connect) | connecting |
/// | connecting | [`ConnectionOpened`](crate::ClientInput::ConnectionOpened) | connected |
/// | connected | [`Link`](crate::ClientInput::Link) | linking |
/// | linking | `krmx/accepted` / `krmx/rejected` | linked / connected |
/// | linked | [`Unlink`](crate::ClientInput::Unlink) | unlinking |
/// | linked | [`Leave`](crate::ClientInput::Leave) | connected (at once, as in the JavaScript client) |
/// | linked, unlinking | its own `krmx/unlinked` (asked for, or by the server) | connected |
/// | connected, linking, unlinking; with `force` any but initializing and closed | [`Disconnect`](crate::ClientInput::Disconnect) | closing |
/// | any with a connection | [`ConnectionClosed`](crate::ClientInput::ConnectionClosed) | closed |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientStatus {
    /// Created, not yet connecting.
    Initializing,
    /// Asked the transport to open the connection; not open yet.
    Connecting,
    /// The connection is open and not linked to a user: ready to link.
    Connected,
    /// Sent `krmx/link`; waiting for `krmx/accepted` or `krmx/rejected`.
    Linking,
    /// Linked to a user: custom messages go both ways.
    Linked,
    /// Sent `krmx/unlink`; waiting for its own `krmx/unlinked`.
    Unlinking,
    /// Asked the transport to close the connection; not closed yet.
    Closing,
    /// The connection is closed (or never opened); `connect` may be called again.
    Closed,
}

impl ClientStatus {
    /// The JavaScript client's name of the status, as used in its error texts.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "initializing",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Linking => "linking",
            Self::Linked => "linked",
            Self::Unlinking => "unlinking",
            Self::Closing => "closing",
            Self::Closed => "closed",
        }
    }

    /// Whether the transport has an open (or opening, or closing) connection for this client.
    pub(crate) fn has_connection(self) -> bool {
        !matches!(self, Self::Initializing | Self::Closed)
    }
}

impl fmt::Display for ClientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
