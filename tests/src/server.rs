//! [`Transport`] and [`RunningServer`]: one way to start, command and observe a server on any
//! transport, so each scenario is written once.

use crate::TIMEOUT;
use krmx_core::{AuthDecision, AuthId, Error, Event, Input, KrmxConfig, Message, Status};
use krmx_transport_mio::{CommandError, Handle, Reply, TransportConfig};
use serde_json::Value;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The transports under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// `krmx-transport-mio`.
    Mio,
    /// smol
    Smol,
}

impl Transport {
    /// Starts a server with `config` on an ephemeral port of 127.0.0.1, the other settings at
    /// their defaults.
    #[must_use]
    pub fn start(self, config: KrmxConfig) -> RunningServer {
        self.start_with(Setup::new(config))
    }

    /// Starts a server as `setup` describes.
    #[must_use]
    pub fn start_with(self, setup: Setup) -> RunningServer {
        match self {
            Self::Mio => crate::server_mio::start(setup),
            Self::Smol => crate::server_smol::start(setup),
        }
    }
}

/// A command run on the server's thread.
#[derive(Debug, Clone)]
pub enum Command {
    /// `join(name)`.
    Join(String),
    /// `kick(name)`.
    Kick(String),
    /// `unlink(name)`.
    Unlink(String),
    /// `send(name, message)`.
    Send(String, Message),
    /// `broadcast(message, skip)`.
    Broadcast(Message, Option<String>),
    /// Answers a pending authentication.
    DecideAuth(AuthId, AuthDecision),
    /// Closes the server gracefully.
    Close,
}

impl Command {
    /// The core input that carries the command out, on any transport.
    #[must_use]
    pub fn into_input(self) -> Input {
        match self {
            Self::Join(username) => Input::Join { username },
            Self::Kick(username) => Input::Kick { username },
            Self::Unlink(username) => Input::Unlink { username },
            Self::Send(username, message) => Input::Send { username, message },
            Self::Broadcast(message, skip) => Input::Broadcast { message, skip },
            Self::DecideAuth(id, decision) => Input::AuthDecided { id, decision },
            Self::Close => Input::Close,
        }
    }
}

/// A hook run on the server's thread for every event, right when it is emitted (as an
/// application's event handler): the commands it returns are carried out at once.
pub type Hook = Box<dyn FnMut(&ServerEvent) -> Vec<Command> + Send>;

/// How to start a server.
pub struct Setup {
    /// The core configuration.
    pub config: KrmxConfig,
    /// How long a client may take over its HTTP upgrade (transport default when `None`).
    pub handshake_timeout: Option<Duration>,
    /// How long a closing connection may take to answer the close frame.
    pub close_linger: Duration,
    /// The application's event handler.
    pub hook: Option<Hook>,
}

impl Setup {
    /// `config` with the transport's defaults, a 1 s close linger and no hook.
    #[must_use]
    pub fn new(config: KrmxConfig) -> Self {
        Self {
            config,
            handshake_timeout: None,
            close_linger: Duration::from_secs(1),
            hook: None,
        }
    }

    /// The transport settings the setup asks for, on either transport.
    pub(crate) fn transport(&self) -> TransportConfig {
        let transport = TransportConfig::default().close_linger(self.close_linger);
        match self.handshake_timeout {
            Some(timeout) => transport.handshake_timeout(timeout),
            None => transport,
        }
    }

    /// Sets the handshake timeout.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// Sets the application's event handler.
    #[must_use]
    pub fn on_event(
        mut self,
        hook: impl FnMut(&ServerEvent) -> Vec<Command> + Send + 'static,
    ) -> Self {
        self.hook = Some(Box::new(hook));
        self
    }
}

/// An event as the tests compare it: the core's [`Event`] without connection ids.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `listen(port)`.
    Listening(u16),
    /// `close`.
    Closed,
    /// `authenticate(username, is_new_user, auth)`, with the id to answer.
    Authenticate {
        /// The id to decide.
        id: AuthId,
        /// The user asked for.
        username: String,
        /// Whether the user does not exist yet.
        is_new_user: bool,
        /// The auth string sent.
        auth: Option<String>,
    },
    /// `join(name)`.
    Joined(String),
    /// `link(name)`.
    Linked(String),
    /// `unlink(name)`.
    Unlinked(String),
    /// `leave(name)`.
    Left(String),
    /// `message(name, message)`, the whole message as JSON.
    Message(String, Value),
    /// A command returned by a [`Hook`] failed (a test bug or a server bug).
    HookCommandFailed(String),
}

