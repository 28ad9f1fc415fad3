//! [`KrmxConfig`]: everything that shapes a server, mirroring the reference's props plus the
//! limits this implementation adds.

use crate::request::{RequestRejection, RequestRules, normalise_path};
use crate::{ProtocolVersion, QueryRequirement, UsernameRule};
use std::time::Duration;

/// Default authentication timeout: 10 s.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default ping interval: 15 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(15);
/// Default largest message a client may send: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Default hard limit on what a transport buffers for one connection: 64 MiB. Past it the
/// connection is closed at once as a slow consumer, however fast it reads.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 << 20;
/// Default soft limit on what a transport buffers for one connection: 8 MiB (see
/// [`KrmxConfig::soft_buffered_bytes`]).
pub const DEFAULT_SOFT_BUFFERED_BYTES: usize = 8 << 20;
/// Default time a backlog may stay over the soft limit without coming down: 60 s.
pub const DEFAULT_SOFT_BUFFERED_PERIOD: Duration = Duration::from_secs(60);
/// Default time bytes may wait with not one of them taken by the socket: 30 s.
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default budget for bytes buffered across all connections: 1 GiB.
pub const DEFAULT_BUFFERED_BUDGET: usize = 1 << 30;
/// Default bound on messages kept for a connection while its link decision is pending.
pub const DEFAULT_MAX_QUEUED_DURING_AUTH: usize = 64;
/// Default bound on authentications pending at once, server-wide.
pub const DEFAULT_MAX_PENDING_AUTHS: usize = 4096;
/// The close reason of a connection that stayed unlinked past the unlinked timeout (code 1008).
pub const UNLINKED_TIMEOUT_REASON: &str = "unlinked timeout";
/// The close reason of a connection refused because too many connections are unlinked
/// (code 1013, try again later).
pub const TOO_MANY_UNLINKED_REASON: &str = "too many unlinked connections";

/// How link requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthMode {
    /// Links proceed at once after the protocol's own checks; no authenticate event.
    #[default]
    None,
    /// Each link emits [`Event::AuthRequested`](crate::Event::AuthRequested) and waits for an
    /// [`Input::AuthDecided`](crate::Input::AuthDecided), at most the auth timeout.
    Application,
}

/// The configuration of a [`Krmx`](crate::Krmx) server, built builder-style.
///
/// ```
/// use krmx_core::{KrmxConfig, AuthMode, QueryRequirement};
/// use std::time::Duration;
///
/// let config = KrmxConfig::default()
///     .auth(AuthMode::Application)
///     .auth_timeout(Duration::from_secs(2))
///     .path("game")
///     .query("room", QueryRequirement::Present)
///     .inactivity_timeout(Some(Duration::from_secs(60)));
/// assert_eq!(config.path_rule(), Some("/game"));
/// ```
#[derive(Debug, Clone)]
pub struct KrmxConfig {
    pub(crate) accept_new_users: bool,
    pub(crate) auth_mode: AuthMode,
    pub(crate) auth_timeout: Duration,
    pub(crate) username_rule: UsernameRule,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) version: ProtocolVersion,
    pub(crate) request: RequestRules,
    pub(crate) max_message_bytes: usize,
    pub(crate) max_buffered_bytes: usize,
    pub(crate) soft_buffered_bytes: usize,
    pub(crate) soft_buffered_period: Duration,
    pub(crate) write_stall_timeout: Duration,
    pub(crate) buffered_budget: usize,
    pub(crate) max_queued_during_auth: usize,
    pub(crate) max_pending_auths: usize,
    pub(crate) inactivity_timeout: Option<Duration>,
    pub(crate) unlinked_timeout: Option<Duration>,
    pub(crate) max_unlinked_connections: Option<usize>,
}

impl Default for KrmxConfig {
    fn default() -> Self {
        Self {
            accept_new_users: true,
            auth_mode: AuthMode::None,
            auth_timeout: DEFAULT_AUTH_TIMEOUT,
            username_rule: UsernameRule::Default,
            ping_interval: Some(DEFAULT_PING_INTERVAL),
            version: ProtocolVersion::DEFAULT,
            request: RequestRules::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            soft_buffered_bytes: DEFAULT_SOFT_BUFFERED_BYTES,
            soft_buffered_period: DEFAULT_SOFT_BUFFERED_PERIOD,
            write_stall_timeout: DEFAULT_WRITE_STALL_TIMEOUT,
            buffered_budget: DEFAULT_BUFFERED_BUDGET,
            max_queued_during_auth: DEFAULT_MAX_QUEUED_DURING_AUTH,
            max_pending_auths: DEFAULT_MAX_PENDING_AUTHS,
            inactivity_timeout: None,
            unlinked_timeout: None,
            max_unlinked_connections: None,
        }
    }
}

