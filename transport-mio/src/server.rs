//! [`Server`]: the connection driver pumped by a mio [`Registry`].

use crate::stream::Tcp;
use krmx_core::{Control, Event, KrmxConfig};
use krmx_driver::{Commands, ConnKey, Driver, Handle, Io, Readiness, TransportConfig, Wake};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Offset of the listener's token from the first token.
const LISTENER: usize = 0;
/// Offset of the waker's token from the first token.
const WAKER: usize = 1;
/// Offset of the first connection's token from the first token.
const FIRST_CONNECTION: usize = 2;

/// The Krmx server on mio: one thread, non-blocking sockets, the [`Driver`] doing everything
/// between the core and the sockets.
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
///     // `None` only once every event is out and every queued byte was offered to its socket.
///     while let Some(event) = server.poll_event() {
///         println!("{event:?}"); // react: server.commands().send(..), ...
///     }
///     // Zero while anything is left to do: the loop never sleeps on queued work.
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
    driver: Driver<Tcp>,
    listener: Option<TcpListener>,
    registry: Option<Registry>,
    first_token: usize,
    waker: Option<Arc<Waker>>,
    /// The time of the current turn: read at its first need, forgotten before the next poll.
    turn_now: Option<Instant>,
}

/// The mio waker as the driver's [`Wake`].
struct MioWake(Arc<Waker>);

impl Wake for MioWake {
    fn wake(&self) {
        if let Err(error) = self.0.wake() {
            tracing::warn!(%error, "could not wake the server");
        }
    }
}

impl Server {
    /// Binds a listener on `addr` (port 0 picks a free one). The server listens once registered
    /// (the `listen` event is queued already).
    ///
    /// # Errors
    /// The bind failed.
    pub fn bind(
        addr: SocketAddr,
        config: KrmxConfig,
        transport: TransportConfig,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let port = listener.local_addr()?.port();
        let mut server = Self::with_port(port, config, transport);
        server.listener = Some(listener);
        Ok(server)
    }

    /// A server without a listener of its own: connections come only through
    /// [`adopt`](Self::adopt) (an application that serves HTTP on its port hands them over).
    #[must_use]
    pub fn without_listener(config: KrmxConfig, transport: TransportConfig) -> Self {
        Self::with_port(0, config, transport)
    }

    fn with_port(port: u16, config: KrmxConfig, transport: TransportConfig) -> Self {
        Self {
            driver: Driver::new(Instant::now(), port, config, transport, Readiness::Edge),
            listener: None,
            registry: None,
            first_token: 0,
            waker: None,
            turn_now: None,
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
    /// `first_token` up.
    ///
    /// mio allows one [`Waker`] per poll and this registers it: to wake your own loop from
    /// another thread, use [`waker`](Self::waker).
    ///
    /// # Errors
    /// Registration failed, or the server was registered before.
    pub fn register(&mut self, registry: &Registry, first_token: Token) -> io::Result<()> {
        if self.registry.is_some() {
            return Err(io::Error::other("the server is registered already"));
        }
        self.first_token = first_token.0;
        let registry = registry.try_clone()?;
        if let Some(listener) = &mut self.listener {
            registry.register(
                listener,
                Token(self.first_token + LISTENER),
                Interest::READABLE,
            )?;
        }
        let waker = Arc::new(Waker::new(&registry, Token(self.first_token + WAKER))?);
        self.driver.set_waker(Arc::new(MioWake(Arc::clone(&waker))));
        self.waker = Some(waker);
        self.registry = Some(registry);
        Ok(())
    }

    /// A handle through which other threads command the server. Available once registered.
    #[must_use]
    pub fn handle(&self) -> Option<Handle> {
        self.driver.handle()
    }

    /// The waker registered with the poll, to wake your own loop from another thread (its
    /// event is the server's and does nothing). Available once registered.
    #[must_use]
    pub fn waker(&self) -> Option<Arc<Waker>> {
        self.waker.clone()
    }

    /// The server's commands and queries (join, kick, send, broadcast, decide an
    /// authentication, close, users, status, ...), at the time of the current turn.
    pub fn commands(&mut self) -> &mut dyn Commands {
        let now = self.now();
        self.driver.begin_turn(now);
        &mut self.driver
    }

    /// The server as an [`Application`](krmx_core::Application) commands it (the
    /// [`Control`] part of [`commands`](Self::commands)), at the time of the current turn.
    pub fn control(&mut self) -> &mut dyn Control {
        let now = self.now();
        self.driver.begin_turn(now);
        &mut self.driver
    }

    /// The next event for the application; `None` once every event is out and every queued
    /// byte was offered to its socket (a write that fails closes its connection, and its
    /// events come out here first). Drain it after every turn and every command.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.driver.poll_event()
    }

    /// Carries out what the driver asks of the reactor and returns how long the application's
    /// `poll` may sleep: zero while events or writes are pending. Call right before every
    /// `poll`.
    pub fn before_poll(&mut self) -> Option<Duration> {
        // Writes the application queued without draining events go out now too.
        self.driver.flush();
        self.run_io();
        self.turn_now = None;
        let now = Instant::now();
        self.driver.end_turn(now);
        if self.driver.has_pending() {
            return Some(Duration::ZERO);
        }
        self.driver
            .poll_timeout()
            .map(|at| at.saturating_duration_since(now))
    }

    /// One turn on a poll the server was [`register`](Self::register)ed with: waits for
    /// readiness, a wake or the next deadline (not at all while anything is pending), then
    /// hands every readiness and due deadline to the driver. Drain
    /// [`poll_event`](Self::poll_event) between turns. Readiness of your own tokens on the same
    /// poll is dropped: use the separate calls (as in the embedded loop above) to keep it.
    ///
    /// # Errors
    /// Polling failed (an interrupted poll is no error: the turn just ends early).
    pub fn turn(&mut self, poll: &mut Poll, events: &mut Events) -> io::Result<()> {
        let timeout = self.before_poll();
        match poll.poll(events, timeout) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
            Ok(()) => {
                for event in events.iter() {
                    self.handle_event(event);
                }
            }
        }
        self.handle_timeout();
        Ok(())
    }

