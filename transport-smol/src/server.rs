//! [`Server`]: the driver. It owns the core and every connection's tasks, and runs one loop:
//! carry out the core's outputs, take what the tasks and handles reported, re-arm the timer.

use crate::connection::{self, Report, Settings};
use crate::event::{Event, Events};
use crate::handle::{Command, Handle};
use krmx_core::{
    AuthDecision, AuthId, ConnectionId, Error, Input, Krmx, KrmxConfig, Message, Output,
    OutputBatch, Status, Text, UserInfo, Violation,
};
use krmx_transport_shared::{IdMap, Outbox, TransportConfig};
use smol::channel::{Receiver, Sender};
use smol::future::or;
use smol::net::{AsyncToSocketAddrs, TcpListener, TcpStream};
use smol::{Async, Executor, Task, Timer};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many connection reports one turn takes before it lets the application look.
const REPORT_BUDGET: usize = 256;
/// How many ready connection tasks run before the driver waits again.
const TASK_BUDGET: usize = 256;
/// Reports queued from connection tasks before the tasks wait (backpressure on reading).
const REPORT_QUEUE: usize = 256;
/// Pause after an accept error (out of file descriptors and the like) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// The Krmx server on smol: a driver owning the [`Krmx`] core, one reader and one writer task
/// per connection, async-tungstenite framing.
///
/// The server is a future of its own: the connections' tasks run on an executor inside it,
/// while [`run`](Self::run), [`run_with`](Self::run_with) or [`turn`](Self::turn) is being
/// awaited, on whatever executor awaits it. Three ways to drive it:
///
/// - [`run`](Self::run) with an [`Events`] stream (from [`events`](Self::events)): events come
///   out as an async stream, authentication requests carry an
///   [`AuthResponder`](crate::AuthResponder), commands go through a [`Handle`].
/// - [`run_with`](Self::run_with) with a synchronous handler that sees every core event with
///   the server itself, so it can answer, send or kick at once (as the mio transport's `run`).
/// - [`turn`](Self::turn) in a loop of your own, between which you drain
///   [`poll_event`](Self::poll_event) and feed commands, racing it against your own futures.
///
/// ```no_run
/// use krmx_core::KrmxConfig;
/// use krmx_transport_smol::{Server, TransportConfig};
///
/// smol::block_on(async {
///     let mut server = Server::bind("127.0.0.1:8082", KrmxConfig::default(), TransportConfig::default()).await?;
///     loop {
///         while let Some(event) = server.poll_event() {
///             println!("{event:?}"); // react: server.send(..), server.decide_auth(..), ...
///         }
///         if server.is_finished() {
///             return Ok::<(), std::io::Error>(());
///         }
///         server.turn().await; // cancel-safe: race it against your own futures
///     }
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    krmx: Krmx,
    settings: Settings,
    close_linger: Duration,
    executor: Arc<Executor<'static>>,
    local_addr: Option<SocketAddr>,
    /// Accepts connections from the listener; dropped (with the listener) once closed.
    acceptor: Option<Task<()>>,
    conns: IdMap<Conn>,
    next_conn: u64,
    /// Closing connections dropped at these times unless they end first (fixed length, so
    /// the queue stays sorted).
    lingers: VecDeque<(Instant, ConnectionId)>,
    timer: Timer,
    /// The instant `timer` is set for.
    timer_at: Option<Instant>,
    /// Core events not yet taken by the application.
    events: VecDeque<krmx_core::Event>,
    reports: Receiver<Report>,
    report_sender: Sender<Report>,
    commands: Receiver<Command>,
    command_sender: Sender<Command>,
    /// The channel behind [`Events`], created by [`events`](Self::events).
    event_stream: Option<(Sender<Event>, Receiver<Event>)>,
    slow: Vec<ConnectionId>,
    /// Connections with bytes queued since they were last written.
    dirty: Vec<ConnectionId>,
}

/// One connection the driver knows.
struct Conn {
    phase: Phase,
    /// The socket, which only the driver writes to (dropping the last handle closes it).
    socket: Arc<Async<std::net::TcpStream>>,
    /// What the connection sends, from its upgrade response on.
    outbox: Outbox,
    /// Nothing more is queued: once the outbox is written, the socket is shut down for writing.
    finish: bool,
    /// The socket was shut down for writing.
    shut: bool,
    /// In the list of connections to write.
    dirty: bool,
    /// Handshake, then reading; dropping it cancels the task.
    _reader: Task<()>,
    /// Waits until the socket takes bytes again, after a write would have blocked.
    waiter: Option<Task<()>>,
}

