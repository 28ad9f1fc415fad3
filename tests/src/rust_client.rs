//! The Rust clients of `krmx-client` (the blocking [`Client`] and the [`AsyncClient`]) against
//! `krmx serve`, over real sockets.
//!
//! [`Adapter`] puts both behind one blocking face, so every scenario below is written once and
//! runs with each adapter against each transport of the server:
//!
//! ```text
//! krmx_tests::client_scenario_tests!(krmx_tests::rust_client::Blocking);
//! ```
//!
//! A [`Proxy`] between a client and the server cuts connections without a close handshake, as
//! a dropped network does. Every wait is bounded by [`TIMEOUT`].

use crate::TIMEOUT;
use crate::cli::CliServer;
use krmx_client::{AsyncClient, Client, ClientFailure, ClientOptions};
use krmx_core::{ClientConfig, ClientError, ClientEvent, ClientStatus, ClientUser, Message};
use serde_json::{Value, json};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One Rust client adapter, driven blockingly.
pub trait Adapter: Sized {
    /// Connects to `url`.
    ///
    /// # Errors
    /// The adapter's connect error.
    fn connect_with(url: &str, options: ClientOptions) -> Result<Self, ClientFailure>;
    /// Connects again to the same URL.
    ///
    /// # Errors
    /// The adapter's error.
    fn reconnect(&mut self) -> Result<(), ClientFailure>;
    /// Links and waits for the answer.
    ///
    /// # Errors
    /// The adapter's error (a rejection with its reason).
    fn link(&mut self, username: &str, auth: Option<&str>) -> Result<(), ClientFailure>;
    /// Unlinks and waits for the confirmation.
    ///
    /// # Errors
    /// The adapter's error.
    fn unlink(&mut self) -> Result<(), ClientFailure>;
    /// Leaves and waits for the confirmation.
    ///
    /// # Errors
    /// The adapter's error.
    fn leave(&mut self) -> Result<(), ClientFailure>;
    /// Sends a custom message.
    ///
    /// # Errors
    /// The adapter's error.
    fn send(&mut self, message: Message) -> Result<(), ClientFailure>;
    /// Closes the connection.
    ///
    /// # Errors
    /// The adapter's error.
    fn close(&mut self) -> Result<(), ClientFailure>;
    /// The next event within `timeout`.
    fn next_event(&mut self, timeout: Duration) -> Option<ClientEvent>;
    /// The status.
    fn status(&self) -> ClientStatus;
    /// The linked user.
    fn username(&self) -> Option<String>;
    /// The users with whether each is linked, in join order.
    fn users(&self) -> Vec<(String, bool)>;
}

/// The blocking [`Client`].
#[derive(Debug)]
pub struct Blocking(pub Client);

impl Adapter for Blocking {
    fn connect_with(url: &str, options: ClientOptions) -> Result<Self, ClientFailure> {
        Client::connect_with(url, options).map(Self)
    }
    fn reconnect(&mut self) -> Result<(), ClientFailure> {
        self.0.reconnect()
    }
    fn link(&mut self, username: &str, auth: Option<&str>) -> Result<(), ClientFailure> {
        self.0.link(username, auth)
    }
    fn unlink(&mut self) -> Result<(), ClientFailure> {
        self.0.unlink()
    }
    fn leave(&mut self) -> Result<(), ClientFailure> {
        self.0.leave()
    }
    fn send(&mut self, message: Message) -> Result<(), ClientFailure> {
        self.0.send(message)
    }
    fn close(&mut self) -> Result<(), ClientFailure> {
        self.0.close()
    }
    fn next_event(&mut self, timeout: Duration) -> Option<ClientEvent> {
        self.0.next_event_timeout(timeout)
    }
    fn status(&self) -> ClientStatus {
        self.0.status()
    }
    fn username(&self) -> Option<String> {
        self.0.username().map(str::to_owned)
    }
    fn users(&self) -> Vec<(String, bool)> {
        pairs(self.0.users())
    }
}

/// The [`AsyncClient`], each call run to its end with
/// [`smol::block_on`].
#[derive(Debug)]
pub struct Async(pub AsyncClient);

