//! One TCP connection through its phases: HTTP upgrade, open WebSocket, closing.

use crate::socket::Socket;
use krmx_core::{ConnectionId, KrmxConfig};
use std::sync::{Arc, Mutex};
use tungstenite::WebSocket;
use tungstenite::handshake::MidHandshake;
use tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response, ServerHandshake};
use tungstenite::http;

/// The handshake callback: refuses a wrong path with 404 and records the request target for
/// the core's query check.
#[derive(Debug, Clone)]
pub(crate) struct RequestCheck {
    pub(crate) config: Arc<KrmxConfig>,
    pub(crate) target: Arc<Mutex<Option<String>>>,
}

impl Callback for RequestCheck {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        let target = request.uri().path_and_query().map_or_else(
            || request.uri().path().to_owned(),
            |pq| pq.as_str().to_owned(),
        );
        if self.config.check_request(&target) == Err(krmx_core::RequestRejection::Path) {
            tracing::debug!(%target, "handshake refused: wrong path");
            let body = "404 not found: no Krmx endpoint at this path\n";
            let mut refusal = http::Response::new(Some(body.to_owned()));
            *refusal.status_mut() = http::StatusCode::NOT_FOUND;
            let headers = refusal.headers_mut();
            headers.insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from(body.len()),
            );
            headers.insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            );
            return Err(refusal);
        }
        if let Ok(mut slot) = self.target.lock() {
            *slot = Some(target);
        }
        Ok(response)
    }
}

pub(crate) type Handshake = MidHandshake<ServerHandshake<Socket, RequestCheck>>;

/// Where a connection stands.
pub(crate) enum Phase {
    /// The HTTP upgrade is in progress (`None` only while being driven).
    Handshaking {
        mid: Option<Box<Handshake>>,
        target: Arc<Mutex<Option<String>>>,
    },
    /// A WebSocket the core knows as `id`.
    Open {
        ws: Box<WebSocket<Socket>>,
        id: ConnectionId,
    },
    /// A close frame is queued or sent; the peer's bytes are read and dropped until it closes
    /// or the linger deadline passes. The core has forgotten it.
    Closing { ws: Box<WebSocket<Socket>> },
}

/// A connection slot.
pub(crate) struct Conn {
    /// Unique among every connection this server ever accepted (so a stale deadline entry for a
    /// reused slot is recognised).
    pub(crate) serial: u64,
    pub(crate) phase: Phase,
    /// In the server's list of connections to flush.
    pub(crate) dirty: bool,
}

impl Conn {
    /// The socket, whatever the phase.
    pub(crate) fn socket_mut(&mut self) -> Option<&mut Socket> {
        match &mut self.phase {
            Phase::Handshaking { mid, .. } => mid.as_mut().map(|mid| mid.get_mut().get_mut()),
            Phase::Open { ws, .. } | Phase::Closing { ws } => Some(ws.get_mut()),
        }
    }
}
