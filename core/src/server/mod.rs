//! [`Krmx`]: the server state machine.

mod api;
mod connection;
mod frames;
mod link;
mod liveness;
mod presence;
mod queued;

use crate::config::TOO_MANY_UNLINKED_REASON;
use crate::timers::{Timer, Timers};
use crate::{
    AuthId, CloseCode, ConnectionId, Counters, Error, Event, Input, KrmxConfig, Output, Status,
    Text, Username, Violation,
};
use connection::{Connection, LinkState};
use indexmap::IndexMap;
use queued::Queued;
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// Why the core forgets a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// The transport reported it closed: nothing more can reach it.
    Peer,
    /// The server closes it: it still gets what is queued before its close frame.
    Closing,
}

/// Who learns of an unlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// Every linked connection, the user's own included.
    Everyone,
    /// Every linked connection but the user's own, whose peer is gone.
    Others,
    /// Nobody: the server is closing and the user's leave follows.
    Nobody,
}

/// A user as the server tracks it.
#[derive(Debug)]
struct User {
    /// The linked connection, if any.
    conn: Option<ConnectionId>,
    /// `krmx/joined` for this user, serialised once at join.
    joined_text: Text,
    /// `krmx/linked` for this user, serialised once at join.
    linked_text: Text,
    /// When this unlinked user is kicked for inactivity, if that option is on.
    inactive_since: Option<Instant>,
}

/// A link waiting for the application's authentication decision.
#[derive(Debug)]
struct PendingAuth {
    conn: ConnectionId,
    username: Username,
    deadline: Instant,
}

/// One user in [`Krmx::users`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user's name.
    pub username: Username,
    /// Whether a connection is linked to it.
    pub is_linked: bool,
}

/// The Krmx server as a pure, deterministic state machine.
///
/// It owns no socket, no clock and no randomness: the caller feeds [`Input`]s with the current
/// time, then drains [`Output`]s, and sleeps until the next socket event or
/// [`poll_timeout`](Self::poll_timeout).
///
/// # Run loop
///
/// ```
/// use krmx_core::{ConnectionId, Event, Frame, Input, Krmx, KrmxConfig, Output};
/// use std::time::Instant;
///
/// let mut krmx = Krmx::new(KrmxConfig::default());
/// let now = Instant::now();
/// krmx.handle_input(now, Input::Listen { port: 8082 }).unwrap();
///
/// let conn = ConnectionId::new(1);
/// krmx.handle_input(now, Input::ConnectionOpened { conn, target: "/".into() }).unwrap();
/// let link = r#"{"type":"krmx/link","payload":{"username":"simon","version":"0.6.0"}}"#;
/// krmx.handle_input(now, Input::Frame { conn, frame: Frame::Text(link.into()) }).unwrap();
///
/// let mut sent = Vec::new();
/// while let Some(output) = krmx.poll_output() {
///     match output {
///         Output::Send { to, text } => sent.push((to, text.to_string())),
///         Output::Event(event) => println!("{event:?}"),
///         _ => {}
///     }
/// }
/// assert_eq!(sent.len(), 3); // accepted, joined simon, linked simon
/// // ...then wait for socket readiness or until `krmx.poll_timeout()`, and tick:
/// krmx.handle_input(now, Input::Tick).unwrap();
/// ```
#[derive(Debug)]
pub struct Krmx {
    config: KrmxConfig,
    status: Status,
    /// The latest time seen; time that goes backwards is ignored.
    now: Option<Instant>,
    /// Users in join order.
    users: IndexMap<Username, User>,
    connections: BTreeMap<ConnectionId, Connection>,
    pending: BTreeMap<AuthId, PendingAuth>,
    next_auth_id: u64,
    /// How many connections are linked (the others are unlinked or pending).
    linked_connections: usize,
    timers: Timers,
    outputs: VecDeque<Queued>,
    counters: Counters,
}