impl From<Event> for ServerEvent {
    fn from(event: Event) -> Self {
        match event {
            Event::Listening { port } => Self::Listening(port),
            Event::Closed => Self::Closed,
            Event::AuthRequested {
                id,
                username,
                is_new_user,
                auth,
                ..
            } => Self::Authenticate {
                id,
                username: username.as_str().to_owned(),
                is_new_user,
                auth,
            },
            Event::Joined { username } => Self::Joined(username.as_str().to_owned()),
            Event::Linked { username, .. } => Self::Linked(username.as_str().to_owned()),
            Event::Unlinked { username, .. } => Self::Unlinked(username.as_str().to_owned()),
            Event::Left { username } => Self::Left(username.as_str().to_owned()),
            Event::Message { username, message } => {
                Self::Message(username.as_str().to_owned(), message.into_value())
            }
        }
    }
}

/// Shorthands for expected events.
impl ServerEvent {
    /// `join(name)`.
    #[must_use]
    pub fn joined(username: &str) -> Self {
        Self::Joined(username.to_owned())
    }
    /// `link(name)`.
    #[must_use]
    pub fn linked(username: &str) -> Self {
        Self::Linked(username.to_owned())
    }
    /// `unlink(name)`.
    #[must_use]
    pub fn unlinked(username: &str) -> Self {
        Self::Unlinked(username.to_owned())
    }
    /// `leave(name)`.
    #[must_use]
    pub fn left(username: &str) -> Self {
        Self::Left(username.to_owned())
    }
    /// `message(name, message)`.
    #[must_use]
    pub fn message(username: &str, message: Value) -> Self {
        Self::Message(username.to_owned(), message)
    }
}

