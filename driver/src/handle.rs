//! [`Handle`]: commands to a running server from any thread or task, one contract on every
//! runtime; [`Reply`] waits for their answer, blocking or async; [`AuthResponder`] answers a
//! pending authentication exactly once.

use krmx_core::{AuthDecision, AuthId, Error, Input, Message, Status, UserInfo};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::{Arc, mpsc};

/// Wakes the runtime pump so it takes the commands sent through a [`Handle`] (a mio `Waker`, a
/// notification channel on smol).
pub trait Wake: Send + Sync + 'static {
    /// Wakes the pump; harmless when it is awake already.
    fn wake(&self);
}

/// Why a command sent through a [`Handle`] did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The core refused the command, for example `cannot kick a user that does not exist`.
    Core(Error),
    /// The server stopped accepting connections (it closed): an adopted connection is dropped.
    NotAccepting,
    /// The server is gone: its driver was dropped before the command was carried out.
    ServerGone,
    /// No room of that id is open.
    NoRoom(String),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Core(error) => error.fmt(f),
            Self::NotAccepting => f.write_str("the server does not accept connections any more"),
            Self::ServerGone => f.write_str("the server is gone"),
            Self::NoRoom(room) => write!(f, "no room {room}"),
        }
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Core(error) => Some(error),
            Self::NotAccepting | Self::ServerGone | Self::NoRoom(_) => None,
        }
    }
}

impl From<Error> for CommandError {
    fn from(error: Error) -> Self {
        Self::Core(error)
    }
}

type Answer<T> = async_channel::Sender<Result<T, CommandError>>;

/// What a [`Handle`] asks of the driver.
pub(crate) enum Command {
    Input {
        /// `None`: the default world.
        room: Option<String>,
        input: Input,
        reply: Answer<()>,
    },
    Users(Answer<Vec<UserInfo>>),
    Rooms(Answer<Vec<crate::RoomInfo>>),
    RoomUsers {
        room: String,
        reply: Answer<Vec<UserInfo>>,
    },
    RoomStatus {
        room: String,
        reply: Answer<Status>,
    },
    Status(Answer<Status>),
    Metrics(Answer<crate::Metrics>),
    Adopt {
        stream: TcpStream,
        already_read: Vec<u8>,
        reply: Answer<()>,
    },
}

/// The answer to a command: [`wait`](Self::wait) for it on a thread, or `.await` it in a task.
/// Dropping it leaves the command to run without anyone waiting for its answer.
///
/// Never wait for a reply inside the server's own event handler: the driver answers after the
/// handler returns.
pub struct Reply<T> {
    answer: Option<async_channel::Receiver<Result<T, CommandError>>>,
}

impl<T> Reply<T> {
    /// Blocks the thread until the driver answered.
    ///
    /// # Errors
    /// The core refused the command, or the server is gone.
    pub fn wait(self) -> Result<T, CommandError> {
        match self.answer {
            Some(answer) => answer
                .recv_blocking()
                .unwrap_or(Err(CommandError::ServerGone)),
            None => Err(CommandError::ServerGone),
        }
    }

    /// Waits for the answer in an async task (what `.await` on the reply does).
    ///
    /// # Errors
    /// The core refused the command, or the server is gone.
    pub async fn answer(self) -> Result<T, CommandError> {
        match self.answer {
            Some(answer) => answer.recv().await.unwrap_or(Err(CommandError::ServerGone)),
            None => Err(CommandError::ServerGone),
        }
    }
}

impl<T: Send + 'static> IntoFuture for Reply<T> {
    type Output = Result<T, CommandError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.answer())
    }
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply").finish_non_exhaustive()
    }
}

/// A cloneable, `Send + Sync` handle to a running server, the same on every runtime: every
/// server command, each answered with a [`Reply`].
///
/// ```no_run
/// # fn demo(handle: krmx_driver::Handle) -> Result<(), krmx_driver::CommandError> {
/// use krmx_core::Message;
/// handle.join("simon").wait()?; // from a thread
/// let hello = Message::parse(r#"{"type":"chat/say","payload":"hi"}"#).unwrap();
/// let _ = handle.broadcast(hello, None); // without waiting for the answer
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    waker: Arc<dyn Wake>,
}

impl Handle {
    pub(crate) fn new(commands: mpsc::Sender<Command>, waker: Arc<dyn Wake>) -> Self {
        Self { commands, waker }
    }

    fn request<T>(&self, command: impl FnOnce(Answer<T>) -> Command) -> Reply<T> {
        let (reply, answer) = async_channel::bounded(1);
        if self.commands.send(command(reply)).is_err() {
            return Reply { answer: None };
        }
        self.waker.wake();
        Reply {
            answer: Some(answer),
        }
    }

    /// Feeds any core input (server commands, auth decisions, close).
    pub fn input(&self, input: Input) -> Reply<()> {
        self.request(|reply| Command::Input {
            room: None,
            input,
            reply,
        })
    }

