//! [`Server`]: the Krmx core bound to TCP sockets on a mio [`Registry`].

use crate::connection::{Conn, Phase};
use crate::handle::{Handle, Job};
use crate::socket::Socket;
use krmx_core::{
    AuthDecision, AuthId, ConnectionId, Error, Event, Input, Krmx, KrmxConfig, Message, Output,
    OutputBatch, Status, Text, UserInfo, Violation,
};
use krmx_transport_shared::{RequestCheck, Step, TargetSlot, TransportConfig};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token, Waker};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use tungstenite::HandshakeError;
use tungstenite::handshake::server::ServerHandshake;
use tungstenite::protocol::WebSocketConfig;

/// Offset of the listener's token from the first token.
const LISTENER: usize = 0;
/// Offset of the waker's token from the first token.
const WAKER: usize = 1;
/// Offset of the first connection's token from the first token.
const FIRST_CONNECTION: usize = 2;
/// Low bits of a connection id that hold its slot, which bounds the connections open at once
/// to 2^24 (far beyond any process's file descriptors).
const SLOT_BITS: u32 = 24;

/// The slot a connection id names.
fn slot_of(id: ConnectionId) -> usize {
    (id.get() & ((1 << SLOT_BITS) - 1)) as usize
}

/// The Krmx server on mio: one thread, non-blocking sockets, tungstenite framing.
///
/// Use it turnkey with [`run`](crate::run), or embed it in a [`mio::Poll`] loop of your own:
/// it uses every token from the `first_token` given to [`register`](Self::register) up, so keep
/// your own tokens below it.
///
/// # Embedded run loop
///
/// ```no_run
/// use krmx_core::KrmxConfig;
/// use krmx_transport_mio::{Server, TransportConfig};
/// use mio::{Events, Poll, Token};
///
/// let mut poll = Poll::new()?;
/// let mut server = Server::bind("127.0.0.1:8082".parse().unwrap(), KrmxConfig::default(), TransportConfig::default())?;
/// server.register(poll.registry(), Token(100))?; // tokens 100.. are the server's
/// let mut events = Events::with_capacity(1024);
/// loop {
///     while let Some(event) = server.poll_event() {
///         println!("{event:?}"); // react: server.send(..), server.decide_auth(..), ...
///     }
///     let timeout = server.before_poll();
///     poll.poll(&mut events, timeout)?;
///     for event in &events {
///         if !server.handle_event(event) {
///             // one of your own tokens
///         }
///     }
///     server.handle_timeout();
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    krmx: Krmx,
    config: Arc<KrmxConfig>,
    transport: TransportConfig,
    ws_config: WebSocketConfig,
    listener: Option<TcpListener>,
    registry: Option<Registry>,
    first_token: usize,
    slots: Vec<Option<Conn>>,
    free_slots: Vec<usize>,
    by_id: HashMap<ConnectionId, usize>,
    next_serial: u64,
    /// Handshake and linger deadlines, in the order they were set (each kind has one fixed
    /// length, so the queue stays sorted).
    handshake_deadlines: VecDeque<(Instant, usize, u64)>,
    linger_deadlines: VecDeque<(Instant, usize, u64)>,
    dirty: Vec<usize>,
    events: VecDeque<Event>,
    jobs: mpsc::Receiver<Job>,
    job_sender: mpsc::Sender<Job>,
    waker: Option<Arc<Waker>>,
}

impl Server {
    /// Binds a listener on `addr` (port 0 picks a free one). The server listens once registered.
    ///
    /// # Errors
    /// The bind failed.
    pub fn bind(
        addr: SocketAddr,
        config: KrmxConfig,
        transport: TransportConfig,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let mut server = Self::without_listener(config, transport);
        server.listener = Some(listener);
        Ok(server)
    }

    /// A server without a listener of its own: connections come only through
    /// [`adopt`](Self::adopt) (an application that serves HTTP on its port hands them over).
    #[must_use]
    pub fn without_listener(config: KrmxConfig, transport: TransportConfig) -> Self {
        let ws_config = krmx_transport_shared::websocket_config(&config, &transport);
        let (job_sender, jobs) = mpsc::channel();
        Self {
            krmx: Krmx::new(config.clone()),
            config: Arc::new(config),
            transport,
            ws_config,
            listener: None,
            registry: None,
            first_token: 0,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            next_serial: 0,
            handshake_deadlines: VecDeque::new(),
            linger_deadlines: VecDeque::new(),
            dirty: Vec::new(),
            events: VecDeque::new(),
            jobs,
            job_sender,
            waker: None,
        }
    }

