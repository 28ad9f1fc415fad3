//! Where a URL points: the handshake request and the host and port to open a TCP connection to.

use crate::ClientFailure;
use tungstenite::client::{IntoClientRequest, uri_mode};
use tungstenite::handshake::client::Request;
use tungstenite::stream::Mode;

/// Where to connect for one URL.
#[derive(Debug)]
pub(crate) struct Target {
    /// The WebSocket handshake request.
    pub(crate) request: Request,
    /// The host, without the brackets of an IPv6 literal.
    pub(crate) host: String,
    /// The port (80, or 443 for `wss://`, when the URL names none).
    pub(crate) port: u16,
    /// A `wss://` URL: TLS first.
    pub(crate) tls: bool,
}

/// The target of `url`.
///
/// # Errors
/// [`ClientFailure::InvalidUrl`]: the URL is not a `ws://` or `wss://` URL with a host.
pub(crate) fn target(url: &str) -> Result<Target, ClientFailure> {
    let invalid = |problem: String| ClientFailure::InvalidUrl {
        url: url.to_owned(),
        problem,
    };
    let request = url
        .into_client_request()
        .map_err(|error| invalid(error.to_string()))?;
    let tls = match uri_mode(request.uri()) {
        Ok(Mode::Plain) => false,
        Ok(Mode::Tls) => true,
        Err(error) => return Err(invalid(error.to_string())),
    };
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or_else(|| invalid("the URL has no host".into()))?;
    // `Uri::port` is `None` for a port that is not a `u16` too: read it from the authority.
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    let host_and_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, rest)| rest);
    let port = match host_and_port.strip_prefix(host).unwrap_or("") {
        "" | ":" if tls => 443,
        "" | ":" => 80,
        port => port
            .strip_prefix(':')
            .and_then(|port| port.parse().ok())
            .ok_or_else(|| invalid(format!("invalid port in {uri}")))?,
    };
    // An IPv6 literal comes in brackets.
    let host = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    Ok(Target {
        request,
        host,
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_and_port(url: &str) -> (String, u16) {
        let target = target(url).unwrap();
        (target.host, target.port)
    }

    #[test]
    fn targets_of_urls() {
        assert_eq!(
            host_and_port("ws://127.0.0.1:8082"),
            ("127.0.0.1".into(), 8082)
        );
        let lobby = target("ws://[::1]/lobby?room=3").unwrap();
        assert_eq!((lobby.host.as_str(), lobby.port), ("::1", 80));
        assert_eq!(lobby.request.uri().path(), "/lobby");
        assert_eq!(
            host_and_port("ws://user:pw@[::1]:9000/"),
            ("::1".into(), 9000)
        );
        assert_eq!(
            host_and_port("ws://Example.COM:/x"),
            ("Example.COM".into(), 80)
        );
    }

    #[test]
    fn urls_that_cannot_be_opened_are_invalid_with_the_url() {
        for url in [
            "http://example.com",
            "not a url",
            "ws://127.0.0.1:118082",
            "ws://127.0.0.1:80a",
        ] {
            match target(url) {
                Err(ClientFailure::InvalidUrl {
                    url: given,
                    problem,
                }) => {
                    assert_eq!(given, url);
                    assert!(!problem.is_empty());
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn wss_urls_speak_tls_on_443_unless_a_port_is_given() {
        let secure = target("wss://example.com/lobby").unwrap();
        assert!(secure.tls);
        assert_eq!((secure.host.as_str(), secure.port), ("example.com", 443));
        let given = target("wss://127.0.0.1:8443").unwrap();
        assert!(given.tls);
        assert_eq!(given.port, 8443);
        assert!(!target("ws://example.com").unwrap().tls);
    }
}
