//! [`AsyncClient`]: an async Krmx client on smol, with async-tungstenite.
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
use smol::stream::StreamExt;
use socket::{Ws, within};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// An async Krmx client on smol: connect to a `ws://` URL, link to a user, send and receive
/// messages, and follow who joined, linked, unlinked and left. No tokio is involved.
///
/// Every method finishes once its work is done: [`link`](Self::link) once the server accepted
/// (with the whole user list) or rejected, [`unlink`](Self::unlink) and [`leave`](Self::leave)
/// once the server confirmed, each within the [timeout](ClientOptions::timeout). Everything that
/// happens, including what happened during those calls, is queued as a [`ClientEvent`] for
/// [`next_event`](Self::next_event), in the order it happened.
///
/// The client is one value driven by `&mut self`, with no task of its own: the socket is read
/// while one of its methods is awaited, and pings are answered then. Keep awaiting
/// [`next_event`](Self::next_event) (more often than the server's ping interval, 15 s by
/// default). It is cancel-safe: race it against your own futures (for example with
/// [`smol::future::or`]) and act on whichever finishes; nothing read is lost. The other methods
/// should be awaited to the end: one dropped half-way may leave its command unsent.
///
/// ```
/// use krmx_core::{ClientEvent, Message};
/// use krmx_transport_smol::AsyncClient;
/// use std::time::Duration;
/// # use krmx_core::{Event, KrmxConfig};
/// # use krmx_transport_smol::{Server, TransportConfig};
/// # let server = smol::block_on(Server::bind("127.0.0.1:0", KrmxConfig::default(), TransportConfig::default()))?;
/// # let addr = server.local_addr().ok_or("no address")?;
/// # std::thread::spawn(move || smol::block_on(server.run_with(|server, event| {
/// #     if let Event::Message { message, .. } = event { let _ = server.broadcast(message, None); }
/// # })));
///
/// // A server relaying every message to every linked user listens at `addr`.
/// smol::block_on(async {
///     let mut client = AsyncClient::connect(&format!("ws://{addr}")).await?;
///     client.link("simon", None).await?;
///     client.send(Message::parse(r#"{"type":"chat/say","payload":"hi"}"#)?).await?;
///     while let Some(event) = client.next_event_timeout(Duration::from_secs(5)).await {
///         match event {
///             ClientEvent::Joined { username } => println!("{username} joined"),
///             ClientEvent::Left { username } => println!("{username} left"),
///             ClientEvent::Message { message } => {
///                 assert_eq!(message.kind(), "chat/say");
///                 break;
///             }
///             _ => {}
///         }
///     }
///     let users: Vec<_> = client.users().map(|user| (user.username.as_str(), user.is_linked)).collect();
///     assert_eq!(users, [("simon", true)]);
///     client.leave().await?;
///     client.close().await?;
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AsyncClient {
    core: KrmxClient,
    url: String,
    timeout: Duration,
    ws: Option<Ws>,
    events: VecDeque<ClientEvent>,
    /// Why the last connection attempt failed, until [`reconnect`](Self::reconnect) returns it.
    connect_error: Option<tungstenite::Error>,
}

impl AsyncClient {
    /// Connects to `url` (`ws://host:port/path?query`) with the default [`ClientOptions`].
    ///
    /// # Errors
    /// [`ClientFailure::Connect`]: a bad URL, the TCP connect, or the WebSocket handshake
    /// failed, or they took longer than the timeout.
    pub async fn connect(url: &str) -> Result<Self, ClientFailure> {
        Self::connect_with(url, ClientOptions::default()).await
    }