    /// The listener's address, if the server has one.
    ///
    /// # Errors
    /// The socket could not tell.
    pub fn local_addr(&self) -> io::Result<Option<SocketAddr>> {
        self.listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()
    }

    /// Registers the listener and the cross-thread waker with `registry`, using tokens from
    /// `first_token` up, and starts listening (the `listen` event is queued).
    ///
    /// mio allows one [`Waker`] per poll and this registers it: to wake your own loop from
    /// another thread, use [`Handle::wake`].
    ///
    /// # Errors
    /// Registration failed, or the server was registered before.
    pub fn register(&mut self, registry: &Registry, first_token: Token) -> io::Result<()> {
        if self.registry.is_some() {
            return Err(io::Error::other("the server is registered already"));
        }
        self.first_token = first_token.0;
        let registry = registry.try_clone()?;
        let port = match &mut self.listener {
            Some(listener) => {
                registry.register(
                    listener,
                    Token(self.first_token + LISTENER),
                    Interest::READABLE,
                )?;
                listener.local_addr()?.port()
            }
            None => 0,
        };
        self.waker = Some(Arc::new(Waker::new(
            &registry,
            Token(self.first_token + WAKER),
        )?));
        self.registry = Some(registry);
        let now = Instant::now();
        self.feed(now, Input::Start).map_err(io::Error::other)?;
        self.feed(now, Input::Listen { port })
            .map_err(io::Error::other)?;
        Ok(())
    }

    /// A thread-safe handle through which other threads send, broadcast, kick and answer
    /// authentications. Available once registered.
    #[must_use]
    pub fn handle(&self) -> Option<Handle> {
        self.waker
            .as_ref()
            .map(|waker| Handle::new(self.job_sender.clone(), Arc::clone(waker)))
    }

    /// The next event for the application. Drain it after every
    /// [`handle_event`](Self::handle_event), [`handle_timeout`](Self::handle_timeout) and
    /// command.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Writes what is queued for every connection, and returns how long the application's
    /// `poll` may sleep. Call right before every `poll`.
    pub fn before_poll(&mut self) -> Option<Duration> {
        self.flush_dirty();
        let now = Instant::now();
        let deadlines = [
            self.krmx.poll_timeout(),
            self.handshake_deadlines.front().map(|(at, ..)| *at),
            self.linger_deadlines.front().map(|(at, ..)| *at),
        ];
        deadlines
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Handles one readiness event. Returns `false` when the token is not the server's.
    pub fn handle_event(&mut self, event: &mio::event::Event) -> bool {
        let token = event.token().0;
        if token < self.first_token || self.registry.is_none() {
            return false;
        }
        match token - self.first_token {
            LISTENER => self.accept_all(),
            WAKER => self.run_jobs(),
            offset => {
                let slot = offset - FIRST_CONNECTION;
                if slot >= self.slots.len() {
                    return false;
                }
                if event.is_writable() || event.is_write_closed() {
                    self.flush_slot(slot);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read_slot(slot);
                }
            }
        }
        true
    }

    /// Fires what is due: core timers (auth timeouts, pings, inactivity), handshake timeouts
    /// and close lingers. Harmless when nothing is due.
    pub fn handle_timeout(&mut self) {
        let now = Instant::now();
        let _ = self.feed(now, Input::Tick);
        while let Some(&(at, slot, serial)) = self.handshake_deadlines.front() {
            if at > now {
                break;
            }
            self.handshake_deadlines.pop_front();
            let handshaking = |server: &Self| {
                server.is_phase(slot, serial, |p| matches!(p, Phase::Handshaking { .. }))
            };
            if handshaking(self) {
                // A request may be waiting unread while the loop was busy (its readiness event
                // not polled yet): drive the handshake once before giving up on it.
                self.read_slot(slot);
                if handshaking(self) {
                    tracing::debug!(slot, "handshake timed out");
                    self.drop_slot(slot);
                }
            }
        }
        while let Some(&(at, slot, serial)) = self.linger_deadlines.front() {
            if at > now {
                break;
            }
            self.linger_deadlines.pop_front();
            if self.is_phase(slot, serial, |phase| matches!(phase, Phase::Closing { .. })) {
                self.drop_slot(slot);
            }
        }
    }

    /// Whether the server closed and every connection is gone: the loop may end.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.krmx.status() == Status::Closed && self.by_id.is_empty() && self.open_slots() == 0
    }