enum Phase {
    Handshaking,
    /// Known to the core.
    Open,
    /// A close frame was sent or received; the core has forgotten the connection.
    Closing,
}

/// What woke the driver.
enum Wake {
    Command(Command),
    Report(Report),
    Timer,
    Task,
}

impl Server {
    /// Binds a listener on `addr` (port 0 picks a free one). The server listens at once (the
    /// `listen` event is queued) and accepts connections while it is driven.
    ///
    /// # Errors
    /// The bind failed.
    pub async fn bind(
        addr: impl AsyncToSocketAddrs,
        config: KrmxConfig,
        transport: TransportConfig,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let mut server = Self::build(config, transport);
        let reports = server.report_sender.clone();
        server.acceptor = Some(server.executor.spawn(accept(listener, reports)));
        server.local_addr = Some(local_addr);
        server.listen(local_addr.port());
        Ok(server)
    }

    /// A server without a listener of its own: connections come only through
    /// [`adopt`](Self::adopt) or [`Handle::adopt`] (from an application that serves HTTP on
    /// its port). It listens at once, on "port 0".
    #[must_use]
    pub fn new(config: KrmxConfig, transport: TransportConfig) -> Self {
        let mut server = Self::build(config, transport);
        server.listen(0);
        server
    }

    fn build(config: KrmxConfig, transport: TransportConfig) -> Self {
        // tungstenite's writes go straight to the connection's queue, which bounds them.
        let ws_config =
            krmx_transport_shared::websocket_config(&config, &transport).write_buffer_size(0);
        let (report_sender, reports) = smol::channel::bounded(REPORT_QUEUE);
        let (command_sender, commands) = smol::channel::unbounded();
        Self {
            krmx: Krmx::new(config.clone()),
            settings: Settings {
                config: Arc::new(config),
                ws_config,
                handshake_timeout: transport.handshake_timeout_value(),
            },
            close_linger: transport.close_linger_value(),
            executor: Arc::new(Executor::new()),
            local_addr: None,
            acceptor: None,
            conns: IdMap::default(),
            next_conn: 1,
            lingers: VecDeque::new(),
            timer: Timer::never(),
            timer_at: None,
            events: VecDeque::new(),
            reports,
            report_sender,
            commands,
            command_sender,
            event_stream: None,
            slow: Vec::new(),
            dirty: Vec::new(),
        }
    }

    fn listen(&mut self, port: u16) {
        let now = Instant::now();
        // Both are valid for a new core.
        let _ = self.feed(now, Input::Start);
        let _ = self.feed(now, Input::Listen { port });
    }

    /// The listener's address, if the server has one.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// A handle for commands from any task or thread.
    #[must_use]
    pub fn handle(&self) -> Handle {
        Handle::new(self.command_sender.clone())
    }

    /// The stream of events [`run`](Self::run) delivers. Calling it again gives another
    /// receiver of the same queue. Without one, `run` drops events (and rejects authentication
    /// requests with `authentication failed`).
    pub fn events(&mut self) -> Events {
        let (_, receiver) = self
            .event_stream
            .get_or_insert_with(smol::channel::unbounded);
        Events::new(receiver.clone())
    }

    /// Drives the server until it is closed (through a [`Handle`]) and every connection is
    /// gone, delivering its events to the [`Events`] stream; the stream ends after
    /// [`Event::Closed`](crate::Event::Closed).
    ///
    /// ```no_run
    /// use krmx_core::{AuthMode, KrmxConfig, Message};
    /// use krmx_transport_smol::{Event, Server, TransportConfig};
    ///
    /// smol::block_on(async {
    ///     let config = KrmxConfig::default().auth(AuthMode::Application);
    ///     let mut server = Server::bind("127.0.0.1:8082", config, TransportConfig::default()).await?;
    ///     let mut events = server.events();
    ///     let handle = server.handle();
    ///     let driver = smol::spawn(server.run());
    ///     while let Some(event) = events.next_event().await {
    ///         match event {
    ///             Event::AuthRequested { auth, responder, .. } => match auth.as_deref() {
    ///                 Some("secret") => responder.accept(),
    ///                 _ => responder.reject("bad token"),
    ///             },
    ///             Event::Message { username, message } => {
    ///                 let _ = handle.broadcast(message, Some(username.as_str())).await;
    ///             }
    ///             _ => {}
    ///         }
    ///     }
    ///     driver.await;
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn run(mut self) {
        let sender = self.event_stream.take().map(|(sender, _)| sender);
        loop {
            while let Some(event) = self.events.pop_front() {
                if let Some(event) = Event::from_core(event, &self.command_sender) {
                    if let Some(sender) = &sender {
                        let _ = sender.try_send(event);
                    }
                }
            }
            if self.is_finished() {
                return;
            }
            self.turn().await;
        }
    }

