//! [`Metrics`]: a snapshot of a server's figures for monitoring, from
//! [`Driver::metrics`](crate::Driver::metrics) or [`Handle::metrics`](crate::Handle::metrics),
//! rendered as OpenMetrics text by [`Metrics::to_openmetrics`].

use krmx_core::{Rejections, Status};
use std::time::Duration;

/// The `Content-Type` of [`Metrics::to_openmetrics`]'s text, which the metrics endpoint answers
/// with.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Who began a WebSocket close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Closer {
    /// The server sent the first close frame (a kick of the connection, a violation, a slow
    /// consumer, a ping timeout, the server's close...).
    Server,
    /// The client sent the first close frame.
    Client,
}

impl Closer {
    /// `server` or `client`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }
}

/// How many WebSocket closes began with one side and one close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseCount {
    /// Who began the close.
    pub by: Closer,
    /// The close code: the server's own, or the client's when it is one of the protocol's
    /// (1000 to 1015; a close frame without a code counts as 1005). `None` for any other code
    /// a client sent, so that clients cannot grow the set of labels.
    pub code: Option<u16>,
    /// How many.
    pub count: u64,
}

/// Slow consumers closed, by the limit they broke (see the limits of
/// [`KrmxConfig`](krmx_core::KrmxConfig)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlowConsumers {
    /// Past the hard limit on bytes queued for one connection.
    pub hard: u64,
    /// Over the soft limit for a whole soft period without coming down.
    pub soft: u64,
    /// Bytes waited the write-stall timeout with none taken by the socket.
    pub stall: u64,
    /// Closed to bring the bytes queued across all connections back under the budget.
    pub budget: u64,
}

/// How long the pump's turns took: a histogram in seconds. A turn runs from the time the pump
/// read at its start (the `now` it hands the driver) to the time it read when it was done,
/// right before it waits again ([`Driver::end_turn`](crate::Driver::end_turn)): the time the
/// server was busy, the application's event handling included where it runs in the turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnTimes {
    /// Each bucket's upper bound in seconds (the last one infinite) with the turns in it alone
    /// (not cumulative).
    pub buckets: Vec<(f64, u64)>,
    /// The time of every turn added up, in seconds.
    pub sum_seconds: f64,
    /// How many turns.
    pub count: u64,
}

/// A server's figures at one moment: what it holds now (connections, users, pending
/// authentications, bytes queued) and running totals since it started. The health endpoint's
/// figures are part of it.
///
/// ```
/// use krmx_driver::{Driver, Readiness, Stream, TransportConfig};
/// use std::time::Instant;
/// # struct Socket;
/// # impl std::io::Read for Socket {
/// #     fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> { Ok(0) }
/// # }
/// # impl std::io::Write for Socket {
/// #     fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> { Ok(buf.len()) }
/// #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// # }
/// # impl Stream for Socket { fn shutdown_write(&mut self) {} }
///
/// let now = Instant::now();
/// let config = TransportConfig::default();
/// let driver: Driver<Socket> = Driver::new(now, 0, Default::default(), config, Readiness::Edge);
/// let metrics = driver.metrics();
/// assert_eq!(metrics.connections_open, 0);
/// let text = metrics.to_openmetrics()?;
/// assert!(text.contains("# TYPE krmx_connections_open gauge\n"));
/// assert!(text.ends_with("# EOF\n"));
/// # Ok::<(), std::fmt::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// The server status.
    pub status: Status,
    /// Rooms open now (0 with rooms off; see [`RoomsConfig`](crate::RoomsConfig)).
    pub rooms: u64,
    /// The protocol version served (`0.6`).
    pub protocol_version: String,
    /// Time since the driver was created, as of the current turn.
    pub uptime: Duration,
    /// Streams taken by the driver (accepted or adopted), before their request is read.
    pub streams_accepted: u64,
    /// Plain HTTP requests answered (not upgrades), by status code.
    pub http_requests: Vec<(u16, u64)>,
    /// Upgrades that failed (refused with `403` for their origin, a broken handshake) or did
    /// not complete within the handshake timeout.
    pub upgrades_failed: u64,
    /// TLS handshakes that failed (a client that does not speak TLS to a TLS port, refused the
    /// certificate, or sent garbage), timed out, or were attempted on a port without TLS.
    pub tls_handshakes_failed: u64,
    /// WebSocket connections taken in by the core (upgraded, and not refused for their path,
    /// query, the unlinked limit or the server's status).
    pub connections_accepted: u64,
    /// WebSocket connections open now (what the health endpoint calls `connections`).
    pub connections_open: u64,
    /// Users now, linked or not.
    pub users: u64,
    /// Users linked to a connection now.
    pub linked_users: u64,
    /// Authentications waiting for the application's decision now.
    pub pending_auths: u64,
    /// Krmx messages received from clients: every text or binary WebSocket message read.
    pub messages_received: u64,
    /// Payload bytes of those messages (no WebSocket framing).
    pub messages_received_bytes: u64,
    /// Krmx messages queued to clients: every text message, one per recipient (a broadcast to
    /// ten users counts ten), the protocol's own (`krmx/accepted`, `krmx/joined`, ...) included.
    pub messages_sent: u64,
    /// Payload bytes of those messages (no WebSocket framing).
    pub messages_sent_bytes: u64,
    /// Bytes queued for all connections now and not yet taken by their sockets.
    pub buffered_bytes: u64,
    /// Links accepted (`krmx/accepted` sent).
    pub links_accepted: u64,
    /// `krmx/rejected` sent, by kind: every rejected link, and the messages other than a link
    /// that an unlinked connection sent.
    pub rejections: Rejections,
    /// WebSocket closes, by who began them and the close code.
    pub closes: Vec<CloseCount>,
    /// Slow consumers closed, by the limit they broke.
    pub slow_consumers: SlowConsumers,
    /// How long the pump's turns took.
    pub turns: TurnTimes,
}