    /// Connects to `url` with these options (the protocol version sent, the timeout).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Self, ClientFailure> {
        let mut client = Self {
            core: KrmxClient::new(options.config_value().clone()),
            url: url.to_owned(),
            timeout: options.timeout_value(),
            ws: None,
            events: VecDeque::new(),
            connect_error: None,
        };
        client.reconnect().await?;
        Ok(client)
    }

    /// Connects again to the same URL, once the connection is `closed` (by
    /// [`close`](Self::close), the server, or the network). The user list starts empty: link
    /// again to follow the server.
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when the client is not `closed`; as
    /// [`connect`](Self::connect) otherwise.
    pub async fn reconnect(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Connect {
            url: self.url.clone(),
        })
        .await?;
        // The connection was opened (or failed) while the command was carried out.
        match self.connect_error.take() {
            Some(error) => Err(ClientFailure::Connect(error)),
            None => Ok(()),
        }
    }

    /// Links the connection to `username`, with an optional auth string for the server's
    /// authentication, and finishes once the server accepted the link and listed its users, or
    /// rejected it. The link's events (`Linking`, `Accepted`, then `Joined` and `Linked` for
    /// every user) stay queued for [`next_event`](Self::next_event).
    ///
    /// # Errors
    /// [`ClientFailure::Rejected`] with the server's reason (the client stays `connected` and
    /// may link again); [`ClientFailure::Command`] when not `connected`;
    /// [`ClientFailure::Closed`] or [`ClientFailure::Timeout`] when no answer came.
    pub async fn link(&mut self, username: &str, auth: Option<&str>) -> Result<(), ClientFailure> {
        let first_event = self.events.len();
        self.command(ClientInput::Link {
            username: username.to_owned(),
            auth: auth.map(str::to_owned),
        })
        .await?;
        self.wait(&ClientWait::Link { first_event }).await
    }

    /// Unlinks from the user, which stays on the server, and finishes once the server
    /// confirmed. The connection stays open: [`link`](Self::link) again, to any user.
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when not `linked`; [`ClientFailure::Closed`] or
    /// [`ClientFailure::Timeout`] when no confirmation came.
    pub async fn unlink(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Unlink).await?;
        self.wait(&ClientWait::Unlink).await
    }

    /// The user leaves the server; finishes once the server confirmed the unlink. The
    /// connection stays open and `connected`.
    ///
    /// # Errors
    /// As [`unlink`](Self::unlink).
    pub async fn leave(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Leave).await?;
        self.wait(&ClientWait::Leave).await
    }

    /// Sends a custom message to the server (written before this finishes).
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when not `linked` or when the type starts with the reserved
    /// `krmx/`. A connection that breaks while writing (or takes longer than the timeout) is
    /// reported as [`ClientEvent::Closed`].
    pub async fn send(&mut self, message: Message) -> Result<(), ClientFailure> {
        self.command(ClientInput::Send { message }).await
    }

    /// Closes the connection (even while linked: the server unlinks the user, who stays) and
    /// finishes once the server answered the close, at most the timeout. The client is
    /// `closed`; [`reconnect`](Self::reconnect) opens a new connection.
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when there is no connection to close.
    pub async fn close(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Disconnect { force: true }).await
    }

    /// The next event, reading from the server until one comes; `None` once the connection is
    /// closed and every event was taken. Cancel-safe.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.next_event_until(None).await
    }

    /// The next event, reading from the server for at most `timeout`; `None` when none came in
    /// time or the connection is closed and every event was taken. Cancel-safe.
    pub async fn next_event_timeout(&mut self, timeout: Duration) -> Option<ClientEvent> {
        self.next_event_until(Instant::now().checked_add(timeout))
            .await
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

    async fn next_event_until(&mut self, deadline: Option<Instant>) -> Option<ClientEvent> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if !self.read(deadline).await {
                return None;
            }
        }
    }

    /// Reads until `wait` has its answer, at most the timeout.
    async fn wait(&mut self, wait: &ClientWait) -> Result<(), ClientFailure> {
        let deadline = Instant::now().checked_add(self.timeout);
        loop {
            if let Some(outcome) = wait.outcome(&self.core, &self.events) {
                return outcome;
            }
            if !self.read(deadline).await {
                return Err(ClientFailure::Timeout);
            }
        }
    }

    /// Reads one message (or waits until `deadline`) and hands it to the core. `false` when
    /// nothing more can come by then: the deadline passed or there is no connection.
    ///
    /// Cancel-safe: the only await is the read, and a message is handled as soon as it is read.
    async fn read(&mut self, deadline: Option<Instant>) -> bool {
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        let Some(next) = within(deadline, ws.next()).await else {
            return false;
        };
        match next.map_or(ClientRead::Gone, client_read) {
            ClientRead::Input(input) => self.fact(input).await,
            ClientRead::Nothing | ClientRead::WouldBlock => {}
            ClientRead::Gone => {
                self.ws = None;
                self.fact(ClientInput::ConnectionClosed).await;
            }
        }
        true
    }

    /// Feeds an application command and carries out what follows.
    async fn command(&mut self, input: ClientInput) -> Result<(), ClientFailure> {
        self.core.handle_input(input)?;
        self.carry_out().await;
        Ok(())
    }

    /// Feeds a transport fact and carries out what follows.
    async fn fact(&mut self, input: ClientInput) {
        self.report(input);
        self.carry_out().await;
    }

    /// Feeds a transport fact; the outputs are left for the caller's drain.
    fn report(&mut self, input: ClientInput) {
        if let Err(error) = self.core.handle_input(input) {
            tracing::warn!(%error, "the client refused a transport fact");
        }
    }

    /// Drains the core's outputs: opens, writes and closes the socket, and queues events.
    async fn carry_out(&mut self) {
        while let Some(output) = self.core.poll_output() {
            let deadline = Instant::now().checked_add(self.timeout);
            match output {
                ClientOutput::Connect { url } => match socket::open(&url, deadline).await {
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
                    let frame = tungstenite::Message::text(text.as_str());
                    let sent = within(deadline, ws.send(frame)).await;
                    if !matches!(sent, Some(Ok(()))) {
                        tracing::debug!(?sent, "writing failed or timed out");
                        self.ws = None;
                        self.report(ClientInput::ConnectionClosed);
                    }
                }
                ClientOutput::Close => {
                    if let Some(ws) = self.ws.take() {
                        socket::close(ws, deadline).await;
                    }
                    self.report(ClientInput::ConnectionClosed);
                }
                ClientOutput::Event(event) => self.events.push_back(event),
                other => tracing::warn!(?other, "dropped an unknown client output"),
            }
        }
    }
}