    /// Feeds a core input to room `room` (rooms on): [`CommandError::NoRoom`] when it is not
    /// open.
    pub fn input_in(&self, room: &str, input: Input) -> Reply<()> {
        let room = Some(room.to_owned());
        self.request(|reply| Command::Input { room, input, reply })
    }

    /// Every open room with its figures (rooms on).
    pub fn rooms(&self) -> Reply<Vec<crate::RoomInfo>> {
        self.request(Command::Rooms)
    }

    /// The users of room `room`, in join order (rooms on).
    pub fn room_users(&self, room: &str) -> Reply<Vec<UserInfo>> {
        let room = room.to_owned();
        self.request(|reply| Command::RoomUsers { room, reply })
    }

    /// The status of room `room` (rooms on): `closed` once closed on its own.
    pub fn room_status(&self, room: &str) -> Reply<Status> {
        let room = room.to_owned();
        self.request(|reply| Command::RoomStatus { room, reply })
    }

    /// Joins an unlinked user ([`Input::Join`]).
    pub fn join(&self, username: &str) -> Reply<()> {
        self.input(Input::Join {
            username: username.to_owned(),
        })
    }

    /// The user leaves, unlinked first if linked ([`Input::Kick`]).
    pub fn kick(&self, username: &str) -> Reply<()> {
        self.input(Input::Kick {
            username: username.to_owned(),
        })
    }

    /// Unlinks the user's connection ([`Input::Unlink`]).
    pub fn unlink(&self, username: &str) -> Reply<()> {
        self.input(Input::Unlink {
            username: username.to_owned(),
        })
    }

    /// Sends a message to one linked user ([`Input::Send`]).
    pub fn send(&self, username: &str, message: Message) -> Reply<()> {
        self.input(Input::Send {
            username: username.to_owned(),
            message,
        })
    }

    /// Sends a message to every linked user but `skip` ([`Input::Broadcast`]).
    pub fn broadcast(&self, message: Message, skip: Option<&str>) -> Reply<()> {
        self.input(Input::Broadcast {
            message,
            skip: skip.map(str::to_owned),
        })
    }

    /// Answers a pending authentication ([`Input::AuthDecided`]).
    pub fn decide_auth(&self, id: AuthId, decision: AuthDecision) -> Reply<()> {
        self.input(Input::AuthDecided { id, decision })
    }

    /// Closes the server gracefully ([`Input::Close`]).
    pub fn close(&self) -> Reply<()> {
        self.input(Input::Close)
    }

    /// Every user in join order.
    pub fn users(&self) -> Reply<Vec<UserInfo>> {
        self.request(Command::Users)
    }

    /// The server status.
    pub fn status(&self) -> Reply<Status> {
        self.request(Command::Status)
    }

    /// The server's figures for monitoring; render them with
    /// [`Metrics::to_openmetrics`](crate::Metrics::to_openmetrics) to serve them from your own
    /// HTTP server.
    pub fn metrics(&self) -> Reply<crate::Metrics> {
        self.request(Command::Metrics)
    }

    /// Hands over a connection accepted by the application's own HTTP server, with the bytes
    /// of the request it already read (empty if none): the upgrade continues in the server.
    /// The stream is plain (the server's TLS, if configured, applies to the connections it
    /// accepts itself). Refused with [`CommandError::NotAccepting`] once the server closed (the stream is
    /// dropped).
    pub fn adopt(&self, stream: TcpStream, already_read: Vec<u8>) -> Reply<()> {
        self.request(|reply| Command::Adopt {
            stream,
            already_read,
            reply,
        })
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

/// The promise of an answer to one authentication request: [`accept`](Self::accept),
/// [`reject`](Self::reject) or [`decide`](Self::decide), now or later, from any thread or
/// task. Dropping it unanswered decides [`AuthDecision::Failed`], so no link waits forever.
pub struct AuthResponder {
    id: AuthId,
    handle: Option<Handle>,
}

impl AuthResponder {
    /// A responder for request `id` of the server behind `handle`.
    #[must_use]
    pub fn new(id: AuthId, handle: Handle) -> Self {
        Self {
            id,
            handle: Some(handle),
        }
    }

    /// The request's id.
    #[must_use]
    pub fn id(&self) -> AuthId {
        self.id
    }

    /// Links the connection (the protocol's checks run again first).
    pub fn accept(self) {
        self.decide(AuthDecision::Accept);
    }

    /// Refuses the link with `reason`, sent to the client.
    pub fn reject(self, reason: impl Into<String>) {
        self.decide(AuthDecision::reject(reason));
    }

    /// Answers with any decision.
    pub fn decide(mut self, decision: AuthDecision) {
        self.answer(decision);
    }

    fn answer(&mut self, decision: AuthDecision) {
        if let Some(handle) = self.handle.take() {
            // An unknown or decided id is the core's to ignore; nobody waits for the answer.
            drop(handle.decide_auth(self.id, decision));
        }
    }
}

impl Drop for AuthResponder {
    fn drop(&mut self) {
        self.answer(AuthDecision::Failed);
    }
}

impl fmt::Debug for AuthResponder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthResponder")
            .field("id", &self.id)
            .field("answered", &self.handle.is_none())
            .finish()
    }
}