impl KrmxConfig {
    /// Whether links may create new users (default true). When false, only users joined through
    /// [`Input::Join`](crate::Input::Join) can be linked.
    #[must_use]
    pub fn accept_new_users(mut self, accept: bool) -> Self {
        self.accept_new_users = accept;
        self
    }

    /// Whether the application authenticates links (default [`AuthMode::None`]).
    #[must_use]
    pub fn auth(mut self, mode: AuthMode) -> Self {
        self.auth_mode = mode;
        self
    }

    /// How long a pending authentication may take (default 10 s); below 1 ms means 1 ms.
    #[must_use]
    pub fn auth_timeout(mut self, timeout: Duration) -> Self {
        self.auth_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The username rule (default: the reference rule).
    #[must_use]
    pub fn username_rule(mut self, rule: UsernameRule) -> Self {
        self.username_rule = rule;
        self
    }

    /// The liveness ping interval (default 15 s): zero disables pings, and anything from 1 to
    /// 99 ms means 100 ms.
    #[must_use]
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = if interval.is_zero() {
            None
        } else {
            Some(interval.max(Duration::from_millis(100)))
        };
        self
    }

    /// The served protocol version (default 0.6).
    #[must_use]
    pub fn version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    /// The endpoint's HTTP path; a missing leading `/` is added. Without one, any path is
    /// accepted (as in the reference).
    #[must_use]
    pub fn path(mut self, path: &str) -> Self {
        self.request.path = Some(normalise_path(path));
        self
    }

    /// Adds a query-parameter requirement (repeatable; all must hold).
    #[must_use]
    pub fn query(mut self, name: impl Into<String>, requirement: QueryRequirement) -> Self {
        self.request.query.push((name.into(), requirement));
        self
    }

