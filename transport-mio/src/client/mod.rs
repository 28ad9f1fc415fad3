//! [`Client`]: a blocking Krmx client, tungstenite over a std [`TcpStream`].
//!
//! The protocol lives in [`KrmxClient`]: it decides what to send, what an answer means and
//! which events to report. This adapter opens the socket the core asks for, writes the texts it
//! queues, reads the server's messages back into it, and waits (always with a timeout) for the
//! answers a command expects.

mod socket;

use krmx_core::{
    ClientEvent, ClientInput, ClientOutput, ClientStatus, ClientUser, KrmxClient, Message,
};
use krmx_transport_shared::{ClientFailure, ClientOptions, ClientRead, ClientWait, client_read};
use std::collections::VecDeque;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::WebSocket;

/// A blocking Krmx client: connect to a `ws://` URL, link to a user, send and receive messages,
/// and follow who joined, linked, unlinked and left.
///
/// Every method returns once its work is done: [`link`](Self::link) once the server accepted
/// (with the whole user list) or rejected, [`unlink`](Self::unlink) and [`leave`](Self::leave)
/// once the server confirmed, each within the [timeout](ClientOptions::timeout). Everything that
/// happens, including what happened during those calls, is queued as a [`ClientEvent`] for
/// [`next_event`](Self::next_event) and [`next_event_timeout`](Self::next_event_timeout), in the
/// order it happened.
///
/// The socket is read only while a method runs, and pings are answered then: read events
/// regularly (more often than the server's ping interval, 15 s by default) or the server drops
/// the connection as unresponsive.
///
/// ```
/// use krmx_core::{ClientEvent, Message};
/// use krmx_transport_mio::Client;
/// use std::time::Duration;
/// # use krmx_core::{Event, KrmxConfig};
/// # use krmx_transport_mio::{Server, TransportConfig};
/// # let server = Server::bind("127.0.0.1:0".parse()?, KrmxConfig::default(), TransportConfig::default())?;
/// # let addr = server.local_addr()?.ok_or("no address")?;
/// # std::thread::spawn(move || krmx_transport_mio::run(server, |server, event| {
/// #     if let Event::Message { message, .. } = event { let _ = server.broadcast(message, None); }
/// # }));
///
/// // A server relaying every message to every linked user listens at `addr`.
/// let mut client = Client::connect(&format!("ws://{addr}"))?;
/// client.link("simon", None)?;
/// client.send(Message::parse(r#"{"type":"chat/say","payload":"hi"}"#)?)?;
/// while let Some(event) = client.next_event_timeout(Duration::from_secs(5))? {
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
    ws: Option<WebSocket<TcpStream>>,
    events: VecDeque<ClientEvent>,
    /// Why the last connection attempt failed, until [`reconnect`](Self::reconnect) returns it.
    connect_error: Option<tungstenite::Error>,
}

impl Client {
    /// Connects to `url` (`ws://host:port/path?query`) with the default [`ClientOptions`].
    ///
    /// # Errors
    /// [`ClientFailure::Connect`]: a bad URL, the TCP connect, or the WebSocket handshake
    /// failed.
    pub fn connect(url: &str) -> Result<Self, ClientFailure> {
        Self::connect_with(url, ClientOptions::default())
    }