impl Adapter for Async {
    fn connect_with(url: &str, options: ClientOptions) -> Result<Self, ClientFailure> {
        smol::block_on(AsyncClient::connect_with(url, options)).map(Self)
    }
    fn reconnect(&mut self) -> Result<(), ClientFailure> {
        smol::block_on(self.0.reconnect())
    }
    fn link(&mut self, username: &str, auth: Option<&str>) -> Result<(), ClientFailure> {
        smol::block_on(self.0.link(username, auth))
    }
    fn unlink(&mut self) -> Result<(), ClientFailure> {
        smol::block_on(self.0.unlink())
    }
    fn leave(&mut self) -> Result<(), ClientFailure> {
        smol::block_on(self.0.leave())
    }
    fn send(&mut self, message: Message) -> Result<(), ClientFailure> {
        smol::block_on(self.0.send(message))
    }
    fn close(&mut self) -> Result<(), ClientFailure> {
        smol::block_on(self.0.close())
    }
    fn next_event(&mut self, timeout: Duration) -> Option<ClientEvent> {
        smol::block_on(self.0.next_event_timeout(timeout))
    }
    fn status(&self) -> ClientStatus {
        self.0.status()
    }
    fn username(&self) -> Option<String> {
        self.0.username().map(str::to_owned)
    }
    fn users(&self) -> Vec<(String, bool)> {
        pairs(self.0.users())
    }
}

/// `(name, is_linked)` pairs of a client's user list.
pub fn pairs<'a>(users: impl Iterator<Item = &'a ClientUser>) -> Vec<(String, bool)> {
    users
        .map(|user| (user.username.clone(), user.is_linked))
        .collect()
}

/// The options every test client uses: the default protocol version, [`TIMEOUT`] for waits.
#[must_use]
pub fn options() -> ClientOptions {
    ClientOptions::new().timeout(TIMEOUT)
}

/// `ws://` and the server's address.
#[must_use]
pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}")
}

/// Connects to `url`; panics when that fails.
#[must_use]
pub fn connect<C: Adapter>(url: &str) -> C {
    C::connect_with(url, options()).unwrap_or_else(|error| panic!("connecting to {url}: {error}"))
}

/// The server's `users` reply (event lines printed before it are skipped).
pub fn server_users(server: &mut CliServer) -> Vec<(String, bool)> {
    server.send_line("users");
    loop {
        let line = server.next_json();
        if let Some(users) = line.get("users").and_then(Value::as_array) {
            return users
                .iter()
                .map(|user| {
                    let name = user["username"].as_str().expect("a username").to_owned();
                    (name, user["isLinked"].as_bool().expect("isLinked"))
                })
                .collect();
        }
    }
}

/// `(name, is_linked)` pairs from a literal list.
#[must_use]
pub fn users(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter()
        .map(|(name, is_linked)| ((*name).to_owned(), *is_linked))
        .collect()
}

/// Asserts that the client's user list and the server's `users` reply both equal `expected`.
pub fn assert_users<C: Adapter>(client: &C, server: &mut CliServer, expected: &[(&str, bool)]) {
    let expected = users(expected);
    assert_eq!(client.users(), expected, "the client's user list");
    assert_eq!(server_users(server), expected, "the server's users reply");
}

/// Asserts the next events, exactly and in order, each within [`TIMEOUT`].
pub fn expect_events<C: Adapter>(client: &mut C, expected: &[ClientEvent]) {
    for (index, want) in expected.iter().enumerate() {
        let got = client.next_event(TIMEOUT);
        assert_eq!(
            got.as_ref(),
            Some(want),
            "event {index} of {expected:?} (status {})",
            client.status()
        );
    }
}

/// Asserts that no event comes for `duration`.
pub fn expect_no_event<C: Adapter>(client: &mut C, duration: Duration) {
    if let Some(event) = client.next_event(duration) {
        panic!("expected no event for {duration:?}, got {event:?}");
    }
}

/// The events of a client that connected: connecting, connect.
#[must_use]
pub fn connected_events() -> Vec<ClientEvent> {
    vec![ClientEvent::Connecting, ClientEvent::Connected]
}

/// The events of an accepted link: linking, accept, then join (and link, when linked) for every
/// user of `roster` in join order.
#[must_use]
pub fn link_events(roster: &[(&str, bool)]) -> Vec<ClientEvent> {
    let mut events = vec![ClientEvent::Linking, ClientEvent::Accepted];
    for (name, is_linked) in roster {
        events.push(joined(name));
        if *is_linked {
            events.push(linked(name));
        }
    }
    events
}

