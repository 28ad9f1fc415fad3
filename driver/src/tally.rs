//! [`Tally`]: the running counts the driver keeps for [`Metrics`](crate::Metrics), plain
//! numbers bumped on the hot path (no atomics, no locks: the driver is owned by one pump), read
//! into a snapshot when asked.

use crate::backlog::Broken;
use crate::metrics::{CloseCount, Closer, SlowConsumers, TurnTimes};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Upper bounds of the turn-time buckets, in microseconds; a last bucket takes the rest.
const TURN_BOUNDS_MICROS: [u64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000,
];

/// The driver's running counts.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) streams_accepted: u64,
    pub(crate) upgrades_failed: u64,
    pub(crate) tls_handshakes_failed: u64,
    pub(crate) messages_received: u64,
    pub(crate) messages_received_bytes: u64,
    pub(crate) messages_sent: u64,
    pub(crate) messages_sent_bytes: u64,
    http_requests: BTreeMap<u16, u64>,
    closes: BTreeMap<(Closer, Option<u16>), u64>,
    slow_consumers: SlowConsumers,
    /// Turns per bucket of [`TURN_BOUNDS_MICROS`], and one more for the rest.
    turn_buckets: [u64; TURN_BOUNDS_MICROS.len() + 1],
    turn_total: Duration,
    turn_count: u64,
    /// When the current turn began (the first `now` since the last [`end_turn`](Self::end_turn)).
    turn_started: Option<Instant>,
}

impl Tally {
    /// A message of `bytes` payload bytes was read from a client.
    pub(crate) fn received(&mut self, bytes: usize) {
        self.messages_received += 1;
        self.messages_received_bytes += bytes as u64;
    }

    /// A message of `bytes` payload bytes was queued to a client.
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.messages_sent += 1;
        self.messages_sent_bytes += bytes as u64;
    }

    /// A plain HTTP request was answered with `status`.
    pub(crate) fn answered(&mut self, status: u16) {
        *self.http_requests.entry(status).or_default() += 1;
    }

    /// A WebSocket close began with `by`, with `code` (`None`: a client's close frame without
    /// a code). A client's code outside the protocol's range is counted as `None` in the
    /// snapshot's terms (any other code).
    pub(crate) fn closed(&mut self, by: Closer, code: Option<u16>) {
        let code = match (by, code) {
            (Closer::Client, None) => Some(1005),
            (Closer::Client, Some(code)) if !(1000..=1015).contains(&code) => None,
            (_, code) => code,
        };
        *self.closes.entry((by, code)).or_default() += 1;
    }

    /// A slow consumer was condemned for breaking `broken`.
    pub(crate) fn slow_consumer(&mut self, broken: Broken) {
        let count = match broken {
            Broken::Hard => &mut self.slow_consumers.hard,
            Broken::Soft => &mut self.slow_consumers.soft,
            Broken::Stall => &mut self.slow_consumers.stall,
            Broken::Budget => &mut self.slow_consumers.budget,
        };
        *count += 1;
    }

    /// The pump handed the driver `now`: the start of a turn unless one is going on.
    pub(crate) fn turn_at(&mut self, now: Instant) {
        self.turn_started.get_or_insert(now);
    }

    /// The turn going on (if any) ended at `now`.
    pub(crate) fn end_turn(&mut self, now: Instant) {
        let Some(started) = self.turn_started.take() else {
            return;
        };
        let took = now.saturating_duration_since(started);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = TURN_BOUNDS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(TURN_BOUNDS_MICROS.len());
        if let Some(count) = self.turn_buckets.get_mut(bucket) {
            *count += 1;
        }
        self.turn_total += took;
        self.turn_count += 1;
    }

    pub(crate) fn http_requests(&self) -> Vec<(u16, u64)> {
        self.http_requests
            .iter()
            .map(|(&status, &count)| (status, count))
            .collect()
    }

    pub(crate) fn closes(&self) -> Vec<CloseCount> {
        self.closes
            .iter()
            .map(|(&(by, code), &count)| CloseCount { by, code, count })
            .collect()
    }

    pub(crate) fn slow_consumers(&self) -> SlowConsumers {
        self.slow_consumers
    }

    pub(crate) fn turns(&self) -> TurnTimes {
        let bounds = TURN_BOUNDS_MICROS
            .iter()
            .map(|&micros| Duration::from_micros(micros).as_secs_f64())
            .chain(std::iter::once(f64::INFINITY));
        TurnTimes {
            buckets: bounds.zip(self.turn_buckets.iter().copied()).collect(),
            sum_seconds: self.turn_total.as_secs_f64(),
            count: self.turn_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_fall_in_their_bucket_and_a_turn_ends_once() {
        let mut tally = Tally::default();
        let start = Instant::now();
        tally.turn_at(start);
        tally.turn_at(start + Duration::from_micros(5)); // the same turn
        tally.end_turn(start + Duration::from_micros(30));
        tally.end_turn(start + Duration::from_secs(1)); // no turn going on
        tally.turn_at(start + Duration::from_secs(2));
        tally.end_turn(start + Duration::from_secs(5));
        let turns = tally.turns();
        assert_eq!(turns.count, 2);
        assert_eq!(turns.buckets.len(), 17);
        let counted: Vec<(f64, u64)> = turns
            .buckets
            .iter()
            .copied()
            .filter(|&(_, count)| count > 0)
            .collect();
        assert_eq!(counted, [(0.00005, 1), (f64::INFINITY, 1)]);
        assert!((turns.sum_seconds - 3.000_03).abs() < 1e-9);
    }

    #[test]
    fn client_close_codes_outside_the_protocol_range_share_one_label() {
        let mut tally = Tally::default();
        tally.closed(Closer::Client, None);
        tally.closed(Closer::Client, Some(1000));
        tally.closed(Closer::Client, Some(4321));
        tally.closed(Closer::Client, Some(3000));
        tally.closed(Closer::Server, Some(1008));
        let closes: Vec<_> = tally
            .closes()
            .into_iter()
            .map(|close| (close.by, close.code, close.count))
            .collect();
        assert_eq!(
            closes,
            [
                (Closer::Server, Some(1008), 1),
                (Closer::Client, None, 2),
                (Closer::Client, Some(1000), 1),
                (Closer::Client, Some(1005), 1),
            ]
        );
    }
}
