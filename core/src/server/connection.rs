//! What the server knows of one open connection.

use crate::{AuthId, Frame, Username};
use std::collections::VecDeque;
use std::time::Instant;

/// Where a connection stands with respect to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LinkState {
    /// Not linked; may send `krmx/link`.
    Unlinked,
    /// A link waits for the application's decision.
    Pending(AuthId),
    /// Linked to this user.
    Linked(Username),
}

/// Where a connection stands in the liveness pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PingState {
    /// Nothing awaited: the next round pings it.
    Idle,
    /// Pinged, but the ping still waits in the transport's buffer behind what was queued
    /// before it: not awaited yet (a backlog that does not drain is the slow-consumer rule's
    /// job).
    Queued,
    /// The ping left the transport's buffer for the socket at this time and is awaited.
    Sent(Instant),
}

#[derive(Debug)]
pub(super) struct Connection {
    pub(super) link: LinkState,
    /// The liveness ping, if one is out.
    pub(super) ping: PingState,
    /// Frames that arrived while a link was pending, handled in order after the decision.
    pub(super) queued: VecDeque<Frame>,
    /// When this unlinked connection is closed by the unlinked timeout, if that option is on.
    pub(super) unlinked_deadline: Option<Instant>,
    /// The unlinked timeout passed while a link was pending: a rejection closes it.
    pub(super) overdue: bool,
}

impl Connection {
    pub(super) fn new() -> Self {
        Self {
            link: LinkState::Unlinked,
            ping: PingState::Idle,
            queued: VecDeque::new(),
            unlinked_deadline: None,
            overdue: false,
        }
    }
}