    /// The server status.
    #[must_use]
    pub fn status(&self) -> Status {
        self.krmx.status()
    }

    /// Every user in join order.
    #[must_use]
    pub fn users(&self) -> Vec<UserInfo> {
        self.krmx.users().collect()
    }

    /// The core state machine, for queries.
    #[must_use]
    pub fn krmx(&self) -> &Krmx {
        &self.krmx
    }

    /// Feeds any core input now (server commands, auth decisions, close). [`Input::Close`]
    /// does all that [`close`](Self::close) does.
    ///
    /// # Errors
    /// The core's error, for example `cannot kick a user that does not exist`.
    pub fn input(&mut self, input: Input) -> Result<(), Error> {
        if matches!(input, Input::Close) {
            return self.close();
        }
        self.feed(Instant::now(), input)
    }

    /// Joins an unlinked user.
    ///
    /// # Errors
    /// As [`Input::Join`].
    pub fn join(&mut self, username: &str) -> Result<(), Error> {
        self.input(Input::Join {
            username: username.to_owned(),
        })
    }

    /// The user leaves (unlinked first if linked).
    ///
    /// # Errors
    /// As [`Input::Kick`].
    pub fn kick(&mut self, username: &str) -> Result<(), Error> {
        self.input(Input::Kick {
            username: username.to_owned(),
        })
    }

    /// Unlinks the user's connection.
    ///
    /// # Errors
    /// As [`Input::Unlink`].
    pub fn unlink(&mut self, username: &str) -> Result<(), Error> {
        self.input(Input::Unlink {
            username: username.to_owned(),
        })
    }

    /// Sends a message to one linked user.
    ///
    /// # Errors
    /// As [`Input::Send`].
    pub fn send(&mut self, username: &str, message: Message) -> Result<(), Error> {
        self.input(Input::Send {
            username: username.to_owned(),
            message,
        })
    }

    /// Sends a message to every linked user but `skip`.
    ///
    /// # Errors
    /// As [`Input::Broadcast`].
    pub fn broadcast(&mut self, message: Message, skip: Option<&str>) -> Result<(), Error> {
        self.input(Input::Broadcast {
            message,
            skip: skip.map(str::to_owned),
        })
    }

    /// Answers a pending authentication.
    pub fn decide_auth(&mut self, id: AuthId, decision: AuthDecision) {
        let _ = self.input(Input::AuthDecided { id, decision });
    }

    /// Closes gracefully: every user leaves, every connection gets a close frame, the `close`
    /// event is queued. Keep polling until [`is_finished`](Self::is_finished) so the close frames
    /// go out.
    ///
    /// # Errors
    /// As [`Input::Close`] (not starting or listening).
    pub fn close(&mut self) -> Result<(), Error> {
        let result = self.feed(Instant::now(), Input::Close);
        if result.is_ok() {
            if let (Some(listener), Some(registry)) = (&mut self.listener, &self.registry) {
                let _ = registry.deregister(listener);
            }
            self.listener = None;
            // Connections still in their HTTP upgrade are no Krmx connections yet: drop them
            // now instead of keeping the server from finishing until their handshake timeout.
            let upgrading: Vec<usize> = (0..self.slots.len())
                .filter(|&slot| {
                    matches!(
                        self.slots.get(slot),
                        Some(Some(Conn {
                            phase: Phase::Handshaking { .. },
                            ..
                        }))
                    )
                })
                .collect();
            for slot in upgrading {
                self.drop_slot(slot);
            }
        }
        result
    }

    /// Takes over a connection accepted by the application's own HTTP server, with the bytes of
    /// the request it already read (empty if none): the upgrade continues here.
    ///
    /// # Errors
    /// The server is not registered, or registering the stream failed.
    pub fn adopt(&mut self, stream: TcpStream, already_read: Vec<u8>) -> io::Result<()> {
        if self.registry.is_none() {
            return Err(io::Error::other(
                "register the server before adopting connections",
            ));
        }
        self.start_handshake(stream, already_read)
    }

    // ----- internals -----

    /// Feeds the core and carries out its outputs.
    fn feed(&mut self, now: Instant, input: Input) -> Result<(), Error> {
        let result = self.krmx.handle_input(now, input);
        self.carry_out(now);
        result
    }

