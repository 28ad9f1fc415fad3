//! [`Driver`]: every connection rule between the core and the sockets, written once, sans-IO.
//! A runtime pump hands it streams and readiness facts with the time of its turn, and asks it
//! what to wait for.

use crate::backlog::{Broken, Limits, Verdict};
use crate::config::TransportConfig;
use crate::conn::{Conn, Phase};
use crate::handle::{Command, CommandError, Handle, Wake};
use crate::handshake::{RequestCheck, TargetSlot};
use crate::http;
use crate::link::Link;
use crate::metrics::{Closer, Metrics};
use crate::monitor::{self, EventLog, Route};
use crate::outbox::Outbox;
use crate::reading::{Step, step};
use crate::rooms::{RoomTable, RoomsConfig};
use crate::socket::Socket;
use crate::stream::Stream;
use crate::tally::Tally;
use crate::tls::{TlsStream, tls_failure};
use krmx_core::{
    ConnectionId, Error, Event, Input, Krmx, KrmxConfig, Output, Status, Text, UserInfo, Violation,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::Read;
use std::net::TcpStream;
use std::sync::{Arc, mpsc};
use std::time::Instant;
use tungstenite::HandshakeError;
use tungstenite::handshake::server::ServerHandshake;
use tungstenite::protocol::WebSocketConfig;

/// While the server closes, the users' leaves are produced only while the connections hold
/// less than this in all: they go out as fast as the connections take them, and memory stays
/// bounded however many users leave.
const CLOSE_PACE_BYTES: usize = 4 << 20;

/// While the server closes, at most this many frames of the users' leaves are produced per
/// turn of the pump (the rest waits for the next turn): sockets that take everything at once
/// must not keep one turn busy with the whole close, which is quadratic in the users, while
/// the shutdown grace, reads and commands wait.
const CLOSE_TURN_FRAMES: usize = 1 << 16;

/// Past the budget, a connection whose socket took bytes within this window is draining its
/// backlog: it is closed only after the connections that are not (see `enforce_budget`).
const DRAIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// A connection holding bytes when the budget is passed, in the order it is closed in
/// (greatest first): already closing, taking nothing, bytes held, stalled the longest, slot.
type Holder = (bool, bool, usize, Reverse<Option<Instant>>, usize);

/// Low bits of a connection key that hold its slot, which bounds the connections open at once
/// to 2^24 (far beyond any process's file descriptors).
const SLOT_BITS: u32 = 24;

/// A connection in the driver's table: its slot (low bits, see [`slot`](Self::slot)) and a
/// serial unique for the driver's life. Once the upgrade succeeded, the core knows the
/// connection under the same number as its [`ConnectionId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnKey(u64);

impl ConnKey {
    fn new(serial: u64, slot: usize) -> Self {
        Self((serial << SLOT_BITS) | slot as u64)
    }

    /// The slot: small, dense and reused once the connection is gone (a mio token, an index).
    #[must_use]
    pub fn slot(self) -> usize {
        (self.0 & ((1 << SLOT_BITS) - 1)) as usize
    }

    fn serial(self) -> u64 {
        self.0 >> SLOT_BITS
    }

    fn of(id: ConnectionId) -> Self {
        Self(id.get())
    }
}

/// How the pump learns of readiness, which decides what the driver asks it to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Every stream is registered once for reading and writing and every new readiness is
    /// reported (mio's edge-triggered registration): the driver asks for no waits.
    Edge,
    /// The pump waits only when asked ([`Io::WaitReadable`], [`Io::WaitWritable`]), as with
    /// async-io's `readable()` and `writable()`.
    OnRequest,
}

/// What the driver asks of its runtime pump, from [`Driver::poll_io`].
#[derive(Debug)]
pub enum Io {
    /// Report when the connection is readable again ([`Readiness::OnRequest`] only).
    WaitReadable(ConnKey),
    /// Report when the connection is writable again ([`Readiness::OnRequest`] only).
    WaitWritable(ConnKey),
    /// The connection is gone and its stream dropped: forget what the pump keeps for it.
    Released(ConnKey),
    /// The server closed: stop accepting and drop the listener.
    StopAccepting,
    /// A [`Handle::adopt`]ed stream, to be made non-blocking, registered and handed to
    /// [`Driver::adopt`].
    Adopt {
        /// The stream.
        stream: TcpStream,
        /// The bytes of its request read already.
        already_read: Vec<u8>,
    },
}

/// Why [`Driver::accept`] refused a stream (it is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The server closed.
    NotAccepting,
    /// 2^24 connections are open.
    TableFull,
    /// The TLS session could not be started.
    Tls,
}

/// The connection driver: owns the [`Krmx`] core, the connection table with each
/// connection's phase (upgrade, open, closing), its outbox and its deadlines, and every
/// per-connection rule (slow consumers, pong accounting, close replies, handshake timeouts,
/// close lingers). It touches no clock and no reactor: each call takes `now`, read once per
/// turn by the pump, and the streams are non-blocking.
///
/// A pump's turn:
/// 1. [`poll_event`](Self::poll_event) until `None`, reacting to each (commands on the
///    driver); `None` means every event is out and every queued byte was offered to its
///    stream, so nothing the turn produced is left behind.
/// 2. [`poll_io`](Self::poll_io) until `None`, carrying out each request.
/// 3. Wait for readiness, a [`Wake`], or [`poll_timeout`](Self::poll_timeout).
/// 4. With the new `now`: [`accept`](Self::accept), [`readable`](Self::readable),
///    [`writable`](Self::writable), [`run_commands`](Self::run_commands), then
///    [`tick`](Self::tick).
pub struct Driver<S: Stream> {
    /// The Krmx worlds: the default one, and the rooms when they are on.
    rooms: RoomTable,
    /// The port the server listens on (given to every room's core).
    port: u16,
    /// The server's close began (every room closes).
    closing: bool,
    /// Every room's core closed.
    all_closed: bool,
    config: Arc<KrmxConfig>,
    transport: TransportConfig,
    ws_config: WebSocketConfig,
    readiness: Readiness,
    slots: Vec<Option<Conn<S>>>,
    free_slots: Vec<usize>,
    next_serial: u64,
    /// Handshake and linger deadlines in the order they were set (each kind has one fixed
    /// length, so each queue stays sorted).
    handshake_deadlines: VecDeque<(Instant, ConnKey)>,
    linger_deadlines: VecDeque<(Instant, ConnKey)>,
    /// Slots with bytes queued since they were last written.
    dirty: Vec<usize>,
    /// Slow consumers found (their unstarted frames dropped), reported to the core after the
    /// outputs at hand.
    slow: Vec<ConnectionId>,
    /// The slow-consumer limits, and the budget across all connections.
    limits: Limits,
    budget: usize,
    /// Bytes queued in every outbox, as last settled ([`Conn::accounted`]).
    buffered_total: usize,
    /// Backlog checks, earliest first; an entry whose time is not its connection's
    /// [`Conn::check_at`] any more is stale.
    backlog_checks: BinaryHeap<Reverse<(Instant, ConnKey)>>,
    /// Connections whose ping left their outbox, reported to the core after the writes.
    pings_sent: Vec<ConnectionId>,
    /// When the pings that went out are judged (a ping interval after they left), in that
    /// order; an entry whose connection was answered or closed since is stale.
    ping_checks: VecDeque<(Instant, ConnKey)>,
    /// Reading what the peers of unanswered pings sent, before a timer fires.
    reading_before_timers: bool,
    /// When a closing server drops the connections still open.
    grace_deadline: Option<Instant>,
    /// When the driver was created (the health endpoint's uptime).
    started: Instant,
    /// Running counts for [`metrics`](Self::metrics).
    tally: Tally,
    /// The grace passed: the close is settled without pacing.
    settling: bool,
    /// Frames of the close still allowed in this turn (see [`CLOSE_TURN_FRAMES`]).
    close_turn_frames: usize,
    /// Events for the application, with their room (`None`: the default world).
    events: VecDeque<(Option<Arc<str>>, Event)>,
    /// The recent events, for the monitor (kept only when it is on).
    monitor_log: EventLog,
    io: VecDeque<Io>,
    accepting: bool,
    /// The time of the pump's current turn.
    now: Instant,
    commands: mpsc::Receiver<Command>,
    command_sender: mpsc::Sender<Command>,
    waker: Option<Arc<dyn Wake>>,
}

