//! [`Backlog`]: the slow-consumer rule for one connection, judged by progress rather than by
//! one burst. Pure: the driver reports what its writes did, with the time of its turn, and
//! schedules the checks this asks for.
//!
//! Three limits, as [`KrmxConfig`] names them:
//! - the hard limit: a backlog past it after a write is closed at once;
//! - the soft limit: a backlog that stays over it for a whole period and is at its largest of
//!   the period at its end is not being caught up with (a backlog that came down from its peak
//!   starts a new period, so a client draining a burst is never closed by it);
//! - the write stall: bytes wait and not one was taken by the socket for the stall timeout.

use krmx_core::KrmxConfig;
use std::time::{Duration, Instant};

/// The limits of [`KrmxConfig`] the rule applies, copied once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) hard: usize,
    pub(crate) soft: usize,
    pub(crate) soft_period: Duration,
    pub(crate) stall: Duration,
}

impl Limits {
    pub(crate) fn of(config: &KrmxConfig) -> Self {
        Self {
            hard: config.max_buffered_bytes_value(),
            soft: config.soft_buffered_bytes_value(),
            soft_period: config.soft_buffered_period_value(),
            stall: config.write_stall_timeout_value(),
        }
    }
}

/// Which limit a slow consumer broke (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    Hard,
    Soft,
    Stall,
    /// The total across all connections passed its budget and this one held the most.
    Budget,
}

/// What the driver does next for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing waits: no check is needed.
    Clear,
    /// Bytes wait: check again at this time (see [`Backlog::check`]).
    CheckAt(Instant),
    /// A slow consumer: close it.
    Slow(Broken),
}

/// The progress of one connection's backlog.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Backlog {
    /// Since when bytes wait with none taken by the socket; `None` while nothing waits.
    stalled_since: Option<Instant>,
    /// The current soft period: when it started and the backlog's largest size in it; `None`
    /// while the backlog is at or under the soft limit.
    over_soft: Option<(Instant, usize)>,
}

impl Backlog {
    /// Since when bytes wait with none taken by the socket; `None` while nothing waits.
    pub(crate) fn stalled_since(&self) -> Option<Instant> {
        self.stalled_since
    }

    /// Whether the socket took bytes of this backlog within `window` before `now` (or nothing
    /// waits): a connection draining its backlog, however slowly.
    pub(crate) fn draining(&self, now: Instant, window: Duration) -> bool {
        self.stalled_since
            .is_none_or(|since| now.saturating_duration_since(since) < window)
    }

    /// After a write at `now`: `buffered` bytes are left, and `progressed` tells whether the
    /// socket took any.
    pub(crate) fn written(
        &mut self,
        now: Instant,
        buffered: usize,
        progressed: bool,
        limits: &Limits,
    ) -> Verdict {
        if buffered == 0 {
            *self = Self::default();
            return Verdict::Clear;
        }
        if buffered > limits.hard {
            return Verdict::Slow(Broken::Hard);
        }
        if progressed || self.stalled_since.is_none() {
            self.stalled_since = Some(now);
        }
        self.over_soft = if buffered <= limits.soft {
            None
        } else {
            match self.over_soft {
                Some((since, peak)) => Some((since, peak.max(buffered))),
                None => Some((now, buffered)),
            }
        };
        self.check(now, buffered, limits)
    }