    /// Carries out every queued core output; a connection whose buffer overflows is reported
    /// to the core as a slow consumer, whose outputs are carried out in turn.
    fn carry_out(&mut self, now: Instant) {
        let mut slow = Vec::new();
        loop {
            while let Some(batch) = self.krmx.poll_output_batch() {
                match batch {
                    OutputBatch::Broadcast { text, to } => {
                        for to in to {
                            self.send_text(to, &text, &mut slow);
                        }
                    }
                    OutputBatch::One(Output::Send { to, text }) => {
                        self.send_text(to, &text, &mut slow);
                    }
                    OutputBatch::One(Output::Ping { to }) => {
                        if let Some((slot, socket)) = self.open_socket(to) {
                            socket.outbox.push_ping();
                            self.mark_dirty(slot);
                        }
                    }
                    OutputBatch::One(Output::Close { to, code, reason }) => {
                        self.start_closing(now, to, code.0, reason)
                    }
                    OutputBatch::One(Output::Event(event)) => self.events.push_back(event),
                    OutputBatch::One(_) => {}
                }
            }
            if slow.is_empty() {
                break;
            }
            for conn in slow.drain(..) {
                if self.by_id.contains_key(&conn) {
                    tracing::debug!(%conn, "slow consumer");
                    let _ = self.krmx.handle_input(
                        now,
                        Input::Violation {
                            conn,
                            violation: Violation::SlowConsumer,
                        },
                    );
                }
            }
        }
    }

    /// Queues a text frame for `to`; a connection over its bound even after a write is added
    /// to `slow`.
    fn send_text(&mut self, to: ConnectionId, text: &Text, slow: &mut Vec<ConnectionId>) {
        let limit = self.config.max_buffered_bytes_value();
        if let Some((slot, socket)) = self.open_socket(to) {
            socket.outbox.push_text_frame(text);
            // Over the limit too: a burst within one turn is not a slow consumer while the
            // kernel still takes the bytes.
            if socket.outbox.is_batch_full() || socket.outbox.buffered() > limit {
                // A write error shows again at the end-of-turn flush, which drops the
                // connection.
                let _ = socket.flush_outbox();
            }
            if socket.outbox.buffered() > limit {
                slow.push(to);
            }
            self.mark_dirty(slot);
        }
    }

    /// The slot and socket of the open connection `id`: the slot is part of the id, so the hot
    /// path of a broadcast does no lookup.
    fn open_socket(&mut self, id: ConnectionId) -> Option<(usize, &mut Socket)> {
        let slot = slot_of(id);
        match self.slots.get_mut(slot)?.as_mut()?.phase {
            Phase::Open {
                ref mut ws,
                id: open,
            } if open == id => Some((slot, ws.get_mut())),
            _ => None,
        }
    }

