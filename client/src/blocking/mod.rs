//! [`Client`]: a blocking Krmx client, tungstenite over a std [`TcpStream`].
//!
//! The protocol lives in [`KrmxClient`]: it decides what to send, what an answer means and
//! which events to report. This adapter opens the socket the core asks for, writes the texts it
//! queues, reads the server's messages back into it, and waits (always with a timeout) for the
//! answers a command expects.

mod socket;
mod stream;

use crate::read::{Read, read};
use crate::wait::Wait;
use crate::{ClientFailure, ClientOptions, ClientTls};
use krmx_core::{
    ClientEvent, ClientInput, ClientOutput, ClientStatus, ClientUser, KrmxClient, Message,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use stream::Transport;
use tungstenite::WebSocket;

/// A blocking Krmx client: connect to a `ws://` or `wss://` URL, link to a user, send and
/// receive messages, and follow who joined, linked, unlinked and left.
///
/// Every method returns once its work is done: [`link`](Self::link) once the server accepted
/// and listed the users up to the client's own (see there) or rejected, [`unlink`](Self::unlink)
/// and [`leave`](Self::leave) once the server confirmed, each within the
/// [timeout](ClientOptions::timeout). Everything that happens, including what happened during
/// those calls, is queued as a [`ClientEvent`] for [`next_event`](Self::next_event) and
/// [`next_event_timeout`](Self::next_event_timeout), in the order it happened.
///
/// The socket is read only while a method runs, and pings are answered then: read events
/// regularly (more often than the server's ping interval, 15 s by default) or the server drops
/// the connection as unresponsive.
///
/// ```
/// use krmx_client::Client;
/// use krmx_core::{ClientEvent, Message};
/// use std::time::Duration;
/// # use krmx_core::{Event, KrmxConfig};
/// # use krmx_transport_mio::{Server, TransportConfig};
/// # let server = Server::bind("127.0.0.1:0".parse()?, KrmxConfig::default(), TransportConfig::default())?;
/// # let addr = server.local_addr()?.ok_or("no address")?;
/// # std::thread::spawn(move || krmx_transport_mio::run(server, |server, event| {
/// #     if let Event::Message { message, .. } = event { let _ = server.commands().broadcast(message, None); }
/// # }));
///
/// // A server relaying every message to every linked user listens at `addr`.
/// let mut client = Client::connect(&format!("ws://{addr}"))?;
/// client.link("simon", None)?;
/// client.send(Message::parse(r#"{"type":"chat/say","payload":"hi"}"#)?)?;
/// while let Some(event) = client.next_event_timeout(Duration::from_secs(5)) {
///     match event {
///         ClientEvent::Joined { username } => println!("{username} joined"),
///         ClientEvent::Left { username } => println!("{username} left"),
///         ClientEvent::Message { message } => {
///             assert_eq!(message.kind(), "chat/say");
///             break;
///         }
///         _ => {}
///     }
/// }
/// let users: Vec<_> = client.users().map(|user| (user.username.as_str(), user.is_linked)).collect();
/// assert_eq!(users, [("simon", true)]);
/// client.leave()?;
/// client.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    core: KrmxClient,
    url: String,
    timeout: Duration,
    ws: Option<WebSocket<Transport>>,
    tls: ClientTls,
    events: VecDeque<ClientEvent>,
    /// Why the last connection attempt failed, until [`reconnect`](Self::reconnect) returns it.
    connect_error: Option<ClientFailure>,
    /// How the connection is ending, once known (the server's close frame, a protocol error):
    /// what a command waiting when it ends reports.
    ending: Option<ClientFailure>,
}

