//! [`ClientFailure`]: why a client call failed, in the client's own terms.

use krmx_core::ClientError;
use std::io;

/// Why a client call failed. A server that drops the connection is not an error of the calls
/// that do not wait for it: the client reports [`ClientEvent::Closed`](krmx_core::ClientEvent)
/// and is `closed`.
///
/// Each variant says what happened with plain values (texts, codes, an [`io::ErrorKind`]); no
/// error type of the libraries underneath is part of it, not even as a
/// [`source`](std::error::Error::source). `Display` gives a sentence; for
/// [`Command`](Self::Command) it is the core's [`ClientError`] text.
///
/// ```
/// use krmx_client::{Client, ClientFailure};
///
/// match Client::connect("http://example.invalid/") {
///     Err(ClientFailure::InvalidUrl { url, problem }) => {
///         assert_eq!(url, "http://example.invalid/");
///         assert!(!problem.is_empty());
///     }
///     other => panic!("{other:?}"),
/// }
/// let timeout = ClientFailure::Timeout;
/// assert_eq!(timeout.to_string(), "the server did not answer in time");
/// let closed = ClientFailure::Closed { code: Some(1008), reason: "slow consumer".into() };
/// assert_eq!(
///     closed.to_string(),
///     "the connection closed before the server answered (close code 1008, reason `slow consumer`)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientFailure {
    /// The client refused the command in its status, with the JavaScript client's text (for
    /// example `cannot link when the client is linked`), or a custom message used the reserved
    /// `krmx/` prefix. Nothing was sent.
    #[error(transparent)]
    Command(#[from] ClientError),
    /// The server rejected the link with this reason (for example `invalid username`). The
    /// client is `connected` and may link again.
    #[error("the server rejected the link: {reason}")]
    Rejected {
        /// The server's reason.
        reason: String,
    },
    /// The URL is not one this client can open: not a `ws://` or `wss://` URL, no host, or a
    /// bad port. No connection was attempted.
    #[error("cannot connect to {url}: {problem}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Opening the TCP connection (or the socket underneath the WebSocket handshake) failed,
    /// for example [`io::ErrorKind::ConnectionRefused`].
    #[error("could not connect: {message}")]
    Connect {
        /// The kind of the I/O error.
        kind: io::ErrorKind,
        /// The I/O error's text.
        message: String,
    },
    /// The server answered the WebSocket handshake with this HTTP status instead of upgrading
    /// (a Krmx server answers 404 for a path it does not serve).
    #[error("the server refused the WebSocket handshake with HTTP status {status}")]
    HandshakeRejected {
        /// The HTTP status code.
        status: u16,
    },
    /// The server broke the WebSocket protocol, in the handshake or later (an invalid
    /// handshake response, a malformed frame, a message over the size limit).
    #[error("WebSocket protocol error: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// The connection closed before the server answered. `code` and `reason` are those of the
    /// server's close frame; `code` is `None` when the connection ended without one (dropped or
    /// reset by the network) or the frame carried no code, and `reason` is then empty.
    #[error("the connection closed before the server answered{}", closed_detail(*.code, .reason))]
    Closed {
        /// The close code the server sent (for example 1008 for a slow consumer).
        code: Option<u16>,
        /// The reason the server sent with it.
        reason: String,
    },
    /// TLS failed on a `wss://` URL: the server's certificate is not trusted or does not name
    /// the host, the server does not speak TLS, or the trust store could not be loaded.
    #[error("TLS failed: {message}")]
    Tls {
        /// What went wrong.
        message: String,
    },
    /// The server did not answer within the client's timeout (opening the connection included).
    #[error("the server did not answer in time")]
    Timeout,
}

/// ` (close code 1008, reason `slow consumer`)`, or nothing without a code.
fn closed_detail(code: Option<u16>, reason: &str) -> String {
    match (code, reason) {
        (None, _) => String::new(),
        (Some(code), "") => format!(" (close code {code})"),
        (Some(code), reason) => format!(" (close code {code}, reason `{reason}`)"),
    }
}

impl ClientFailure {
    /// A connection that ended without a close frame.
    pub(crate) fn dropped() -> Self {
        Self::Closed {
            code: None,
            reason: String::new(),
        }
    }

    /// What an I/O error while opening the connection means: a timeout, or a failed connect.
    pub(crate) fn opening_io(error: &io::Error) -> Self {
        if let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Self::Tls {
                message: tls.to_string(),
            };
        }
        match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Self::Timeout,
            kind => Self::Connect {
                kind,
                message: error.to_string(),
            },
        }
    }

    /// What a failed WebSocket handshake means.
    pub(crate) fn handshake(error: tungstenite::Error) -> Self {
        match error {
            tungstenite::Error::Io(error) => Self::opening_io(&error),
            tungstenite::Error::Http(response) => Self::HandshakeRejected {
                status: response.status().as_u16(),
            },
            // The server closed during the handshake.
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                Self::dropped()
            }
            other => Self::Protocol {
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_errors_become_what_happened() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            ClientFailure::handshake(refused.into()),
            ClientFailure::Connect {
                kind: io::ErrorKind::ConnectionRefused,
                ..
            }
        ));
        let slow = io::Error::from(io::ErrorKind::WouldBlock);
        assert_eq!(
            ClientFailure::handshake(slow.into()),
            ClientFailure::Timeout
        );
        let response = tungstenite::http::Response::builder()
            .status(404)
            .body(None)
            .unwrap();
        assert_eq!(
            ClientFailure::handshake(tungstenite::Error::Http(Box::new(response))),
            ClientFailure::HandshakeRejected { status: 404 }
        );
        let protocol = tungstenite::error::ProtocolError::WrongHttpMethod;
        assert!(matches!(
            ClientFailure::handshake(protocol.into()),
            ClientFailure::Protocol { .. }
        ));
    }

    #[test]
    fn closed_says_the_code_and_reason_when_there_are_some() {
        assert_eq!(
            ClientFailure::dropped().to_string(),
            "the connection closed before the server answered"
        );
        let bare = ClientFailure::Closed {
            code: Some(1000),
            reason: String::new(),
        };
        assert_eq!(
            bare.to_string(),
            "the connection closed before the server answered (close code 1000)"
        );
    }
}
