//! The timer table: every deadline the server keeps, ordered so the earliest is found at once.

use crate::{AuthId, ConnectionId, Username};
use std::collections::BTreeSet;
use std::time::Instant;

/// What a deadline is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// A pending authentication times out.
    Auth(AuthId),
    /// An unlinked user is kicked for inactivity.
    Inactivity(Username),
    /// A connection that stayed unlinked too long is closed.
    Unlinked(ConnectionId),
}

/// Deadlines, earliest first; ties in a fixed order, so firing is deterministic.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    queue: BTreeSet<(Instant, Timer)>,
    /// The next liveness ping round, if pings are enabled and the server listens.
    pub(crate) ping_round: Option<Instant>,
}

impl Timers {
    pub(crate) fn arm(&mut self, at: Instant, timer: Timer) {
        self.queue.insert((at, timer));
    }

    pub(crate) fn disarm(&mut self, at: Instant, timer: Timer) {
        self.queue.remove(&(at, timer));
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (at, _) = self.queue.first()?;
        if *at > now {
            return None;
        }
        self.queue.pop_first().map(|(_, timer)| timer)
    }

    /// The earliest deadline of all.
    pub(crate) fn next(&self) -> Option<Instant> {
        let queued = self.queue.first().map(|(at, _)| *at);
        match (queued, self.ping_round) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.ping_round = None;
    }
}
