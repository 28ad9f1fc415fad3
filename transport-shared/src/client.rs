//! What the blocking (mio crate) and async (smol crate) clients share: their options, their
//! error, the URL check, the mapping of what tungstenite read to client inputs, and the answers
//! a command waits for. Every protocol decision stays in [`KrmxClient`].

use krmx_core::{ClientConfig, ClientEvent, ClientInput, ClientStatus, KrmxClient};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::time::Duration;
use tungstenite::Message;
use tungstenite::client::{IntoClientRequest, uri_mode};
use tungstenite::error::UrlError;
use tungstenite::handshake::client::Request;
use tungstenite::stream::Mode;

/// Default time a client waits for the server: 15 s, longer than the server's default
/// authentication timeout (10 s), so that a slow authentication ends in the server's
/// `authentication timeout` rejection rather than in [`ClientFailure::Timeout`].
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The shortest wait a client accepts (a socket refuses a zero timeout).
const MIN_CLIENT_TIMEOUT: Duration = Duration::from_millis(1);

/// How a client is set up: the core's [`ClientConfig`] and how long it waits for the server.
///
/// ```
/// use krmx_core::ClientConfig;
/// use krmx_transport_shared::ClientOptions;
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
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            config: ClientConfig::default(),
            timeout: DEFAULT_CLIENT_TIMEOUT,
        }
    }
}

impl ClientOptions {
    /// The defaults: [`ClientConfig::default`] and [`DEFAULT_CLIENT_TIMEOUT`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The core client's configuration (the protocol version sent when linking).
    #[must_use]
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// How long opening the connection (TCP and the WebSocket handshake), a link, an unlink, a
    /// leave, a close and writing a message may each wait for the server (at least 1 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(MIN_CLIENT_TIMEOUT);
        self
    }

    /// The core client's configuration.
    #[must_use]
    pub fn config_value(&self) -> &ClientConfig {
        &self.config
    }

    /// The wait bound.
    #[must_use]
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }
}

/// Why a client call failed. A server that drops the connection is not an error of the calls
/// that do not wait for it: the client reports [`ClientEvent::Closed`] and is `closed`.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientFailure {
    /// The client refused the command in its status, with the JavaScript client's text (for
    /// example `cannot link when the client is linked`), or a custom message used the reserved
    /// `krmx/` prefix.
    Command(krmx_core::ClientError),
    /// The server rejected the link with this reason (for example `invalid username`).
    Rejected {
        /// The server's reason.
        reason: String,
    },
    /// Opening the connection failed: a bad or `wss://` URL (TLS is not built in), the TCP
    /// connect, or the WebSocket handshake.
    Connect(tungstenite::Error),
    /// The connection closed before the server answered.
    Closed,
    /// The server did not answer within the client's timeout.
    Timeout,
    /// Configuring the socket failed.
    Io(io::Error),
}

impl fmt::Display for ClientFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Command(error) => error.fmt(f),
            Self::Rejected { reason } => write!(f, "the server rejected the link: {reason}"),
            Self::Connect(error) => write!(f, "could not connect: {error}"),
            Self::Closed => f.write_str("the connection closed before the server answered"),
            Self::Timeout => f.write_str("the server did not answer in time"),
            Self::Io(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ClientFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Command(error) => Some(error),
            Self::Connect(error) => Some(error),
            Self::Io(error) => Some(error),
            Self::Rejected { .. } | Self::Closed | Self::Timeout => None,
        }
    }
}

impl From<krmx_core::ClientError> for ClientFailure {
    fn from(error: krmx_core::ClientError) -> Self {
        Self::Command(error)
    }
}

/// The handshake request for `url` and the host and port to open a TCP connection to.
///
/// # Errors
/// The URL is not a `ws://` URL with a host (`wss://` needs TLS, which is not built in).
pub fn client_target(url: &str) -> Result<(Request, String, u16), tungstenite::Error> {
    let request = url.into_client_request()?;
    if matches!(uri_mode(request.uri())?, Mode::Tls) {
        return Err(tungstenite::Error::Url(UrlError::TlsFeatureNotEnabled));
    }
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or(tungstenite::Error::Url(UrlError::NoHostName))?;
    // `Uri::port` is `None` for a port that is not a `u16` too: read it from the authority.
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    let host_and_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, rest)| rest);
    let port = match host_and_port.strip_prefix(host).unwrap_or("") {
        "" | ":" => 80,
        port => port
            .strip_prefix(':')
            .and_then(|port| port.parse().ok())
            .ok_or_else(|| {
                let problem = format!("invalid port in {uri}");
                tungstenite::Error::Url(UrlError::UnableToConnect(problem))
            })?,
    };
    // An IPv6 literal comes in brackets.
    let host = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    Ok((request, host, port))
}