/// [`ClientEvent::Joined`].
#[must_use]
pub fn joined(username: &str) -> ClientEvent {
    ClientEvent::Joined {
        username: username.to_owned(),
    }
}

/// [`ClientEvent::Linked`].
#[must_use]
pub fn linked(username: &str) -> ClientEvent {
    ClientEvent::Linked {
        username: username.to_owned(),
    }
}

/// [`ClientEvent::Unlinked`].
#[must_use]
pub fn unlinked(username: &str) -> ClientEvent {
    ClientEvent::Unlinked {
        username: username.to_owned(),
    }
}

/// [`ClientEvent::Left`].
#[must_use]
pub fn left(username: &str) -> ClientEvent {
    ClientEvent::Left {
        username: username.to_owned(),
    }
}

/// [`ClientEvent::Message`] with the message parsed from `value`.
#[must_use]
pub fn message_event(value: &Value) -> ClientEvent {
    ClientEvent::Message {
        message: message(value),
    }
}

/// A message from a JSON value.
#[must_use]
pub fn message(value: &Value) -> Message {
    Message::parse(&value.to_string()).expect("a message")
}

/// Connects to `url` and links as `username`, expecting `roster` (in join order); every event
/// so far is taken.
#[must_use]
pub fn linked_client<C: Adapter>(url: &str, username: &str, roster: &[(&str, bool)]) -> C {
    let mut client: C = connect(url);
    expect_events(&mut client, &connected_events());
    client
        .link(username, None)
        .unwrap_or_else(|error| panic!("linking {username}: {error}"));
    assert_eq!(client.status(), ClientStatus::Linked);
    assert_eq!(client.username().as_deref(), Some(username));
    expect_events(&mut client, &link_events(roster));
    client
}

/// A `krmx serve --relay` on `transport` with alice and bob linked, every event so far taken.
#[must_use]
pub fn relay_with_alice_and_bob<C: Adapter>(transport: &str) -> (CliServer, C, C) {
    let server = CliServer::start(transport, &["--relay"]);
    let url = url(server.addr());
    let mut alice: C = linked_client(&url, "alice", &[("alice", true)]);
    let bob: C = linked_client(&url, "bob", &[("alice", true), ("bob", true)]);
    expect_events(&mut alice, &[joined("bob"), linked("bob")]);
    (server, alice, bob)
}

/// Two clients link and follow presence: their user lists equal the server's `users` reply.
pub fn two_clients_link_and_follow_presence<C: Adapter>(transport: &str) {
    let mut server = CliServer::start(transport, &["--relay"]);
    let url = url(server.addr());
    let mut alice: C = linked_client(&url, "alice", &[("alice", true)]);
    assert_users(&alice, &mut server, &[("alice", true)]);

    let bob: C = linked_client(&url, "bob", &[("alice", true), ("bob", true)]);
    expect_events(&mut alice, &[joined("bob"), linked("bob")]);
    let both = [("alice", true), ("bob", true)];
    assert_users(&alice, &mut server, &both);
    assert_users(&bob, &mut server, &both);

    // A user joined by the server, never linked, is listed unlinked.
    server.send_line("join carol");
    expect_events(&mut alice, &[joined("carol")]);
    let three = [("alice", true), ("bob", true), ("carol", false)];
    assert_users(&alice, &mut server, &three);
    expect_no_event(&mut alice, Duration::from_millis(50));
}

/// Custom messages go both ways through the relay, whole and in order; reserved types are
/// refused by the client.
pub fn messages_relay_both_ways<C: Adapter>(transport: &str) {
    let (_server, mut alice, mut bob) = relay_with_alice_and_bob::<C>(transport);
    let say = json!({"type": "chat/say", "payload": {"text": "hi"}, "extra": [1, null]});
    alice.send(message(&say)).expect("alice sends");
    expect_events(&mut alice, &[message_event(&say)]);
    expect_events(&mut bob, &[message_event(&say)]);

    let burst: Vec<Value> = (0..5)
        .map(|n| json!({"type": "game/move", "payload": n}))
        .collect();
    for value in &burst {
        bob.send(message(value)).expect("bob sends");
    }
    let relayed: Vec<ClientEvent> = burst.iter().map(message_event).collect();
    expect_events(&mut alice, &relayed);
    expect_events(&mut bob, &relayed);

    let refused = alice.send(Message::new("krmx/leave"));
    assert!(
        matches!(
            refused,
            Err(ClientFailure::Command(ClientError::ReservedType))
        ),
        "{refused:?}"
    );
    assert_eq!(alice.status(), ClientStatus::Linked);
    expect_no_event(&mut bob, Duration::from_millis(50));
}