    /// The largest message a client may send, in bytes (default 1 MiB); a larger one closes its
    /// connection with code 1009.
    #[must_use]
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The hard limit on bytes a transport buffers for one connection (default 64 MiB): a
    /// connection whose backlog passes it, after the socket took what it would, is closed at
    /// once as a slow consumer (1008 `slow consumer`), however steadily it reads.
    ///
    /// Below it a connection is judged by progress: see
    /// [`soft_buffered_bytes`](Self::soft_buffered_bytes) and
    /// [`write_stall_timeout`](Self::write_stall_timeout). A connection that keeps draining
    /// its backlog is never closed below this limit.
    #[must_use]
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.max_buffered_bytes = bytes;
        self
    }

    /// The soft limit on one connection's backlog (default 8 MiB) and how long it may stay over
    /// it without coming down (default 60 s), after Redis's `client-output-buffer-limit`. A
    /// backlog that stays over `bytes` for the whole `period` and is at its largest of the
    /// period at its end is not being caught up with: the connection is closed as a slow
    /// consumer. A backlog that came down from its peak starts a new period, so a client
    /// draining a burst is never closed by this rule. A period below 1 ms means 1 ms.
    ///
    /// ```
    /// use krmx_core::KrmxConfig;
    /// use std::time::Duration;
    /// let config = KrmxConfig::default().soft_buffered_bytes(1 << 20, Duration::from_secs(10));
    /// assert_eq!(config.soft_buffered_bytes_value(), 1 << 20);
    /// assert_eq!(config.soft_buffered_period_value(), Duration::from_secs(10));
    /// ```
    #[must_use]
    pub fn soft_buffered_bytes(mut self, bytes: usize, period: Duration) -> Self {
        self.soft_buffered_bytes = bytes;
        self.soft_buffered_period = period.max(Duration::from_millis(1));
        self
    }

    /// How long bytes may wait for a connection with not one of them taken by its socket
    /// (default 30 s, two ping rounds): a peer that stopped reading altogether, whose kernel
    /// buffers are full, is closed as a slow consumer after it, whatever its backlog's size.
    /// Below 1 ms means 1 ms.
    #[must_use]
    pub fn write_stall_timeout(mut self, timeout: Duration) -> Self {
        self.write_stall_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The budget for bytes buffered across all connections (default 1 GiB). Past it, the
    /// connections holding the most are closed as slow consumers, largest first, until the
    /// total is back under it; what they held and had not started to send is dropped at once.
    #[must_use]
    pub fn buffered_budget(mut self, bytes: usize) -> Self {
        self.buffered_budget = bytes;
        self
    }

    /// The most messages kept for a connection while its link decision is pending (default 64);
    /// one more closes that connection.
    #[must_use]
    pub fn max_queued_during_auth(mut self, messages: usize) -> Self {
        self.max_queued_during_auth = messages;
        self
    }

    /// The most authentications pending at once, server-wide (default 4096); a link beyond it is
    /// rejected with `too many pending authentications`.
    #[must_use]
    pub fn max_pending_auths(mut self, pending: usize) -> Self {
        self.max_pending_auths = pending;
        self
    }

    /// Kick users that stay unlinked for longer than this (default: never).
    #[must_use]
    pub fn inactivity_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.inactivity_timeout = timeout;
        self
    }

    /// Closes a connection that is not linked for this long (default: never): code 1008,
    /// reason `unlinked timeout` ([`UNLINKED_TIMEOUT_REASON`]). Below 1 ms means 1 ms.
    ///
    /// The clock starts when the connection opens and again each time it is unlinked (by
    /// `krmx/unlink`, an invalid message, [`Input::Unlink`](crate::Input::Unlink), a kick...),
    /// and stops when it links. Rejected link attempts do not restart it, so a peer cannot stay
    /// by sending bad links. A connection whose time runs out while its link waits for the
    /// application is left to that decision: accepted, it stays; rejected or timed out, it is
    /// closed right after the `krmx/rejected`.
    ///
    /// Off by default because the protocol lets a connection stay open unlinked: a client may
    /// connect before it knows its username (a login form) and may unlink and link again later,
    /// to any user; dead peers are removed by the liveness pings. A public server should set
    /// it (30 s is generous for a client that links on connect), so connections that never
    /// link cannot pile up.
    ///
    /// ```
    /// use krmx_core::KrmxConfig;
    /// use std::time::Duration;
    /// let config = KrmxConfig::default().unlinked_timeout(Some(Duration::from_secs(30)));
    /// assert_eq!(config.unlinked_timeout_value(), Some(Duration::from_secs(30)));
    /// assert_eq!(KrmxConfig::default().unlinked_timeout_value(), None);
    /// ```
    #[must_use]
    pub fn unlinked_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.unlinked_timeout = timeout.map(|timeout| timeout.max(Duration::from_millis(1)));
        self
    }

    /// The most connections that may be open and not linked at once (default: no bound). A
    /// connection opened while that many are unlinked (a pending link counts as unlinked) is
    /// closed at once with code 1013 (try again later), reason `too many unlinked connections`
    /// ([`TOO_MANY_UNLINKED_REASON`]), before any Krmx message. Connections that become
    /// unlinked later (by an unlink) are never closed for it.
    ///
    /// Off by default: a reconnect storm (every client of a restarted server at once) opens
    /// many connections before their links arrive, and refusing them would break well-behaved
    /// clients. Combine it with [`unlinked_timeout`](Self::unlinked_timeout): the cap bounds
    /// how many idle connections can exist at all, the timeout frees them.
    #[must_use]
    pub fn max_unlinked_connections(mut self, connections: Option<usize>) -> Self {
        self.max_unlinked_connections = connections;
        self
    }

    /// Checks a connection's HTTP request target (path and query) as the transport's handshake
    /// does: [`RequestRejection::Path`] should refuse the upgrade with an HTTP 404;
    /// [`RequestRejection::Query`] is answered by the core closing the connection once it is
    /// opened, before any Krmx message.
    ///
    /// ```
    /// use krmx_core::{KrmxConfig, RequestRejection};
    /// let config = KrmxConfig::default().path("/game");
    /// assert_eq!(config.check_request("/game?x=1"), Ok(()));
    /// assert_eq!(config.check_request("/lobby"), Err(RequestRejection::Path));
    /// ```
    ///
    /// # Errors
    /// The first requirement the target fails.
    pub fn check_request(&self, target: &str) -> Result<(), RequestRejection> {
        self.request.check(target)
    }

    /// The configured path, if any.
    #[must_use]
    pub fn path_rule(&self) -> Option<&str> {
        self.request.path.as_deref()
    }

    /// Whether links may create new users.
    #[must_use]
    pub fn accepts_new_users(&self) -> bool {
        self.accept_new_users
    }

    /// The authentication mode.
    #[must_use]
    pub fn auth_mode(&self) -> AuthMode {
        self.auth_mode
    }

    /// The authentication timeout.
    #[must_use]
    pub fn auth_timeout_value(&self) -> Duration {
        self.auth_timeout
    }

    /// The effective ping interval, `None` when disabled.
    #[must_use]
    pub fn ping_interval_value(&self) -> Option<Duration> {
        self.ping_interval
    }

    /// The served protocol version.
    #[must_use]
    pub fn served_version(&self) -> ProtocolVersion {
        self.version
    }

    /// The largest message a client may send, in bytes.
    #[must_use]
    pub fn max_message_bytes_value(&self) -> usize {
        self.max_message_bytes
    }

    /// The hard limit on bytes buffered for one connection.
    #[must_use]
    pub fn max_buffered_bytes_value(&self) -> usize {
        self.max_buffered_bytes
    }

    /// The soft limit on bytes buffered for one connection.
    #[must_use]
    pub fn soft_buffered_bytes_value(&self) -> usize {
        self.soft_buffered_bytes
    }

    /// How long a backlog may stay over the soft limit without coming down.
    #[must_use]
    pub fn soft_buffered_period_value(&self) -> Duration {
        self.soft_buffered_period
    }

    /// How long bytes may wait with none taken by the socket.
    #[must_use]
    pub fn write_stall_timeout_value(&self) -> Duration {
        self.write_stall_timeout
    }

    /// The budget for bytes buffered across all connections.
    #[must_use]
    pub fn buffered_budget_value(&self) -> usize {
        self.buffered_budget
    }

    /// The bound on messages queued during a pending link.
    #[must_use]
    pub fn max_queued_during_auth_value(&self) -> usize {
        self.max_queued_during_auth
    }

    /// The bound on authentications pending at once.
    #[must_use]
    pub fn max_pending_auths_value(&self) -> usize {
        self.max_pending_auths
    }

    /// The inactivity timeout, if any.
    #[must_use]
    pub fn inactivity_timeout_value(&self) -> Option<Duration> {
        self.inactivity_timeout
    }

    /// The unlinked timeout, if any.
    #[must_use]
    pub fn unlinked_timeout_value(&self) -> Option<Duration> {
        self.unlinked_timeout
    }

    /// The bound on connections open and not linked at once, if any.
    #[must_use]
    pub fn max_unlinked_connections_value(&self) -> Option<usize> {
        self.max_unlinked_connections
    }

    /// Whether `name` passes the username rule.
    #[must_use]
    pub fn is_valid_username(&self, name: &str) -> bool {
        self.username_rule.accepts(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_interval_rules() {
        let c = KrmxConfig::default();
        assert_eq!(c.ping_interval_value(), Some(Duration::from_secs(15)));
        let c = c.ping_interval(Duration::ZERO);
        assert_eq!(c.ping_interval_value(), None);
        let c = c.ping_interval(Duration::from_millis(1));
        assert_eq!(c.ping_interval_value(), Some(Duration::from_millis(100)));
        let c = c.ping_interval(Duration::from_millis(99));
        assert_eq!(c.ping_interval_value(), Some(Duration::from_millis(100)));
        let c = c.ping_interval(Duration::from_millis(250));
        assert_eq!(c.ping_interval_value(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn unlinked_limits_are_off_by_default_and_the_timeout_has_a_one_millisecond_floor() {
        let c = KrmxConfig::default();
        assert_eq!(c.unlinked_timeout_value(), None);
        assert_eq!(c.max_unlinked_connections_value(), None);
        let c = c.unlinked_timeout(Some(Duration::ZERO));
        assert_eq!(c.unlinked_timeout_value(), Some(Duration::from_millis(1)));
        let c = c.unlinked_timeout(None).max_unlinked_connections(Some(0));
        assert_eq!(c.unlinked_timeout_value(), None);
        assert_eq!(c.max_unlinked_connections_value(), Some(0));
    }

    #[test]
    fn auth_timeout_has_a_one_millisecond_floor() {
        let c = KrmxConfig::default().auth_timeout(Duration::ZERO);
        assert_eq!(c.auth_timeout_value(), Duration::from_millis(1));
    }
}
