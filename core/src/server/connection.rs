//! What the server knows of one open connection.

use crate::{AuthId, Frame, Username};
use std::collections::VecDeque;

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
}

impl Connection {
    pub(super) fn new() -> Self {
        Self {
            link: LinkState::Unlinked,
            awaiting_pong: false,
            queued: VecDeque::new(),
        }
    }
}