    /// Handles one readiness event. Returns `false` when the token is not the server's.
    pub fn handle_event(&mut self, event: &mio::event::Event) -> bool {
        let token = event.token().0;
        if token < self.first_token || self.registry.is_none() {
            return false;
        }
        let now = self.now();
        match token - self.first_token {
            LISTENER => self.accept_all(),
            WAKER => self.driver.run_commands(now),
            offset => {
                let Some(key) = self.driver.key_at(offset - FIRST_CONNECTION) else {
                    return true;
                };
                if event.is_writable() || event.is_write_closed() {
                    self.driver.writable(now, key);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.driver.readable(now, key);
                }
            }
        }
        true
    }

    /// Fires what is due: core timers (auth timeouts, pings, inactivity), handshake timeouts
    /// and close lingers. Harmless when nothing is due.
    pub fn handle_timeout(&mut self) {
        let now = self.now();
        self.driver.tick(now);
    }

    /// Whether the server closed and every connection is gone: the loop may end.
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
    /// The server is not registered or closed, or registering the stream failed.
    pub fn adopt(&mut self, stream: TcpStream, already_read: Vec<u8>) -> io::Result<()> {
        let now = self.now();
        self.take(now, stream, Some(already_read))
    }

    // ----- the pump -----

    fn now(&mut self) -> Instant {
        *self.turn_now.get_or_insert_with(Instant::now)
    }

    /// Carries out the driver's requests: mio reports every readiness of a registered stream,
    /// so only the listener and adopted streams need work here.
    fn run_io(&mut self) {
        while let Some(io) = self.driver.poll_io() {
            match io {
                Io::StopAccepting => {
                    if let (Some(mut listener), Some(registry)) =
                        (self.listener.take(), &self.registry)
                    {
                        if let Err(error) = registry.deregister(&mut listener) {
                            tracing::debug!(%error, "could not deregister the listener");
                        }
                    }
                }
                Io::Adopt {
                    stream,
                    already_read,
                } => {
                    let now = self.now();
                    let adopted = stream.set_nonblocking(true).and_then(|()| {
                        self.take(now, TcpStream::from_std(stream), Some(already_read))
                    });
                    if let Err(error) = adopted {
                        tracing::warn!(%error, "could not adopt a connection");
                    }
                }
                // Dropping a mio stream removes it from the poll.
                Io::Released(_) | Io::WaitReadable(_) | Io::WaitWritable(_) => {}
            }
        }
    }

    /// Accepts every connection waiting. Each one's time is read as it is accepted, not taken
    /// from the turn: the listener's backlog fills while the turn runs, and a connection made
    /// after the turn began must not start its deadlines before it existed.
    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    tracing::trace!(%peer, "accepted");
                    if let Err(error) = self.take(Instant::now(), stream, None) {
                        tracing::warn!(%error, "could not take a connection");
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

    /// Hands a stream to the driver (accepted, or adopted with the bytes of its request read
    /// already), registers it under its slot's token and reads what is there already.
    fn take(
        &mut self,
        now: Instant,
        stream: TcpStream,
        adopted: Option<Vec<u8>>,
    ) -> io::Result<()> {
        let Some(registry) = &self.registry else {
            return Err(io::Error::other(
                "register the server before adopting connections",
            ));
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let taken = match adopted {
            None => self.driver.accept(now, Tcp(stream)),
            Some(already_read) => self.driver.adopt(now, Tcp(stream), already_read),
        };
        let key: ConnKey = taken
            .map_err(|refusal| io::Error::other(format!("connection refused: {refusal:?}")))?;
        let token = Token(self.first_token + FIRST_CONNECTION + key.slot());
        let registered = match self.driver.stream_mut(key) {
            Some(Tcp(stream)) => {
                registry.register(stream, token, Interest::READABLE | Interest::WRITABLE)
            }
            None => Ok(()),
        };
        if let Err(error) = registered {
            self.driver.abort(key);
            return Err(error);
        }
        // Bytes may be there already (or handed over).
        self.driver.readable(now, key);
        Ok(())
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}