/// Unlink keeps the user; the same connection links again, to the same or another user.
pub fn unlink_and_relink<C: Adapter>(transport: &str) {
    let (mut server, mut alice, mut bob) = relay_with_alice_and_bob::<C>(transport);
    bob.unlink().expect("bob unlinks");
    assert_eq!(bob.status(), ClientStatus::Connected);
    assert_eq!(bob.username(), None);
    assert!(bob.users().is_empty());
    expect_events(&mut bob, &[ClientEvent::Unlinking, unlinked("bob")]);
    expect_events(&mut alice, &[unlinked("bob")]);
    assert_users(&alice, &mut server, &[("alice", true), ("bob", false)]);

    let again = bob.unlink();
    assert_eq!(
        again.map_err(|error| error.to_string()),
        Err("cannot send when the client is connected".to_owned())
    );
    let sent = bob.send(Message::new("chat/say"));
    assert!(matches!(sent, Err(ClientFailure::Command(_))), "{sent:?}");

    bob.link("bob", None).expect("bob relinks");
    // bob joined last: the link returns with the whole list.
    assert_eq!(bob.users(), users(&[("alice", true), ("bob", true)]));
    expect_events(&mut bob, &link_events(&[("alice", true), ("bob", true)]));
    expect_events(&mut alice, &[linked("bob")]);
    let both = [("alice", true), ("bob", true)];
    assert_users(&bob, &mut server, &both);
    assert_users(&alice, &mut server, &both);

    // The connection may link to another user after unlinking.
    bob.unlink().expect("bob unlinks again");
    expect_events(&mut bob, &[ClientEvent::Unlinking, unlinked("bob")]);
    bob.link("carol", None)
        .expect("the connection links as carol");
    let roster = [("alice", true), ("bob", false), ("carol", true)];
    expect_events(&mut bob, &link_events(&roster));
    expect_events(
        &mut alice,
        &[unlinked("bob"), joined("carol"), linked("carol")],
    );
    assert_users(&bob, &mut server, &roster);
    assert_users(&alice, &mut server, &roster);
}

/// Leave removes the user; the leaving client is told its own unlink only, and may link again.
pub fn leave_removes_the_user<C: Adapter>(transport: &str) {
    let (mut server, mut alice, mut bob) = relay_with_alice_and_bob::<C>(transport);
    bob.leave().expect("bob leaves");
    assert_eq!(bob.status(), ClientStatus::Connected);
    assert_eq!(bob.username(), None);
    assert!(bob.users().is_empty());
    expect_events(&mut bob, &[ClientEvent::Unlinking, unlinked("bob")]);
    expect_events(&mut alice, &[unlinked("bob"), left("bob")]);
    assert_users(&alice, &mut server, &[("alice", true)]);
    expect_no_event(&mut bob, Duration::from_millis(50));

    // The name is free again: linking it joins a new user.
    bob.link("bob", None).expect("bob links again");
    expect_events(&mut bob, &link_events(&[("alice", true), ("bob", true)]));
    expect_events(&mut alice, &[joined("bob"), linked("bob")]);
    assert_users(&alice, &mut server, &[("alice", true), ("bob", true)]);
}

/// A rejected link returns the server's reason and leaves the client connected, free to link
/// again; the configured protocol version is what the server checks.
pub fn rejected_link_returns_the_reason<C: Adapter>(transport: &str) {
    let mut server = CliServer::start(transport, &["--reject", "mallory=banned"]);
    let url = url(server.addr());
    let mut client: C = connect(&url);
    expect_events(&mut client, &connected_events());
    for (username, reason) in [("mallory", "banned"), ("-x", "invalid username")] {
        match client.link(username, None) {
            Err(ClientFailure::Rejected { reason: got }) => assert_eq!(got, reason),
            other => panic!("linking {username}: {other:?}"),
        }
        assert_eq!(client.status(), ClientStatus::Connected);
        assert_eq!(client.username(), None);
        let rejected = ClientEvent::Rejected {
            reason: reason.to_owned(),
        };
        expect_events(&mut client, &[ClientEvent::Linking, rejected]);
    }
    client.link("carol", Some("token")).expect("carol links");
    expect_events(&mut client, &link_events(&[("carol", true)]));
    assert_users(&client, &mut server, &[("carol", true)]);

    let old = ClientOptions::new()
        .config(ClientConfig::new().version("0.5.0"))
        .timeout(TIMEOUT);
    let mut old_client = C::connect_with(&url, old).expect("connecting");
    match old_client.link("dave", None) {
        Err(ClientFailure::Rejected { reason }) => assert_eq!(
            reason,
            "krmx server version mismatch (server=0.6.*,client=0.5.0)"
        ),
        other => panic!("linking with version 0.5.0: {other:?}"),
    }
    assert_users(&client, &mut server, &[("carol", true)]);
}

