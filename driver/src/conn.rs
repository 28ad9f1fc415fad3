//! [`Conn`]: one connection slot of the driver's table, and its [`Phase`].

use crate::backlog::Backlog;
use crate::handshake::{RequestCheck, TargetSlot};
use crate::outbox::Outbox;
use crate::socket::Socket;
use crate::stream::Stream;
use krmx_core::ConnectionId;
use std::time::Instant;
use tungstenite::WebSocket;
use tungstenite::handshake::MidHandshake;
use tungstenite::handshake::server::ServerHandshake;

/// A WebSocket upgrade in progress.
pub(crate) type Handshake<S> = MidHandshake<ServerHandshake<Socket<S>, RequestCheck>>;

/// Where a connection is in its life.
pub(crate) enum Phase<S: Stream> {
    /// Its HTTP request head is being read (`head`, so far): an upgrade goes on to
    /// `Handshaking`, any other request is answered over plain HTTP. `socket` is only `None`
    /// while the head is being routed.
    Requesting {
        socket: Option<Box<Socket<S>>>,
        head: Vec<u8>,
    },
    /// A plain HTTP request was answered: the outbox drains, then the stream is shut down; the
    /// linger deadline ends it either way.
    Answered { socket: Box<Socket<S>> },
    /// The HTTP upgrade is under way; the core does not know the connection yet. `mid` is only
    /// `None` while the handshake is being driven.
    Handshaking {
        mid: Option<Box<Handshake<S>>>,
        target: TargetSlot,
    },
    /// Known to the core, under `id`.
    Open {
        ws: Box<WebSocket<Socket<S>>>,
        id: ConnectionId,
    },
    /// A close frame was sent or received; the core has forgotten the connection. The outbox
    /// drains, then the stream is shut down; the linger deadline ends it either way.
    Closing { ws: Box<WebSocket<Socket<S>>> },
}

/// One connection in the driver's table.
pub(crate) struct Conn<S: Stream> {
    /// Unique for the driver's life; with the slot, it makes the connection's key.
    pub(crate) serial: u64,
    pub(crate) phase: Phase<S>,
    /// Everything the connection sends, in order (kept here, beside the phase, so a delivery
    /// touches no more than the table entry).
    pub(crate) outbox: Outbox,
    /// In the driver's list of connections to write.
    pub(crate) dirty: bool,
    /// A write would have blocked: the pump was asked to report writability.
    pub(crate) awaiting_writable: bool,
    /// Shut down for writing after the close went out.
    pub(crate) shut: bool,
    /// The outbox's size as last added to the driver's total.
    pub(crate) accounted: usize,
    /// The progress of what the outbox holds (the slow-consumer rule).
    pub(crate) backlog: Backlog,
    /// When the driver checks the backlog next, if a check is scheduled.
    pub(crate) check_at: Option<Instant>,
    /// Found a slow consumer: its unstarted frames were dropped and nothing more is queued
    /// until the core closes it.
    pub(crate) condemned: bool,
    /// When its last ping, which went out, is judged unless a pong was read since.
    pub(crate) ping_due: Option<Instant>,
    /// The room its core is in (0, the default world, until it is open).
    pub(crate) room: usize,
}

impl<S: Stream> Conn<S> {
    /// A connection starting its upgrade.
    pub(crate) fn new(serial: u64, phase: Phase<S>) -> Self {
        Self {
            serial,
            phase,
            outbox: Outbox::default(),
            dirty: false,
            awaiting_writable: false,
            shut: false,
            accounted: 0,
            backlog: Backlog::default(),
            check_at: None,
            condemned: false,
            ping_due: None,
            room: 0,
        }
    }

    /// The core's id of the connection while it is open.
    pub(crate) fn open_id(&self) -> Option<ConnectionId> {
        match self.phase {
            Phase::Open { id, .. } => Some(id),
            _ => None,
        }
    }
}

impl<S: Stream> Phase<S> {
    /// Moves an open connection to closing and gives its WebSocket; any other phase is left as
    /// it is (`None`).
    pub(crate) fn begin_closing(&mut self) -> Option<&mut WebSocket<Socket<S>>> {
        if !matches!(self, Self::Open { .. }) {
            return None;
        }
        let upgrading = Self::Handshaking {
            mid: None,
            target: TargetSlot::default(),
        };
        if let Self::Open { ws, .. } = std::mem::replace(self, upgrading) {
            *self = Self::Closing { ws };
        }
        match self {
            Self::Closing { ws } => Some(ws),
            _ => None,
        }
    }

    /// The socket, except while an upgrade is being driven or a request routed.
    pub(crate) fn socket_mut(&mut self) -> Option<&mut Socket<S>> {
        match self {
            Phase::Requesting { socket, .. } => socket.as_deref_mut(),
            Phase::Answered { socket } => Some(socket),
            Phase::Handshaking { mid, .. } => mid.as_mut().map(|mid| mid.get_mut().get_mut()),
            Phase::Open { ws, .. } | Phase::Closing { ws } => Some(ws.get_mut()),
        }
    }
}