impl<S: Stream> Driver<S> {
    /// A driver for a server listening on `port` (0 when it has no listener of its own): the
    /// core is started at `now` and the `listening` event queued.
    #[must_use]
    pub fn new(
        now: Instant,
        port: u16,
        config: KrmxConfig,
        transport: TransportConfig,
        readiness: Readiness,
    ) -> Self {
        let ws_config = crate::websocket_config(&config, &transport);
        let (command_sender, commands) = mpsc::channel();
        let limits = Limits::of(&config);
        let budget = config.buffered_budget_value();
        let mut driver = Self {
            rooms: RoomTable::new(Krmx::new(config.clone())),
            port,
            closing: false,
            all_closed: false,
            config: Arc::new(config),
            transport,
            ws_config,
            readiness,
            slots: Vec::new(),
            free_slots: Vec::new(),
            next_serial: 0,
            handshake_deadlines: VecDeque::new(),
            linger_deadlines: VecDeque::new(),
            dirty: Vec::new(),
            slow: Vec::new(),
            limits,
            budget,
            buffered_total: 0,
            backlog_checks: BinaryHeap::new(),
            pings_sent: Vec::new(),
            ping_checks: VecDeque::new(),
            reading_before_timers: false,
            grace_deadline: None,
            started: now,
            tally: Tally::default(),
            settling: false,
            close_turn_frames: CLOSE_TURN_FRAMES,
            events: VecDeque::new(),
            monitor_log: EventLog::default(),
            io: VecDeque::new(),
            accepting: true,
            now,
            commands,
            command_sender,
            waker: None,
        };
        for input in [Input::Start, Input::Listen { port }] {
            if let Err(error) = driver.feed(0, input) {
                // A new core accepts both; anything else is a bug worth seeing.
                debug_assert!(false, "a new core refused to start: {error}");
                tracing::error!(%error, "a new core refused to start");
            }
        }
        driver
    }

    /// The time of the pump's current turn (of its last call that took `now`).
    #[must_use]
    pub fn turn_time(&self) -> Instant {
        self.now
    }

    /// Starts a turn at `now` without a fact: commands through [`Commands`](crate::Commands)
    /// then run at that time.
    pub fn begin_turn(&mut self, now: Instant) {
        self.advance_to(now);
    }

    /// Sets how [`Handle`]s wake the pump. Handles exist once it is set.
    pub fn set_waker(&mut self, waker: Arc<dyn Wake>) {
        self.waker = Some(waker);
    }

    /// A handle for commands from other threads and tasks; `None` before
    /// [`set_waker`](Self::set_waker).
    #[must_use]
    pub fn handle(&self) -> Option<Handle> {
        self.waker
            .as_ref()
            .map(|waker| Handle::new(self.command_sender.clone(), Arc::clone(waker)))
    }

    /// The core, for queries.
    #[must_use]
    pub fn krmx(&self) -> &Krmx {
        self.default_krmx()
    }

    /// The default world's core (always there).
    fn default_krmx(&self) -> &Krmx {
        match self.rooms.default_krmx() {
            Some(krmx) => krmx,
            // The table is made with the default world and never drops it.
            None => unreachable_default(),
        }
    }

    /// The server status.
    #[must_use]
    pub fn status(&self) -> Status {
        if self.all_closed {
            Status::Closed
        } else if self.closing {
            Status::Closing
        } else {
            self.default_krmx().status()
        }
    }

    /// Every user in join order.
    #[must_use]
    pub fn users(&self) -> Vec<UserInfo> {
        self.default_krmx().users().collect()
    }

    /// The core of room `name`, if it is open (rooms on).
    #[must_use]
    pub fn room(&self, name: &str) -> Option<&Krmx> {
        let index = self.rooms.find(name)?;
        self.rooms.get(index).map(|room| &room.krmx)
    }

    /// Every open room with its figures, in the order they were opened (rooms on).
    #[must_use]
    pub fn rooms(&self) -> Vec<RoomInfo> {
        self.rooms
            .iter()
            .filter_map(|room| {
                let name = room.name.as_ref()?;
                let (mut users, mut linked_users) = (0, 0);
                for user in room.krmx.users() {
                    users += 1;
                    linked_users += usize::from(user.is_linked);
                }
                Some(RoomInfo {
                    name: name.to_string(),
                    users,
                    linked_users,
                    connections: room.krmx.connections().count(),
                })
            })
            .collect()
    }

    /// Feeds an input to room `name` at `now` (see [`input`](Self::input)).
    ///
    /// # Errors
    /// [`RoomError::NoRoom`], or the core's error.
    pub fn input_in(&mut self, now: Instant, room: &str, input: Input) -> Result<(), RoomError> {
        self.advance_to(now);
        let index = self
            .rooms
            .find(room)
            .ok_or_else(|| RoomError::NoRoom(room.to_owned()))?;
        self.feed(index, input).map_err(RoomError::Core)
    }

    /// Whether new connections are taken ([`accept`](Self::accept)); `false` once closed.
    #[must_use]
    pub fn is_accepting(&self) -> bool {
        self.accepting
    }

