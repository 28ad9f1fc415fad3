//! [`ClientConfig`]: how a client is set up.

/// The protocol version a client sends by default.
pub const DEFAULT_CLIENT_VERSION: &str = "0.6.0";

/// How a [`KrmxClient`](crate::KrmxClient) is set up, builder style.
///
/// ```
/// use krmx_core::{ClientConfig, DEFAULT_CLIENT_VERSION};
/// assert_eq!(ClientConfig::default().version_value(), DEFAULT_CLIENT_VERSION);
/// let config = ClientConfig::new().version("0.6.3");
/// assert_eq!(config.version_value(), "0.6.3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    version: String,
}

impl ClientConfig {
    /// The default configuration.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The protocol version sent in `krmx/link` (default [`DEFAULT_CLIENT_VERSION`]). It is sent
    /// as given; the server decides whether it matches.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The protocol version sent in `krmx/link`.
    #[must_use]
    pub fn version_value(&self) -> &str {
        &self.version
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            version: DEFAULT_CLIENT_VERSION.to_owned(),
        }
    }
}
