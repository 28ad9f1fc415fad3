//! [`Status`]: the server lifecycle.

use std::fmt;

/// The server lifecycle: `initializing -> starting -> listening -> closing -> closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Created, not yet listening.
    Initializing,
    /// Binding its listener.
    Starting,
    /// Accepting connections.
    Listening,
    /// Closing: users are leaving.
    Closing,
    /// Closed for good.
    Closed,
}

impl Status {
    /// The reference's name of the status.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "initializing",
            Self::Starting => "starting",
            Self::Listening => "listening",
            Self::Closing => "closing",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