    /// Drives the server until it is closed (by the handler, a [`Handle`] or
    /// [`close`](Self::close)) and every connection is gone. `handler` runs inside the driver
    /// and sees every core event with the server, so it can react at once: answer an
    /// authentication ([`decide_auth`](Self::decide_auth)), send, broadcast, kick, close.
    ///
    /// ```no_run
    /// use krmx_core::{Event, KrmxConfig};
    /// use krmx_transport_smol::{Server, TransportConfig};
    ///
    /// smol::block_on(async {
    ///     let server = Server::bind("127.0.0.1:8082", KrmxConfig::default(), TransportConfig::default()).await?;
    ///     server
    ///         .run_with(|server, event| {
    ///             if let Event::Message { message, .. } = event {
    ///                 let _ = server.broadcast(message, None); // a relay
    ///             }
    ///         })
    ///         .await;
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn run_with(mut self, mut handler: impl FnMut(&mut Self, krmx_core::Event)) {
        loop {
            while let Some(event) = self.events.pop_front() {
                handler(&mut self, event);
            }
            if self.is_finished() {
                return;
            }
            self.turn().await;
        }
    }

    /// Waits until something happens (a connection reported, a handle sent a command, a
    /// deadline passed), handles it and what else is ready, and returns; then drain
    /// [`poll_event`](Self::poll_event). Connection tasks make progress while it is awaited.
    ///
    /// Cancel-safe: dropping it before it completes loses nothing, so it can be raced against
    /// the application's own futures.
    pub async fn turn(&mut self) {
        // What the application queued since the last turn goes out first.
        self.write_dirty();
        self.run_tasks();
        if self.take_ready() == 0 {
            self.write_dirty();
            self.arm_timer();
            let wake = self.wait().await;
            self.wake(wake);
            self.take_ready();
        }
        self.fire_due(Instant::now());
    }