impl Client {
    /// Connects to `url` (`ws://host:port/path?query`) with the default [`ClientOptions`].
    ///
    /// ```
    /// use krmx_client::{Client, ClientFailure};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # drop(listener);
    /// // Nothing listens at `addr`.
    /// match Client::connect(&format!("ws://{addr}")) {
    ///     Err(ClientFailure::Connect { kind, .. }) => {
    ///         assert_eq!(kind, std::io::ErrorKind::ConnectionRefused);
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ClientFailure::InvalidUrl`], [`ClientFailure::Connect`],
    /// [`ClientFailure::HandshakeRejected`] (for example 404 for a path the server does not
    /// serve), [`ClientFailure::Protocol`] or [`ClientFailure::Timeout`].
    pub fn connect(url: &str) -> Result<Self, ClientFailure> {
        Self::connect_with(url, ClientOptions::default())
    }

    /// Connects to `url` with these options (the protocol version sent, the timeout).
    ///
    /// ```no_run
    /// use krmx_client::{Client, ClientOptions};
    /// use std::time::Duration;
    /// let options = ClientOptions::new().timeout(Duration::from_secs(2));
    /// let client = Client::connect_with("ws://127.0.0.1:8082/lobby", options)?;
    /// assert_eq!(client.url(), "ws://127.0.0.1:8082/lobby");
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with(url: &str, options: ClientOptions) -> Result<Self, ClientFailure> {
        let mut client = Self {
            core: KrmxClient::new(options.config_value().clone()),
            url: url.to_owned(),
            timeout: options.timeout_value(),
            ws: None,
            tls: options.tls_value().clone(),
            events: VecDeque::new(),
            connect_error: None,
            ending: None,
        };
        client.reconnect()?;
        Ok(client)
    }

    /// Connects again to the same URL, once the connection is `closed` (by
    /// [`close`](Self::close), the server, or the network). The user list starts empty: link
    /// again to follow the server.
    ///
    /// ```no_run
    /// # let mut client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// client.close()?;
    /// client.reconnect()?;
    /// client.link("simon", None)?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when the client is not `closed`; as
    /// [`connect`](Self::connect) otherwise.
    pub fn reconnect(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Connect {
            url: self.url.clone(),
        })?;
        // The connection was opened (or failed) while the command was carried out.
        match self.connect_error.take() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Links the connection to `username`, with an optional auth string for the server's
    /// authentication, and returns once the server accepted the link and listed the users up
    /// to the client's own, or rejected it.
    ///
    /// The server lists every user in join order after accepting, with no end marker; this
    /// returns at the client's own `krmx/linked`
    /// ([`KrmxClient::is_listed`](krmx_core::KrmxClient::is_listed)). [`users`](Self::users)
    /// then holds the users who joined before `username` and `username` itself, last. When the
    /// link joined a new user that is every user. When the user was on the server already
    /// (relinking, or joined by the server), the users who joined after it may still follow:
    /// they come as `Joined` and `Linked` events from [`next_event`](Self::next_event), like
    /// users joining later. The link's own events (`Linking`, `Accepted`, then `Joined` and
    /// `Linked` for every user listed) stay queued for [`next_event`](Self::next_event).
    ///
    /// ```no_run
    /// use krmx_client::{Client, ClientFailure};
    /// let mut client = Client::connect("ws://127.0.0.1:8082")?;
    /// match client.link("simon", Some("token")) {
    ///     Ok(()) => println!("linked; {} users so far", client.users().len()),
    ///     Err(ClientFailure::Rejected { reason }) => println!("rejected: {reason}"),
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok::<(), ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// [`ClientFailure::Rejected`] with the server's reason (the client stays `connected` and
    /// may link again); [`ClientFailure::Command`] when not `connected`;
    /// [`ClientFailure::Closed`] (with the server's close code and reason, if it sent any),
    /// [`ClientFailure::Protocol`] or [`ClientFailure::Timeout`] when no answer came.
    pub fn link(&mut self, username: &str, auth: Option<&str>) -> Result<(), ClientFailure> {
        let first_event = self.events.len();
        self.command(ClientInput::Link {
            username: username.to_owned(),
            auth: auth.map(str::to_owned),
        })?;
        self.wait(&Wait::Link { first_event })
    }