/// A connection cut without a close handshake: the client reports it closed, the server
/// unlinks the user, and the client reconnects and links to the same user again.
pub fn relinks_after_a_dropped_connection<C: Adapter>(transport: &str) {
    let mut server = CliServer::start(transport, &["--relay"]);
    let proxy = Proxy::start(server.addr());
    let mut alice: C = linked_client(&url(server.addr()), "alice", &[("alice", true)]);
    let mut bob: C = linked_client(&url(proxy.addr()), "bob", &[("alice", true), ("bob", true)]);
    expect_events(&mut alice, &[joined("bob"), linked("bob")]);

    proxy.cut();
    expect_events(&mut bob, &[ClientEvent::Closed]);
    assert_eq!(bob.status(), ClientStatus::Closed);
    assert!(bob.users().is_empty());
    assert_eq!(bob.next_event(Duration::from_millis(50)), None);
    expect_events(&mut alice, &[unlinked("bob")]);
    assert_users(&alice, &mut server, &[("alice", true), ("bob", false)]);
    let refused = bob.send(Message::new("chat/say"));
    assert!(
        matches!(refused, Err(ClientFailure::Command(_))),
        "{refused:?}"
    );

    bob.reconnect().expect("bob reconnects");
    expect_events(&mut bob, &connected_events());
    bob.link("bob", None).expect("bob relinks");
    expect_events(&mut bob, &link_events(&[("alice", true), ("bob", true)]));
    // The same user: linked again, not joined again.
    expect_events(&mut alice, &[linked("bob")]);
    assert_users(&bob, &mut server, &[("alice", true), ("bob", true)]);

    let hello = json!({"type": "chat/say", "payload": "back"});
    bob.send(message(&hello)).expect("bob sends");
    expect_events(&mut alice, &[message_event(&hello)]);
}

/// Closing unlinks the user (who stays); the client reconnects and links again.
pub fn close_unlinks_and_reconnect_links_again<C: Adapter>(transport: &str) {
    let (mut server, mut alice, mut bob) = relay_with_alice_and_bob::<C>(transport);
    alice.close().expect("alice closes");
    assert_eq!(alice.status(), ClientStatus::Closed);
    expect_events(&mut alice, &[ClientEvent::Closing, ClientEvent::Closed]);
    assert_eq!(alice.next_event(Duration::from_millis(50)), None);
    expect_events(&mut bob, &[unlinked("alice")]);
    assert_users(&bob, &mut server, &[("alice", false), ("bob", true)]);
    assert!(matches!(alice.close(), Err(ClientFailure::Command(_))));

    alice.reconnect().expect("alice reconnects");
    expect_events(&mut alice, &connected_events());
    alice.link("alice", None).expect("alice relinks");
    // The link returns at alice's own place in join order: bob, who joined after her, is not
    // listed yet; his entries follow as events.
    assert_eq!(alice.users(), users(&[("alice", true)]));
    expect_events(&mut alice, &link_events(&[("alice", true), ("bob", true)]));
    expect_events(&mut bob, &[linked("alice")]);
    assert_users(&alice, &mut server, &[("alice", true), ("bob", true)]);
}

