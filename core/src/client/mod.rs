//! [`KrmxClient`]: the client side of the protocol as a pure state machine, beside the server's
//! [`Krmx`](crate::Krmx).
//!
//! It follows the published JavaScript client (`@krmx/client`): the same statuses, commands,
//! events and error texts. Where that client misbehaves under races (a reply still on its way
//! when the application acts again) this one keeps its state consistent; the type docs list
//! each such point.

mod config;
mod error;
mod input;
mod output;
mod receive;
mod status;

pub use config::{ClientConfig, DEFAULT_CLIENT_VERSION};
pub use error::ClientError;
pub use input::ClientInput;
pub use output::{ClientEvent, ClientOutput};
pub use status::ClientStatus;

use crate::{Message, Text, wire};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::collections::VecDeque;

/// One user as the client knows it from the server's presence messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUser {
    /// The user's name.
    pub username: String,
    /// Whether a connection is linked to it.
    pub is_linked: bool,
}

/// The Krmx client as a pure, deterministic state machine.
///
/// It owns no socket, no clock and no randomness, and has no timers. The application feeds its
/// commands and the transport its facts as [`ClientInput`]s; both then drain [`ClientOutput`]s:
/// open or close the connection, send a text, or handle a [`ClientEvent`].
///
/// # Run loop
///
/// 1. Something happens: the application gives a command (connect, link, send, ...), or the
///    transport reports the connection opened, a text arrived, or the connection closed. Feed it
///    with [`handle_input`](Self::handle_input); a refused command returns its
///    [`ClientError`] and changes nothing.
/// 2. Drain [`poll_output`](Self::poll_output) until `None`: open the socket, send texts, close
///    the socket, and hand events to the application (which may give more commands at once).
/// 3. Wait for the next socket event or application command.
///
/// Here the "network" is a [`Krmx`](crate::Krmx) server in memory; a real program opens a
/// WebSocket to the URL instead.
///
/// ```
/// use krmx_core::{
///     ClientConfig, ClientEvent, ClientInput, ClientOutput, ClientStatus, ConnectionId, Frame,
///     Input, Krmx, KrmxClient, KrmxConfig, Output,
/// };
/// use std::collections::VecDeque;
/// use std::time::Instant;
///
/// let now = Instant::now();
/// let mut server = Krmx::new(KrmxConfig::default());
/// server.handle_input(now, Input::Listen { port: 8082 })?;
/// let conn = ConnectionId::new(1);
///
/// let mut client = KrmxClient::new(ClientConfig::default());
/// let mut inbox = VecDeque::from([ClientInput::Connect { url: "ws://localhost:8082".into() }]);
/// let mut seen = Vec::new();
/// while let Some(input) = inbox.pop_front() {
///     client.handle_input(input)?;
///     while let Some(output) = client.poll_output() {
///         match output {
///             ClientOutput::Connect { url: _ } => {
///                 server.handle_input(now, Input::ConnectionOpened { conn, target: "/".into() })?;
///                 inbox.push_back(ClientInput::ConnectionOpened);
///             }
///             ClientOutput::Send { text } => {
///                 let frame = Frame::Text(text.to_string());
///                 server.handle_input(now, Input::Frame { conn, frame })?;
///             }
///             ClientOutput::Close => {
///                 server.handle_input(now, Input::ConnectionClosed { conn })?;
///                 inbox.push_back(ClientInput::ConnectionClosed);
///             }
///             ClientOutput::Event(event) => {
///                 seen.push(event.name());
///                 if event == ClientEvent::Connected {
///                     let link = ClientInput::Link { username: "simon".into(), auth: None };
///                     inbox.push_back(link);
///                 }
///             }
///             _ => {}
///         }
///     }
///     // What the server sent to this connection arrives as texts.
///     while let Some(output) = server.poll_output() {
///         if let Output::Send { to, text } = output {
///             if to == conn {
///                 inbox.push_back(ClientInput::Received { text: text.to_string() });
///             }
///         }
///     }
/// }
/// assert_eq!(client.status(), ClientStatus::Linked);
/// assert_eq!(client.username(), Some("simon"));
/// assert_eq!(seen, ["connecting", "connect", "linking", "accept", "join", "link"]);
/// let users: Vec<_> = client.users().map(|user| (user.username.as_str(), user.is_linked)).collect();
/// assert_eq!(users, [("simon", true)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Semantics
///
/// As in the JavaScript client:
/// - Commands need a status (see [`ClientStatus`]) and fail with its texts, for example
///   `cannot link when the client is linked`; [`ClientInput::Unlink`] reports itself as `send`
///   there too (`cannot send when the client is connected`). A custom message type starting with
///   `krmx/` is refused (`cannot send custom messages with type starting with the internal
///   'krmx/' prefix`).
/// - Linking sends `{"type":"krmx/link","payload":{"username":..,"version":..,"auth":..}}`
///   (`auth` left out when none) with the configured version.
/// - The user list is rebuilt from the presence messages after `krmx/accepted`, kept while
///   linked and emptied by the client's own `krmx/unlinked` and by the connection closing.
/// - The list the server sends after `krmx/accepted` has no end marker: it names every user in
///   join order, and this client's own user comes at its place in that order, which is last only
///   when the link joined a new user. A relinking user (or one joined by the server) is followed
///   by the users who joined after it, and those entries look exactly like users joining now.
///   So the only point the protocol marks is the client's own `krmx/linked`:
///   [`is_listed`](Self::is_listed) turns true there, and [`users`](Self::users) then holds the
///   users who joined before this client's user, and itself, last. The users who joined after
///   it arrive as [`ClientEvent::Joined`] and [`ClientEvent::Linked`] as they are read.
/// - [`ClientInput::Leave`] makes the client `connected` at once and emits
///   [`ClientEvent::Unlinking`]. Its own [`ClientEvent::Unlinked`] then empties the user list and
///   clears [`username`](Self::username); the server then tells the old connection that its user
///   left, which the client passes on as [`ClientEvent::Left`] for its own name (the JavaScript
///   client does the same). A kick by the server gives the same two events.
/// - Custom messages are passed on only while linked; anything else that arrives (not JSON, no
///   string `type`, an unknown `krmx/` type, a custom message while not linked) is dropped and
///   logged, never an error.
///
/// Where the JavaScript client breaks under races, this one differs:
/// - The user list is in join order, as the server sends it (the JavaScript client lists its own
///   user first, because it seeds its list with itself on `krmx/accepted`).
/// - A link given right after a leave, before the leave's own `krmx/unlinked` arrived, is not
///   mistaken for the user that left: that late unlink does not turn `linking` into `connected`.
/// - A `krmx/rejected` with reason `unlinked connection` that answers a message sent while the
///   server had already unlinked the client (a custom message, unlink or leave racing a
///   server-side unlink or kick) is dropped, not taken as the answer to a later link; a rejection
///   with no link pending is dropped too (the JavaScript client emits `reject` for both).
/// - Once closing, the client ignores what still arrives, so a late `krmx/accepted` or
///   `krmx/rejected` cannot move it back to `linked` or `connected`.
/// - Status, user list and username are read after an input is handled, so the username is
///   already cleared when the application handles an own [`ClientEvent::Unlinked`]; the event
///   carries the name.
#[derive(Debug)]
pub struct KrmxClient {
    config: ClientConfig,
    status: ClientStatus,
    /// The user linked to, or being linked to.
    username: Option<String>,
    /// Users in join order, as the server listed them.
    users: IndexMap<String, ClientUser>,
    /// Whether the own `krmx/linked` arrived since the last `krmx/accepted`: the server's list
    /// has reached this client's own place in join order.
    listed: bool,
    /// The user this client left as, while that leave's own `krmx/unlinked` is on its way.
    leaving: Option<String>,
    /// The user this client was unlinked from, until its next link is accepted: the server's
    /// `krmx/left` for it that follows a leave or a kick is not reported (the last message a
    /// client gets about itself is its own unlink, as the JS client documents).
    unlinked_self: Option<String>,
    /// How many non-link messages sent during the last link may still be answered with
    /// `unlinked connection` (the server may have unlinked the client before reading them).
    possible_strays: u64,
    outputs: VecDeque<ClientOutput>,
}