/// A server running on its own thread.
pub struct RunningServer {
    addr: SocketAddr,
    handle: Handle,
    events: Receiver<ServerEvent>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    pub(crate) fn new(
        addr: SocketAddr,
        handle: Handle,
        events: Receiver<ServerEvent>,
        thread: JoinHandle<io::Result<()>>,
    ) -> Self {
        let mut server = Self {
            addr,
            handle,
            events,
            thread: Some(thread),
        };
        server.expect_event(&ServerEvent::Listening(addr.port()));
        server
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Carries out a command on the server's thread and returns its result.
    ///
    /// # Errors
    /// The server's own error for the command.
    pub fn command(&self, command: Command) -> Result<(), Error> {
        let shown = format!("{command:?}");
        match within_timeout(self.handle.input(command.into_input())) {
            Some(Ok(())) => Ok(()),
            Some(Err(CommandError::Core(error))) => Err(error),
            Some(Err(error)) => panic!("{shown} failed: {error}"),
            None => panic!("the server did not answer {shown} within {TIMEOUT:?}"),
        }
    }

    /// `join(name)`, which must succeed.
    pub fn join(&self, username: &str) {
        self.ok(Command::Join(username.to_owned()));
    }

    /// `kick(name)`, which must succeed.
    pub fn kick(&self, username: &str) {
        self.ok(Command::Kick(username.to_owned()));
    }

    /// `unlink(name)`, which must succeed.
    pub fn unlink(&self, username: &str) {
        self.ok(Command::Unlink(username.to_owned()));
    }

    /// `send(name, message)` of a JSON message, which must succeed.
    pub fn send(&self, username: &str, message: &Value) {
        self.ok(Command::Send(username.to_owned(), to_message(message)));
    }

    /// `broadcast(message, skip)` of a JSON message, which must succeed.
    pub fn broadcast(&self, message: &Value, skip: Option<&str>) {
        self.ok(Command::Broadcast(
            to_message(message),
            skip.map(str::to_owned),
        ));
    }

    /// Answers a pending authentication.
    pub fn decide_auth(&self, id: AuthId, decision: AuthDecision) {
        self.ok(Command::DecideAuth(id, decision));
    }

    /// Closes the server gracefully; it must succeed.
    pub fn close(&self) {
        self.ok(Command::Close);
    }

    /// The users in join order, as `(name, is_linked)`.
    #[must_use]
    pub fn users(&self) -> Vec<(String, bool)> {
        within_timeout(self.handle.users())
            .expect("the server did not answer users()")
            .expect("the server is gone")
            .into_iter()
            .map(|user| (user.username.as_str().to_owned(), user.is_linked))
            .collect()
    }

    /// The status.
    #[must_use]
    pub fn status(&self) -> Status {
        within_timeout(self.handle.status())
            .expect("the server did not answer status()")
            .expect("the server is gone")
    }

    /// Hands a connection accepted by the application's own listener over to the server.
    ///
    /// # Errors
    /// The transport refused it.
    pub fn adopt(&self, stream: TcpStream, already_read: Vec<u8>) -> io::Result<()> {
        match within_timeout(self.handle.adopt(stream, already_read)) {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => Err(io::Error::other(error)),
            None => Err(io::Error::other("the server did not answer adopt()")),
        }
    }

    /// The next event within `timeout`, if any.
    pub fn next_event_within(&mut self, timeout: Duration) -> Option<ServerEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The next event; panics after [`TIMEOUT`].
    pub fn next_event(&mut self) -> ServerEvent {
        self.next_event_within(TIMEOUT)
            .unwrap_or_else(|| panic!("the server emitted no event within {TIMEOUT:?}"))
    }

    /// Asserts the next event.
    pub fn expect_event(&mut self, expected: &ServerEvent) {
        let event = self.next_event_within(TIMEOUT);
        assert_eq!(event.as_ref(), Some(expected), "unexpected server event");
    }

    /// Asserts the next events, in order.
    pub fn expect_events(&mut self, expected: &[ServerEvent]) {
        for event in expected {
            self.expect_event(event);
        }
    }

    /// Expects an authenticate event for `username` and returns its id, whether the user is
    /// new, and its auth string.
    pub fn expect_authenticate(&mut self, username: &str) -> (AuthId, bool, Option<String>) {
        match self.next_event() {
            ServerEvent::Authenticate {
                id,
                username: name,
                is_new_user,
                auth,
            } if name == username => (id, is_new_user, auth),
            other => panic!("expected authenticate for {username}, got {other:?}"),
        }
    }

    /// Asserts that no event comes for `duration`.
    pub fn expect_no_event_for(&mut self, duration: Duration) {
        if let Some(event) = self.next_event_within(duration) {
            panic!("expected no event for {duration:?}, got {event:?}");
        }
    }

    /// Waits until the server's thread returned, and asserts it returned without error.
    pub fn expect_finished(&mut self) {
        let thread = self
            .thread
            .take()
            .expect("the server thread was joined already");
        let deadline = Instant::now() + TIMEOUT;
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the server thread did not return within {TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("the server thread failed: {error}"),
            Err(_) => panic!("the server thread panicked"),
        }
    }

    fn ok(&self, command: Command) {
        let shown = format!("{command:?}");
        if let Err(error) = self.command(command) {
            panic!("{shown} failed: {error}");
        }
    }
}

impl Drop for RunningServer {
    /// Closes a server a test left running and gives its thread a moment to end, so servers
    /// do not pile up across tests.
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        if thread.is_finished() {
            let _ = thread.join();
            return;
        }
        // Nobody waits for the answer: the thread's end is what counts.
        drop(self.handle.close());
        let deadline = Instant::now() + Duration::from_secs(3);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A message from JSON; panics when it is not one.
#[must_use]
pub fn to_message(value: &Value) -> Message {
    Message::from_value(value.clone()).unwrap_or_else(|_| panic!("not a message: {value}"))
}

/// A reply from the server within [`TIMEOUT`]; `None` when it did not come in time.
fn within_timeout<T: Send + 'static>(reply: Reply<T>) -> Option<Result<T, CommandError>> {
    let (answer, answered) = mpsc::sync_channel(1);
    std::thread::spawn(move || drop(answer.send(reply.wait())));
    answered.recv_timeout(TIMEOUT).ok()
}

/// Carries out a hook's commands on the server's thread, as an application's handler would,
/// reporting failures as events.
pub(crate) fn apply_hook(
    commands: Vec<Command>,
    mut input: impl FnMut(Input) -> Result<(), Error>,
    events: &mpsc::Sender<ServerEvent>,
) {
    for command in commands {
        let shown = format!("{command:?}");
        if let Err(error) = input(command.into_input()) {
            drop(events.send(ServerEvent::HookCommandFailed(format!("{shown}: {error}"))));
        }
    }
}
