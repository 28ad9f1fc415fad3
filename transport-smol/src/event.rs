//! [`Event`], [`Events`] and [`AuthResponder`]: what [`Server::run`](crate::Server::run) hands
//! the application.

use crate::handle::Command;
use krmx_core::{AuthDecision, AuthId, ConnectionId, Message, Username};
use smol::channel::{Receiver, Sender};
use smol::stream::Stream;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What happened, as [`Events`] delivers it: the core's
/// [`Event`](krmx_core::Event)s, with a responder on authentication requests.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The server listens on this port (0 without a listener of its own).
    Listening {
        /// The port.
        port: u16,
    },
    /// The server closed: every user left and every connection was closed.
    Closed,
    /// A link waits for the application's decision
    /// ([`AuthMode::Application`](krmx_core::AuthMode::Application)). Answer through the
    /// responder, now or later, from any task or thread; the core's auth timeout still applies.
    AuthRequested {
        /// The connection asking.
        conn: ConnectionId,
        /// The user it wants to link to.
        username: Username,
        /// Whether that user does not exist yet.
        is_new_user: bool,
        /// The auth string the client sent, if any.
        auth: Option<String>,
        /// Where the decision goes.
        responder: AuthResponder,
    },
    /// A user joined.
    Joined {
        /// The user.
        username: Username,
    },
    /// A connection linked to a user.
    Linked {
        /// The user.
        username: Username,
        /// The connection.
        conn: ConnectionId,
    },
    /// A user's connection unlinked.
    Unlinked {
        /// The user.
        username: Username,
        /// The connection it was linked to (it may be closed by now).
        conn: ConnectionId,
    },
    /// A user left.
    Left {
        /// The user.
        username: Username,
    },
    /// A linked user sent a custom message.
    Message {
        /// The sender.
        username: Username,
        /// The whole message, every field kept.
        message: Message,
    },
}

impl Event {
    /// The application's form of a core event; `None` for a kind this crate does not know.
    pub(crate) fn from_core(event: krmx_core::Event, commands: &Sender<Command>) -> Option<Self> {
        use krmx_core::Event as Core;
        Some(match event {
            Core::Listening { port } => Self::Listening { port },
            Core::Closed => Self::Closed,
            Core::AuthRequested {
                id,
                conn,
                username,
                is_new_user,
                auth,
            } => Self::AuthRequested {
                conn,
                username,
                is_new_user,
                auth,
                responder: AuthResponder {
                    id,
                    commands: Some(commands.clone()),
                },
            },
            Core::Joined { username } => Self::Joined { username },
            Core::Linked { username, conn } => Self::Linked { username, conn },
            Core::Unlinked { username, conn } => Self::Unlinked { username, conn },
            Core::Left { username } => Self::Left { username },
            Core::Message { username, message } => Self::Message { username, message },
            other => {
                tracing::debug!(?other, "event not forwarded");
                return None;
            }
        })
    }
}

/// The answer to one [`Event::AuthRequested`]: [`accept`](Self::accept) or
/// [`reject`](Self::reject), at once or later, from any task or thread.
///
/// Dropping it unanswered rejects the link with `authentication failed` (the core's
/// [`AuthDecision::Failed`]), so an application task that fails or panics never leaves a
/// client waiting for the auth timeout. An answer that comes after the auth timeout, or after
/// the connection closed, is ignored.
///
/// ```no_run
/// # async fn demo(mut events: krmx_transport_smol::Events) {
/// use krmx_transport_smol::Event;
/// while let Some(event) = events.next_event().await {
///     if let Event::AuthRequested { auth, responder, .. } = event {
///         smol::spawn(async move {
///             // ... a database call ...
///             if auth.as_deref() == Some("secret") {
///                 responder.accept();
///             } else {
///                 responder.reject("bad token");
///             }
///         })
///         .detach();
///     }
/// }
/// # }
/// ```
pub struct AuthResponder {
    id: AuthId,
    /// `None` once answered.
    commands: Option<Sender<Command>>,
}

impl AuthResponder {
    /// The id of the attempt (the one [`Handle::input`](crate::Handle::input) with
    /// [`Input::AuthDecided`](krmx_core::Input::AuthDecided) would answer).
    #[must_use]
    pub fn id(&self) -> AuthId {
        self.id
    }

    /// Links the connection (the protocol's checks run again first).
    pub fn accept(self) {
        self.decide(AuthDecision::Accept);
    }

    /// Rejects the link with `reason`, which the client receives in `krmx/rejected`.
    pub fn reject(self, reason: impl Into<String>) {
        self.decide(AuthDecision::reject(reason));
    }

    /// Answers with any decision.
    pub fn decide(mut self, decision: AuthDecision) {
        self.answer(decision);
    }

    fn answer(&mut self, decision: AuthDecision) {
        if let Some(commands) = self.commands.take() {
            let _ = commands.try_send(Command::Decide {
                id: self.id,
                decision,
            });
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
            .field("answered", &self.commands.is_none())
            .finish()
    }
}

/// The stream of [`Event`]s of a server driven by [`Server::run`](crate::Server::run); it ends
/// after [`Event::Closed`] once the server finished.
///
/// Use it as a [`Stream`] or through [`next_event`](Self::next_event). Clones share one queue:
/// each event goes to one of them.
#[derive(Debug, Clone)]
pub struct Events {
    receiver: Pin<Box<Receiver<Event>>>,
}

impl Events {
    pub(crate) fn new(receiver: Receiver<Event>) -> Self {
        Self {
            receiver: Box::pin(receiver),
        }
    }

    /// The next event; `None` once the server finished.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.receiver.recv().await.ok()
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.receiver.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.receiver.len(), None)
    }
}
