//! Shared helpers for the transcript tests: a harness that drives [`Krmx`] on a virtual clock, a
//! comparable view of its outputs ([`Out`]), and builders for the exact wire texts.
//!
//! Every harness call feeds one input and drains every queued output, so comparing the returned
//! list with `assert_eq!` checks the exact outputs, in order, and that nothing is left.
#![allow(dead_code, unreachable_pub)]

use krmx_core::{
    AuthDecision, AuthId, ConnectionId, Error, Event, Frame, Input, Krmx, KrmxConfig, Message,
    Output, Status,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// One output in a form a test can write down: connection ids as numbers, texts as strings,
/// usernames as strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// `Output::Send`.
    Send(u64, String),
    /// `Output::Ping`.
    Ping(u64),
    /// `Output::Close` with its code and reason.
    Close(u64, u16, &'static str),
    /// `Event::Listening`.
    Listening(u16),
    /// `Event::Closed`.
    Closed,
    /// `Event::AuthRequested`.
    AuthRequested {
        id: u64,
        conn: u64,
        username: String,
        is_new_user: bool,
        auth: Option<String>,
    },
    /// `Event::Joined`.
    Joined(String),
    /// `Event::Linked` (user, connection).
    Linked(String, u64),
    /// `Event::Unlinked` (user, connection).
    Unlinked(String, u64),
    /// `Event::Left`.
    Left(String),
    /// `Event::Message` (user, the message's text).
    Message(String, String),
}

impl From<Output> for Out {
    fn from(output: Output) -> Self {
        match output {
            Output::Send { to, text } => Self::Send(to.get(), text.as_str().to_owned()),
            Output::Broadcast { .. } => panic!("drain_raw expands broadcasts into sends"),
            Output::Ping { to } => Self::Ping(to.get()),
            Output::Close { to, code, reason } => Self::Close(to.get(), code.0, reason),
            Output::Event(event) => match event {
                Event::Listening { port } => Self::Listening(port),
                Event::Closed => Self::Closed,
                Event::AuthRequested {
                    id,
                    conn,
                    username,
                    is_new_user,
                    auth,
                } => Self::AuthRequested {
                    id: id.get(),
                    conn: conn.get(),
                    username: username.to_string(),
                    is_new_user,
                    auth,
                },
                Event::Joined { username } => Self::Joined(username.to_string()),
                Event::Linked { username, conn } => Self::Linked(username.to_string(), conn.get()),
                Event::Unlinked { username, conn } => {
                    Self::Unlinked(username.to_string(), conn.get())
                }
                Event::Left { username } => Self::Left(username.to_string()),
                Event::Message { username, message } => {
                    Self::Message(username.to_string(), message.to_text().as_str().to_owned())
                }
            },
        }
    }
}

/// The outputs one output stands for: a broadcast expanded into its sends, in order.
pub fn outs(output: Output) -> Vec<Out> {
    match output {
        Output::Broadcast { to, text } => to
            .into_iter()
            .map(|to| Out::Send(to.get(), text.as_str().to_owned()))
            .collect(),
        output => vec![Out::from(output)],
    }
}

/// The port every harness listens on.
pub const PORT: u16 = 8082;

/// A server on a virtual clock. `now` only moves when a test moves it.
///
/// It also checks an invariant of every drain: once the core has asked to close a connection,
/// no later output is addressed to it.
pub struct Server {
    pub krmx: Krmx,
    pub start: Instant,
    pub now: Instant,
    closed_by_core: BTreeSet<u64>,
    /// Whether a drained ping is reported sent at once ([`Input::PingSent`]), as by a
    /// transport that writes it straight away; off, a test reports it itself.
    pub pings_sent_at_once: bool,
}

impl Server {
    /// A server in status `initializing`.
    pub fn new(config: KrmxConfig) -> Self {
        let start = Instant::now();
        Self {
            krmx: Krmx::new(config),
            start,
            now: start,
            closed_by_core: BTreeSet::new(),
            pings_sent_at_once: true,
        }
    }

    /// A listening server (its `Listening` event checked and drained).
    pub fn listening(config: KrmxConfig) -> Self {
        let mut server = Self::new(config);
        assert_eq!(
            server.input(Input::Listen { port: PORT }),
            [Out::Listening(PORT)]
        );
        server
    }

    /// A listening server with the default configuration.
    pub fn default_listening() -> Self {
        Self::listening(KrmxConfig::default())
    }

    /// Moves the clock to `ms` milliseconds after the start.
    pub fn at(&mut self, ms: u64) -> &mut Self {
        self.now = self.start + Duration::from_millis(ms);
        self
    }

    /// The time `ms` milliseconds after the start.
    pub fn time(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// `poll_timeout`, in milliseconds after the start.
    pub fn timeout_ms(&self) -> Option<u128> {
        self.krmx
            .poll_timeout()
            .map(|at| at.duration_since(self.start).as_millis())
    }

    /// Feeds one input; a refused input must queue nothing.
    pub fn try_input(&mut self, input: Input) -> Result<Vec<Out>, Error> {
        let result = self.krmx.handle_input(self.now, input);
        let outputs = self.drain();
        match result {
            Ok(()) => Ok(outputs),
            Err(error) => {
                assert_eq!(outputs, [], "a refused input queued outputs ({error})");
                Err(error)
            }
        }
    }

    /// Feeds one input that must be accepted, and returns every output it queued.
    pub fn input(&mut self, input: Input) -> Vec<Out> {
        match self.try_input(input) {
            Ok(outputs) => outputs,
            Err(error) => panic!("input refused: {error}"),
        }
    }

    /// Feeds one input that must be refused, and returns the error's text.
    pub fn refused(&mut self, input: Input) -> String {
        match self.try_input(input) {
            Ok(outputs) => panic!("input accepted with outputs {outputs:?}"),
            Err(error) => error.to_string(),
        }
    }

    /// Every queued output, in order.
    pub fn drain(&mut self) -> Vec<Out> {
        let outputs: Vec<Out> = self.drain_raw().into_iter().map(Out::from).collect();
        for out in &outputs {
            let to = match out {
                Out::Send(to, _) | Out::Ping(to) | Out::Close(to, ..) => *to,
                _ => continue,
            };
            assert!(
                !self.closed_by_core.contains(&to),
                "output {out:?} addressed to cn-{to} after the core closed it, in {outputs:?}"
            );
            if let Out::Close(..) = out {
                self.closed_by_core.insert(to);
            }
        }
        outputs
    }

    /// Every queued output, in order, as the core produced them, each broadcast expanded into
    /// the sends to its recipients in their order.
    pub fn drain_raw(&mut self) -> Vec<Output> {
        let mut outputs = Vec::new();
        while let Some(output) = self.krmx.poll_output() {
            match output {
                Output::Broadcast { to, text } => {
                    outputs.extend(to.into_iter().map(|to| Output::Send {
                        to,
                        text: text.clone(),
                    }));
                }
                Output::Ping { to } => {
                    outputs.push(Output::Ping { to });
                    if self.pings_sent_at_once {
                        self.krmx
                            .handle_input(self.now, Input::PingSent { conn: to })
                            .expect("a ping goes to an open connection");
                    }
                }
                output => outputs.push(output),
            }
        }
        outputs
    }

    /// Opens a connection on `/`.
    pub fn open(&mut self, conn: u64) -> Vec<Out> {
        self.open_at(conn, "/")
    }

    /// Opens a connection with this request target.
    pub fn open_at(&mut self, conn: u64, target: &str) -> Vec<Out> {
        self.closed_by_core.remove(&conn);
        self.input(Input::ConnectionOpened {
            conn: id(conn),
            target: target.to_owned(),
        })
    }

    /// A text frame.
    pub fn text(&mut self, conn: u64, text: &str) -> Vec<Out> {
        self.input(Input::Frame {
            conn: id(conn),
            frame: Frame::Text(text.to_owned()),
        })
    }

    /// A binary frame.
    pub fn binary(&mut self, conn: u64, bytes: &[u8]) -> Vec<Out> {
        self.input(Input::Frame {
            conn: id(conn),
            frame: Frame::Binary(bytes.to_vec()),
        })
    }

    /// `krmx/link` for `username` with version 0.6.0 and no auth.
    pub fn link(&mut self, conn: u64, username: &str) -> Vec<Out> {
        self.text(conn, &link_frame(username, "0.6.0", None))
    }

    /// Opens `conn` and links it to `username`; the outputs are returned unchecked (setup).
    pub fn connect(&mut self, conn: u64, username: &str) -> Vec<Out> {
        assert_eq!(self.open(conn), []);
        self.link(conn, username)
    }

    /// The connection is gone.
    pub fn closed(&mut self, conn: u64) -> Vec<Out> {
        self.input(Input::ConnectionClosed { conn: id(conn) })
    }

    /// A pong.
    pub fn pong(&mut self, conn: u64) -> Vec<Out> {
        self.input(Input::Pong { conn: id(conn) })
    }

    /// `Tick` at the current time.
    pub fn tick(&mut self) -> Vec<Out> {
        self.input(Input::Tick)
    }

    /// `Tick` at `ms` milliseconds after the start.
    pub fn tick_at(&mut self, ms: u64) -> Vec<Out> {
        self.at(ms);
        self.tick()
    }

    /// The application's decision for authentication `auth_id`.
    pub fn decide(&mut self, auth_id: u64, decision: AuthDecision) -> Vec<Out> {
        self.input(Input::AuthDecided {
            id: AuthId::from_number(auth_id),
            decision,
        })
    }

    /// Every user in join order with whether it is linked.
    pub fn users(&self) -> Vec<(String, bool)> {
        self.krmx
            .users()
            .map(|user| (user.username.to_string(), user.is_linked))
            .collect()
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.krmx.status()
    }
}

/// A connection id.
pub fn id(conn: u64) -> ConnectionId {
    ConnectionId::new(conn)
}

/// The text of a `krmx/link` request.
pub fn link_frame(username: &str, version: &str, auth: Option<&str>) -> String {
    let mut payload = json!({ "username": username, "version": version });
    if let (Some(auth), Value::Object(fields)) = (auth, &mut payload) {
        fields.insert("auth".to_owned(), Value::String(auth.to_owned()));
    }
    json!({ "type": "krmx/link", "payload": payload }).to_string()
}

/// A `krmx/link` request with any payload.
pub fn link_with_payload(payload: &Value) -> String {
    json!({ "type": "krmx/link", "payload": payload }).to_string()
}

fn presence(kind: &str, username: &str) -> String {
    json!({ "type": format!("krmx/{kind}"), "payload": { "username": username } }).to_string()
}

/// `krmx/accepted`.
pub fn accepted() -> String {
    r#"{"type":"krmx/accepted"}"#.to_owned()
}

/// `krmx/rejected` with this reason.
pub fn rejected(reason: &str) -> String {
    json!({ "type": "krmx/rejected", "payload": { "reason": reason } }).to_string()
}

/// `krmx/joined` for this user.
pub fn joined(username: &str) -> String {
    presence("joined", username)
}

/// `krmx/linked` for this user.
pub fn linked(username: &str) -> String {
    presence("linked", username)
}

/// `krmx/unlinked` for this user.
pub fn unlinked(username: &str) -> String {
    presence("unlinked", username)
}

/// `krmx/left` for this user.
pub fn left(username: &str) -> String {
    presence("left", username)
}

/// `Output::Send` of `text` to `conn`.
pub fn send(conn: u64, text: impl Into<String>) -> Out {
    Out::Send(conn, text.into())
}

/// `Event::Joined`.
pub fn ev_joined(username: &str) -> Out {
    Out::Joined(username.to_owned())
}

/// `Event::Linked`.
pub fn ev_linked(username: &str, conn: u64) -> Out {
    Out::Linked(username.to_owned(), conn)
}

/// `Event::Unlinked`.
pub fn ev_unlinked(username: &str, conn: u64) -> Out {
    Out::Unlinked(username.to_owned(), conn)
}

/// `Event::Left`.
pub fn ev_left(username: &str) -> Out {
    Out::Left(username.to_owned())
}

/// `Event::Message` with the message's exact text.
pub fn ev_message(username: &str, text: &str) -> Out {
    Out::Message(username.to_owned(), text.to_owned())
}

/// `Event::AuthRequested`.
pub fn ev_auth(id: u64, conn: u64, username: &str, is_new_user: bool, auth: Option<&str>) -> Out {
    Out::AuthRequested {
        id,
        conn,
        username: username.to_owned(),
        is_new_user,
        auth: auth.map(str::to_owned),
    }
}

/// A message built with the public API, for `Input::Send` and `Input::Broadcast`.
pub fn message(kind: &str, payload: Value) -> Message {
    Message::new(kind).with_payload(payload)
}

/// A server (default configuration) where `alice` is linked on connection 1 and `bob` on 2.
pub fn alice_and_bob() -> Server {
    alice_and_bob_with(KrmxConfig::default())
}

/// A listening server with this configuration where `alice` is linked on connection 1 and `bob`
/// on 2.
pub fn alice_and_bob_with(config: KrmxConfig) -> Server {
    let mut server = Server::listening(config);
    server.connect(1, "alice");
    server.connect(2, "bob");
    assert_eq!(
        server.users(),
        [("alice".to_owned(), true), ("bob".to_owned(), true)]
    );
    server
}

/// `users()` as a test writes it.
pub fn users(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter()
        .map(|(name, linked)| ((*name).to_owned(), *linked))
        .collect()
}
