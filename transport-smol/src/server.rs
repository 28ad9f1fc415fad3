//! [`Server`]: the connection driver pumped by smol: one task per connection waits for its
//! socket's readiness, the server's own loop hands every fact to the driver.

use crate::event::{Event, Events};
use crate::stream::Tcp;
use crate::watch::{Arm, Report, Watch};
use krmx_core::{Application, Control, KrmxConfig};
use krmx_driver::{
    AuthResponder, Commands, ConnKey, Driver, Handle, Io, Readiness, TransportConfig,
};
use smol::channel::{Receiver, Sender};
use smol::future::or;
use smol::net::{AsyncToSocketAddrs, TcpListener, TcpStream};
use smol::{Async, Executor, Task, Timer};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many readiness reports one turn takes before it lets the application look.
const REPORT_BUDGET: usize = 256;
/// How many ready tasks run before the server waits again.
const TASK_BUDGET: usize = 256;
/// Accepted connections queued before the acceptor waits.
const ACCEPT_QUEUE: usize = 256;
/// Pause after an accept error (out of file descriptors and the like) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// The Krmx server on smol: the [`Driver`] does everything between the core and the sockets;
/// this pump waits for readiness, commands and the next deadline.
///
/// The server is a future of its own: the connections' watcher tasks run on an executor
/// inside it, while [`run`](Self::run), [`run_with`](Self::run_with) or [`turn`](Self::turn)
/// is being awaited, on whatever executor awaits it. Three ways to drive it:
///
/// - [`run`](Self::run) with an [`Events`] stream (from [`events`](Self::events)): events come
///   out as an async stream, authentication requests carry an [`AuthResponder`], commands go
///   through a [`Handle`].
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
///         // `None` only once every event is out and every queued byte was offered.
///         while let Some(event) = server.poll_event() {
///             println!("{event:?}"); // react: server.commands().send(..), ...
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
    driver: Driver<Tcp>,
    executor: Arc<Executor<'static>>,
    local_addr: Option<SocketAddr>,
    /// Accepts connections from the listener; dropped (with the listener) once closed.
    acceptor: Option<Task<()>>,
    /// The watcher of each slot's connection.
    watchers: Vec<Option<Watcher>>,
    timer: Timer,
    /// The instant `timer` is set for.
    timer_at: Option<Instant>,
    /// Readiness from the connections' tasks (at most two reports outstanding per connection).
    reports: Receiver<Report>,
    report_sender: Sender<Report>,
    accepted: Receiver<TcpStream>,
    /// Wakes the server when a [`Handle`] sent a command.
    commands_sent: Receiver<()>,
    handle: Handle,
    /// The channel behind [`Events`], created by [`events`](Self::events).
    event_stream: Option<(Sender<Event>, Receiver<Event>)>,
}

/// The tasks that wait for one connection's readiness.
struct Watcher {
    key: ConnKey,
    /// Asks the reader task to wait for readability once more.
    arm: Arc<Arm>,
    _task: Task<()>,
}

/// What woke the server.
enum Wake {
    Report(Report),
    Accepted(TcpStream),
    Command,
    Timer,
}

/// Wakes the server for a [`Handle`]'s command.
struct Notify(Sender<()>);