impl Default for KrmxClient {
    fn default() -> Self {
        Self::new(ClientConfig::default())
    }
}

impl KrmxClient {
    /// A client in status `initializing`.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            status: ClientStatus::Initializing,
            username: None,
            users: IndexMap::new(),
            listed: false,
            leaving: None,
            unlinked_self: None,
            possible_strays: 0,
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one input, queueing its outputs.
    ///
    /// # Errors
    /// A command in a status that does not allow it, or a custom message with a reserved type
    /// (texts as the JavaScript client's); a transport fact that cannot happen in the current
    /// status. A refused input changes nothing. A misbehaving server is never an error.
    pub fn handle_input(&mut self, input: ClientInput) -> Result<(), ClientError> {
        match input {
            ClientInput::Connect { url } => self.connect(url),
            ClientInput::Link { username, auth } => self.link(username, auth),
            ClientInput::Unlink => self.unlink(),
            ClientInput::Leave => self.leave(),
            ClientInput::Send { message } => self.send(&message),
            ClientInput::Disconnect { force } => self.disconnect(force),
            ClientInput::ConnectionOpened => self.opened(),
            ClientInput::Received { text } => self.received(&text),
            ClientInput::ConnectionClosed => {
                self.closed();
                Ok(())
            }
        }
    }

