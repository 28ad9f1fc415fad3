//! Identifiers: connections (minted by the transport) and pending authentications (minted by
//! the core).

use std::fmt;

/// Identifies one WebSocket connection.
///
/// The transport mints these from a counter and never reuses one, so an output produced for a
/// connection that has gone away can never reach a newer socket that happens to get the same
/// mio token or slab slot.
///
/// ```
/// use krmx_core::ConnectionId;
/// let id = ConnectionId::new(7);
/// assert_eq!(id.get(), 7);
/// assert_eq!(id.to_string(), "cn-7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// Wraps a transport-chosen number.
    #[must_use]
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The number this id wraps.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cn-{}", self.0)
    }
}

/// Identifies one pending authentication, to be answered with
/// [`Input::AuthDecided`](crate::Input::AuthDecided).
///
/// Minted by the core only; its `Display` is the bare number (the form the CLI prints and reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthId(u64);

impl AuthId {
    pub(crate) const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The number of this id, as printed by `Display`.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Reconstructs an id from the number a front end printed earlier (for example the CLI's
    /// `accept ID` command). An id that the core never minted is simply unknown: deciding it
    /// is accepted and ignored.
    #[must_use]
    pub const fn from_number(id: u64) -> Self {
        Self(id)
    }
}

impl fmt::Display for AuthId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