impl krmx_driver::Wake for Notify {
    fn wake(&self) {
        // Full means a wake is pending already.
        let _ = self.0.try_send(());
    }
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
        let mut server = Self::with_port(local_addr.port(), config, transport);
        let (accepted, acceptance) = smol::channel::bounded(ACCEPT_QUEUE);
        server.accepted = acceptance;
        server.acceptor = Some(server.executor.spawn(accept(listener, accepted)));
        server.local_addr = Some(local_addr);
        Ok(server)
    }

    /// A server without a listener of its own: connections come only through
    /// [`adopt`](Self::adopt) or [`Handle::adopt`].
    #[must_use]
    pub fn new(config: KrmxConfig, transport: TransportConfig) -> Self {
        Self::with_port(0, config, transport)
    }

    fn with_port(port: u16, config: KrmxConfig, transport: TransportConfig) -> Self {
        let mut driver = Driver::new(
            Instant::now(),
            port,
            config,
            transport,
            Readiness::OnRequest,
        );
        let (notify, commands_sent) = smol::channel::bounded(1);
        driver.set_waker(Arc::new(Notify(notify)));
        let (report_sender, reports) = smol::channel::unbounded();
        // Without a listener, nothing is ever accepted.
        let (_, accepted) = smol::channel::bounded(1);
        let handle = match driver.handle() {
            Some(handle) => handle,
            None => unreachable!("the waker is set"),
        };
        Self {
            driver,
            executor: Arc::new(Executor::new()),
            local_addr: None,
            acceptor: None,
            watchers: Vec::new(),
            timer: Timer::never(),
            timer_at: None,
            reports,
            report_sender,
            accepted,
            commands_sent,
            handle,
            event_stream: None,
        }
    }

    /// The listener's address, if the server has one.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// A cloneable handle through which other tasks and threads command the server.
    #[must_use]
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The server's events as an async stream, for [`run`](Self::run) to fill. Every call
    /// gives a receiver of the same stream.
    pub fn events(&mut self) -> Events {
        let (_, receiver) = self
            .event_stream
            .get_or_insert_with(smol::channel::unbounded);
        Events::new(receiver.clone())
    }

    /// Drives the server until it closed and every connection is gone, sending every event to
    /// the [`Events`] stream (dropped when no stream was asked for).
    pub async fn run(mut self) {
        let sender = self.event_stream.take().map(|(sender, _)| sender);
        loop {
            while let Some(event) = self.driver.poll_event() {
                let responder = match &event {
                    krmx_core::Event::AuthRequested { id, .. } => {
                        Some(AuthResponder::new(*id, self.handle.clone()))
                    }
                    _ => None,
                };
                if let Some(sender) = &sender {
                    // Unbounded: only a dropped stream refuses, and then nobody listens.
                    drop(sender.try_send(Event { event, responder }));
                }
            }
            if self.is_finished() {
                return;
            }
            self.turn().await;
        }
    }

    /// Drives the server until it closed and every connection is gone, calling `handler` with
    /// every event and the server itself, so it can answer, send or kick at once.
    pub async fn run_with(mut self, mut handler: impl FnMut(&mut Self, krmx_core::Event)) {
        loop {
            while let Some(event) = self.driver.poll_event() {
                handler(&mut self, event);
            }
            if self.is_finished() {
                return;
            }
            self.turn().await;
        }
    }

    /// Runs the server with `app` handling every event inside the driver, until it is closed
    /// and every connection is gone: the same [`Application`] runs on the mio transport
    /// (`krmx_transport_mio::run_app`) and in the `krmx-testkit` simulation.
    ///
    /// ```no_run
    /// use krmx_core::{Control, Event, KrmxConfig};
    /// use krmx_transport_smol::{Server, TransportConfig};
    ///
    /// smol::block_on(async {
    ///     let server = Server::bind("127.0.0.1:8082", KrmxConfig::default(), TransportConfig::default()).await?;
    ///     server
    ///         .run_app(|server: &mut dyn Control, event: Event| {
    ///             if let Event::Message { message, .. } = event {
    ///                 let _ = server.broadcast(message, None); // a relay
    ///             }
    ///         })
    ///         .await;
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn run_app(self, mut app: impl Application) {
        self.run_with(|server, event| app.on_event(server.control(), event))
            .await;
    }

    /// One turn: carries out the driver's requests, waits (unless something is pending) for
    /// readiness, a command or the next deadline, and hands what happened to the driver.
    /// Drain [`poll_event`](Self::poll_event) between turns. Cancel-safe.
    pub async fn turn(&mut self) {
        // What the application queued since the last turn goes out first, even if it did not
        // drain the events (their writes would otherwise wait for its next drain).
        self.driver.flush();
        self.run_io();
        self.run_tasks();
        // The turn ends here (the application's handling of its events included): timed.
        self.driver.end_turn(Instant::now());
        let idle = self.reports.is_empty()
            && self.accepted.is_empty()
            && self.commands_sent.is_empty()
            && !self.driver.has_pending();
        let woke = if idle {
            self.arm_timer();
            Some(self.wait().await)
        } else {
            None
        };
        let now = Instant::now();
        match woke {
            Some(Wake::Report(report)) => self.report(now, report),
            Some(Wake::Accepted(stream)) => self.accept(stream),
            Some(Wake::Timer) => self.timer_at = None,
            Some(Wake::Command) | None => {}
        }
        for _ in 0..REPORT_BUDGET {
            let Ok(report) = self.reports.try_recv() else {
                break;
            };
            self.report(now, report);
        }
        for _ in 0..ACCEPT_QUEUE {
            let Ok(stream) = self.accepted.try_recv() else {
                break;
            };
            self.accept(stream);
        }
        while self.commands_sent.try_recv().is_ok() {}
        self.driver.run_commands(now);
        self.driver.tick(now);
        // Streams released in this turn close now, not at the next one.
        self.run_io();
    }

    /// The server's commands and queries (join, kick, send, broadcast, decide an
    /// authentication, close, users, status, ...), now.
    pub fn commands(&mut self) -> &mut dyn Commands {
        self.driver.begin_turn(Instant::now());
        &mut self.driver
    }

    /// The server as an [`Application`] commands it (the [`Control`] part of
    /// [`commands`](Self::commands)), now.
    pub fn control(&mut self) -> &mut dyn Control {
        self.driver.begin_turn(Instant::now());
        &mut self.driver
    }

    /// The next event for the application; `None` once every event is out and every queued
    /// byte was offered to its socket.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<krmx_core::Event> {
        self.driver.poll_event()
    }

    /// Whether the server closed and every connection is gone.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.driver.is_finished()
    }

    /// Takes over a connection accepted by the application's own HTTP server, with the bytes of
    /// the request it already read (empty if none): the upgrade continues here. The stream is
    /// plain (the server's TLS, if configured, applies to the connections it accepts itself).
    /// Once the server closed, the stream is dropped and an error returned.
    ///
    /// # Errors
    /// The server closed.
    pub fn adopt(&mut self, stream: TcpStream, already_read: Vec<u8>) -> io::Result<()> {
        self.take(Instant::now(), Arc::from(stream), Some(already_read))
    }

    // ----- the pump -----

    fn run_tasks(&mut self) {
        for _ in 0..TASK_BUDGET {
            if !self.executor.try_tick() {
                break;
            }
        }
    }

    /// Carries out the driver's requests.
    fn run_io(&mut self) {
        while let Some(io) = self.driver.poll_io() {
            match io {
                Io::WaitReadable(key) => {
                    if let Some(watcher) = self.watcher(key) {
                        watcher.arm.arm();
                    }
                }
                Io::WaitWritable(key) => {
                    if let Some(watcher) = self.watcher(key) {
                        watcher.arm.arm_write();
                    }
                }
                Io::Released(key) => {
                    if let Some(entry) = self.watchers.get_mut(key.slot()) {
                        if entry.as_ref().is_some_and(|watcher| watcher.key == key) {
                            *entry = None;
                        }
                    }
                }
                Io::StopAccepting => self.acceptor = None,
                Io::Adopt {
                    stream,
                    already_read,
                } => match Async::new(stream) {
                    Ok(socket) => {
                        if let Err(error) =
                            self.take(Instant::now(), Arc::new(socket), Some(already_read))
                        {
                            tracing::debug!(%error, "adopted connection dropped");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "could not adopt a connection"),
                },
            }
        }
    }

    fn watcher(&mut self, key: ConnKey) -> Option<&mut Watcher> {
        self.watchers
            .get_mut(key.slot())?
            .as_mut()
            .filter(|watcher| watcher.key == key)
    }

    /// Hands a socket to the driver (accepted, or adopted with the bytes of its request read
    /// already), starts its watcher and reads what is there already.
    fn take(
        &mut self,
        now: Instant,
        socket: Arc<Async<std::net::TcpStream>>,
        adopted: Option<Vec<u8>>,
    ) -> io::Result<()> {
        if let Err(error) = socket.get_ref().set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let stream = Tcp(Arc::clone(&socket));
        let taken = match adopted {
            None => self.driver.accept(now, stream),
            Some(already_read) => self.driver.adopt(now, stream, already_read),
        };
        let key = taken
            .map_err(|refusal| io::Error::other(format!("connection refused: {refusal:?}")))?;
        let arm = Arc::new(Arm::default());
        let task = self.executor.spawn(Watch {
            socket,
            key,
            arm: Arc::clone(&arm),
            reports: self.report_sender.clone(),
        });
        let slot = key.slot();
        if self.watchers.len() <= slot {
            self.watchers.resize_with(slot + 1, || None);
        }
        if let Some(entry) = self.watchers.get_mut(slot) {
            *entry = Some(Watcher {
                key,
                arm,
                _task: task,
            });
        }
        // Bytes may be there already (or handed over).
        self.driver.readable(now, key);
        Ok(())
    }

    /// Takes an accepted connection; its deadlines start now, as it is taken.
    fn accept(&mut self, stream: TcpStream) {
        if let Err(error) = self.take(Instant::now(), Arc::from(stream), None) {
            tracing::debug!(%error, "accepted connection dropped");
        }
    }

    fn report(&mut self, now: Instant, report: Report) {
        match report {
            Report::Readable(key) => self.driver.readable(now, key),
            Report::Writable(key) => self.driver.writable(now, key),
        }
    }

    fn arm_timer(&mut self) {
        let deadline = self.driver.poll_timeout();
        if deadline != self.timer_at {
            match deadline {
                Some(at) => self.timer.set_at(at),
                None => self.timer = Timer::never(),
            }
            self.timer_at = deadline;
        }
    }

    async fn wait(&mut self) -> Wake {
        let Self {
            commands_sent,
            reports,
            accepted,
            timer,
            executor,
            ..
        } = self;
        loop {
            let command = async { commands_sent.recv().await.ok().map(|()| Wake::Command) };
            let report = async {
                or(
                    async { reports.recv().await.ok().map(Wake::Report) },
                    async {
                        match accepted.recv().await {
                            Ok(stream) => Some(Wake::Accepted(stream)),
                            // No listener (or it closed): nothing more to accept.
                            Err(_) => smol::future::pending().await,
                        }
                    },
                )
                .await
            };
            let due = async {
                (&mut *timer).await;
                Some(Wake::Timer)
            };
            let task = async {
                executor.tick().await;
                None
            };
            // The server holds a sender of both channels: they never close.
            if let Some(wake) = or(or(report, command), or(due, task)).await {
                return wake;
            }
            for _ in 0..TASK_BUDGET {
                if !executor.try_tick() {
                    break;
                }
            }
        }
    }
}

async fn accept(listener: TcpListener, accepted: Sender<TcpStream>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tracing::trace!(%peer, "accepted");
                if accepted.send(stream).await.is_err() {
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
            .field("driver", &self.driver)
            .field("local_addr", &self.local_addr)
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
        assert_send_sync::<AuthResponder>();
        assert_send_sync::<Event>();
        assert_send_sync::<Events>();
        let server = Server::new(KrmxConfig::default(), TransportConfig::default());
        assert_send(&server.handle());
        let mut server = server;
        assert_send(&server.turn());
        assert_send(&server.run());
    }
}