impl Krmx {
    /// A server in status `initializing`.
    #[must_use]
    pub fn new(config: KrmxConfig) -> Self {
        Self {
            config,
            status: Status::Initializing,
            now: None,
            users: IndexMap::new(),
            connections: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_auth_id: 1,
            linked_connections: 0,
            timers: Timers::default(),
            outputs: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Feeds one input at time `now`, queueing its outputs.
    ///
    /// `now` must come from a monotonic clock; a time earlier than one already seen is treated
    /// as that later time. Timers due at `now` fire before a command, a decision or a tick, and
    /// after a network fact (a frame, a pong, a close): such a fact was already waiting in its
    /// socket when a caller that woke late read it, so a pong that arrived in time still counts.
    ///
    /// # Errors
    /// A server command that is not possible ([`Error`]'s texts are the reference's), or a
    /// transport reporting an unknown connection. A misbehaving peer is never an error.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), Error> {
        let now = self.advance(now);
        if !input.is_network_fact() {
            self.fire_due_timers(now);
        }
        let result = self.handle(now, input);
        self.fire_due_timers(now);
        result
    }

    fn handle(&mut self, now: Instant, input: Input) -> Result<(), Error> {
        match input {
            Input::Start => self.start(),
            Input::Listen { port } => self.listen(now, port),
            Input::Close => self.close(),
            Input::Frame { conn, .. } | Input::PingSent { conn } | Input::Pong { conn }
                if self.status == Status::Closing =>
            {
                // Closing: the users are leaving, nothing a peer says counts any more.
                self.known(conn)
            }
            Input::ConnectionOpened { conn, target } => self.open_connection(now, conn, &target),
            Input::Frame { conn, frame } => {
                self.known(conn)?;
                self.receive_frame(now, conn, frame);
                Ok(())
            }
            Input::PingSent { conn } => {
                self.known(conn)?;
                self.ping_sent(now, conn);
                Ok(())
            }
            Input::Pong { conn } => {
                self.known(conn)?;
                self.pong(conn);
                Ok(())
            }
            Input::Violation { conn, violation } => {
                self.known(conn)?;
                self.violation(now, conn, violation);
                Ok(())
            }
            Input::ConnectionClosed { conn } => {
                self.forget_connection(now, conn, Gone::Peer);
                Ok(())
            }
            Input::AuthDecided { id, decision } => {
                self.decide_auth(now, id, decision);
                Ok(())
            }
            Input::Tick => Ok(()),
            Input::Join { username } => self.api_join(now, &username),
            Input::Kick { username } => self.api_kick(now, &username),
            Input::Unlink { username } => self.api_unlink(now, &username),
            Input::Send { username, message } => self.api_send(&username, &message),
            Input::Broadcast { message, skip } => self.api_broadcast(&message, skip.as_deref()),
        }
    }

    /// The next output to carry out, in the order produced; `None` once drained. A
    /// broadcast comes whole ([`Output::Broadcast`]).
    ///
    /// Call after every [`handle_input`](Self::handle_input) until it returns `None`. Inputs and
    /// drains may interleave freely: the queue keeps every connection's order.
    ///
    /// ```
    /// use krmx_core::{Input, Krmx, KrmxConfig, Output};
    /// # use std::time::Instant;
    /// let mut krmx = Krmx::new(KrmxConfig::default());
    /// krmx.handle_input(Instant::now(), Input::Start)?;
    /// while let Some(output) = krmx.poll_output() {
    ///     match output {
    ///         Output::Send { to, text } => println!("send {text} to {to}"),
    ///         Output::Broadcast { to, text } => {
    ///             for conn in to {
    ///                 println!("send {text} to {conn}");
    ///             }
    ///         }
    ///         Output::Ping { to } => println!("ping {to}"),
    ///         Output::Close { to, code, reason } => println!("close {to} with {code} {reason}"),
    ///         Output::Event(event) => println!("{event:?}"),
    ///     }
    /// }
    /// # Ok::<(), krmx_core::Error>(())
    /// ```
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.outputs.is_empty() && self.status == Status::Closing {
            self.close_step();
        }
        self.outputs.pop_front().map(Queued::into_output)
    }

