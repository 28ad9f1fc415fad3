//! One TCP connection through its phases: HTTP upgrade, open WebSocket, closing.

use crate::socket::Socket;
use krmx_core::ConnectionId;
use krmx_transport_shared::{RequestCheck, TargetSlot};
use tungstenite::WebSocket;
use tungstenite::handshake::MidHandshake;
use tungstenite::handshake::server::ServerHandshake;

pub(crate) type Handshake = MidHandshake<ServerHandshake<Socket, RequestCheck>>;

/// Where a connection stands.
pub(crate) enum Phase {
    /// The HTTP upgrade is in progress (`None` only while being driven).
    Handshaking {
        mid: Option<Box<Handshake>>,
        target: TargetSlot,
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