    /// Connects to `url` with these options (the protocol version sent, the timeout).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with(url: &str, options: ClientOptions) -> Result<Self, ClientFailure> {
        let mut client = Self {
            core: KrmxClient::new(options.config_value().clone()),
            url: url.to_owned(),
            timeout: options.timeout_value(),
            ws: None,
            events: VecDeque::new(),
            connect_error: None,
        };
        client.reconnect()?;
        Ok(client)
    }

    /// Connects again to the same URL, once the connection is `closed` (by
    /// [`close`](Self::close), the server, or the network). The user list starts empty: link
    /// again to follow the server.
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
            Some(error) => Err(ClientFailure::Connect(error)),
            None => Ok(()),
        }
    }

    /// Links the connection to `username`, with an optional auth string for the server's
    /// authentication, and returns once the server accepted the link and listed its users, or
    /// rejected it. The link's events (`Linking`, `Accepted`, then `Joined` and `Linked` for
    /// every user) stay queued for [`next_event`](Self::next_event).
    ///
    /// # Errors
    /// [`ClientFailure::Rejected`] with the server's reason (the client stays `connected` and
    /// may link again); [`ClientFailure::Command`] when not `connected`;
    /// [`ClientFailure::Closed`] or [`ClientFailure::Timeout`] when no answer came.
    pub fn link(&mut self, username: &str, auth: Option<&str>) -> Result<(), ClientFailure> {
        let first_event = self.events.len();
        self.command(ClientInput::Link {
            username: username.to_owned(),
            auth: auth.map(str::to_owned),
        })?;
        self.wait(&ClientWait::Link { first_event })
    }

    /// Unlinks from the user, which stays on the server, and returns once the server
    /// confirmed. The connection stays open: [`link`](Self::link) again, to any user.
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when not `linked`; [`ClientFailure::Closed`] or
    /// [`ClientFailure::Timeout`] when no confirmation came.
    pub fn unlink(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Unlink)?;
        self.wait(&ClientWait::Unlink)
    }

    /// The user leaves the server; returns once the server confirmed the unlink. The connection
    /// stays open and `connected`.
    ///
    /// # Errors
    /// As [`unlink`](Self::unlink).
    pub fn leave(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Leave)?;
        self.wait(&ClientWait::Leave)
    }

    /// Sends a custom message to the server (written before this returns).
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
    /// # Errors
    /// [`ClientFailure::Command`] when there is no connection to close.
    pub fn close(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Disconnect { force: true })
    }

    /// The next event, reading from the server until one comes; `None` once the connection is
    /// closed and every event was taken.
    ///
    /// # Errors
    /// [`ClientFailure::Io`] when the socket cannot be configured.
    pub fn next_event(&mut self) -> Result<Option<ClientEvent>, ClientFailure> {
        self.next_event_until(None)
    }

    /// The next event, reading from the server for at most `timeout`; `None` when none came in
    /// time or the connection is closed and every event was taken. With a zero timeout it only
    /// takes an event already queued.
    ///
    /// # Errors
    /// As [`next_event`](Self::next_event).
    pub fn next_event_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<ClientEvent>, ClientFailure> {
        self.next_event_until(Instant::now().checked_add(timeout))
    }

    /// The status (`connected`, `linked`, `closed`, ...).
    #[must_use]
    pub fn status(&self) -> ClientStatus {
        self.core.status()
    }

    /// The user the client is linked (or linking) to.
    #[must_use]
    pub fn username(&self) -> Option<&str> {
        self.core.username()
    }

    /// Every user of the server, in join order, with whether it is linked, as of the events
    /// read so far (taken or not). Empty unless linked.
    pub fn users(&self) -> impl ExactSizeIterator<Item = &ClientUser> + '_ {
        self.core.users()
    }

    /// The URL the client connects to.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    fn next_event_until(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<ClientEvent>, ClientFailure> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if !self.read(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Reads until `wait` has its answer, at most the timeout.
    fn wait(&mut self, wait: &ClientWait) -> Result<(), ClientFailure> {
        let deadline = Instant::now().checked_add(self.timeout);
        loop {
            if let Some(outcome) = wait.outcome(&self.core, &self.events) {
                return outcome;
            }
            if !self.read(deadline)? {
                return Err(ClientFailure::Timeout);
            }
        }
    }

    /// Reads one message (or waits until `deadline`) and hands it to the core. `false` when
    /// nothing more can come by then: the deadline passed or there is no connection.
    fn read(&mut self, deadline: Option<Instant>) -> Result<bool, ClientFailure> {
        let Some(ws) = self.ws.as_mut() else {
            return Ok(false);
        };
        let timeout = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                Some(left)
            }
            None => None,
        };
        ws.get_mut()
            .set_read_timeout(timeout)
            .map_err(ClientFailure::Io)?;
        match client_read(ws.read()) {
            ClientRead::Input(input) => self.fact(input),
            // The deadline is checked on the next call.
            ClientRead::Nothing | ClientRead::WouldBlock => {}
            ClientRead::Gone => {
                self.ws = None;
                self.fact(ClientInput::ConnectionClosed);
            }
        }
        Ok(true)
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
                ClientOutput::Connect { url } => match socket::open(&url, self.timeout) {
                    Ok(ws) => {
                        self.ws = Some(ws);
                        self.report(ClientInput::ConnectionOpened);
                    }
                    Err(error) => {
                        tracing::debug!(%url, %error, "connecting failed");
                        self.connect_error = Some(error);
                        self.report(ClientInput::ConnectionClosed);
                    }
                },
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