/// What one client read produced.
#[derive(Debug)]
pub enum ClientRead {
    /// Feed this to the client.
    Input(ClientInput),
    /// Nothing for the client (a ping, which tungstenite answers; a pong; the server's close
    /// frame, whose answer tungstenite queued; an invalid binary message, dropped).
    Nothing,
    /// No complete message yet (a read timeout passed).
    WouldBlock,
    /// The connection is closed or broken.
    Gone,
}

/// Maps the result of one `read` (or one item of an async stream). A binary message that is
/// valid UTF-8 is taken as text, as the server does.
#[must_use]
pub fn client_read(read: Result<Message, tungstenite::Error>) -> ClientRead {
    let text = match read {
        Ok(Message::Text(text)) => text.as_str().to_owned(),
        Ok(Message::Binary(bytes)) => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => text,
            Err(_) => {
                tracing::warn!("dropped a binary message that is not UTF-8");
                return ClientRead::Nothing;
            }
        },
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => {
            return ClientRead::Nothing;
        }
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return ClientRead::WouldBlock;
        }
        Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {
            return ClientRead::Nothing;
        }
        Err(error) => {
            tracing::debug!(%error, "client connection ended");
            return ClientRead::Gone;
        }
    };
    ClientRead::Input(ClientInput::Received { text })
}

/// The server's answer a client command waits for, judged from the client's state and the
/// events queued since the command.
#[derive(Debug, Clone)]
pub enum ClientWait {
    /// A link: accepted and listed up to the client's own place in join order
    /// ([`KrmxClient::is_listed`]), or rejected.
    Link {
        /// How many events were queued before the link was sent.
        first_event: usize,
    },
    /// An unlink: its own `krmx/unlinked`.
    Unlink,
    /// A leave: its own `krmx/unlinked` (the client is `connected` at once; its name goes with
    /// that unlink).
    Leave,
}

impl ClientWait {
    /// `None` while the answer is still to come; else the command's result.
    ///
    /// # Errors
    /// [`ClientFailure::Rejected`] with the server's reason, [`ClientFailure::Closed`] when the
    /// connection closed first.
    pub fn outcome(
        &self,
        client: &KrmxClient,
        events: &VecDeque<ClientEvent>,
    ) -> Option<Result<(), ClientFailure>> {
        let status = client.status();
        let closed = matches!(status, ClientStatus::Closing | ClientStatus::Closed);
        match self {
            Self::Link { first_event } => {
                if client.is_listed() {
                    return Some(Ok(()));
                }
                let rejected = events
                    .range((*first_event).min(events.len())..)
                    .find_map(|event| match event {
                        ClientEvent::Rejected { reason } => Some(reason.clone()),
                        _ => None,
                    });
                if let Some(reason) = rejected {
                    return Some(Err(ClientFailure::Rejected { reason }));
                }
                closed.then_some(Err(ClientFailure::Closed))
            }
            _ if closed => Some(Err(ClientFailure::Closed)),
            Self::Unlink => (status != ClientStatus::Unlinking).then_some(Ok(())),
            Self::Leave => client.username().is_none().then_some(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_of_urls() {
        let (_, host, port) = client_target("ws://127.0.0.1:8082").unwrap();
        assert_eq!((host.as_str(), port), ("127.0.0.1", 8082));
        let (request, host, port) = client_target("ws://[::1]/lobby?room=3").unwrap();
        assert_eq!((host.as_str(), port), ("::1", 80));
        assert_eq!(request.uri().path(), "/lobby");
        assert!(matches!(
            client_target("wss://example.com"),
            Err(tungstenite::Error::Url(UrlError::TlsFeatureNotEnabled))
        ));
        assert!(client_target("http://example.com").is_err());
        assert!(client_target("not a url").is_err());
        assert!(client_target("ws://127.0.0.1:118082").is_err());
        assert!(client_target("ws://127.0.0.1:80a").is_err());
        let (_, host, port) = client_target("ws://user:pw@[::1]:9000/").unwrap();
        assert_eq!((host.as_str(), port), ("::1", 9000));
        let (_, host, port) = client_target("ws://Example.COM:/x").unwrap();
        assert_eq!((host.as_str(), port), ("Example.COM", 80));
    }

    #[test]
    fn binary_utf8_is_text_and_other_binary_is_dropped() {
        let read = client_read(Ok(Message::binary(b"{\"type\":\"a\"}".to_vec())));
        assert!(
            matches!(read, ClientRead::Input(ClientInput::Received { text }) if text == "{\"type\":\"a\"}")
        );
        let read = client_read(Ok(Message::binary(vec![0xff, 0xfe])));
        assert!(matches!(read, ClientRead::Nothing));
        let timeout = io::Error::from(io::ErrorKind::WouldBlock);
        assert!(matches!(
            client_read(Err(timeout.into())),
            ClientRead::WouldBlock
        ));
        let read = client_read(Err(tungstenite::Error::ConnectionClosed));
        assert!(matches!(read, ClientRead::Gone));
    }
}