/// Connecting fails with an error saying what happened: a refused port, a wrong path (the
/// server's 404), a `wss://` or `http://` URL.
pub fn connect_failures_are_errors<C: Adapter>(transport: &str) {
    let server = CliServer::start(transport, &["--path", "/krmx"]);
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding");
        listener.local_addr().expect("an address")
    };
    let refused = C::connect_with(&url(closed_port), options()).map(|c| c.status());
    assert!(
        matches!(
            refused,
            Err(ClientFailure::Connect {
                kind: io::ErrorKind::ConnectionRefused,
                ..
            })
        ),
        "{refused:?}"
    );
    let elsewhere = C::connect_with(&format!("ws://{}/elsewhere", server.addr()), options());
    assert_eq!(
        elsewhere.map(|c| c.status()),
        Err(ClientFailure::HandshakeRejected { status: 404 })
    );
    let url = "http://example.invalid/";
    match C::connect_with(url, options()) {
        Err(ClientFailure::InvalidUrl { url: given, .. }) => assert_eq!(given, url),
        other => panic!("connecting to {url}: {:?}", other.map(|c| c.status())),
    }
    // TLS to a server without it: the TLS handshake fails, and says so.
    let wss = format!("wss://localhost:{}/krmx", server.addr().port());
    match C::connect_with(&wss, options()) {
        Err(ClientFailure::Tls { .. }) => {}
        other => panic!("connecting to {wss}: {:?}", other.map(|c| c.status())),
    }
    let mut client: C = connect(&format!("ws://{}/krmx", server.addr()));
    client
        .link("simon", None)
        .expect("linking on the right path");
}

/// The server closes while a link waits for its authentication: the link fails with the
/// server's close code and reason, and the client is closed.
pub fn a_server_close_during_a_link_fails_it_with_the_close_code_and_reason<C: Adapter>(
    transport: &str,
) {
    let mut server = CliServer::start(transport, &["--manual-auth"]);
    let mut client: C = connect(&url(server.addr()));
    expect_events(&mut client, &connected_events());
    let linking = std::thread::scope(|scope| {
        scope.spawn(|| {
            let request = server.next_json();
            assert_eq!(request["event"], "authenticate", "{request}");
            server.send_line("close");
        });
        client.link("alice", None)
    });
    assert_eq!(
        linking,
        Err(ClientFailure::Closed {
            code: Some(1001),
            reason: "server closing".to_owned(),
        })
    );
    assert_eq!(client.status(), ClientStatus::Closed);
    expect_events(&mut client, &[ClientEvent::Linking, ClientEvent::Closed]);
}

/// Runs each client scenario with adapter `$adapter` against `krmx serve` on both transports:
/// one module per transport, one `#[test]` per scenario.
#[macro_export]
macro_rules! client_scenario_tests {
    ($adapter:ty) => {
        $crate::client_scenario_tests!(@each $adapter;
            two_clients_link_and_follow_presence,
            messages_relay_both_ways,
            unlink_and_relink,
            leave_removes_the_user,
            rejected_link_returns_the_reason,
            relinks_after_a_dropped_connection,
            close_unlinks_and_reconnect_links_again,
            connect_failures_are_errors,
            a_server_close_during_a_link_fails_it_with_the_close_code_and_reason,
        );
    };
    (@each $adapter:ty; $($scenario:ident),* $(,)?) => {
        mod server_on_mio {
            $(#[test] fn $scenario() { $crate::rust_client::$scenario::<$adapter>("mio") })*
        }
        mod server_on_smol {
            $(#[test] fn $scenario() { $crate::rust_client::$scenario::<$adapter>("smol") })*
        }
    };
}

/// A TCP proxy to one server address whose connections can be cut at once, without a close
/// handshake, as a dropped network cuts them.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    /// Both sockets of every connection made so far.
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    stopped: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards every connection to `target`.
    #[must_use]
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(AtomicBool::new(false));
        let (kept, stop) = (Arc::clone(&sockets), Arc::clone(&stopped));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(target)) else {
                    continue;
                };
                let _ = forward(client, server, &kept);
            }
        });
        Self {
            addr,
            sockets,
            stopped,
        }
    }

    /// The address clients connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every connection made so far: both of its sockets are shut down.
    pub fn cut(&self) {
        for socket in self.sockets.lock().expect("the socket list").drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees the stop.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies bytes both ways between `client` and `server` on two threads; keeps a handle on both
/// sockets for [`Proxy::cut`].
fn forward(client: TcpStream, server: TcpStream, kept: &Mutex<Vec<TcpStream>>) -> io::Result<()> {
    let pairs = [
        (client.try_clone()?, server.try_clone()?),
        (server.try_clone()?, client.try_clone()?),
    ];
    kept.lock()
        .expect("the socket list")
        .extend([client, server]);
    for (mut from, mut to) in pairs {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            // One side ended: end the other, as a network path would.
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
    Ok(())
}