    /// When the server next needs [`Input::Tick`] (auth timeout, ping round, inactivity kick,
    /// unlinked timeout); `None` when nothing is scheduled.
    ///
    /// Ask again after every input: any input may move it. Ticking earlier is harmless.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if matches!(self.status, Status::Closing | Status::Closed) {
            return None;
        }
        self.timers.next()
    }

    /// The current status.
    #[must_use]
    pub fn status(&self) -> Status {
        self.status
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &KrmxConfig {
        &self.config
    }

    /// Every user in join order, with whether it is linked.
    pub fn users(&self) -> impl ExactSizeIterator<Item = UserInfo> + '_ {
        self.users.iter().map(|(username, user)| UserInfo {
            username: username.clone(),
            is_linked: user.conn.is_some(),
        })
    }

    /// The connection linked to `username`, if any.
    #[must_use]
    pub fn linked_connection(&self, username: &str) -> Option<ConnectionId> {
        self.users.get(username).and_then(|user| user.conn)
    }

    /// The user `conn` is linked to, if any.
    #[must_use]
    pub fn linked_user(&self, conn: ConnectionId) -> Option<&Username> {
        match &self.connections.get(&conn)?.link {
            LinkState::Linked(username) => Some(username),
            _ => None,
        }
    }

    /// Every open connection, in id order.
    pub fn connections(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.connections.keys().copied()
    }

    /// Whether `id` is an authentication still waiting for its decision.
    #[must_use]
    pub fn is_auth_pending(&self, id: AuthId) -> bool {
        self.pending.contains_key(&id)
    }

    /// How many authentications are pending.
    #[must_use]
    pub fn pending_auths(&self) -> usize {
        self.pending.len()
    }

    /// Running totals since the server was created (connections and links accepted,
    /// rejections by reason), for monitoring.
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How many open connections are not linked (a pending link counts as not linked).
    #[must_use]
    pub fn unlinked_connections(&self) -> usize {
        self.connections
            .len()
            .saturating_sub(self.linked_connections)
    }

    fn advance(&mut self, now: Instant) -> Instant {
        let now = match self.now {
            Some(seen) if seen > now => seen,
            _ => now,
        };
        self.now = Some(now);
        now
    }

    fn known(&self, conn: ConnectionId) -> Result<(), Error> {
        if self.connections.contains_key(&conn) {
            Ok(())
        } else {
            Err(Error::UnknownConnection(conn))
        }
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Queued::Event(Box::new(event)));
    }

    fn send(&mut self, to: ConnectionId, text: Text) {
        self.outputs.push_back(Queued::Send { to, text });
    }

    /// Sends `text` to every linked connection (in join order) but `skip`'s.
    fn broadcast_text(&mut self, text: &Text, skip: Option<&str>) {
        if self.linked_connections == 0 {
            return;
        }
        let to: Vec<ConnectionId> = self
            .users
            .iter()
            .filter(|(username, _)| skip != Some(username.as_str()))
            .filter_map(|(_, user)| user.conn)
            .collect();
        if !to.is_empty() {
            self.outputs.push_back(Queued::Broadcast {
                text: text.clone(),
                to,
            });
        }
    }

    fn check_status(&self, action: &'static str, allowed: &[Status]) -> Result<(), Error> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(Error::WrongStatus {
                action,
                status: self.status,
            })
        }
    }

    fn start(&mut self) -> Result<(), Error> {
        self.check_status("start listening", &[Status::Initializing])?;
        self.status = Status::Starting;
        Ok(())
    }

    fn listen(&mut self, now: Instant, port: u16) -> Result<(), Error> {
        self.check_status("start listening", &[Status::Initializing, Status::Starting])?;
        self.status = Status::Listening;
        self.timers.ping_round = self.config.ping_interval.map(|every| now + every);
        tracing::info!(port, "listening");
        self.emit(Event::Listening { port });
        Ok(())
    }

    /// Begins the close: no more timers, decisions or frames count. The users leave one at a
    /// time as the outputs are drained ([`close_step`](Self::close_step)).
    fn close(&mut self) -> Result<(), Error> {
        self.check_status("close", &[Status::Starting, Status::Listening])?;
        self.status = Status::Closing;
        tracing::info!(users = self.users.len(), "server is closing");
        self.pending.clear();
        self.timers.clear();
        self.close_step();
        Ok(())
    }

    /// One step of a close, taken when the queue ran dry: the first user in join order leaves
    /// (its unlink and leave go to every linked connection). Once no connection is linked, the
    /// users left leave together, as nobody is sent anything; then every connection still open
    /// is closed, and the server is closed. A close therefore never holds more than one
    /// user's leave in the queue, and takes time linear in the users once the connections are
    /// gone.
    fn close_step(&mut self) {
        let Some(now) = self.now else {
            return;
        };
        if self.linked_connections > 0 {
            if let Some(username) = self.users.keys().next().cloned() {
                self.leave(now, &username);
                return;
            }
        }
        for username in std::mem::take(&mut self.users).into_keys() {
            tracing::info!(%username, "left");
            self.emit(Event::Left { username });
        }
        for conn in std::mem::take(&mut self.connections).into_keys() {
            self.outputs.push_back(Queued::Close {
                to: conn,
                code: CloseCode::GOING_AWAY,
                reason: "server closing",
            });
        }
        self.linked_connections = 0;
        self.timers.clear();
        self.status = Status::Closed;
        tracing::info!("server closed");
        self.emit(Event::Closed);
    }

    fn open_connection(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        target: &str,
    ) -> Result<(), Error> {
        if self.connections.contains_key(&conn) {
            return Err(Error::DuplicateConnection(conn));
        }
        let refusal = if self.status != Status::Listening {
            Some((CloseCode::GOING_AWAY, "server is not listening"))
        } else if let Err(rejection) = self.config.check_request(target) {
            tracing::debug!(%conn, %rejection, "connection refused");
            Some(match rejection {
                crate::RequestRejection::Path => (CloseCode::POLICY, "invalid path"),
                _ => (CloseCode::POLICY, "invalid query parameters"),
            })
        } else if self
            .config
            .max_unlinked_connections
            .is_some_and(|most| self.unlinked_connections() >= most)
        {
            tracing::debug!(%conn, "connection refused: too many unlinked connections");
            Some((CloseCode::TRY_AGAIN_LATER, TOO_MANY_UNLINKED_REASON))
        } else {
            None
        };
        match refusal {
            Some((code, reason)) => self.outputs.push_back(Queued::Close {
                to: conn,
                code,
                reason,
            }),
            None => {
                tracing::debug!(%conn, "connection opened");
                self.counters.connections_accepted += 1;
                self.connections.insert(conn, Connection::new());
                self.arm_unlinked_timeout(now, conn);
            }
        }
        Ok(())
    }

    fn violation(&mut self, now: Instant, conn: ConnectionId, violation: Violation) {
        let (code, reason) = match violation {
            Violation::MessageTooLarge => (CloseCode::TOO_BIG, "message too large"),
            Violation::InvalidUtf8 => (CloseCode::INVALID_PAYLOAD, "invalid utf-8"),
            Violation::SlowConsumer => (CloseCode::POLICY, "slow consumer"),
        };
        tracing::debug!(%conn, ?violation, "closing connection");
        self.close_connection(now, conn, code, reason);
    }

    /// Closes a connection on the server's initiative: unlinks its user, forgets it, and asks
    /// the transport to close it.
    fn close_connection(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        code: CloseCode,
        reason: &'static str,
    ) {
        if self.connections.contains_key(&conn) {
            self.forget_connection(now, conn, Gone::Closing);
            self.outputs.push_back(Queued::Close {
                to: conn,
                code,
                reason,
            });
        }
    }

    /// The connection is gone: its user is unlinked, a pending decision for it is forgotten.
    /// A connection whose peer is gone is not sent its own `krmx/unlinked`. While the server
    /// closes, the unlink is quiet (the user's `krmx/left` follows anyway): connections that
    /// drop together during a close cost time linear in their number, not quadratic.
    fn forget_connection(&mut self, now: Instant, conn: ConnectionId, gone: Gone) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        match connection.link.clone() {
            LinkState::Linked(username) => {
                let audience = if self.status == Status::Closing {
                    Audience::Nobody
                } else if gone == Gone::Peer {
                    Audience::Others
                } else {
                    Audience::Everyone
                };
                self.unlink_to(now, &username, audience);
            }
            LinkState::Pending(id) => self.drop_pending(id),
            LinkState::Unlinked => {}
        }
        tracing::debug!(%conn, "connection closed");
        if let Some(connection) = self.connections.remove(&conn) {
            if let Some(at) = connection.unlinked_deadline {
                self.timers.disarm(at, Timer::Unlinked(conn));
            }
        }
    }
}