    /// At `now`, with `buffered` bytes waiting: whether a limit is broken, else when to look
    /// again.
    pub(crate) fn check(&mut self, now: Instant, buffered: usize, limits: &Limits) -> Verdict {
        let Some(stalled_since) = self.stalled_since.filter(|_| buffered > 0) else {
            *self = Self::default();
            return Verdict::Clear;
        };
        let stall_at = stalled_since + limits.stall;
        if stall_at <= now {
            return Verdict::Slow(Broken::Stall);
        }
        let soft_at = match self.over_soft {
            Some((since, peak)) if since + limits.soft_period <= now => {
                if buffered >= peak {
                    return Verdict::Slow(Broken::Soft);
                }
                // It came down: a client catching up gets a new period.
                self.over_soft = Some((now, buffered));
                Some(now + limits.soft_period)
            }
            Some((since, _)) => Some(since + limits.soft_period),
            None => None,
        };
        Verdict::CheckAt(soft_at.map_or(stall_at, |soft_at| soft_at.min(stall_at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limits() -> Limits {
        Limits {
            hard: 1000,
            soft: 100,
            soft_period: 10 * MS,
            stall: 30 * MS,
        }
    }

    #[test]
    fn an_empty_backlog_needs_no_check_and_forgets_its_history() {
        let t = Instant::now();
        let mut backlog = Backlog::default();
        assert_eq!(
            backlog.written(t, 50, false, &limits()),
            Verdict::CheckAt(t + 30 * MS)
        );
        assert_eq!(backlog.written(t + MS, 0, true, &limits()), Verdict::Clear);
        assert_eq!(
            backlog.written(t + 2 * MS, 50, false, &limits()),
            Verdict::CheckAt(t + 32 * MS)
        );
    }

    #[test]
    fn past_the_hard_limit_is_slow_at_once() {
        let t = Instant::now();
        let mut backlog = Backlog::default();
        assert_eq!(
            backlog.written(t, 1001, true, &limits()),
            Verdict::Slow(Broken::Hard)
        );
        assert_eq!(
            Backlog::default().written(t, 1000, true, &limits()),
            Verdict::CheckAt(t + 10 * MS)
        );
    }

    #[test]
    fn a_stall_is_slow_after_the_timeout_and_progress_restarts_it() {
        let t = Instant::now();
        let mut backlog = Backlog::default();
        backlog.written(t, 50, false, &limits());
        // No progress: the clock keeps its start.
        assert_eq!(
            backlog.written(t + 20 * MS, 50, false, &limits()),
            Verdict::CheckAt(t + 30 * MS)
        );
        // Progress: a new start.
        assert_eq!(
            backlog.written(t + 25 * MS, 40, true, &limits()),
            Verdict::CheckAt(t + 55 * MS)
        );
        assert_eq!(
            backlog.check(t + 54 * MS, 40, &limits()),
            Verdict::CheckAt(t + 55 * MS)
        );
        assert_eq!(
            backlog.check(t + 55 * MS, 40, &limits()),
            Verdict::Slow(Broken::Stall)
        );
    }

    #[test]
    fn a_backlog_that_comes_down_is_never_slow_by_the_soft_limit() {
        let t = Instant::now();
        let mut backlog = Backlog::default();
        let mut buffered = 900;
        backlog.written(t, buffered, true, &limits());
        // Drains 5 bytes a millisecond while staying far over the soft limit, for 150 ms.
        for ms in 1..150 {
            buffered -= 5;
            let verdict = backlog.written(t + ms * MS, buffered, true, &limits());
            assert!(matches!(verdict, Verdict::CheckAt(_)), "{ms}: {verdict:?}");
        }
    }

    #[test]
    fn a_backlog_over_the_soft_limit_that_does_not_come_down_is_slow_after_the_period() {
        let t = Instant::now();
        let mut backlog = Backlog::default();
        assert_eq!(
            backlog.written(t, 200, true, &limits()),
            Verdict::CheckAt(t + 10 * MS)
        );
        // Reads, but the server produces faster: it grows.
        assert_eq!(
            backlog.written(t + 5 * MS, 300, true, &limits()),
            Verdict::CheckAt(t + 10 * MS)
        );
        assert_eq!(
            backlog.check(t + 10 * MS, 300, &limits()),
            Verdict::Slow(Broken::Soft)
        );
    }

    #[test]
    fn dipping_under_the_soft_limit_ends_the_period() {
        let t = Instant::now();
        let mut backlog = Backlog::default();
        backlog.written(t, 200, true, &limits());
        backlog.written(t + 5 * MS, 50, true, &limits());
        assert_eq!(
            backlog.written(t + 8 * MS, 300, true, &limits()),
            Verdict::CheckAt(t + 18 * MS)
        );
        assert_eq!(
            backlog.check(t + 10 * MS, 300, &limits()),
            Verdict::CheckAt(t + 18 * MS)
        );
    }

    #[test]
    fn a_shrunk_backlog_gets_a_new_period_from_its_new_size() {
        let t = Instant::now();
        let mut backlog = Backlog::default();
        backlog.written(t, 500, true, &limits());
        assert_eq!(
            backlog.check(t + 10 * MS, 400, &limits()),
            Verdict::CheckAt(t + 20 * MS)
        );
        assert_eq!(
            backlog.check(t + 20 * MS, 400, &limits()),
            Verdict::Slow(Broken::Soft)
        );
    }
}