    /// Unlinks from the user, which stays on the server, and returns once the server
    /// confirmed. The connection stays open: [`link`](Self::link) again, to any user.
    ///
    /// ```no_run
    /// # let mut client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// client.link("simon", None)?;
    /// client.unlink()?;
    /// client.link("lisa", None)?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when not `linked`; [`ClientFailure::Closed`],
    /// [`ClientFailure::Protocol`] or [`ClientFailure::Timeout`] when no confirmation came.
    pub fn unlink(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Unlink)?;
        self.wait(&Wait::Unlink)
    }

    /// The user leaves the server; returns once the server confirmed the unlink. The connection
    /// stays open and `connected`.
    ///
    /// ```no_run
    /// # let mut client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// client.link("simon", None)?;
    /// client.leave()?;
    /// assert_eq!(client.username(), None);
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// As [`unlink`](Self::unlink).
    pub fn leave(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Leave)?;
        self.wait(&Wait::Leave)
    }

    /// Sends a custom message to the server (written before this returns).
    ///
    /// ```no_run
    /// use krmx_core::Message;
    /// # let mut client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// client.link("simon", None)?;
    /// client.send(Message::parse(r#"{"type":"chat/say","payload":"hi"}"#)?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when not `linked` or when the type starts with the reserved
    /// `krmx/`. A connection that breaks while writing is reported as [`ClientEvent::Closed`].
    pub fn send(&mut self, message: Message) -> Result<(), ClientFailure> {
        self.command(ClientInput::Send { message })
    }

    /// Closes the connection (even while linked: the server unlinks the user, who stays) and
    /// returns once the server answered the close, at most the timeout. The client is `closed`;
    /// [`reconnect`](Self::reconnect) opens a new connection.
    ///
    /// ```no_run
    /// use krmx_core::ClientStatus;
    /// # let mut client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// client.close()?;
    /// assert_eq!(client.status(), ClientStatus::Closed);
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when there is no connection to close.
    pub fn close(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Disconnect { force: true })
    }

    /// The next event, reading from the server until one comes; `None` once the connection is
    /// closed and every event was taken.
    ///
    /// ```no_run
    /// use krmx_core::ClientEvent;
    /// # let mut client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// client.link("simon", None)?;
    /// while let Some(event) = client.next_event() {
    ///     if let ClientEvent::Message { message } = event {
    ///         println!("{}", message.kind());
    ///     }
    /// }
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    pub fn next_event(&mut self) -> Option<ClientEvent> {
        self.next_event_until(None)
    }

    /// The next event, reading from the server for at most `timeout`; `None` when none came in
    /// time or the connection is closed and every event was taken. With a zero timeout it only
    /// takes an event already queued.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # let mut client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// // Every event queued so far, without waiting.
    /// while let Some(event) = client.next_event_timeout(Duration::ZERO) {
    ///     println!("{}", event.name());
    /// }
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    pub fn next_event_timeout(&mut self, timeout: Duration) -> Option<ClientEvent> {
        self.next_event_until(Instant::now().checked_add(timeout))
    }

    /// The status (`connected`, `linked`, `closed`, ...).
    ///
    /// ```no_run
    /// use krmx_core::ClientStatus;
    /// let client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// assert_eq!(client.status(), ClientStatus::Connected);
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    #[must_use]
    pub fn status(&self) -> ClientStatus {
        self.core.status()
    }

    /// The user the client is linked (or linking) to.
    ///
    /// ```no_run
    /// # let mut client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// client.link("simon", None)?;
    /// assert_eq!(client.username(), Some("simon"));
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    #[must_use]
    pub fn username(&self) -> Option<&str> {
        self.core.username()
    }

    /// The server's users as the client knows them from the events read so far (taken or not),
    /// in join order, with whether each is linked. Empty unless linked. Right after
    /// [`link`](Self::link) it holds the users up to the client's own (see there).
    ///
    /// ```no_run
    /// # let mut client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// client.link("simon", None)?;
    /// let online = client.users().filter(|user| user.is_linked).count();
    /// println!("{online} online");
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    pub fn users(&self) -> impl ExactSizeIterator<Item = &ClientUser> + '_ {
        self.core.users()
    }

    /// The URL the client connects to.
    ///
    /// ```no_run
    /// let client = krmx_client::Client::connect("ws://127.0.0.1:8082")?;
    /// assert_eq!(client.url(), "ws://127.0.0.1:8082");
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    fn next_event_until(&mut self, deadline: Option<Instant>) -> Option<ClientEvent> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if !self.read(deadline) {
                return None;
            }
        }
    }

    /// Reads until `wait` has its answer, at most the timeout.
    fn wait(&mut self, wait: &Wait) -> Result<(), ClientFailure> {
        let deadline = Instant::now().checked_add(self.timeout);
        loop {
            if let Some(outcome) = wait.outcome(&self.core, &self.events, self.ending.as_ref()) {
                return outcome;
            }
            if !self.read(deadline) {
                return Err(ClientFailure::Timeout);
            }
        }
    }

    /// Reads one message (or waits until `deadline`) and hands it to the core. `false` when
    /// nothing more can come by then: the deadline passed or there is no connection.
    fn read(&mut self, deadline: Option<Instant>) -> bool {
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        let timeout = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                Some(left)
            }
            None => None,
        };
        let got = match ws.get_mut().tcp().set_read_timeout(timeout) {
            Ok(()) => read(ws.read()),
            // The timeout is never zero: a socket that cannot take it is broken.
            Err(error) => {
                tracing::debug!(%error, "setting the read timeout failed");
                Read::Gone(None)
            }
        };
        match got {
            Read::Input(input) => self.fact(input),
            Read::Closing(failure) => self.ending = Some(failure),
            // The deadline is checked on the next call.
            Read::Nothing | Read::WouldBlock => {}
            Read::Gone(failure) => self.gone(failure),
        }
        true
    }

    /// The connection is gone: a command still waiting reports `failure` unless the server's
    /// close frame said more.
    fn gone(&mut self, failure: Option<ClientFailure>) {
        self.ws = None;
        if self.ending.is_none() {
            self.ending = failure;
        }
        self.fact(ClientInput::ConnectionClosed);
    }

    /// Feeds an application command and carries out what follows.
    fn command(&mut self, input: ClientInput) -> Result<(), ClientFailure> {
        self.core.handle_input(input)?;
        self.carry_out();
        Ok(())
    }

    /// Feeds a transport fact and carries out what follows.
    fn fact(&mut self, input: ClientInput) {
        self.report(input);
        self.carry_out();
    }

    /// Feeds a transport fact; the outputs are left for the caller's drain.
    fn report(&mut self, input: ClientInput) {
        if let Err(error) = self.core.handle_input(input) {
            tracing::warn!(%error, "the client refused a transport fact");
        }
    }

    /// Drains the core's outputs: opens, writes and closes the socket, and queues events.
    fn carry_out(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                ClientOutput::Connect { url } => {
                    self.ending = None;
                    match socket::open(&url, self.timeout, &self.tls) {
                        Ok(ws) => {
                            self.ws = Some(ws);
                            self.report(ClientInput::ConnectionOpened);
                        }
                        Err(failure) => {
                            tracing::debug!(%url, %failure, "connecting failed");
                            self.connect_error = Some(failure);
                            self.report(ClientInput::ConnectionClosed);
                        }
                    }
                }
                ClientOutput::Send { text } => {
                    let Some(ws) = self.ws.as_mut() else { continue };
                    if let Err(error) = ws.send(tungstenite::Message::text(text.as_str())) {
                        tracing::debug!(%error, "writing failed");
                        self.ws = None;
                        self.report(ClientInput::ConnectionClosed);
                    }
                }
                ClientOutput::Close => {
                    if let Some(ws) = self.ws.take() {
                        socket::close(ws, self.timeout);
                    }
                    self.report(ClientInput::ConnectionClosed);
                }
                ClientOutput::Event(event) => self.events.push_back(event),
                other => tracing::warn!(?other, "dropped an unknown client output"),
            }
        }
    }
}
