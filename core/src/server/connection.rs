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

#[derive(Debug)]
pub(super) struct Connection {
    pub(super) link: LinkState,
    /// Pinged and not answered yet.
    pub(super) awaiting_pong: bool,
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
            awaiting_pong: false,
            queued: VecDeque::new(),
            unlinked_deadline: None,
            overdue: false,
        }
    }
}