    /// The next event for the application, in the order the core emitted them. Drain it after
    /// every [`turn`](Self::turn) and command.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<krmx_core::Event> {
        self.events.pop_front()
    }

    /// Whether the server closed and every connection is gone: the loop may end.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.krmx.status() == Status::Closed && self.conns.is_empty()
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

    /// Feeds any core input now (server commands, auth decisions, close).
    ///
    /// # Errors
    /// The core's error, for example `cannot kick a user that does not exist`.
    pub fn input(&mut self, input: Input) -> Result<(), Error> {
        self.feed(Instant::now(), input)
    }

    /// Joins a user that is not linked.
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

    /// Unlinks the user's connection; the user stays.
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

    /// Answers a pending authentication (an answer for an attempt no longer pending is
    /// ignored).
    pub fn decide_auth(&mut self, id: AuthId, decision: AuthDecision) {
        let _ = self.input(Input::AuthDecided { id, decision });
    }

    /// Closes gracefully: every user leaves, every connection gets a close frame, the `close`
    /// event is queued and the listener is dropped. Keep driving the server until
    /// [`is_finished`](Self::is_finished) so the close frames go out.
    ///
    /// # Errors
    /// As [`Input::Close`] (not starting or listening).
    pub fn close(&mut self) -> Result<(), Error> {
        self.input(Input::Close)
    }

    /// Takes over a connection accepted by the application's own HTTP server, with the bytes of
    /// the request it already read (empty if none): the upgrade continues here while the server
    /// is driven. Once the server is closed the connection is dropped. A
    /// [`std::net::TcpStream`] converts with `TcpStream::try_from`.
    pub fn adopt(&mut self, stream: TcpStream, already_read: Vec<u8>) {
        if self.krmx.status() == Status::Closed {
            tracing::debug!("connection dropped: the server is closed");
            return;
        }
        let conn = ConnectionId::new(self.next_conn);
        self.next_conn += 1;
        let socket = Arc::<Async<std::net::TcpStream>>::from(stream.clone());
        let reader = self.executor.spawn(connection::read(
            conn,
            stream,
            already_read,
            self.settings.clone(),
            self.report_sender.clone(),
        ));
        self.conns.insert(
            conn,
            Conn {
                phase: Phase::Handshaking,
                socket,
                outbox: Outbox::default(),
                finish: false,
                shut: false,
                dirty: false,
                _reader: reader,
                waiter: None,
            },
        );
    }

    // ----- the loop -----

    /// Lets ready connection tasks run (readers read, writability waiters report).
    fn run_tasks(&mut self) {
        for _ in 0..TASK_BUDGET {
            if !self.executor.try_tick() {
                break;
            }
        }
    }

    /// Writes every connection with bytes queued.
    fn write_dirty(&mut self) {
        let mut batch = std::mem::take(&mut self.dirty);
        while !batch.is_empty() {
            for &conn in &batch {
                if let Some(entry) = self.conns.get_mut(&conn) {
                    entry.dirty = false;
                }
                self.write(conn);
            }
            batch.clear();
            // A broken socket unlinks its user, which queues messages for others: write those
            // too.
            std::mem::swap(&mut batch, &mut self.dirty);
        }
        // Keep the allocation for the next round.
        self.dirty = batch;
    }

    /// Queues `conn` for the next [`write_dirty`](Self::write_dirty).
    fn mark_dirty(&mut self, conn: ConnectionId) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            if !entry.dirty {
                entry.dirty = true;
                self.dirty.push(conn);
            }
        }
    }

    /// Writes what the socket takes of a connection's outbox; shuts a finished connection down
    /// for writing once all is out; waits for the socket when it is full; drops the
    /// connection when the socket is broken.
    fn write(&mut self, conn: ConnectionId) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        if entry.shut || entry.waiter.is_some() {
            return;
        }
        match entry.outbox.write_to(&mut entry.socket.get_ref()) {
            Ok(true) => {
                if entry.finish {
                    entry.shut = true;
                    let _ = entry.socket.get_ref().shutdown(std::net::Shutdown::Write);
                }
            }
            Ok(false) => {
                let socket = Arc::clone(&entry.socket);
                let reports = self.report_sender.clone();
                entry.waiter = Some(self.executor.spawn(async move {
                    // An error shows on the next write.
                    let _ = socket.writable().await;
                    let _ = reports.send(Report::Writable(conn)).await;
                }));
            }
            Err(error) => {
                tracing::debug!(%conn, %error, "write failed");
                self.drop_conn(conn);
            }
        }
    }

    /// Forgets a connection (closing its socket); the core learns if it knew it.
    fn drop_conn(&mut self, conn: ConnectionId) {
        let was_open = self.is_open(conn);
        self.conns.remove(&conn);
        if was_open {
            let _ = self.feed(Instant::now(), Input::ConnectionClosed { conn });
        }
    }

    /// Handles up to a budget of reports and every command already queued; returns how many.
    /// Reports go first: they are network facts that may have waited (a pong that arrived in
    /// time must count before a command fires the ping deadline).
    fn take_ready(&mut self) -> usize {
        let mut handled = 0;
        for _ in 0..REPORT_BUDGET {
            let Ok(report) = self.reports.try_recv() else {
                break;
            };
            self.report(report);
            handled += 1;
        }
        while let Ok(command) = self.commands.try_recv() {
            self.command(command);
            handled += 1;
        }
        handled
    }

    /// Sets the timer to the earliest deadline: the core's or a closing connection's.
    fn arm_timer(&mut self) {
        let deadline = [
            self.krmx.poll_timeout(),
            self.lingers.front().map(|(at, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min();
        if deadline != self.timer_at {
            match deadline {
                Some(at) => self.timer.set_at(at),
                None => self.timer = Timer::never(),
            }
            self.timer_at = deadline;
        }
    }

    /// Waits for a command, a report or the timer, running connection tasks meanwhile.
    async fn wait(&mut self) -> Wake {
        let Self {
            commands,
            reports,
            timer,
            executor,
            ..
        } = self;
        loop {
            let command = async { commands.recv().await.map_or(Wake::Task, Wake::Command) };
            let report = async { reports.recv().await.map_or(Wake::Task, Wake::Report) };
            let due = async {
                (&mut *timer).await;
                Wake::Timer
            };
            let task = async {
                executor.tick().await;
                Wake::Task
            };
            match or(or(report, command), or(due, task)).await {
                Wake::Task => {
                    for _ in 0..TASK_BUDGET {
                        if !executor.try_tick() {
                            break;
                        }
                    }
                }
                wake => return wake,
            }
        }
    }

    fn wake(&mut self, wake: Wake) {
        match wake {
            Wake::Command(command) => self.command(command),
            Wake::Report(report) => self.report(report),
            Wake::Timer => self.timer_at = None,
            Wake::Task => {}
        }
    }

    /// Fires what is due: the core's timers and the close lingers.
    fn fire_due(&mut self, now: Instant) {
        if self.krmx.poll_timeout().is_some_and(|at| at <= now) {
            let _ = self.feed(now, Input::Tick);
        }
        while let Some(&(at, conn)) = self.lingers.front() {
            if at > now {
                break;
            }
            self.lingers.pop_front();
            if matches!(
                self.conns.get(&conn),
                Some(Conn {
                    phase: Phase::Closing,
                    ..
                })
            ) {
                tracing::debug!(%conn, "close linger passed");
                self.conns.remove(&conn);
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Input { input, reply } => {
                let result = self.input(input);
                if let Some(reply) = reply {
                    let _ = reply.try_send(result);
                }
            }
            Command::Decide { id, decision } => self.decide_auth(id, decision),
            Command::Users(reply) => {
                let _ = reply.try_send(self.users());
            }
            Command::Status(reply) => {
                let _ = reply.try_send(self.status());
            }
            Command::Adopt {
                stream,
                already_read,
            } => self.adopt(stream, already_read),
        }
    }

    fn report(&mut self, report: Report) {
        let now = Instant::now();
        match report {
            Report::Wrote { conn, bytes } => {
                let limit = self.settings.config.max_buffered_bytes_value();
                let Some(entry) = self.conns.get_mut(&conn) else {
                    return;
                };
                if entry.finish {
                    return;
                }
                entry.outbox.push_bytes(&bytes);
                // Written at once: a refused upgrade is dropped right after its response.
                self.write(conn);
                let over = self
                    .conns
                    .get(&conn)
                    .is_some_and(|entry| entry.outbox.buffered() > limit);
                if over && self.is_open(conn) {
                    // tungstenite answers every ping with a pong: a peer that floods pings and
                    // does not read would grow the outbox without bound. Past the bound it is
                    // a slow consumer like any other.
                    tracing::debug!(%conn, "slow consumer (pongs)");
                    let violation = Violation::SlowConsumer;
                    let _ = self.feed(now, Input::Violation { conn, violation });
                }
            }
            Report::Finished(conn) => {
                if let Some(entry) = self.conns.get_mut(&conn) {
                    entry.finish = true;
                    self.write(conn);
                }
            }
            Report::Writable(conn) => {
                if let Some(entry) = self.conns.get_mut(&conn) {
                    entry.waiter = None;
                    self.write(conn);
                }
            }
            Report::Opened { conn, target } => {
                let Some(entry) = self.conns.get_mut(&conn) else {
                    return;
                };
                entry.phase = Phase::Open;
                let _ = self.feed(now, Input::ConnectionOpened { conn, target });
            }
            Report::Accepted(stream) => self.adopt(stream, Vec::new()),
            Report::Read { conn, input } => {
                if self.is_open(conn) {
                    let _ = self.feed(now, input);
                }
            }
            Report::PeerClosed(conn) => {
                // The core learns first (the user is unlinked); reading goes on to send the
                // close reply, within the linger.
                if self.is_open(conn) {
                    self.enter_closing(now, conn);
                    let _ = self.feed(now, Input::ConnectionClosed { conn });
                }
            }
            Report::Ended(conn) => self.drop_conn(conn),
        }
    }

    fn is_open(&self, conn: ConnectionId) -> bool {
        matches!(
            self.conns.get(&conn),
            Some(Conn {
                phase: Phase::Open,
                ..
            })
        )
    }

    /// The core forgot the connection: nothing more is queued for it, it is dropped when the
    /// peer closes or the linger passes.
    fn enter_closing(&mut self, now: Instant, conn: ConnectionId) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.phase = Phase::Closing;
            entry.finish = true;
            self.lingers.push_back((now + self.close_linger, conn));
        }
    }

    // ----- the core -----

    /// Feeds the core and carries out its outputs.
    fn feed(&mut self, now: Instant, input: Input) -> Result<(), Error> {
        let result = self.krmx.handle_input(now, input);
        self.carry_out(now);
        result
    }

    /// Carries out every queued core output. A connection whose queue would pass its bound is
    /// reported to the core as a slow consumer, whose outputs are carried out in turn.
    fn carry_out(&mut self, now: Instant) {
        loop {
            while let Some(batch) = self.krmx.poll_output_batch() {
                let output = match batch {
                    OutputBatch::Broadcast { text, to } => {
                        for to in to {
                            self.send_text(to, &text);
                        }
                        continue;
                    }
                    OutputBatch::One(output) => output,
                };
                match output {
                    Output::Send { to, text } => {
                        self.send_text(to, &text);
                    }
                    Output::Ping { to } => {
                        if let Some(outbox) = self.open_outbox(to) {
                            outbox.push_ping();
                            self.mark_dirty(to);
                        }
                    }
                    Output::Close { to, code, reason } => {
                        if let Some(outbox) = self.open_outbox(to) {
                            outbox.push_close(code.0, reason);
                            self.enter_closing(now, to);
                            self.mark_dirty(to);
                        }
                    }
                    Output::Event(event) => self.events.push_back(event),
                    _ => {}
                }
            }
            if self.slow.is_empty() {
                break;
            }
            for conn in std::mem::take(&mut self.slow) {
                if self.is_open(conn) {
                    tracing::debug!(%conn, "slow consumer");
                    let violation = Violation::SlowConsumer;
                    let _ = self
                        .krmx
                        .handle_input(now, Input::Violation { conn, violation });
                }
            }
        }
        if self.krmx.status() == Status::Closed && self.acceptor.is_some() {
            self.stop_accepting();
        }
    }

    /// The server closed: the listener goes (the acceptor task owns it), and connections still
    /// in their HTTP upgrade, no Krmx connections yet, are dropped rather than keeping the
    /// server from finishing until their handshake timeout.
    fn stop_accepting(&mut self) {
        self.acceptor = None;
        self.conns
            .retain(|_, conn| !matches!(conn.phase, Phase::Handshaking));
    }

    /// The outbox of a connection the core knows.
    fn open_outbox(&mut self, conn: ConnectionId) -> Option<&mut Outbox> {
        match self.conns.get_mut(&conn) {
            Some(Conn {
                phase: Phase::Open,
                outbox,
                ..
            }) => Some(outbox),
            _ => None,
        }
    }

    /// Queues a text frame; a connection whose queue passes its bound even after a write is
    /// reported to the core as a slow consumer (as on mio, nothing queued is dropped: the
    /// core closes the connection right after what it already sent).
    fn send_text(&mut self, to: ConnectionId, text: &Text) {
        let limit = self.settings.config.max_buffered_bytes_value();
        let Some(entry) = self.conns.get_mut(&to) else {
            return;
        };
        if !matches!(entry.phase, Phase::Open) {
            return;
        }
        entry.outbox.push_text_frame(text);
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(to);
        }
        if entry.outbox.is_batch_full() || entry.outbox.buffered() > limit {
            // Into the kernel's buffer now rather than growing ours (a burst within one turn
            // is not a slow consumer while the kernel still takes the bytes).
            self.write(to);
            let over = self
                .conns
                .get(&to)
                .is_some_and(|entry| entry.outbox.buffered() > limit);
            if over && !self.slow.contains(&to) {
                self.slow.push(to);
            }
        }
    }
}

/// Accepts connections and hands them to the driver.
async fn accept(listener: TcpListener, reports: Sender<Report>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tracing::trace!(%peer, "accepted");
                if reports.send(Report::Accepted(stream)).await.is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                Timer::after(ACCEPT_RETRY).await;
            }
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("status", &self.krmx.status())
            .field("local_addr", &self.local_addr)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_and_its_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Handle>();
        assert_send_sync::<crate::AuthResponder>();
        assert_send_sync::<Event>();
        assert_send_sync::<Events>();
        let server = Server::new(KrmxConfig::default(), TransportConfig::default());
        assert_send(&server.handle());
        let mut server = server;
        assert_send(&server.turn());
        assert_send(&server.run());
    }
}
