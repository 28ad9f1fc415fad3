//! [`ClientOptions`]: how a client is set up.

use crate::ClientTls;
use krmx_core::ClientConfig;
use std::time::Duration;

/// Default time a client waits for the server: 15 s, longer than the server's default
/// authentication timeout (10 s), so that a slow authentication ends in the server's
/// `authentication timeout` rejection rather than in [`ClientFailure::Timeout`].
///
/// [`ClientFailure::Timeout`]: crate::ClientFailure::Timeout
///
/// ```
/// use krmx_client::{ClientOptions, DEFAULT_CLIENT_TIMEOUT};
/// assert_eq!(ClientOptions::new().timeout_value(), DEFAULT_CLIENT_TIMEOUT);
/// ```
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The shortest wait a client accepts (a socket refuses a zero timeout).
const MIN_CLIENT_TIMEOUT: Duration = Duration::from_millis(1);

/// How a client is set up: the core's [`ClientConfig`] and how long it waits for the server.
///
/// ```
/// use krmx_client::ClientOptions;
/// use krmx_core::ClientConfig;
/// use std::time::Duration;
/// let options = ClientOptions::new()
///     .config(ClientConfig::new().version("0.6.3"))
///     .timeout(Duration::from_secs(2));
/// assert_eq!(options.config_value().version_value(), "0.6.3");
/// assert_eq!(options.timeout_value(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    config: ClientConfig,
    timeout: Duration,
    tls: ClientTls,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            config: ClientConfig::default(),
            timeout: DEFAULT_CLIENT_TIMEOUT,
            tls: ClientTls::default(),
        }
    }
}

impl ClientOptions {
    /// The defaults: [`ClientConfig::default`] and [`DEFAULT_CLIENT_TIMEOUT`].
    ///
    /// ```
    /// use krmx_client::ClientOptions;
    /// use krmx_core::DEFAULT_CLIENT_VERSION;
    /// assert_eq!(ClientOptions::new().config_value().version_value(), DEFAULT_CLIENT_VERSION);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The core client's configuration (the protocol version sent when linking).
    ///
    /// ```
    /// use krmx_client::ClientOptions;
    /// use krmx_core::ClientConfig;
    /// let options = ClientOptions::new().config(ClientConfig::new().version("0.6.1"));
    /// assert_eq!(options.config_value().version_value(), "0.6.1");
    /// ```
    #[must_use]
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// How long opening the connection (TCP and the WebSocket handshake), a link, an unlink, a
    /// leave, a close and writing a message may each wait for the server (at least 1 ms).
    ///
    /// ```
    /// use krmx_client::ClientOptions;
    /// use std::time::Duration;
    /// assert_eq!(ClientOptions::new().timeout(Duration::ZERO).timeout_value(), Duration::from_millis(1));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(MIN_CLIENT_TIMEOUT);
        self
    }

    /// Which servers `wss://` URLs trust (default: the platform's root certificates).
    ///
    /// ```
    /// use krmx_client::{ClientOptions, ClientTls};
    /// let options = ClientOptions::new().tls(ClientTls::platform_roots());
    /// ```
    #[must_use]
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = tls;
        self
    }

    /// The TLS trust of `wss://` URLs.
    #[must_use]
    pub fn tls_value(&self) -> &ClientTls {
        &self.tls
    }

    /// The core client's configuration.
    ///
    /// ```
    /// use krmx_client::ClientOptions;
    /// use krmx_core::ClientConfig;
    /// assert_eq!(ClientOptions::new().config_value(), &ClientConfig::default());
    /// ```
    #[must_use]
    pub fn config_value(&self) -> &ClientConfig {
        &self.config
    }

    /// The wait bound.
    ///
    /// ```
    /// use krmx_client::{ClientOptions, DEFAULT_CLIENT_TIMEOUT};
    /// assert_eq!(ClientOptions::default().timeout_value(), DEFAULT_CLIENT_TIMEOUT);
    /// ```
    #[must_use]
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }
}