    /// Whether the server closed and every connection is gone: the pump may end.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.all_closed && self.free_slots.len() == self.slots.len()
    }

    /// Feeds any core input at `now` and carries out what follows. [`Input::Close`] also stops
    /// accepting and drops the connections still in their upgrade.
    ///
    /// # Errors
    /// The core's error, for example `cannot kick a user that does not exist`.
    pub fn input(&mut self, now: Instant, input: Input) -> Result<(), Error> {
        self.advance_to(now);
        self.feed(0, input)
    }

    /// The next event for the application; `None` once every event is out **and** every
    /// connection with bytes queued was written (a write that fails closes its connection,
    /// which queues its events: they come out here before `None`). Drain it after every
    /// turn and after every command.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.poll_room_event().map(|(_, event)| event)
    }

    /// As [`poll_event`](Self::poll_event), with the room the event happened in (`None` for
    /// the default world: every event when rooms are off, and the server's own `listening` and
    /// `closed` when they are on).
    pub fn poll_room_event(&mut self) -> Option<(Option<Arc<str>>, Event)> {
        if self.events.is_empty() {
            self.flush_dirty();
            if self.close_may_go_on() {
                // The connections took what the last leaves queued: the next ones.
                self.carry_out_all();
                self.flush_dirty();
            }
        }
        let event = self.events.pop_front();
        if event.is_none() {
            self.prune_deadlines();
        }
        event
    }

    /// Drops the deadlines that no longer apply from the front of their queues (a connection
    /// that finished its upgrade, a linger whose connection is gone, a backlog check moved), so
    /// that [`poll_timeout`](Self::poll_timeout) wakes the pump only for what is due.
    fn prune_deadlines(&mut self) {
        while let Some(&(_, key)) = self.handshake_deadlines.front() {
            if self.is_handshaking(key) {
                break;
            }
            self.handshake_deadlines.pop_front();
        }
        while let Some(&(_, key)) = self.linger_deadlines.front() {
            let lingering = matches!(
                self.conn(key),
                Some(Conn {
                    phase: Phase::Closing { .. } | Phase::Answered { .. },
                    ..
                })
            );
            if lingering {
                break;
            }
            self.linger_deadlines.pop_front();
        }
        while let Some(&Reverse((at, key))) = self.backlog_checks.peek() {
            if self.conn(key).is_some_and(|conn| conn.check_at == Some(at)) {
                break;
            }
            self.backlog_checks.pop();
        }
    }

    /// Bytes queued for all connections and not yet taken by their sockets.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_total
    }

    /// The pump is done with its turn and about to wait: `now` is its reading of the clock
    /// then. The time since the turn began (the first `now` the pump handed the driver since
    /// the last call) is recorded in [`Metrics::turns`]. The driver reads no clock of its own,
    /// so only a pump that calls this has turn times.
    pub fn end_turn(&mut self, now: Instant) {
        self.tally.end_turn(now);
    }

    /// The server's figures now: what it holds and its running totals (see [`Metrics`]).
    #[must_use]
    pub fn metrics(&self) -> Metrics {
        let (mut users, mut linked_users, mut connections, mut pending) = (0, 0, 0, 0);
        let (mut connections_accepted, mut links_accepted) = (0, 0);
        let mut rejections = krmx_core::Rejections::default();
        for room in self.rooms.iter() {
            for user in room.krmx.users() {
                users += 1;
                linked_users += u64::from(user.is_linked);
            }
            connections += room.krmx.connections().count() as u64;
            pending += room.krmx.pending_auths() as u64;
            let counters = room.krmx.counters();
            connections_accepted += counters.connections_accepted;
            links_accepted += counters.links_accepted;
            rejections.merge(&counters.rejections);
        }
        let tally = &self.tally;
        Metrics {
            status: self.status(),
            rooms: self.rooms.named() as u64,
            protocol_version: self.config.served_version().to_string(),
            uptime: self.now.saturating_duration_since(self.started),
            streams_accepted: tally.streams_accepted,
            http_requests: tally.http_requests(),
            upgrades_failed: tally.upgrades_failed,
            tls_handshakes_failed: tally.tls_handshakes_failed,
            connections_accepted,
            connections_open: connections,
            users,
            linked_users,
            pending_auths: pending,
            messages_received: tally.messages_received,
            messages_received_bytes: tally.messages_received_bytes,
            messages_sent: tally.messages_sent,
            messages_sent_bytes: tally.messages_sent_bytes,
            buffered_bytes: self.buffered_total as u64,
            links_accepted,
            rejections,
            closes: tally.closes(),
            slow_consumers: tally.slow_consumers(),
            turns: tally.turns(),
        }
    }

    /// Offers every queued byte to its socket now (what [`poll_event`](Self::poll_event) does
    /// before it returns `None`); a write that fails queues its events. For pumps whose
    /// application may not drain events before the next wait.
    pub fn flush(&mut self) {
        self.flush_dirty();
    }

    /// The next request for the pump; drain after [`poll_event`](Self::poll_event) returned
    /// `None`.
    pub fn poll_io(&mut self) -> Option<Io> {
        self.io.pop_front()
    }

    /// When [`tick`](Self::tick) is due next (core timers, handshake timeouts, close lingers);
    /// `None` when nothing is scheduled.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.rooms.next_deadline(),
            self.handshake_deadlines.front().map(|(at, _)| *at),
            self.linger_deadlines.front().map(|(at, _)| *at),
            self.backlog_checks.peek().map(|Reverse((at, _))| *at),
            self.grace_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether the pump must not wait: an event or a write is pending.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        !self.events.is_empty()
            || !self.dirty.is_empty()
            || !self.io.is_empty()
            || self.close_may_go_on()
    }

    /// Fires what is due at `now`: core timers (auth timeouts, pings, inactivity, unlinked
    /// timeouts), handshake timeouts, close lingers, backlog checks (slow consumers) and the
    /// shutdown grace. Harmless when nothing is due.
    pub fn tick(&mut self, now: Instant) {
        self.advance_to(now);
        self.close_turn_frames = CLOSE_TURN_FRAMES;
        if self.grace_deadline.is_some_and(|at| at <= now) {
            self.settle_close();
        }
        self.check_backlogs(now);
        for room in self.rooms.due(now) {
            self.feed_fact(room, Input::Tick);
        }
        for name in self.rooms.drop_idle(now) {
            tracing::debug!(room = %name, "room dropped");
        }
        while let Some(&(at, key)) = self.handshake_deadlines.front() {
            if at > now {
                break;
            }
            self.handshake_deadlines.pop_front();
            if self.is_handshaking(key) {
                // A request may be waiting unread while the pump was busy (its readiness not
                // reported yet): drive the handshake once before giving up on it.
                self.readable(now, key);
                if self.is_handshaking(key) {
                    if self.is_tls_handshaking(key) {
                        tracing::info!(slot = key.slot(), "TLS handshake timed out");
                        self.tally.tls_handshakes_failed += 1;
                    } else {
                        tracing::debug!(slot = key.slot(), "handshake timed out");
                    }
                    self.tally.upgrades_failed += 1;
                    self.release(key.slot());
                }
            }
        }
        while let Some(&(at, key)) = self.linger_deadlines.front() {
            if at > now {
                break;
            }
            self.linger_deadlines.pop_front();
            if matches!(
                self.conn(key),
                Some(Conn {
                    phase: Phase::Closing { .. } | Phase::Answered { .. },
                    ..
                })
            ) {
                tracing::debug!(slot = key.slot(), "close linger passed");
                self.release(key.slot());
            }
        }
    }

    /// Takes a stream the server accepted and starts its request (through TLS when the
    /// transport has [`ServerTls`](crate::ServerTls)). The pump registers it under the key's
    /// [`slot`](ConnKey::slot) and reports its readiness; bytes already there are read at once.
    ///
    /// # Errors
    /// The server closed, or the table is full: the stream is dropped.
    pub fn accept(&mut self, now: Instant, stream: S) -> Result<ConnKey, Refusal> {
        let link = match &self.transport.tls {
            Some(tls) => match tls.session() {
                Ok(session) => Link::Tls(Box::new(TlsStream::new(stream, session))),
                Err(error) => {
                    tracing::warn!(%error, "could not start a TLS session");
                    return Err(Refusal::Tls);
                }
            },
            None => Link::Plain(stream),
        };
        self.take(now, link, Vec::new())
    }

    /// Takes a stream handed over by the application ([`Handle::adopt`]) with the bytes of its
    /// request read already, and starts its request. The stream is plain: an application
    /// that read the request itself terminated any TLS itself. Registered as in
    /// [`accept`](Self::accept).
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub fn adopt(
        &mut self,
        now: Instant,
        stream: S,
        already_read: Vec<u8>,
    ) -> Result<ConnKey, Refusal> {
        self.take(now, Link::Plain(stream), already_read)
    }

    fn take(
        &mut self,
        now: Instant,
        link: Link<S>,
        already_read: Vec<u8>,
    ) -> Result<ConnKey, Refusal> {
        self.advance_to(now);
        if !self.accepting {
            return Err(Refusal::NotAccepting);
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None if self.slots.len() < 1 << SLOT_BITS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(Refusal::TableFull),
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        self.tally.streams_accepted += 1;
        let key = ConnKey::new(serial, slot);
        if let Some(entry) = self.slots.get_mut(slot) {
            *entry = Some(Conn::new(
                serial,
                Phase::Requesting {
                    socket: Some(Box::new(Socket::new(link, already_read))),
                    head: Vec::new(),
                },
            ));
        }
        self.handshake_deadlines
            .push_back((now + self.transport.handshake_timeout_value(), key));
        Ok(key)
    }

    /// The key of the connection in `slot`, for pumps that know only the slot (a mio token).
    #[must_use]
    pub fn key_at(&self, slot: usize) -> Option<ConnKey> {
        match self.slots.get(slot) {
            Some(Some(conn)) => Some(ConnKey::new(conn.serial, slot)),
            _ => None,
        }
    }

    /// The stream of a connection, to register it with the pump's reactor.
    pub fn stream_mut(&mut self, key: ConnKey) -> Option<&mut S> {
        self.conn_mut(key)?
            .phase
            .socket_mut()
            .map(|socket| socket.stream.inner_mut())
    }

    /// Drops a connection the pump could not register (it never reached the core).
    pub fn abort(&mut self, key: ConnKey) {
        if self.conn(key).is_some() {
            self.release(key.slot());
        }
    }

    /// The connection is readable (or its peer hung up, or it broke): reads everything there
    /// is, feeding each message to the core. Stale keys are ignored.
    pub fn readable(&mut self, now: Instant, key: ConnKey) {
        self.advance_to(now);
        self.read_ready(key);
        // TLS answers of its own (the handshake, session tickets, alerts) that the stream
        // did not take at once go out with the connection's next write.
        if let Some(conn) = self.conn_mut(key) {
            if conn
                .phase
                .socket_mut()
                .is_some_and(|socket| socket.stream.has_pending())
            {
                self.mark_dirty(key.slot());
            }
        }
    }

    fn read_ready(&mut self, key: ConnKey) {
        let Some(conn) = self.conn_mut(key) else {
            return;
        };
        let (handshake, target) = match &mut conn.phase {
            Phase::Requesting { .. } => return self.read_request(key),
            Phase::Handshaking { mid, target } => (mid.take(), target.clone()),
            Phase::Open { .. } => return self.read_messages(key),
            Phase::Answered { socket } => {
                if socket.discard_input() {
                    self.release(key.slot());
                } else {
                    self.wait_readable(key);
                }
                return;
            }
            Phase::Closing { ws } => {
                if ws.get_mut().discard_input() {
                    self.release(key.slot());
                } else {
                    self.wait_readable(key);
                }
                return;
            }
        };
        let Some(mut handshake) = handshake else {
            return;
        };
        handshake.get_mut().get_mut().set_direct(&conn.outbox);
        match handshake.handshake() {
            Ok(mut ws) => {
                ws.get_mut().hand_over(&mut conn.outbox);
                self.opened(key, ws, &target);
            }
            Err(HandshakeError::Interrupted(mut again)) => {
                again.get_mut().get_mut().hand_over(&mut conn.outbox);
                if !conn.outbox.is_empty() {
                    self.mark_dirty(key.slot());
                }
                if let Some(Conn {
                    phase: Phase::Handshaking { mid, .. },
                    ..
                }) = self.conn_mut(key)
                {
                    *mid = Some(Box::new(again));
                }
                self.wait_readable(key);
            }
            Err(HandshakeError::Failure(error)) => {
                // A refused upgrade's response was written with the handshake's last step.
                tracing::debug!(%error, "handshake failed");
                self.tally.upgrades_failed += 1;
                self.release(key.slot());
            }
        }
    }

    /// The connection is writable again: writes what it takes. Stale keys are ignored.
    pub fn writable(&mut self, now: Instant, key: ConnKey) {
        self.advance_to(now);
        if let Some(conn) = self.conn_mut(key) {
            conn.awaiting_writable = false;
            self.write_slot(key.slot());
        }
    }

    /// Carries out every command sent through [`Handle`]s so far.
    pub fn run_commands(&mut self, now: Instant) {
        self.advance_to(now);
        while let Ok(command) = self.commands.try_recv() {
            self.command(command);
        }
    }

    fn command(&mut self, command: Command) {
        // A dropped reply means nobody waits for the answer.
        match command {
            Command::Input { room, input, reply } => {
                let result = match room {
                    None => self.feed(0, input).map_err(CommandError::Core),
                    Some(name) => match self.rooms.find(&name) {
                        Some(index) => self.feed(index, input).map_err(CommandError::Core),
                        None => Err(CommandError::NoRoom(name)),
                    },
                };
                drop(reply.try_send(result));
            }
            Command::Users(reply) => drop(reply.try_send(Ok(self.users()))),
            Command::Rooms(reply) => drop(reply.try_send(Ok(self.rooms()))),
            Command::RoomUsers { room, reply } => {
                let users = self
                    .room(&room)
                    .map(|krmx| krmx.users().collect())
                    .ok_or(CommandError::NoRoom(room));
                drop(reply.try_send(users));
            }
            Command::RoomStatus { room, reply } => {
                let status = self
                    .room(&room)
                    .map(Krmx::status)
                    .ok_or(CommandError::NoRoom(room));
                drop(reply.try_send(status));
            }
            Command::Status(reply) => drop(reply.try_send(Ok(self.status()))),
            Command::Metrics(reply) => drop(reply.try_send(Ok(self.metrics()))),
            Command::Adopt {
                stream,
                already_read,
                reply,
            } => {
                let result = if self.accepting {
                    self.io.push_back(Io::Adopt {
                        stream,
                        already_read,
                    });
                    Ok(())
                } else {
                    tracing::debug!("adopted connection dropped: the server closed");
                    Err(CommandError::NotAccepting)
                };
                drop(reply.try_send(result));
            }
        }
    }

    // ----- the table -----

    fn conn(&self, key: ConnKey) -> Option<&Conn<S>> {
        match self.slots.get(key.slot()) {
            Some(Some(conn)) if conn.serial == key.serial() => Some(conn),
            _ => None,
        }
    }

    fn conn_mut(&mut self, key: ConnKey) -> Option<&mut Conn<S>> {
        match self.slots.get_mut(key.slot()) {
            Some(Some(conn)) if conn.serial == key.serial() => Some(conn),
            _ => None,
        }
    }

    /// Whether the connection is still in its request or upgrade (the handshake timeout's).
    fn is_handshaking(&self, key: ConnKey) -> bool {
        matches!(
            self.conn(key),
            Some(Conn {
                phase: Phase::Requesting { .. } | Phase::Handshaking { .. },
                ..
            })
        )
    }

    /// Whether the connection's TLS handshake is still under way.
    fn is_tls_handshaking(&mut self, key: ConnKey) -> bool {
        self.conn_mut(key)
            .and_then(|conn| conn.phase.socket_mut())
            .is_some_and(|socket| socket.stream.is_tls_handshaking())
    }

    /// The outbox of the open connection the core knows as `id`: the slot is part of the id,
    /// so a delivery does no lookup.
    fn open_outbox(&mut self, id: ConnectionId) -> Option<&mut Outbox> {
        match self.conn_mut(ConnKey::of(id))? {
            Conn {
                phase: Phase::Open { .. },
                outbox,
                ..
            } => Some(outbox),
            _ => None,
        }
    }

    /// Adds what the connection's outbox gained or lost since it was last settled to the
    /// total. Every change to an outbox is followed by this (queueing marks the connection
    /// dirty, which settles; writes and drops settle themselves).
    fn settle(&mut self, slot: usize) {
        if let Some(Some(conn)) = self.slots.get_mut(slot) {
            let buffered = conn.outbox.buffered();
            self.buffered_total = (self.buffered_total + buffered).saturating_sub(conn.accounted);
            conn.accounted = buffered;
        }
    }

    fn mark_dirty(&mut self, slot: usize) {
        self.settle(slot);
        if let Some(Some(conn)) = self.slots.get_mut(slot) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    fn wait_readable(&mut self, key: ConnKey) {
        if self.readiness == Readiness::OnRequest {
            self.io.push_back(Io::WaitReadable(key));
        }
    }

    /// Frees a slot and drops its stream. A connection the core still knows is reported
    /// closed first.
    fn release(&mut self, slot: usize) {
        let Some(entry) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(conn) = entry.take() else {
            return;
        };
        let key = ConnKey::new(conn.serial, slot);
        self.free_slots.push(slot);
        self.io.push_back(Io::Released(key));
        self.buffered_total = self.buffered_total.saturating_sub(conn.accounted);
        let room = conn.room;
        if let Phase::Open { id, .. } = conn.phase {
            drop(conn);
            self.feed_fact(room, Input::ConnectionClosed { conn: id });
        }
    }

    // ----- reading -----

    fn opened(&mut self, key: ConnKey, ws: tungstenite::WebSocket<Socket<S>>, target: &TargetSlot) {
        let id = ConnectionId::new(key.0);
        let Some(conn) = self.conn_mut(key) else {
            return;
        };
        conn.phase = Phase::Open {
            ws: Box::new(ws),
            id,
        };
        self.mark_dirty(key.slot());
        let target = target.take();
        let Some(room) = self.room_for(&target) else {
            // Too many rooms: the core never learns of it.
            self.start_closing(id, 1013, "too many rooms");
            return;
        };
        if let Some(conn) = self.conn_mut(key) {
            conn.room = room;
        }
        self.feed_fact(room, Input::ConnectionOpened { conn: id, target });
        self.read_messages(key);
    }

    /// The room a connection's request target joins: the default world with rooms off; with
    /// them on, the room its path names, opened now if it is new (`None` when the cap on rooms
    /// is reached).
    fn room_for(&mut self, target: &str) -> Option<usize> {
        let Some(rooms) = &self.transport.rooms else {
            return Some(0);
        };
        let path = target.split(['?', '#']).next().unwrap_or_default();
        // The handshake refused other paths.
        let name = rooms.room_of(path)?;
        if let Some(index) = self.rooms.find(name) {
            let closed = self
                .rooms
                .get(index)
                .is_some_and(|room| room.krmx.status() == Status::Closed);
            if !closed {
                return Some(index);
            }
            // The room was closed on its own (`close` in that room): a new connection opens
            // it afresh. Its core closed every connection it had, so none refers to it.
            self.rooms.remove(index);
        }
        if self.rooms.named() >= rooms.max_rooms_value() {
            tracing::info!(room = %name, "connection refused: too many rooms");
            return None;
        }
        let config = (*self.config).clone().path(&rooms.path_of(name));
        let index = self.rooms.open(name, Krmx::new(config));
        tracing::debug!(room = %name, "room opened");
        for input in [Input::Start, Input::Listen { port: self.port }] {
            if let Err(error) = self.feed(index, input) {
                debug_assert!(false, "a new room refused to start: {error}");
                tracing::error!(%error, "a new room refused to start");
            }
        }
        Some(index)
    }

    /// Reads every complete message the stream has and feeds each to the core, until the
    /// stream would block, ends or breaks.
    /// Reads the request head of a new connection; once it is complete, an upgrade goes on to
    /// the WebSocket handshake (with the head put back in front of the stream) and any other
    /// request is answered over plain HTTP.
    fn read_request(&mut self, key: ConnKey) {
        let Some(Conn {
            phase: Phase::Requesting { socket, head },
            ..
        }) = self.conn_mut(key)
        else {
            return;
        };
        let Some(reading) = socket.as_deref_mut() else {
            return;
        };
        let mut buf = [0_u8; 2048];
        let parsed = loop {
            if let Some(end) = http::head_end(head) {
                let request = http::parse(head.get(..end).unwrap_or_default());
                // A plain request's body (bounded by `parse`) is read whole first.
                let wanted = match &request {
                    http::Request::Plain(plain) => end + plain.content_length,
                    _ => end,
                };
                if head.len() >= wanted {
                    break Some((request, end, wanted));
                }
            } else if head.len() > http::MAX_HEAD_BYTES || http::is_invalid(head) {
                break None;
            }
            match reading.read(&mut buf) {
                Ok(0) => return self.release(key.slot()),
                Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return self.wait_readable(key);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    if let Some(failure) = tls_failure(&error) {
                        self.tally.tls_handshakes_failed += 1;
                        tracing::info!(
                            slot = key.slot(),
                            error = %failure,
                            "TLS handshake failed (a client speaking plain ws:// or http:// to \
                             this TLS port, or one that refused the certificate)"
                        );
                    }
                    return self.release(key.slot());
                }
            }
        };
        if parsed.is_none() && http::is_tls_hello(head) {
            tracing::info!(
                slot = key.slot(),
                "a TLS handshake on a plain port (a wss:// or https:// client, but the server has \
                 no TLS certificate): closed"
            );
            self.tally.tls_handshakes_failed += 1;
            return self.release(key.slot());
        }
        let (request, body) = match parsed {
            Some((request, end, wanted)) => {
                let body = head.get(end..wanted).unwrap_or_default().to_vec();
                (request, body)
            }
            None if head.len() > http::MAX_HEAD_BYTES => (
                http::Request::Bad(http::Response::text(
                    431,
                    "431 request header fields too large\n",
                )),
                Vec::new(),
            ),
            None => (
                http::Request::Bad(http::Response::text(400, "400 bad request\n")),
                Vec::new(),
            ),
        };
        let head = std::mem::take(head);
        let Some(mut socket) = socket.take() else {
            return;
        };
        match request {
            http::Request::Upgrade => {
                socket.unread(head);
                self.start_upgrade(key, *socket);
                self.readable(self.now, key);
            }
            http::Request::Plain(plain) => {
                let response = self.answer(&plain, &body);
                self.tally.answered(response.status());
                self.send_answer(key, socket, &response.to_bytes(plain.head_only));
            }
            http::Request::Bad(response) => {
                self.tally.answered(response.status());
                self.send_answer(key, socket, &response.to_bytes(false));
            }
        }
    }

    /// The response to a plain HTTP request: the health or metrics endpoint if it is on and
    /// asked for, else a 404.
    fn answer(&mut self, request: &http::PlainRequest, body: &[u8]) -> http::Response {
        let (method, path) = (request.method.as_str(), request.path.as_str());
        if let Some(response) = self.answer_monitor(request, body) {
            return response;
        }
        let health = self.transport.health_path.as_deref() == Some(path);
        let metrics = self.transport.metrics_path.as_deref() == Some(path);
        if !health && !metrics {
            let file = self
                .transport
                .static_files
                .as_ref()
                .and_then(|files| files.get(path));
            if let Some(file) = file {
                if method != "GET" && method != "HEAD" {
                    return http::Response::get_only();
                }
                return http::Response::file(file);
            }
            tracing::debug!(%method, %path, "plain request answered 404");
            return http::Response::text(404, http::NOT_FOUND_BODY);
        }
        if method != "GET" && method != "HEAD" {
            return http::Response::get_only();
        }
        let figures = self.metrics();
        if health {
            return http::Response::json(
                http::Health::of(&figures)
                    .with_rooms(self.transport.rooms.is_some(), figures.rooms)
                    .to_json(),
            );
        }
        match figures.to_openmetrics() {
            Ok(text) => http::Response::openmetrics(text),
            Err(error) => {
                // Writing to a String does not fail: a bug in the encoding, seen here.
                tracing::error!(%error, "the metrics could not be encoded");
                http::Response::text(500, "500 the metrics could not be encoded\n")
            }
        }
    }

    /// The monitor's answer to a request under its path; `None` for other paths (or without a
    /// monitor).
    fn answer_monitor(
        &mut self,
        request: &http::PlainRequest,
        body: &[u8],
    ) -> Option<http::Response> {
        let route = self.transport.monitor.as_ref()?.route(request)?;
        let method = request.method.as_str();
        let response = match route.method() {
            None if route == Route::Unauthorized => {
                tracing::info!(path = %request.path, "monitor request refused: no valid token");
                monitor::unauthorized()
            }
            None => http::Response::text(404, http::NOT_FOUND_BODY),
            Some("GET") if method != "GET" && method != "HEAD" => http::Response::get_only(),
            Some(wanted) if wanted != "GET" && method != wanted => http::Response::only(wanted),
            Some(_) => match route {
                Route::Page => monitor::page(),
                Route::State => http::Response::json(self.monitor_state().to_string()),
                _ => monitor::outcome(self.monitor_action(route, body)),
            },
        };
        Some(response)
    }

    /// The server as the monitor shows it.
    fn monitor_state(&self) -> serde_json::Value {
        let figures = self.metrics();
        let krmx = self.default_krmx();
        let users: Vec<serde_json::Value> = krmx
            .users()
            .map(|user| {
                let connection = krmx
                    .linked_connection(user.username.as_str())
                    .map(|id| id.to_string());
                serde_json::json!({
                    "username": user.username.as_str(),
                    "isLinked": user.is_linked,
                    "connection": connection,
                })
            })
            .collect();
        serde_json::json!({
            "health": serde_json::from_str::<serde_json::Value>(
                &http::Health::of(&figures)
                    .with_rooms(self.transport.rooms.is_some(), figures.rooms)
                    .to_json()
            ).unwrap_or_default(),
            "users": users,
            "counters": {
                "connectionsAccepted": figures.connections_accepted,
                "messagesReceived": figures.messages_received,
                "messagesReceivedBytes": figures.messages_received_bytes,
                "messagesSent": figures.messages_sent,
                "messagesSentBytes": figures.messages_sent_bytes,
                "linksAccepted": figures.links_accepted,
                "linksRejected": figures.rejections.total(),
                "pendingAuthentications": figures.pending_auths,
                "bufferedBytes": figures.buffered_bytes,
            },
            "rooms": self.transport.rooms.as_ref().map(|_| {
                self.rooms()
                    .into_iter()
                    .map(|room| serde_json::json!({
                        "room": room.name,
                        "users": room.users,
                        "linkedUsers": room.linked_users,
                        "connections": room.connections,
                    }))
                    .collect::<Vec<_>>()
            }),
            "events": self.monitor_log.to_json(),
            "limits": monitor::limits(&self.config, self.transport.handshake_timeout_value()),
        })
    }

    /// Carries out a monitor action on the core.
    fn monitor_action(&mut self, route: Route, body: &[u8]) -> Result<(), String> {
        let object = monitor::body_object(body)?;
        let input = match route {
            Route::Kick => Input::Kick {
                username: monitor::string_field(&object, "username")?,
            },
            Route::Unlink => Input::Unlink {
                username: monitor::string_field(&object, "username")?,
            },
            Route::Broadcast => {
                let message = object
                    .get("message")
                    .cloned()
                    .ok_or("the body needs a `message` object")?;
                let message = krmx_core::Message::from_value(message)
                    .map_err(|error| format!("invalid message: {error}"))?;
                if message.is_reserved() {
                    // Clients would take it for the protocol's own presence messages.
                    return Err("the monitor does not send krmx/ messages".to_owned());
                }
                let skip = match object.get("skip") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(_) => Some(monitor::string_field(&object, "skip")?),
                };
                Input::Broadcast { message, skip }
            }
            _ => return Err("not an action".to_owned()),
        };
        tracing::info!(?route, "monitor action");
        self.feed(0, input).map_err(|error| error.to_string())
    }

    /// Queues a plain HTTP response; the connection closes once it is out (or at the linger).
    fn send_answer(&mut self, key: ConnKey, socket: Box<Socket<S>>, response: &[u8]) {
        let linger = self.now + self.transport.close_linger_value();
        let Some(conn) = self.conn_mut(key) else {
            return;
        };
        conn.outbox.push_bytes(response);
        conn.phase = Phase::Answered { socket };
        self.linger_deadlines.push_back((linger, key));
        self.mark_dirty(key.slot());
        self.write_slot(key.slot());
        self.wait_readable(key);
    }

    /// Starts the WebSocket handshake of a connection whose request head was read (and put
    /// back in front of its stream).
    fn start_upgrade(&mut self, key: ConnKey, socket: Socket<S>) {
        let check = RequestCheck::new(
            Arc::clone(&self.config),
            self.transport.allowed_origins.clone(),
            self.transport.rooms.clone(),
        );
        let target = check.target_slot();
        let handshake = ServerHandshake::start(socket, check, Some(self.ws_config));
        if let Some(conn) = self.conn_mut(key) {
            conn.phase = Phase::Handshaking {
                mid: Some(Box::new(handshake)),
                target,
            };
        }
    }

    fn read_messages(&mut self, key: ConnKey) {
        let hard = self.limits.hard;
        loop {
            let Some(Conn {
                phase: Phase::Open { ws, id },
                outbox,
                room,
                ..
            }) = self.conn_mut(key)
            else {
                return;
            };
            let (id, room) = (*id, *room);
            ws.get_mut().set_direct(outbox);
            let step = step(ws.read(), id);
            ws.get_mut().hand_over(outbox);
            // tungstenite answers every ping with a pong, queued while reading: a peer that
            // floods pings and does not read would grow the outbox without bound. Past the
            // hard limit after a write it is a slow consumer like any other.
            let over = outbox.buffered() > hard;
            if !outbox.is_empty() {
                self.mark_dirty(key.slot());
            }
            if over {
                self.write_slot(key.slot());
                if self.is_over_hard(id) {
                    self.condemn(key, Broken::Hard);
                }
                self.report_slow();
                if self.conn(key).and_then(Conn::open_id).is_none() {
                    return;
                }
            }
            match step {
                Step::Input(input) => {
                    if let Input::Frame { frame, .. } = &input {
                        self.tally.received(frame.len());
                    }
                    if matches!(input, Input::Pong { .. }) {
                        if let Some(conn) = self.conn_mut(key) {
                            conn.ping_due = None;
                        }
                    }
                    self.feed_fact(room, input);
                }
                Step::Nothing => {}
                Step::WouldBlock => {
                    self.wait_readable(key);
                    return;
                }
                Step::PeerClosed(code) => {
                    self.tally.closed(Closer::Client, code);
                    self.peer_closed(key, id);
                    return;
                }
                Step::Gone => {
                    self.release(key.slot());
                    return;
                }
            }
        }
    }

    /// The peer sent a close frame: tungstenite queued its reply, to be written on its next
    /// call, which would never come; it goes into the outbox now. The core learns first (the
    /// user is unlinked), then the reply goes out within the linger.
    fn peer_closed(&mut self, key: ConnKey, id: ConnectionId) {
        let Some(Conn {
            phase,
            outbox,
            room,
            ..
        }) = self.conn_mut(key)
        else {
            return;
        };
        let room = *room;
        let Some(ws) = phase.begin_closing() else {
            return;
        };
        // Writes into the outbox: only a broken stream fails, which the next write shows.
        ws.get_mut().set_direct(outbox);
        if let Err(error) = ws.flush() {
            tracing::debug!(%id, %error, "close reply not queued");
        }
        ws.get_mut().hand_over(outbox);
        self.linger(key);
        self.forget_backlog(key);
        self.feed_fact(room, Input::ConnectionClosed { conn: id });
        self.wait_readable(key);
    }

    fn linger(&mut self, key: ConnKey) {
        self.linger_deadlines
            .push_back((self.now + self.transport.close_linger_value(), key));
        self.mark_dirty(key.slot());
    }

    // ----- writing -----

    /// Writes every connection marked dirty. A write that fails closes its connection, which
    /// queues messages for others and marks them dirty in turn: those are written too. Then
    /// the pings that went out are reported, and the budget across connections is enforced.
    fn flush_dirty(&mut self) {
        let mut batch = std::mem::take(&mut self.dirty);
        loop {
            while !batch.is_empty() {
                for &slot in &batch {
                    if let Some(Some(conn)) = self.slots.get_mut(slot) {
                        conn.dirty = false;
                    }
                    self.write_slot(slot);
                }
                batch.clear();
                std::mem::swap(&mut batch, &mut self.dirty);
            }
            self.report_pings_sent();
            if self.buffered_total > self.budget {
                self.enforce_budget();
            }
            if self.dirty.is_empty() {
                break;
            }
            std::mem::swap(&mut batch, &mut self.dirty);
        }
        // Keep the allocation for the next round.
        self.dirty = batch;
    }

    /// Writes what the stream takes, then judges the backlog left. A closing connection whose
    /// bytes are all out is shut down for writing; a failed write releases the connection.
    fn write_slot(&mut self, slot: usize) {
        let now = self.now;
        let Some(Some(conn)) = self.slots.get_mut(slot) else {
            return;
        };
        if conn.awaiting_writable || conn.shut {
            return;
        }
        let key = ConnKey::new(conn.serial, slot);
        let open = conn.open_id();
        let closing = matches!(conn.phase, Phase::Closing { .. } | Phase::Answered { .. });
        let Conn { phase, outbox, .. } = conn;
        let Some(socket) = phase.socket_mut() else {
            return;
        };
        let before = outbox.buffered();
        let result = outbox.write_to(&mut socket.stream).and_then(|done| {
            if done {
                socket.stream.flush_pending()
            } else {
                Ok(false)
            }
        });
        let after = outbox.buffered();
        if outbox.take_ping_sent() {
            self.pings_sent.extend(open);
        }
        match result {
            Ok(true) if closing => {
                socket.stream.shutdown_write();
                conn.shut = true;
            }
            Ok(true) => {}
            Ok(false) => {
                if self.readiness == Readiness::OnRequest {
                    conn.awaiting_writable = true;
                    self.io.push_back(Io::WaitWritable(key));
                }
            }
            Err(error) => {
                tracing::debug!(%error, slot, "write failed");
                self.release(slot);
                return;
            }
        }
        if open.is_some() && !conn.condemned {
            let verdict = conn
                .backlog
                .written(now, after, after < before, &self.limits);
            self.settle(slot);
            self.judge(key, verdict);
        } else {
            self.settle(slot);
        }
    }

    // ----- slow consumers -----

    /// Carries out a backlog verdict: schedules its next check, or condemns a slow consumer.
    fn judge(&mut self, key: ConnKey, verdict: Verdict) {
        match verdict {
            Verdict::Clear => {}
            Verdict::CheckAt(at) => {
                if let Some(conn) = self.conn_mut(key) {
                    if conn.check_at.is_none_or(|scheduled| at < scheduled) {
                        conn.check_at = Some(at);
                        self.backlog_checks.push(Reverse((at, key)));
                    }
                }
            }
            Verdict::Slow(broken) => self.condemn(key, broken),
        }
    }

    /// Runs the backlog checks due at `now`.
    fn check_backlogs(&mut self, now: Instant) {
        while let Some(&Reverse((at, key))) = self.backlog_checks.peek() {
            if at > now {
                break;
            }
            self.backlog_checks.pop();
            let limits = self.limits;
            let Some(conn) = self.conn_mut(key) else {
                continue;
            };
            if conn.check_at != Some(at) {
                continue;
            }
            conn.check_at = None;
            if conn.open_id().is_none() || conn.condemned {
                continue;
            }
            let buffered = conn.outbox.buffered();
            let verdict = conn.backlog.check(now, buffered, &limits);
            self.judge(key, verdict);
        }
        if !self.slow.is_empty() {
            self.report_slow();
        }
    }

    /// A connection closed by its peer leaves the slow-consumer rule (its linger bounds it).
    fn forget_backlog(&mut self, key: ConnKey) {
        if let Some(conn) = self.conn_mut(key) {
            conn.check_at = None;
        }
    }

    /// Whether the open connection `id` holds more than the hard limit.
    fn is_over_hard(&mut self, id: ConnectionId) -> bool {
        let hard = self.limits.hard;
        self.open_outbox(id)
            .is_some_and(|outbox| outbox.buffered() > hard)
    }

    /// A slow consumer: what it has not started to receive is dropped at once (it would not
    /// read it, and the memory is the server's), nothing more is queued for it, and the core
    /// closes it once the outputs at hand are out (see [`carry_out`](Self::carry_out)).
    fn condemn(&mut self, key: ConnKey, broken: Broken) {
        let Some(conn) = self.conn_mut(key) else {
            return;
        };
        let Some(id) = conn.open_id() else {
            return;
        };
        if conn.condemned {
            return;
        }
        conn.condemned = true;
        conn.check_at = None;
        let dropped = conn.outbox.drop_unstarted();
        self.tally.slow_consumer(broken);
        tracing::info!(%id, ?broken, dropped, "slow consumer");
        self.settle(key.slot());
        self.slow.push(id);
    }

    /// The total passed the budget: connections already closing that still hold bytes (the
    /// rest of a frame, their close frame) are dropped first, as nothing they hold is owed any
    /// more; then the open connections whose sockets took nothing for [`DRAIN_WINDOW`] are
    /// closed as slow consumers, those holding the most first; connections still draining
    /// their backlog come last, again the largest first (between equals, the one whose socket
    /// took nothing for longer first). It stops once the total is back
    /// under. A steady reader a little behind is thus not closed while non-readers hold bytes.
    fn enforce_budget(&mut self) {
        let now = self.now;
        let mut holders: Vec<Holder> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, conn)| {
                let conn = conn.as_ref()?;
                let held = conn.outbox.buffered();
                let closing = conn.open_id().is_none();
                let stuck = !conn.backlog.draining(now, DRAIN_WINDOW);
                let since = Reverse(conn.backlog.stalled_since());
                (held > 0 && !conn.condemned).then_some((closing, stuck, held, since, slot))
            })
            .collect();
        holders.sort_unstable_by(|a, b| b.cmp(a));
        tracing::debug!(
            total = self.buffered_total,
            budget = self.budget,
            "buffered budget passed"
        );
        for (_, _, _, _, slot) in holders {
            if self.buffered_total <= self.budget {
                break;
            }
            let Some(key) = self.key_at(slot) else {
                continue;
            };
            if self.conn(key).and_then(Conn::open_id).is_some() {
                self.condemn(key, Broken::Budget);
            } else {
                self.release(slot);
            }
        }
        self.report_slow();
    }

    /// Reports to the core the pings that left their outboxes: a ping is awaited from then on.
    fn report_pings_sent(&mut self) {
        let every = self.config.ping_interval_value();
        let now = self.now;
        for conn in std::mem::take(&mut self.pings_sent) {
            let key = ConnKey::of(conn);
            let Some(entry) = self.conn_mut(key) else {
                continue;
            };
            if entry.open_id() != Some(conn) {
                continue;
            }
            let room = entry.room;
            if let Some(every) = every {
                let due = now + every;
                entry.ping_due = Some(due);
                self.ping_checks.push_back((due, key));
            }
            self.feed_fact(room, Input::PingSent { conn });
        }
    }

    /// The pump's time is `now`: what the peers of overdue pings sent is read first (see
    /// [`read_before_timers`](Self::read_before_timers)). Every entry point starts here.
    fn advance_to(&mut self, now: Instant) {
        self.now = now;
        self.tally.turn_at(now);
        self.read_before_timers();
    }

    /// Before the core fires a timer (its ping round among them: the core fires what is due
    /// with any input), reads what the peers of the pings due by now sent: a pong waiting in
    /// the socket because the server was busy (a link storm, say) is the server's delay, not
    /// the peer's. What was waiting is fed as read just before the first due timer, so no
    /// timer fires in between; connections still unanswered stay listed until the core judges
    /// them.
    fn read_before_timers(&mut self) {
        let now = self.now;
        if self.reading_before_timers || self.ping_checks.front().is_none_or(|&(due, _)| due > now)
        {
            return;
        }
        let Some(before) = self
            .rooms
            .next_deadline()
            .filter(|&at| at <= now)
            .and_then(|at| at.checked_sub(std::time::Duration::from_nanos(1)))
        else {
            return;
        };
        self.reading_before_timers = true;
        let mut unanswered = Vec::new();
        while let Some(&(due, key)) = self.ping_checks.front() {
            if due > now {
                break;
            }
            self.ping_checks.pop_front();
            if self.conn(key).is_none_or(|conn| conn.ping_due != Some(due)) {
                continue;
            }
            self.readable(before, key);
            if self
                .conn(key)
                .is_some_and(|conn| conn.ping_due == Some(due))
            {
                unanswered.push((due, key));
            }
        }
        for entry in unanswered.into_iter().rev() {
            self.ping_checks.push_front(entry);
        }
        self.now = now;
        self.reading_before_timers = false;
    }

    // ----- closing the server -----

    /// Whether the server is closing and the connections took enough of what the last leaves
    /// queued for the next ones to be produced.
    fn close_may_go_on(&self) -> bool {
        self.closing
            && !self.all_closed
            && (self.settling || self.buffered_total <= CLOSE_PACE_BYTES)
    }

    /// The shutdown grace passed: every connection still open is dropped (their users are
    /// unlinked quietly, as their peers are gone) and the remaining leaves are settled without
    /// them, which the core does in time linear in the users.
    fn settle_close(&mut self) {
        self.grace_deadline = None;
        let open = self.slots.len() - self.free_slots.len();
        tracing::info!(open, "shutdown grace passed: dropping the connections left");
        let mut gone = Vec::new();
        for slot in 0..self.slots.len() {
            let Some(entry) = self.slots.get_mut(slot) else {
                continue;
            };
            let Some(conn) = entry.take() else {
                continue;
            };
            self.free_slots.push(slot);
            self.io
                .push_back(Io::Released(ConnKey::new(conn.serial, slot)));
            if let Some(id) = conn.open_id() {
                gone.push((conn.room, id));
            }
        }
        self.buffered_total = 0;
        self.dirty.clear();
        self.settling = true;
        let now = self.now;
        for (room, conn) in gone {
            if let Some(room) = self.rooms.get_mut(room) {
                if let Err(error) = room
                    .krmx
                    .handle_input(now, Input::ConnectionClosed { conn })
                {
                    debug_assert!(false, "the core refused a closed connection: {error}");
                }
            }
        }
        self.carry_out_all();
    }

    // ----- the core -----

    /// Feeds a room's core and carries out its outputs. The default world's close closes
    /// every room.
    fn feed(&mut self, room: usize, input: Input) -> Result<(), Error> {
        let now = self.now;
        let Some(entry) = self.rooms.get_mut(room) else {
            return Ok(());
        };
        let result = entry.krmx.handle_input(now, input);
        let status = entry.krmx.status();
        if room == 0 && matches!(status, Status::Closing | Status::Closed) && !self.closing {
            self.begin_close();
        }
        self.settle_room(room);
        self.carry_out(room);
        result
    }

    /// The server's close began (the default world is closing): no new connections, a bound
    /// on how long it may take, and every room closes too.
    fn begin_close(&mut self) {
        self.closing = true;
        self.grace_deadline = Some(self.now + self.transport.shutdown_grace_value());
        self.stop_accepting();
        let now = self.now;
        for index in self.rooms.indices() {
            if index == 0 {
                continue;
            }
            if let Some(room) = self.rooms.get_mut(index) {
                if let Err(error) = room.krmx.handle_input(now, Input::Close) {
                    tracing::debug!(%error, "a room did not take the close");
                }
            }
            self.settle_room(index);
        }
    }

    /// After a room's core was fed: its timer and whether it is empty.
    fn settle_room(&mut self, room: usize) {
        let idle = self
            .transport
            .rooms
            .as_ref()
            .map_or(std::time::Duration::ZERO, RoomsConfig::idle_value);
        self.rooms.settle(room, self.now, idle);
    }

    /// Feeds the core a fact about a connection the driver knows as open, which the core
    /// cannot refuse; a refusal is a driver bug, reported loudly.
    fn feed_fact(&mut self, room: usize, input: Input) {
        if let Err(error) = self.feed(room, input) {
            debug_assert!(false, "the core refused a network fact: {error}");
            tracing::error!(%error, "the core refused a network fact");
        }
    }

    /// Carries out every queued output of a room's core, then reports the slow consumers
    /// found meanwhile.
    fn carry_out(&mut self, room: usize) {
        self.drain_room(room);
        self.report_slow();
    }

    /// Carries out every room's queued outputs (a close going on, a settle).
    fn carry_out_all(&mut self) {
        for room in self.rooms.indices() {
            self.drain_room(room);
        }
        self.report_slow();
    }

    /// Carries out a room's queued outputs, as far as the close's pacing allows.
    fn drain_room(&mut self, room: usize) {
        while !self.close_paused() {
            let Some(output) = self
                .rooms
                .get_mut(room)
                .and_then(|entry| entry.krmx.poll_output())
            else {
                break;
            };
            if self.closing {
                let frames = match &output {
                    Output::Broadcast { to, .. } => to.len(),
                    _ => 1,
                };
                self.close_turn_frames = self.close_turn_frames.saturating_sub(frames);
            }
            self.carry_out_one(room, output);
        }
    }

    /// Connections over their bound, found while outputs were carried out, are reported to
    /// their room's core as slow consumers: their own unlink and close go out after what they
    /// were already receiving.
    fn report_slow(&mut self) {
        while !self.slow.is_empty() {
            for conn in std::mem::take(&mut self.slow) {
                let Some(entry) = self.conn_mut(ConnKey::of(conn)) else {
                    continue;
                };
                if entry.open_id() != Some(conn) {
                    continue;
                }
                entry.condemned = false;
                let room = entry.room;
                let violation = Violation::SlowConsumer;
                let now = self.now;
                if let Some(core) = self.rooms.get_mut(room) {
                    if let Err(error) = core
                        .krmx
                        .handle_input(now, Input::Violation { conn, violation })
                    {
                        debug_assert!(false, "the core refused a slow consumer: {error}");
                    }
                }
                self.settle_room(room);
                self.drain_room(room);
            }
        }
    }

    /// While the server closes, whether the connections hold too much for the next leaves to
    /// be produced now (see [`CLOSE_PACE_BYTES`]), or this turn produced its share of them
    /// (see [`CLOSE_TURN_FRAMES`]).
    fn close_paused(&self) -> bool {
        self.closing
            && !self.settling
            && (self.buffered_total > CLOSE_PACE_BYTES || self.close_turn_frames == 0)
    }

    fn carry_out_one(&mut self, room: usize, output: Output) {
        match output {
            Output::Send { to, text } => self.send_text(to, &text),
            Output::Broadcast { to, text } => {
                for to in to {
                    self.send_text(to, &text);
                }
            }
            Output::Ping { to } => {
                if let Some(outbox) = self.open_outbox(to) {
                    outbox.push_ping();
                    self.mark_dirty(ConnKey::of(to).slot());
                }
            }
            Output::Close { to, code, reason } => self.start_closing(to, code.0, reason),
            Output::Event(event) => {
                let name = self.rooms.get(room).and_then(|entry| entry.name.clone());
                match event {
                    Event::Closed => {
                        if let Some(entry) = self.rooms.get_mut(room) {
                            entry.closed = true;
                        }
                        if self.all_closed {
                            return;
                        }
                        if self.rooms.iter().any(|entry| !entry.closed) {
                            // A room closed on its own: news of that room.
                            if name.is_some() && !self.closing {
                                self.events.push_back((name, Event::Closed));
                            }
                            return;
                        }
                        // The last room closed: the server did.
                        self.all_closed = true;
                        self.stop_accepting();
                        self.events.push_back((None, Event::Closed));
                        return;
                    }
                    // A room's own start is no news: the server listens already.
                    Event::Listening { .. } if name.is_some() => return,
                    _ => {}
                }
                if self.transport.monitor.is_some() {
                    let at = self.now.saturating_duration_since(self.started);
                    self.monitor_log.record(at, &event);
                }
                self.events.push_back((name, event));
            }
        }
    }

    /// Queues a text frame for `to` (nothing for a condemned slow consumer). A burst is
    /// written as soon as it fills a write, and a backlog past the hard limit is judged only
    /// after the socket took what it would: a burst within one turn is no slow consumer while
    /// the kernel still takes the bytes.
    fn send_text(&mut self, to: ConnectionId, text: &Text) {
        let key = ConnKey::of(to);
        let hard = self.limits.hard;
        let Some(Conn {
            phase: Phase::Open { .. },
            outbox,
            condemned: false,
            ..
        }) = self.conn_mut(key)
        else {
            return;
        };
        outbox.push_text_frame(text);
        let over = outbox.buffered() > hard;
        let write_now = outbox.is_batch_full() || over;
        self.tally.sent(text.len());
        self.mark_dirty(key.slot());
        if write_now {
            self.write_slot(key.slot());
            // Waiting for writability, the write above did not happen: judged here.
            if over && self.is_over_hard(to) {
                self.condemn(key, Broken::Hard);
            }
        }
    }

    /// Queues a close frame; the core has forgotten the connection already.
    fn start_closing(&mut self, id: ConnectionId, code: u16, reason: &str) {
        let key = ConnKey::of(id);
        let Some(Conn { phase, outbox, .. }) = self.conn_mut(key) else {
            return;
        };
        if phase.begin_closing().is_none() {
            return;
        }
        outbox.push_close(code, reason);
        self.tally.closed(Closer::Server, Some(code));
        self.linger(key);
    }

    /// The server closed: no new connections; those still in their upgrade are no Krmx
    /// connections yet and are dropped now rather than keeping the server from finishing.
    fn stop_accepting(&mut self) {
        if !self.accepting {
            return;
        }
        self.accepting = false;
        self.io.push_back(Io::StopAccepting);
        let upgrading: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, conn)| {
                matches!(
                    conn,
                    Some(Conn {
                        phase: Phase::Requesting { .. } | Phase::Handshaking { .. },
                        ..
                    })
                )
            })
            .map(|(slot, _)| slot)
            .collect();
        for slot in upgrading {
            self.release(slot);
        }
    }
}

/// A room and its figures ([`Driver::rooms`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// Its id.
    pub name: String,
    /// Its users, linked or not.
    pub users: usize,
    /// Its linked users.
    pub linked_users: usize,
    /// Its open connections.
    pub connections: usize,
}

/// Why a command for a room failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// No room of that id is open.
    #[error("no room {0}")]
    NoRoom(String),
    /// The room's core refused it.
    #[error(transparent)]
    Core(#[from] Error),
}

/// The default world is made with the table and never dropped; reaching this is a bug.
#[cold]
fn unreachable_default() -> ! {
    // Never reached: see `RoomTable::new` and `RoomTable::drop_idle` (named rooms only).
    #[allow(clippy::panic)]
    {
        panic!("the default world is gone")
    }
}

impl<S: Stream> std::fmt::Debug for Driver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("status", &self.status())
            .field("connections", &(self.slots.len() - self.free_slots.len()))
            .finish_non_exhaustive()
    }
}
