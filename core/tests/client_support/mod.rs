//! An in-memory network for the client tests: N [`KrmxClient`]s and one [`Krmx`] server, wired
//! by FIFO queues (one per direction per client), with no sockets and no threads.
//!
//! Commands only queue what the client sends; nothing moves until a delivery. [`Net::settle`]
//! delivers everything, round-robin, until the network is quiet; [`Net::deliver_to_server`] and
//! [`Net::deliver_to_client`] move one message, so tests can interleave replies and commands.
#![allow(dead_code, unreachable_pub)]

use krmx_core::{
    AuthId, ClientConfig, ClientError, ClientEvent, ClientInput, ClientOutput, ClientStatus,
    ConnectionId, Error, Event, Frame, Input, Krmx, KrmxClient, KrmxConfig, Message, Output,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What travels on one direction of a connection.
#[derive(Debug, Clone, PartialEq)]
enum Wire {
    /// The connection opened (client to server: the handshake; server to client: its answer).
    Open,
    /// One text message.
    Text(String),
    /// A close frame.
    Close,
}

/// One client and its side of the network.
#[derive(Debug)]
pub struct Peer {
    /// The client state machine.
    pub client: KrmxClient,
    /// Every event it emitted, not yet taken.
    pub events: Vec<ClientEvent>,
    /// Every text it sent, not yet taken.
    pub sent: Vec<String>,
    /// The connection the transport holds for it.
    pub conn: Option<ConnectionId>,
    /// Whether the server knows `conn` (opened and not yet closed on the server's side).
    server_open: bool,
    to_server: VecDeque<Wire>,
    to_client: VecDeque<Wire>,
}

/// The network: a listening server and its clients.
#[derive(Debug)]
pub struct Net {
    /// The server state machine.
    pub server: Krmx,
    /// The virtual time.
    pub now: Instant,
    /// The clients, by index.
    pub peers: Vec<Peer>,
    /// Every server event, not yet taken.
    pub server_events: Vec<Event>,
    next_conn: u64,
}

impl Net {
    /// A listening server with `config` and no clients.
    pub fn new(config: KrmxConfig) -> Self {
        let now = Instant::now();
        let mut server = Krmx::new(config);
        server
            .handle_input(now, Input::Listen { port: 8082 })
            .expect("a new server listens");
        let mut net = Self {
            server,
            now,
            peers: Vec::new(),
            server_events: Vec::new(),
            next_conn: 1,
        };
        net.route();
        net.server_events.clear();
        net
    }

    /// Adds a client in status initializing; returns its index.
    pub fn add_client(&mut self, config: ClientConfig) -> usize {
        self.peers.push(Peer {
            client: KrmxClient::new(config),
            events: Vec::new(),
            sent: Vec::new(),
            conn: None,
            server_open: false,
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
        });
        self.peers.len() - 1
    }

    /// Feeds a command to client `i` and queues what it sends (nothing is delivered).
    pub fn command(&mut self, i: usize, input: ClientInput) -> Result<(), ClientError> {
        let result = self.peers[i].client.handle_input(input);
        self.route();
        result
    }

    /// Feeds a server input and queues what it sends (nothing is delivered).
    pub fn server_input(&mut self, input: Input) -> Result<(), Error> {
        let result = self.server.handle_input(self.now, input);
        self.route();
        result
    }

    /// Moves the virtual clock and ticks the server.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.server_input(Input::Tick)
            .expect("a tick is never refused");
    }

    /// Client `i` connects, and the network settles.
    pub fn connect(&mut self, i: usize) {
        self.command(
            i,
            ClientInput::Connect {
                url: "ws://localhost:8082".into(),
            },
        )
        .expect("connect");
        self.settle();
    }

    /// Client `i` links as `username`, and the network settles.
    pub fn link(&mut self, i: usize, username: &str) {
        self.command(
            i,
            ClientInput::Link {
                username: username.into(),
                auth: None,
            },
        )
        .expect("link");
        self.settle();
    }

    /// Adds a client, connects and links it as `username`, settles, and forgets every client's
    /// events and sent texts and the server's events so far.
    pub fn linked_client(&mut self, username: &str) -> usize {
        let i = self.add_client(ClientConfig::default());
        self.connect(i);
        self.link(i, username);
        assert_eq!(self.peers[i].client.status(), ClientStatus::Linked);
        for peer in &mut self.peers {
            peer.events.clear();
            peer.sent.clear();
        }
        self.server_events.clear();
        i
    }

    /// Whether nothing is on its way anywhere.
    pub fn is_quiet(&self) -> bool {
        self.peers
            .iter()
            .all(|peer| peer.to_server.is_empty() && peer.to_client.is_empty())
    }

    /// Delivers everything, round-robin over the clients (one message to the server, then one to
    /// each client, per round), until the network is quiet.
    pub fn settle(&mut self) {
        loop {
            let mut progressed = false;
            for i in 0..self.peers.len() {
                progressed |= self.deliver_to_server(i);
            }
            for i in 0..self.peers.len() {
                progressed |= self.deliver_to_client(i);
            }
            if !progressed {
                break;
            }
        }
    }

    /// Delivers the oldest message from client `i` to the server; false when there is none.
    pub fn deliver_to_server(&mut self, i: usize) -> bool {
        let Some(wire) = self.peers[i].to_server.pop_front() else {
            return false;
        };
        let conn = self.peers[i]
            .conn
            .expect("a queued message has a connection");
        match wire {
            Wire::Open => {
                self.server
                    .handle_input(
                        self.now,
                        Input::ConnectionOpened {
                            conn,
                            target: "/".into(),
                        },
                    )
                    .expect("a fresh connection id");
                self.peers[i].server_open = true;
                self.peers[i].to_client.push_back(Wire::Open);
            }
            Wire::Text(text) => {
                if self.peers[i].server_open {
                    self.server
                        .handle_input(
                            self.now,
                            Input::Frame {
                                conn,
                                frame: Frame::Text(text),
                            },
                        )
                        .expect("the server knows the connection");
                }
            }
            Wire::Close => {
                if self.peers[i].server_open {
                    self.peers[i].server_open = false;
                    self.server
                        .handle_input(self.now, Input::ConnectionClosed { conn })
                        .expect("closing is never refused");
                }
                self.peers[i].to_client.push_back(Wire::Close);
            }
        }
        self.route();
        true
    }

    /// Delivers the oldest message from the server to client `i`; false when there is none.
    pub fn deliver_to_client(&mut self, i: usize) -> bool {
        let Some(wire) = self.peers[i].to_client.pop_front() else {
            return false;
        };
        let peer = &mut self.peers[i];
        let input = match wire {
            Wire::Open => ClientInput::ConnectionOpened,
            Wire::Text(text) => ClientInput::Received { text },
            Wire::Close => {
                peer.conn = None;
                peer.server_open = false;
                peer.to_server.clear();
                peer.to_client.clear();
                ClientInput::ConnectionClosed
            }
        };
        peer.client
            .handle_input(input)
            .expect("the transport reports only possible facts");
        self.route();
        true
    }

    /// The network drops client `i`'s connection: both sides learn it at once, whatever was on
    /// its way is lost.
    pub fn drop_connection(&mut self, i: usize) {
        let Some(conn) = self.peers[i].conn.take() else {
            return;
        };
        if std::mem::take(&mut self.peers[i].server_open) {
            self.server
                .handle_input(self.now, Input::ConnectionClosed { conn })
                .expect("closing is never refused");
        }
        self.peers[i].to_server.clear();
        self.peers[i].to_client.clear();
        self.peers[i]
            .client
            .handle_input(ClientInput::ConnectionClosed)
            .expect("closing is never refused");
        self.route();
    }

    /// Moves every queued output of the clients and of the server onto the wires.
    fn route(&mut self) {
        for peer in &mut self.peers {
            while let Some(output) = peer.client.poll_output() {
                match output {
                    ClientOutput::Connect { url } => {
                        assert_eq!(url, "ws://localhost:8082");
                        assert!(peer.conn.is_none(), "connect while holding a connection");
                        peer.conn = Some(ConnectionId::new(self.next_conn));
                        self.next_conn += 1;
                        peer.server_open = false;
                        peer.to_server.push_back(Wire::Open);
                    }
                    ClientOutput::Send { text } => {
                        peer.sent.push(text.to_string());
                        if peer.conn.is_some() {
                            peer.to_server.push_back(Wire::Text(text.to_string()));
                        }
                    }
                    ClientOutput::Close => {
                        if peer.conn.is_some() {
                            peer.to_server.push_back(Wire::Close);
                        }
                    }
                    ClientOutput::Event(event) => peer.events.push(event),
                    other => panic!("unexpected client output {other:?}"),
                }
            }
        }
        while let Some(output) = self.server.poll_output() {
            match output {
                Output::Send { to, text } => {
                    if let Some(peer) = self.peer_on(to) {
                        peer.to_client.push_back(Wire::Text(text.to_string()));
                    }
                }
                Output::Broadcast { to, text } => {
                    for to in to {
                        if let Some(peer) = self.peer_on(to) {
                            peer.to_client.push_back(Wire::Text(text.to_string()));
                        }
                    }
                }
                Output::Close { to, .. } => {
                    if let Some(peer) = self.peer_on(to) {
                        peer.server_open = false;
                        peer.to_server.clear();
                        peer.to_client.push_back(Wire::Close);
                    }
                }
                Output::Ping { to } => {
                    // Every client answers pings at once.
                    self.server
                        .handle_input(self.now, Input::Pong { conn: to })
                        .expect("pinged connections are open");
                }
                Output::Event(event) => self.server_events.push(event),
            }
        }
    }

    fn peer_on(&mut self, conn: ConnectionId) -> Option<&mut Peer> {
        self.peers
            .iter_mut()
            .find(|peer| peer.conn == Some(conn) && peer.server_open)
    }

    /// Client `i`'s events since the last call, in the compact form of [`show`].
    pub fn take(&mut self, i: usize) -> Vec<String> {
        std::mem::take(&mut self.peers[i].events)
            .iter()
            .map(show)
            .collect()
    }

    /// The texts client `i` sent since the last call.
    pub fn take_sent(&mut self, i: usize) -> Vec<String> {
        std::mem::take(&mut self.peers[i].sent)
    }

    /// The authentications waiting for a decision, taken from the server's events.
    pub fn take_auth_requests(&mut self) -> Vec<(AuthId, String)> {
        let mut requests = Vec::new();
        self.server_events.retain(|event| match event {
            Event::AuthRequested { id, username, .. } => {
                requests.push((*id, username.to_string()));
                false
            }
            _ => true,
        });
        requests
    }

    /// The server's users as `(name, is_linked)`, in join order.
    pub fn server_users(&self) -> Vec<(String, bool)> {
        self.server
            .users()
            .map(|user| (user.username.to_string(), user.is_linked))
            .collect()
    }

    /// Client `i`'s users as `(name, is_linked)`, in its order.
    pub fn users(&self, i: usize) -> Vec<(String, bool)> {
        self.peers[i]
            .client
            .users()
            .map(|user| (user.username.clone(), user.is_linked))
            .collect()
    }

    /// Client `i`'s status.
    pub fn status(&self, i: usize) -> ClientStatus {
        self.peers[i].client.status()
    }

    /// Client `i`'s username.
    pub fn username(&self, i: usize) -> Option<String> {
        self.peers[i].client.username().map(str::to_owned)
    }

    /// Checks, on a quiet network, that every client agrees with the server: a linked client
    /// holds the server's user list and is the connection the server links its user to; a
    /// connected client is open and unlinked on the server with no users; a closed client has
    /// no connection. No client is halfway (connecting, linking, unlinking, closing).
    pub fn check_agreement(&self) {
        assert!(self.is_quiet(), "the network is not quiet");
        let server_users = self.server_users();
        for (i, peer) in self.peers.iter().enumerate() {
            let client = &peer.client;
            let users = self.users(i);
            match client.status() {
                ClientStatus::Linked => {
                    let username = client.username().expect("a linked client has a username");
                    assert!(client.is_listed(), "client {i} ({username}) is listed");
                    assert_eq!(users, server_users, "client {i} ({username}) users");
                    let conn = peer.conn.expect("a linked client has a connection");
                    assert_eq!(
                        self.server.linked_user(conn).map(|user| user.as_str()),
                        Some(username),
                        "client {i} is linked on the server"
                    );
                }
                ClientStatus::Connected => {
                    let conn = peer.conn.expect("a connected client has a connection");
                    assert!(
                        peer.server_open,
                        "client {i}: the server knows its connection"
                    );
                    assert_eq!(self.server.linked_user(conn), None, "client {i} unlinked");
                    assert_eq!(client.username(), None, "client {i} username");
                    assert!(users.is_empty(), "client {i} users {users:?}");
                }
                ClientStatus::Initializing | ClientStatus::Closed => {
                    assert_eq!(peer.conn, None, "client {i} connection");
                    assert_eq!(client.username(), None, "client {i} username");
                    assert!(users.is_empty(), "client {i} users {users:?}");
                }
                status => panic!("client {i} is {status} on a quiet network"),
            }
        }
        // Every user linked on the server is linked by exactly the client that holds its
        // connection.
        for user in self.server.users().filter(|user| user.is_linked) {
            let conn = self
                .server
                .linked_connection(user.username.as_str())
                .expect("a linked user has a connection");
            let peer = self
                .peers
                .iter()
                .find(|peer| peer.conn == Some(conn))
                .expect("a client holds the connection");
            assert_eq!(peer.client.status(), ClientStatus::Linked);
            assert_eq!(peer.client.username(), Some(user.username.as_str()));
        }
    }
}

/// A compact, comparable form of an event: `accept`, `join(alice)`, `reject(invalid username)`,
/// `message({"type":"chat/say"})`.
pub fn show(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Rejected { reason } => format!("reject({reason})"),
        ClientEvent::Joined { username }
        | ClientEvent::Linked { username }
        | ClientEvent::Unlinked { username }
        | ClientEvent::Left { username } => format!("{}({username})", event.name()),
        ClientEvent::Message { message } => format!("message({})", message.to_text()),
        other => other.name().to_owned(),
    }
}

/// A custom message from its JSON text.
pub fn message(text: &str) -> Message {
    Message::parse(text).expect("a valid message")
}

/// `(name, is_linked)` pairs from a list of names, a trailing `+` marking linked users.
pub fn users(list: &[&str]) -> Vec<(String, bool)> {
    list.iter()
        .map(|name| match name.strip_suffix('+') {
            Some(name) => (name.to_owned(), true),
            None => ((*name).to_owned(), false),
        })
        .collect()
}
