//! [`AsyncClient`]: an async Krmx client on smol, with async-tungstenite.
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
use smol::stream::StreamExt;
use socket::{Ws, within};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// An async Krmx client on smol: connect to a `ws://` or `wss://` URL, link to a user, send
/// and receive messages, and follow who joined, linked, unlinked and left. No tokio is
/// involved.
///
/// Every method finishes once its work is done: [`link`](Self::link) once the server accepted
/// and listed the users up to the client's own (see there) or rejected,
/// [`unlink`](Self::unlink) and [`leave`](Self::leave) once the server confirmed, each within
/// the [timeout](ClientOptions::timeout). Everything that happens, including what happened
/// during those calls, is queued as a [`ClientEvent`] for [`next_event`](Self::next_event), in
/// the order it happened.
///
/// The client is one value driven by `&mut self`, with no task of its own: the socket is read
/// while one of its methods is awaited, and pings are answered then. Keep awaiting
/// [`next_event`](Self::next_event) (more often than the server's ping interval, 15 s by
/// default). It is cancel-safe: race it against your own futures (for example with
/// [`smol::future::or`]) and act on whichever finishes; nothing read is lost. The other methods
/// should be awaited to the end: one dropped half-way may leave its command unsent.
///
/// ```
/// use krmx_client::AsyncClient;
/// use krmx_core::{ClientEvent, Message};
/// use std::time::Duration;
/// # use krmx_core::{Event, KrmxConfig};
/// # use krmx_transport_smol::{Server, TransportConfig};
/// # let server = smol::block_on(Server::bind("127.0.0.1:0", KrmxConfig::default(), TransportConfig::default()))?;
/// # let addr = server.local_addr().ok_or("no address")?;
/// # std::thread::spawn(move || smol::block_on(server.run_with(|server, event| {
/// #     if let Event::Message { message, .. } = event { let _ = server.commands().broadcast(message, None); }
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
    tls: ClientTls,
    ws: Option<Ws>,
    events: VecDeque<ClientEvent>,
    /// Why the last connection attempt failed, until [`reconnect`](Self::reconnect) returns it.
    connect_error: Option<ClientFailure>,
    /// How the connection is ending, once known (the server's close frame, a protocol error):
    /// what a command waiting when it ends reports.
    ending: Option<ClientFailure>,
}

impl AsyncClient {
    /// Connects to `url` (`ws://host:port/path?query`) with the default [`ClientOptions`].
    ///
    /// ```
    /// use krmx_client::{AsyncClient, ClientFailure};
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # drop(listener);
    /// // Nothing listens at `addr`.
    /// match smol::block_on(AsyncClient::connect(&format!("ws://{addr}"))) {
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
    pub async fn connect(url: &str) -> Result<Self, ClientFailure> {
        Self::connect_with(url, ClientOptions::default()).await
    }