impl Metrics {
    /// Adds another event loop's figures (a worker of the same server): counts and gauges are
    /// summed, request and close counts merged by their labels, the turn histograms added; the
    /// status, protocol version and uptime are this one's.
    ///
    /// ```
    /// use krmx_driver::Metrics;
    /// # fn demo(mut first: Metrics, second: &Metrics) {
    /// let users = first.users + second.users;
    /// first.merge(second);
    /// assert_eq!(first.users, users);
    /// # }
    /// ```
    pub fn merge(&mut self, other: &Metrics) {
        self.rooms += other.rooms;
        self.streams_accepted += other.streams_accepted;
        for &(code, count) in &other.http_requests {
            match self
                .http_requests
                .iter_mut()
                .find(|(mine, _)| *mine == code)
            {
                Some((_, mine)) => *mine += count,
                None => self.http_requests.push((code, count)),
            }
        }
        self.http_requests.sort_unstable();
        self.upgrades_failed += other.upgrades_failed;
        self.tls_handshakes_failed += other.tls_handshakes_failed;
        self.connections_accepted += other.connections_accepted;
        self.connections_open += other.connections_open;
        self.users += other.users;
        self.linked_users += other.linked_users;
        self.pending_auths += other.pending_auths;
        self.messages_received += other.messages_received;
        self.messages_received_bytes += other.messages_received_bytes;
        self.messages_sent += other.messages_sent;
        self.messages_sent_bytes += other.messages_sent_bytes;
        self.buffered_bytes += other.buffered_bytes;
        self.links_accepted += other.links_accepted;
        self.rejections.merge(&other.rejections);
        for close in &other.closes {
            match self
                .closes
                .iter_mut()
                .find(|mine| (mine.by, mine.code) == (close.by, close.code))
            {
                Some(mine) => mine.count += close.count,
                None => self.closes.push(*close),
            }
        }
        self.closes.sort_by_key(|close| (close.by, close.code));
        let slow = &mut self.slow_consumers;
        slow.hard += other.slow_consumers.hard;
        slow.soft += other.slow_consumers.soft;
        slow.stall += other.slow_consumers.stall;
        slow.budget += other.slow_consumers.budget;
        for (mine, theirs) in self.turns.buckets.iter_mut().zip(&other.turns.buckets) {
            mine.1 += theirs.1;
        }
        self.turns.sum_seconds += other.turns.sum_seconds;
        self.turns.count += other.turns.count;
    }

    /// The figures in the OpenMetrics text format (served with
    /// [`OPENMETRICS_CONTENT_TYPE`]), encoded by the `prometheus-client` crate: for an
    /// application that serves its own HTTP. Every metric is named `krmx_*`; the README's
    /// Operations section lists them.
    ///
    /// # Errors
    /// Never in practice: the text is written to a `String`.
    pub fn to_openmetrics(&self) -> Result<String, std::fmt::Error> {
        crate::openmetrics::encode(self)
    }
}