    fn mark_dirty(&mut self, slot: usize) {
        if let Some(Some(conn)) = self.slots.get_mut(slot) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    /// Queues a close frame; the core has forgotten the connection already.
    fn start_closing(&mut self, now: Instant, id: ConnectionId, code: u16, reason: &str) {
        let Some(slot) = self.by_id.remove(&id) else {
            return;
        };
        let Some(Some(conn)) = self.slots.get_mut(slot) else {
            return;
        };
        let phase = std::mem::replace(
            &mut conn.phase,
            Phase::Handshaking {
                mid: None,
                target: TargetSlot::default(),
            },
        );
        let Phase::Open { mut ws, .. } = phase else {
            conn.phase = phase;
            return;
        };
        ws.get_mut().outbox.push_close(code, reason);
        conn.phase = Phase::Closing { ws };
        let serial = conn.serial;
        self.linger_deadlines
            .push_back((now + self.transport.close_linger_value(), slot, serial));
        self.mark_dirty(slot);
    }

    fn is_phase(&self, slot: usize, serial: u64, test: impl Fn(&Phase) -> bool) -> bool {
        matches!(self.slots.get(slot), Some(Some(conn)) if conn.serial == serial && test(&conn.phase))
    }

    fn open_slots(&self) -> usize {
        self.slots.len() - self.free_slots.len()
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    tracing::trace!(%peer, "accepted");
                    if let Err(error) = self.start_handshake(stream, Vec::new()) {
                        tracing::warn!(%error, "could not register a connection");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // Out of file descriptors and the like: try again on the next event.
                    tracing::warn!(%error, "accept failed");
                    return;
                }
            }
        }
    }

    fn start_handshake(&mut self, mut stream: TcpStream, already_read: Vec<u8>) -> io::Result<()> {
        let Some(registry) = &self.registry else {
            return Err(io::Error::other("not registered"));
        };
        let _ = stream.set_nodelay(true);
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None if self.slots.len() < 1 << SLOT_BITS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(io::Error::other("too many connections")),
        };
        let token = Token(self.first_token + FIRST_CONNECTION + slot);
        if let Err(error) =
            registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            self.free_slots.push(slot);
            return Err(error);
        }
        let check = RequestCheck::new(Arc::clone(&self.config));
        let target = check.target_slot();
        let handshake = ServerHandshake::start(
            Socket::new(stream, already_read),
            check,
            Some(self.ws_config),
        );
        let serial = self.next_serial;
        self.next_serial += 1;
        if let Some(entry) = self.slots.get_mut(slot) {
            *entry = Some(Conn {
                serial,
                phase: Phase::Handshaking {
                    mid: Some(Box::new(handshake)),
                    target,
                },
                dirty: false,
            });
        }
        self.handshake_deadlines.push_back((
            Instant::now() + self.transport.handshake_timeout_value(),
            slot,
            serial,
        ));
        // Bytes may be there already (or handed over).
        self.read_slot(slot);
        Ok(())
    }

    fn read_slot(&mut self, slot: usize) {
        let Some(Some(conn)) = self.slots.get_mut(slot) else {
            return;
        };
        match &mut conn.phase {
            Phase::Handshaking { mid, target } => {
                let Some(handshake) = mid.take() else {
                    return;
                };
                let target = target.clone();
                match handshake.handshake() {
                    Ok(ws) => {
                        self.opened(slot, ws, target.take());
                    }
                    Err(HandshakeError::Interrupted(again)) => {
                        *mid = Some(Box::new(again));
                    }
                    Err(HandshakeError::Failure(error)) => {
                        tracing::debug!(%error, "handshake failed");
                        self.drop_slot(slot);
                    }
                }
            }
            Phase::Open { .. } => self.read_messages(slot),
            Phase::Closing { ws } => {
                if ws.get_mut().discard_input() {
                    self.drop_slot(slot);
                }
            }
        }
    }

    fn opened(&mut self, slot: usize, ws: tungstenite::WebSocket<Socket>, target: String) {
        let id = ConnectionId::new(self.next_serial_id(slot));
        let Some(Some(conn)) = self.slots.get_mut(slot) else {
            return;
        };
        conn.phase = Phase::Open {
            ws: Box::new(ws),
            id,
        };
        self.by_id.insert(id, slot);
        self.mark_dirty(slot);
        let _ = self.feed(Instant::now(), Input::ConnectionOpened { conn: id, target });
        self.read_messages(slot);
    }

    /// The connection id: the slot's serial (unique for the server's life) above the slot.
    fn next_serial_id(&self, slot: usize) -> u64 {
        match self.slots.get(slot) {
            Some(Some(conn)) => (conn.serial << SLOT_BITS) | slot as u64,
            _ => u64::MAX,
        }
    }

    /// Reads every complete message the socket has and feeds each to the core.
    fn read_messages(&mut self, slot: usize) {
        loop {
            let Some(Some(conn)) = self.slots.get_mut(slot) else {
                return;
            };
            let Phase::Open { ws, id } = &mut conn.phase else {
                return;
            };
            let id = *id;
            let step = krmx_transport_shared::step(ws.read(), id);
            let socket = ws.get_mut();
            let mut buffered = socket.outbox.buffered();
            let limit = self.config.max_buffered_bytes_value();
            if buffered > limit {
                // tungstenite answers every ping with a pong, written into the outbox while
                // reading: a peer that floods pings and does not read would grow it without
                // bound. Past the limit it is a slow consumer like any other.
                let _ = socket.flush_outbox();
                buffered = socket.outbox.buffered();
            }
            if buffered > 0 {
                self.mark_dirty(slot);
            }
            if buffered > limit && self.by_id.contains_key(&id) {
                tracing::debug!(%id, "slow consumer (pongs)");
                let violation = Violation::SlowConsumer;
                let _ = self.feed(
                    Instant::now(),
                    Input::Violation {
                        conn: id,
                        violation,
                    },
                );
            }
            match step {
                Step::Input(input) => {
                    let _ = self.feed(Instant::now(), input);
                }
                Step::Nothing => {}
                Step::WouldBlock => return,
                Step::PeerClosed => {
                    // tungstenite queued its close reply, to be written on its next call: write
                    // it into the outbox now, as reading stops here.
                    if let Some(Some(Conn {
                        phase: Phase::Open { ws, .. },
                        ..
                    })) = self.slots.get_mut(slot)
                    {
                        let _ = ws.flush();
                    }
                    // Tell the core first (the user is unlinked), then let the close reply out.
                    self.by_id.remove(&id);
                    let _ = self.feed(Instant::now(), Input::ConnectionClosed { conn: id });
                    self.enter_closing(slot);
                    return;
                }
                Step::Gone => {
                    self.by_id.remove(&id);
                    let _ = self.feed(Instant::now(), Input::ConnectionClosed { conn: id });
                    self.drop_slot(slot);
                    return;
                }
            }
        }
    }

    /// Moves an open connection whose peer started the close to the closing phase.
    fn enter_closing(&mut self, slot: usize) {
        let Some(Some(conn)) = self.slots.get_mut(slot) else {
            return;
        };
        let phase = std::mem::replace(
            &mut conn.phase,
            Phase::Handshaking {
                mid: None,
                target: TargetSlot::default(),
            },
        );
        match phase {
            Phase::Open { ws, .. } => conn.phase = Phase::Closing { ws },
            other => conn.phase = other,
        }
        let serial = conn.serial;
        self.linger_deadlines.push_back((
            Instant::now() + self.transport.close_linger_value(),
            slot,
            serial,
        ));
        self.mark_dirty(slot);
    }

    fn flush_dirty(&mut self) {
        let mut batch = std::mem::take(&mut self.dirty);
        while !batch.is_empty() {
            for &slot in &batch {
                if let Some(Some(conn)) = self.slots.get_mut(slot) {
                    conn.dirty = false;
                }
                self.flush_slot(slot);
            }
            batch.clear();
            // A failed write drops its connection and unlinks its user, which queues messages
            // for others and marks them dirty again: flush those too. (Dropping these marks
            // would leave those connections flagged dirty but out of the list, never written
            // again.)
            std::mem::swap(&mut batch, &mut self.dirty);
        }
        // Keep the allocation for the next round.
        self.dirty = batch;
    }

    /// Writes what the socket takes. A closing connection whose bytes are all out is shut down
    /// for writing; a failed write drops the connection.
    fn flush_slot(&mut self, slot: usize) {
        let Some(Some(conn)) = self.slots.get_mut(slot) else {
            return;
        };
        let closing = matches!(conn.phase, Phase::Closing { .. });
        let Some(socket) = conn.socket_mut() else {
            return;
        };
        match socket.flush_outbox() {
            Ok(true) if closing => {
                let _ = socket.stream.shutdown(std::net::Shutdown::Write);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, slot, "write failed");
                self.fail_slot(slot);
            }
        }
    }

    /// The socket broke: the core learns the connection is gone, the slot is freed.
    fn fail_slot(&mut self, slot: usize) {
        if let Some(Some(Conn {
            phase: Phase::Open { id, .. },
            ..
        })) = self.slots.get(slot)
        {
            let id = *id;
            self.by_id.remove(&id);
            let _ = self.feed(Instant::now(), Input::ConnectionClosed { conn: id });
        }
        self.drop_slot(slot);
    }

    /// Frees a slot and closes its socket. The core must not know the connection any more.
    fn drop_slot(&mut self, slot: usize) {
        let Some(entry) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(mut conn) = entry.take() else {
            return;
        };
        if let Phase::Open { id, .. } = &conn.phase {
            let id = *id;
            if self.by_id.remove(&id).is_some() {
                let _ = self
                    .krmx
                    .handle_input(Instant::now(), Input::ConnectionClosed { conn: id });
            }
        }
        if let (Some(registry), Some(socket)) = (&self.registry, conn.socket_mut()) {
            let _ = registry.deregister(&mut socket.stream);
        }
        self.free_slots.push(slot);
        self.carry_out(Instant::now());
    }

    fn run_jobs(&mut self) {
        while let Ok(job) = self.jobs.try_recv() {
            job(self);
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("status", &self.krmx.status())
            .field("connections", &self.open_slots())
            .finish_non_exhaustive()
    }
}
