//! [`TransportConfig`]: what the transports add to the core's configuration.

use crate::{AllowedOrigins, Monitor, RoomsConfig, ServerTls, StaticFiles};
use std::sync::Arc;
use std::time::Duration;

/// Default time a client has to finish its HTTP upgrade: 5 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a closing connection may take to answer the close frame: 2 s.
pub const DEFAULT_CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Default time a closing server takes before it drops the connections still open: 10 s.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default read buffer per connection: 512 bytes (tungstenite's default is 128 KiB, far more
/// than an idle Krmx connection needs). Sockets are read through one 64 KiB scratch buffer
/// per thread, so a small buffer costs no more system calls; a larger message grows the buffer while it is read.
pub const DEFAULT_READ_BUFFER_BYTES: usize = 512;

/// Socket-level settings of a transport. Protocol limits (message size, buffered bytes)
/// live in [`KrmxConfig`](krmx_core::KrmxConfig) and apply to every transport alike.
///
/// ```
/// use krmx_driver::TransportConfig;
/// use std::time::Duration;
/// let config = TransportConfig::default().handshake_timeout(Duration::from_secs(2));
/// assert_eq!(config.handshake_timeout_value(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub(crate) handshake_timeout: Duration,
    pub(crate) close_linger: Duration,
    pub(crate) read_buffer_bytes: usize,
    pub(crate) shutdown_grace: Duration,
    pub(crate) allowed_origins: Option<Arc<AllowedOrigins>>,
    pub(crate) health_path: Option<String>,
    pub(crate) tls: Option<ServerTls>,
    pub(crate) metrics_path: Option<String>,
    pub(crate) static_files: Option<StaticFiles>,
    pub(crate) monitor: Option<Monitor>,
    pub(crate) rooms: Option<RoomsConfig>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            close_linger: DEFAULT_CLOSE_LINGER,
            read_buffer_bytes: DEFAULT_READ_BUFFER_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            allowed_origins: None,
            health_path: None,
            tls: None,
            metrics_path: None,
            static_files: None,
            monitor: None,
            rooms: None,
        }
    }
}

impl TransportConfig {
    /// How long a client may take to finish its HTTP upgrade before it is dropped.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long a closing connection may take to answer the close frame before it is dropped.
    #[must_use]
    pub fn close_linger(mut self, linger: Duration) -> Self {
        self.close_linger = linger;
        self
    }

    /// How long a closing server may take (default 10 s): the users' leaves go out as the
    /// connections take them, and once this has passed since the close began, every
    /// connection still open is dropped and the remaining leaves are settled without them.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Only pages of these origins may upgrade (a browser's `Origin` header); others are
    /// answered `403 Forbidden` before any Krmx message. Off by default: every origin may.
    ///
    /// ```
    /// use krmx_driver::{AllowedOrigins, TransportConfig};
    /// let config = TransportConfig::default()
    ///     .allowed_origins(AllowedOrigins::new(["https://*.example.com"]));
    /// assert!(config.allowed_origins_value().is_some());
    /// ```
    #[must_use]
    pub fn allowed_origins(mut self, origins: AllowedOrigins) -> Self {
        self.allowed_origins = Some(Arc::new(origins));
        self
    }

    /// The allowed origins, if the check is on.
    #[must_use]
    pub fn allowed_origins_value(&self) -> Option<&AllowedOrigins> {
        self.allowed_origins.as_deref()
    }

    /// Answers plain HTTP `GET`/`HEAD` requests for `path` (for example `/health`) on the
    /// WebSocket port with the server's health as JSON: `status`, `users`, `linkedUsers`,
    /// `connections` (open WebSocket connections), `protocolVersion` (served) and
    /// `uptimeSeconds`. Off by default; any plain request that is not for an endpoint that is
    /// on gets `404`. A missing leading `/` is added.
    ///
    /// ```
    /// use krmx_driver::TransportConfig;
    /// let config = TransportConfig::default().health_path("health");
    /// assert_eq!(config.health_path_value(), Some("/health"));
    /// ```
    #[must_use]
    pub fn health_path(mut self, path: &str) -> Self {
        self.health_path = Some(absolute(path));
        self
    }

    /// The health endpoint's path, if it is on.
    #[must_use]
    pub fn health_path_value(&self) -> Option<&str> {
        self.health_path.as_deref()
    }

