//! [`Handle`]: server commands from any task or thread, carried out by the driver.

use krmx_core::{AuthDecision, AuthId, Error, Input, Message, Status, UserInfo};
use smol::channel::{Sender, bounded};
use smol::net::TcpStream;
use std::io;

/// Work for the driver, sent by handles and responders.
pub(crate) enum Command {
    /// Feed this input; answer with the core's result.
    Input {
        input: Input,
        reply: Option<Sender<Result<(), Error>>>,
    },
    /// Answer a pending authentication (from an [`AuthResponder`](crate::AuthResponder)).
    Decide { id: AuthId, decision: AuthDecision },
    /// Reply with the users.
    Users(Sender<Vec<UserInfo>>),
    /// Reply with the status.
    Status(Sender<Status>),
    /// Take over a connection.
    Adopt {
        stream: TcpStream,
        already_read: Vec<u8>,
    },
}

/// A cloneable handle to a [`Server`](crate::Server), usable from any task or thread
/// (`Send + Sync`). Each command is carried out by the server's driver, which answers with the
/// core's result.
///
/// Commands wait in a queue until the server is driven ([`Server::run`](crate::Server::run),
/// [`Server::run_with`](crate::Server::run_with) or [`Server::turn`](crate::Server::turn)).
/// Once the server is gone a handle sees it closed: status `closed`, no users, and commands
/// fail with the core's words (`cannot kick a user when the server is closed`).
///
/// ```no_run
/// # async fn demo(handle: krmx_transport_smol::Handle) -> Result<(), krmx_core::Error> {
/// use krmx_core::Message;
/// handle.broadcast(Message::new("game/tick"), None).await?;
/// let users = handle.users().await;
/// if let Some(first) = users.first() {
///     handle.kick(first.username.as_str()).await?;
/// }
/// // From a thread outside any executor:
/// let handle2 = handle.clone();
/// std::thread::spawn(move || smol::block_on(handle2.close()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Handle {
    commands: Sender<Command>,
}

impl Handle {
    pub(crate) fn new(commands: Sender<Command>) -> Self {
        Self { commands }
    }

    /// Feeds any core input and waits for the core's answer.
    ///
    /// # Errors
    /// The core's error, for example `cannot send a message to a user that does not exist`.
    pub async fn input(&self, input: Input) -> Result<(), Error> {
        let action = action(&input);
        let (reply, answer) = bounded(1);
        let command = Command::Input {
            input,
            reply: Some(reply),
        };
        if self.commands.send(command).await.is_err() {
            return gone(action);
        }
        match answer.recv().await {
            Ok(result) => result,
            Err(_) => gone(action),
        }
    }

    /// Sends a message to one linked user.
    ///
    /// # Errors
    /// As [`Input::Send`]: the user does not exist or is not linked, or the server is not
    /// listening.
    pub async fn send(&self, username: &str, message: Message) -> Result<(), Error> {
        self.input(Input::Send {
            username: username.to_owned(),
            message,
        })
        .await
    }

    /// Sends a message to every linked user but `skip` (serialised once for all).
    ///
    /// # Errors
    /// As [`Input::Broadcast`]: the server is not listening.
    pub async fn broadcast(&self, message: Message, skip: Option<&str>) -> Result<(), Error> {
        self.input(Input::Broadcast {
            message,
            skip: skip.map(str::to_owned),
        })
        .await
    }

    /// Joins a user that is not linked.
    ///
    /// # Errors
    /// As [`Input::Join`]: the user exists or the name is invalid.
    pub async fn join(&self, username: &str) -> Result<(), Error> {
        self.input(Input::Join {
            username: username.to_owned(),
        })
        .await
    }

    /// The user leaves, unlinked first if linked.
    ///
    /// # Errors
    /// As [`Input::Kick`]: the user does not exist.
    pub async fn kick(&self, username: &str) -> Result<(), Error> {
        self.input(Input::Kick {
            username: username.to_owned(),
        })
        .await
    }

    /// Unlinks the user's connection; the user stays.
    ///
    /// # Errors
    /// As [`Input::Unlink`]: the user does not exist or is not linked.
    pub async fn unlink(&self, username: &str) -> Result<(), Error> {
        self.input(Input::Unlink {
            username: username.to_owned(),
        })
        .await
    }

    /// Closes the server gracefully: every user leaves, every connection gets a close frame,
    /// then [`Event::Closed`](crate::Event::Closed).
    ///
    /// # Errors
    /// As [`Input::Close`]: the server is not starting or listening.
    pub async fn close(&self) -> Result<(), Error> {
        self.input(Input::Close).await
    }

    /// Every user in join order, with whether it is linked (none once the server is gone).
    pub async fn users(&self) -> Vec<UserInfo> {
        let (reply, answer) = bounded(1);
        if self.commands.send(Command::Users(reply)).await.is_err() {
            return Vec::new();
        }
        answer.recv().await.unwrap_or_default()
    }

    /// The server status (`closed` once the server is gone).
    pub async fn status(&self) -> Status {
        let (reply, answer) = bounded(1);
        if self.commands.send(Command::Status(reply)).await.is_err() {
            return Status::Closed;
        }
        answer.recv().await.unwrap_or(Status::Closed)
    }

    /// Answers a pending authentication by id, without waiting. Returns `false` when the server
    /// is gone. An answer for an attempt that is no longer pending is ignored.
    pub fn decide_auth(&self, id: AuthId, decision: AuthDecision) -> bool {
        self.commands
            .try_send(Command::Decide { id, decision })
            .is_ok()
    }

    /// Hands over a connection accepted by the application's own HTTP server, with the bytes of
    /// the request it already read (empty if none): the WebSocket upgrade continues in the
    /// server.
    ///
    /// # Errors
    /// The server is gone.
    pub fn adopt(&self, stream: TcpStream, already_read: Vec<u8>) -> io::Result<()> {
        self.commands
            .try_send(Command::Adopt {
                stream,
                already_read,
            })
            .map_err(|_| io::Error::other("the Krmx server is gone"))
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("server_gone", &self.commands.is_closed())
            .finish()
    }
}

/// How the core words the action of an input in its status errors.
fn action(input: &Input) -> Option<&'static str> {
    Some(match input {
        Input::Join { .. } => "join a user",
        Input::Kick { .. } => "kick a user",
        Input::Unlink { .. } => "unlink a connection from a user",
        Input::Send { .. } => "send a message",
        Input::Broadcast { .. } => "broadcast a message",
        Input::Close => "close",
        Input::Start | Input::Listen { .. } => "start listening",
        _ => return None,
    })
}

/// The answer of a server that is gone: what a closed core would say.
fn gone(action: Option<&'static str>) -> Result<(), Error> {
    match action {
        Some(action) => Err(Error::WrongStatus {
            action,
            status: Status::Closed,
        }),
        None => Ok(()),
    }
}