    /// Connects to `url` with these options (the protocol version sent, the timeout).
    ///
    /// ```no_run
    /// use krmx_client::{AsyncClient, ClientOptions};
    /// use std::time::Duration;
    /// smol::block_on(async {
    ///     let options = ClientOptions::new().timeout(Duration::from_secs(2));
    ///     let client = AsyncClient::connect_with("ws://127.0.0.1:8082/lobby", options).await?;
    ///     assert_eq!(client.url(), "ws://127.0.0.1:8082/lobby");
    ///     Ok::<(), krmx_client::ClientFailure>(())
    /// })?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Self, ClientFailure> {
        let mut client = Self {
            core: KrmxClient::new(options.config_value().clone()),
            url: url.to_owned(),
            timeout: options.timeout_value(),
            tls: options.tls_value().clone(),
            ws: None,
            events: VecDeque::new(),
            connect_error: None,
            ending: None,
        };
        client.reconnect().await?;
        Ok(client)
    }

    /// Connects again to the same URL, once the connection is `closed` (by
    /// [`close`](Self::close), the server, or the network). The user list starts empty: link
    /// again to follow the server.
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let mut client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// client.close().await?;
    /// client.reconnect().await?;
    /// client.link("simon", None).await?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// # })?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
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
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Links the connection to `username`, with an optional auth string for the server's
    /// authentication, and finishes once the server accepted the link and listed the users up
    /// to the client's own, or rejected it.
    ///
    /// The server lists every user in join order after accepting, with no end marker; this
    /// finishes at the client's own `krmx/linked`
    /// ([`KrmxClient::is_listed`](krmx_core::KrmxClient::is_listed)). [`users`](Self::users)
    /// then holds the users who joined before `username` and `username` itself, last. When the
    /// link joined a new user that is every user. When the user was on the server already
    /// (relinking, or joined by the server), the users who joined after it may still follow:
    /// they come as `Joined` and `Linked` events from [`next_event`](Self::next_event), like
    /// users joining later. The link's own events (`Linking`, `Accepted`, then `Joined` and
    /// `Linked` for every user listed) stay queued for [`next_event`](Self::next_event).
    ///
    /// ```no_run
    /// use krmx_client::{AsyncClient, ClientFailure};
    /// smol::block_on(async {
    ///     let mut client = AsyncClient::connect("ws://127.0.0.1:8082").await?;
    ///     match client.link("simon", Some("token")).await {
    ///         Ok(()) => println!("linked; {} users so far", client.users().len()),
    ///         Err(ClientFailure::Rejected { reason }) => println!("rejected: {reason}"),
    ///         Err(other) => return Err(other),
    ///     }
    ///     Ok(())
    /// })?;
    /// # Ok::<(), ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// [`ClientFailure::Rejected`] with the server's reason (the client stays `connected` and
    /// may link again); [`ClientFailure::Command`] when not `connected`;
    /// [`ClientFailure::Closed`] (with the server's close code and reason, if it sent any),
    /// [`ClientFailure::Protocol`] or [`ClientFailure::Timeout`] when no answer came.
    pub async fn link(&mut self, username: &str, auth: Option<&str>) -> Result<(), ClientFailure> {
        let first_event = self.events.len();
        self.command(ClientInput::Link {
            username: username.to_owned(),
            auth: auth.map(str::to_owned),
        })
        .await?;
        self.wait(&Wait::Link { first_event }).await
    }

    /// Unlinks from the user, which stays on the server, and finishes once the server
    /// confirmed. The connection stays open: [`link`](Self::link) again, to any user.
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let mut client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// client.link("simon", None).await?;
    /// client.unlink().await?;
    /// client.link("lisa", None).await?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// # })?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when not `linked`; [`ClientFailure::Closed`],
    /// [`ClientFailure::Protocol`] or [`ClientFailure::Timeout`] when no confirmation came.
    pub async fn unlink(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Unlink).await?;
        self.wait(&Wait::Unlink).await
    }

    /// The user leaves the server; finishes once the server confirmed the unlink. The
    /// connection stays open and `connected`.
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let mut client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// client.link("simon", None).await?;
    /// client.leave().await?;
    /// assert_eq!(client.username(), None);
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// # })?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// As [`unlink`](Self::unlink).
    pub async fn leave(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Leave).await?;
        self.wait(&Wait::Leave).await
    }

    /// Sends a custom message to the server (written before this finishes).
    ///
    /// ```no_run
    /// use krmx_core::Message;
    /// # smol::block_on(async {
    /// # let mut client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// client.link("simon", None).await?;
    /// client.send(Message::parse(r#"{"type":"chat/say","payload":"hi"}"#)?).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    /// ```no_run
    /// use krmx_core::ClientStatus;
    /// # smol::block_on(async {
    /// # let mut client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// client.close().await?;
    /// assert_eq!(client.status(), ClientStatus::Closed);
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// # })?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    ///
    /// # Errors
    /// [`ClientFailure::Command`] when there is no connection to close.
    pub async fn close(&mut self) -> Result<(), ClientFailure> {
        self.command(ClientInput::Disconnect { force: true }).await
    }

    /// The next event, reading from the server until one comes; `None` once the connection is
    /// closed and every event was taken. Cancel-safe.
    ///
    /// ```no_run
    /// use krmx_core::ClientEvent;
    /// # smol::block_on(async {
    /// # let mut client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// client.link("simon", None).await?;
    /// while let Some(event) = client.next_event().await {
    ///     if let ClientEvent::Message { message } = event {
    ///         println!("{}", message.kind());
    ///     }
    /// }
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// # })?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.next_event_until(None).await
    }

    /// The next event, reading from the server for at most `timeout`; `None` when none came in
    /// time or the connection is closed and every event was taken. Cancel-safe.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # smol::block_on(async {
    /// # let mut client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// while let Some(event) = client.next_event_timeout(Duration::from_millis(100)).await {
    ///     println!("{}", event.name());
    /// }
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// # })?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    pub async fn next_event_timeout(&mut self, timeout: Duration) -> Option<ClientEvent> {
        self.next_event_until(Instant::now().checked_add(timeout))
            .await
    }

    /// The status (`connected`, `linked`, `closed`, ...).
    ///
    /// ```no_run
    /// use krmx_core::ClientStatus;
    /// # smol::block_on(async {
    /// let client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// assert_eq!(client.status(), ClientStatus::Connected);
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// # })?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    #[must_use]
    pub fn status(&self) -> ClientStatus {
        self.core.status()
    }

    /// The user the client is linked (or linking) to.
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let mut client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// client.link("simon", None).await?;
    /// assert_eq!(client.username(), Some("simon"));
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// # })?;
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
    /// # smol::block_on(async {
    /// # let mut client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// client.link("simon", None).await?;
    /// let online = client.users().filter(|user| user.is_linked).count();
    /// println!("{online} online");
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// # })?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
    pub fn users(&self) -> impl ExactSizeIterator<Item = &ClientUser> + '_ {
        self.core.users()
    }

    /// The URL the client connects to.
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// let client = krmx_client::AsyncClient::connect("ws://127.0.0.1:8082").await?;
    /// assert_eq!(client.url(), "ws://127.0.0.1:8082");
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// # })?;
    /// # Ok::<(), krmx_client::ClientFailure>(())
    /// ```
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
    async fn wait(&mut self, wait: &Wait) -> Result<(), ClientFailure> {
        let deadline = Instant::now().checked_add(self.timeout);
        loop {
            if let Some(outcome) = wait.outcome(&self.core, &self.events, self.ending.as_ref()) {
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
        match next.map_or(Read::Gone(None), read) {
            Read::Input(input) => self.fact(input).await,
            Read::Closing(failure) => self.ending = Some(failure),
            Read::Nothing | Read::WouldBlock => {}
            Read::Gone(failure) => {
                self.ws = None;
                if self.ending.is_none() {
                    self.ending = failure;
                }
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
                ClientOutput::Connect { url } => {
                    self.ending = None;
                    match socket::open(&url, deadline, &self.tls).await {
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