    /// Serves `wss://` (and `https://` for the plain endpoints) with this certificate: every
    /// connection the server accepts speaks TLS first, and its handshake counts against the
    /// [handshake timeout](Self::handshake_timeout). Off by default (plain `ws://`).
    ///
    /// ```
    /// # fn demo(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), krmx_driver::TlsError> {
    /// use krmx_driver::{ServerTls, TransportConfig};
    /// let config = TransportConfig::default().tls(ServerTls::from_pem(cert_pem, key_pem)?);
    /// assert!(config.tls_value().is_some());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS the server speaks, if it is on.
    #[must_use]
    pub fn tls_value(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    /// Answers plain HTTP `GET`/`HEAD` requests for `path` (for example `/metrics`) on the
    /// WebSocket port with the server's [`Metrics`](crate::Metrics) in the OpenMetrics text
    /// format (`Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8`),
    /// which Prometheus scrapes; other methods get `405`. Off by default; any plain request that
    /// is not for an endpoint that is on gets `404`. A missing leading `/` is added; on the
    /// health endpoint's path, the health endpoint answers.
    ///
    /// ```
    /// use krmx_driver::TransportConfig;
    /// let config = TransportConfig::default().metrics_path("metrics");
    /// assert_eq!(config.metrics_path_value(), Some("/metrics"));
    /// ```
    #[must_use]
    pub fn metrics_path(mut self, path: &str) -> Self {
        self.metrics_path = Some(absolute(path));
        self
    }

    /// The metrics endpoint's path, if it is on.
    #[must_use]
    pub fn metrics_path_value(&self) -> Option<&str> {
        self.metrics_path.as_deref()
    }

    /// Serves these files on plain `GET`/`HEAD` requests for their paths (a page that talks
    /// to this server, from the same origin). The health and metrics paths come first; a
    /// WebSocket upgrade always goes to the Krmx endpoint. Off by default.
    ///
    /// ```
    /// use krmx_driver::{StaticFiles, TransportConfig};
    /// let page = StaticFiles::from_files([("/index.html", b"<h1>lobby</h1>".to_vec())]);
    /// let config = TransportConfig::default().static_files(page);
    /// assert_eq!(config.static_files_value().map(StaticFiles::len), Some(1));
    /// ```
    #[must_use]
    pub fn static_files(mut self, files: StaticFiles) -> Self {
        self.static_files = Some(files);
        self
    }

    /// The static files served, if any.
    #[must_use]
    pub fn static_files_value(&self) -> Option<&StaticFiles> {
        self.static_files.as_ref()
    }

    /// Turns the [`Monitor`] on: its page and token-guarded API under its path (before the
    /// health, metrics and static paths). Off by default.
    ///
    /// ```
    /// use krmx_driver::{Monitor, TransportConfig};
    /// let monitor = Monitor::new("/monitor", "correct-horse-battery-staple").unwrap();
    /// let config = TransportConfig::default().monitor(monitor);
    /// assert_eq!(config.monitor_value().map(Monitor::path), Some("/monitor"));
    /// ```
    #[must_use]
    pub fn monitor(mut self, monitor: Monitor) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// The monitor, if it is on.
    #[must_use]
    pub fn monitor_value(&self) -> Option<&Monitor> {
        self.monitor.as_ref()
    }

    /// Turns rooms on (see [`RoomsConfig`]): every WebSocket path under its prefix is its own
    /// Krmx world. Off by default: one world, as the core's path rule says.
    #[must_use]
    pub fn rooms(mut self, rooms: RoomsConfig) -> Self {
        self.rooms = Some(rooms);
        self
    }

    /// The rooms, if they are on.
    #[must_use]
    pub fn rooms_value(&self) -> Option<&RoomsConfig> {
        self.rooms.as_ref()
    }

    /// The read buffer of each connection, in bytes (at least 256).
    #[must_use]
    pub fn read_buffer_bytes(mut self, bytes: usize) -> Self {
        self.read_buffer_bytes = bytes.max(256);
        self
    }

    /// The handshake timeout.
    #[must_use]
    pub fn handshake_timeout_value(&self) -> Duration {
        self.handshake_timeout
    }

    /// The close linger.
    #[must_use]
    pub fn close_linger_value(&self) -> Duration {
        self.close_linger
    }

    /// The shutdown grace period.
    #[must_use]
    pub fn shutdown_grace_value(&self) -> Duration {
        self.shutdown_grace
    }

    /// The read buffer size.
    #[must_use]
    pub fn read_buffer_bytes_value(&self) -> usize {
        self.read_buffer_bytes
    }
}

/// `path` with a leading `/`.
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}