    /// The next output to carry out, in the order produced; `None` once drained.
    ///
    /// Call after every [`handle_input`](Self::handle_input) until it returns `None`. Inputs and
    /// drains may interleave freely: the queue keeps the order.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.outputs.pop_front()
    }

    /// The current status.
    #[must_use]
    pub fn status(&self) -> ClientStatus {
        self.status
    }

    /// The user the client is linked to or linking to (`None` when connected, closing or
    /// closed). After a leave it stays until that leave's own `krmx/unlinked` arrives.
    #[must_use]
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Every user the server told this client about, in join order, with whether it is linked.
    /// Empty unless linked.
    ///
    /// When [`is_listed`](Self::is_listed) turns true it holds exactly the users who joined
    /// before this client's user and that user itself (linked), last; the users who joined after
    /// it are added as their `krmx/joined` arrives. Between `krmx/accepted` and the own
    /// `krmx/joined` the client's own user is listed first, then moved to its place.
    pub fn users(&self) -> impl ExactSizeIterator<Item = &ClientUser> + '_ {
        self.users.values()
    }

    /// Whether the client is linked and the server has listed its own user: true from the own
    /// `krmx/linked` that follows `krmx/accepted` until the client is no longer linked.
    ///
    /// This is the end of a link as far as the protocol marks one. The server sends, after
    /// `krmx/accepted`, `krmx/joined` (and `krmx/linked` for a linked user) for every user in
    /// join order, the client's own included, with no marker after the last. When this turns
    /// true, [`users`](Self::users) holds every user who joined before the client's user, with
    /// whether each is linked, and the client's user itself, last. When the link joined a new
    /// user, that is the whole list (a new user is last in join order). When the user was on the
    /// server already (relinking, or joined by the server), users who joined after it may follow:
    /// the server lists them next, and they arrive as [`ClientEvent::Joined`] and
    /// [`ClientEvent::Linked`], exactly like users joining later.
    ///
    /// ```
    /// use krmx_core::{ClientInput, ClientStatus, KrmxClient};
    ///
    /// let mut client = KrmxClient::default();
    /// client.handle_input(ClientInput::Connect { url: "ws://localhost:8082".into() })?;
    /// client.handle_input(ClientInput::ConnectionOpened)?;
    /// client.handle_input(ClientInput::Link { username: "bob".into(), auth: None })?;
    /// // bob relinks; alice joined before bob, carol after.
    /// for text in [
    ///     r#"{"type":"krmx/accepted"}"#,
    ///     r#"{"type":"krmx/joined","payload":{"username":"alice"}}"#,
    ///     r#"{"type":"krmx/joined","payload":{"username":"bob"}}"#,
    ///     r#"{"type":"krmx/linked","payload":{"username":"bob"}}"#,
    /// ] {
    ///     assert!(!client.is_listed());
    ///     client.handle_input(ClientInput::Received { text: text.into() })?;
    /// }
    /// assert_eq!(client.status(), ClientStatus::Linked);
    /// assert!(client.is_listed());
    /// let names: Vec<_> = client.users().map(|user| user.username.as_str()).collect();
    /// assert_eq!(names, ["alice", "bob"]);
    ///
    /// // carol's entry may be the rest of the list or a user joining now: the same message.
    /// let carol = r#"{"type":"krmx/joined","payload":{"username":"carol"}}"#;
    /// client.handle_input(ClientInput::Received { text: carol.into() })?;
    /// assert_eq!(client.users().len(), 3);
    /// # Ok::<(), krmx_core::ClientError>(())
    /// ```
    #[must_use]
    pub fn is_listed(&self) -> bool {
        self.listed && self.status == ClientStatus::Linked
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn emit(&mut self, event: ClientEvent) {
        self.outputs.push_back(ClientOutput::Event(event));
    }

    fn send_text(&mut self, text: Text) {
        self.outputs.push_back(ClientOutput::Send { text });
    }

    fn can_only(&self, action: &'static str, allowed: &[ClientStatus]) -> Result<(), ClientError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(ClientError::WrongStatus {
                action,
                status: self.status,
            })
        }
    }

    fn connect(&mut self, url: String) -> Result<(), ClientError> {
        self.can_only(
            "connect",
            &[ClientStatus::Initializing, ClientStatus::Closed],
        )?;
        self.status = ClientStatus::Connecting;
        self.emit(ClientEvent::Connecting);
        self.outputs.push_back(ClientOutput::Connect { url });
        Ok(())
    }

    fn link(&mut self, username: String, auth: Option<String>) -> Result<(), ClientError> {
        self.can_only("link", &[ClientStatus::Connected])?;
        let text = link_text(&username, self.config.version_value(), auth);
        self.username = Some(username);
        self.status = ClientStatus::Linking;
        self.emit(ClientEvent::Linking);
        self.send_text(text);
        Ok(())
    }

    fn unlink(&mut self) -> Result<(), ClientError> {
        // The JavaScript client names this action `send` too.
        self.can_only("send", &[ClientStatus::Linked])?;
        self.status = ClientStatus::Unlinking;
        self.emit(ClientEvent::Unlinking);
        self.possible_strays = self.possible_strays.saturating_add(1);
        self.send_text(Message::new(wire::UNLINK).to_text());
        Ok(())
    }

    fn leave(&mut self) -> Result<(), ClientError> {
        self.can_only("leave", &[ClientStatus::Linked])?;
        self.status = ClientStatus::Connected;
        self.leaving.clone_from(&self.username);
        self.emit(ClientEvent::Unlinking);
        self.possible_strays = self.possible_strays.saturating_add(1);
        self.send_text(Message::new(wire::LEAVE).to_text());
        Ok(())
    }

    fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        self.can_only("send", &[ClientStatus::Linked])?;
        if message.is_reserved() {
            return Err(ClientError::ReservedType);
        }
        self.possible_strays = self.possible_strays.saturating_add(1);
        self.send_text(message.to_text());
        Ok(())
    }

    fn disconnect(&mut self, force: bool) -> Result<(), ClientError> {
        use ClientStatus::{Closing, Connected, Connecting, Linked, Linking, Unlinking};
        let allowed: &[ClientStatus] = if force {
            &[Connected, Linking, Unlinking, Connecting, Linked, Closing]
        } else {
            &[Connected, Linking, Unlinking]
        };
        self.can_only("disconnect", allowed)?;
        self.status = Closing;
        self.username = None;
        self.emit(ClientEvent::Closing);
        self.outputs.push_back(ClientOutput::Close);
        Ok(())
    }

    fn opened(&mut self) -> Result<(), ClientError> {
        match self.status {
            ClientStatus::Connecting => {
                tracing::debug!("connection open");
                self.status = ClientStatus::Connected;
                self.emit(ClientEvent::Connected);
                Ok(())
            }
            // Closed before it finished opening: the close asked for follows.
            ClientStatus::Closing => Ok(()),
            status => Err(ClientError::UnexpectedTransport {
                fact: "an opened connection",
                status,
            }),
        }
    }

    fn closed(&mut self) {
        if !self.status.has_connection() {
            return;
        }
        tracing::debug!("connection closed");
        self.status = ClientStatus::Closed;
        self.username = None;
        self.users.clear();
        self.listed = false;
        self.leaving = None;
        self.possible_strays = 0;
        self.emit(ClientEvent::Closed);
    }
}

/// `{"type":"krmx/link","payload":{"username":..,"version":..,"auth":..}}`, `auth` left out
/// when none (as `JSON.stringify` leaves out `undefined`).
fn link_text(username: &str, version: &str, auth: Option<String>) -> Text {
    let mut payload = Map::new();
    payload.insert("username".to_owned(), Value::String(username.to_owned()));
    payload.insert("version".to_owned(), Value::String(version.to_owned()));
    if let Some(auth) = auth {
        payload.insert("auth".to_owned(), Value::String(auth));
    }
    Message::new(wire::LINK)
        .with_payload(Value::Object(payload))
        .to_text()
}
