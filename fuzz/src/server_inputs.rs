//! `server_inputs`: arbitrary sequences of transport facts, authentication decisions, time steps
//! and server commands, with the [`ServerChecker`] invariants after every step, and every timer
//! and limit judged against the reference of its deadlines ([`crate::deadlines`]).
//!
//! Input: three setup bytes (flags; auth timeout; immediate-decision policy, unlinked timeout,
//! unlinked cap and which connections answer pings, see [`Setup`]), then steps, each an opcode
//! byte and its operand bytes (see [`Step`]).
//!
//! Beyond the checker's invariants, every step checks its own result: a fact about a connection
//! is refused exactly when the connection is not open; a refused server command changes nothing
//! and produces nothing; a duplicate open is refused.

use crate::check::ServerChecker;
use crate::{Seed, byte, raw, vocab};
use arbitrary::Unstructured;
use krmx_core::{
    AuthDecision, AuthId, AuthMode, ConnectionId, Error, Event, Frame, Input, Krmx, KrmxConfig,
    Output, QueryRequirement, Violation,
};
use std::time::{Duration, Instant};

/// The server's configuration, from the first three bytes: the flags byte, the auth timeout
/// byte (`(b + 1) * 4` ms), and a byte of four two-bit fields, lowest first: the immediate
/// decisions, the unlinked timeout ([`UNLINKED_40MS`]...), the unlinked cap ([`CAP_0`]...) and
/// which connections answer pings by themselves ([`PONG_ALL`], [`PONG_ODD`]).
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    flags: u8,
    auth_timeout: Duration,
    /// 0: decisions only by steps; 1: accept at once; 2: reject at once; 3: alternate.
    immediate: u8,
    /// 0: no unlinked timeout; 1: 40 ms; 2: 200 ms; 3: 1 ms.
    unlinked: u8,
    /// 0: no unlinked cap; 1: 0 (every connection refused); 2: 1; 3: 3.
    cap: u8,
    /// 0: pongs come only from steps; 1: every connection answers each ping at once; 2: the
    /// odd-numbered connections do, the others never answer.
    pongs: u8,
}

/// Third setup byte: the unlinked timeout is 40 ms.
pub const UNLINKED_40MS: u8 = 1 << 2;
/// Third setup byte: the unlinked timeout is 200 ms.
pub const UNLINKED_200MS: u8 = 2 << 2;
/// Third setup byte: the unlinked timeout is 1 ms (its floor).
pub const UNLINKED_1MS: u8 = 3 << 2;
/// Third setup byte: at most 0 connections unlinked (every open is refused).
pub const CAP_0: u8 = 1 << 4;
/// Third setup byte: at most 1 connection unlinked.
pub const CAP_1: u8 = 2 << 4;
/// Third setup byte: at most 3 connections unlinked.
pub const CAP_3: u8 = 3 << 4;
/// Third setup byte: every connection answers each ping right away.
pub const PONG_ALL: u8 = 1 << 6;
/// Third setup byte: odd-numbered connections answer each ping right away, the others never.
pub const PONG_ODD: u8 = 2 << 6;

/// Setup flag: [`AuthMode::Application`].
pub const APPLICATION: u8 = 1;
/// Setup flag: new users are not accepted.
pub const NO_NEW_USERS: u8 = 2;
/// Setup flag: pings every 100 ms (else none).
pub const PINGS: u8 = 4;
/// Setup flag: kick users unlinked for 300 ms.
pub const INACTIVITY: u8 = 8;
/// Setup flag: path `/game`, query `room` present and `debug` absent.
pub const RULES: u8 = 16;
/// Setup flag: messages up to 96 bytes, 2 queued during a link, 2 pending authentications.
pub const SMALL_LIMITS: u8 = 32;
/// Setup flag: the server is not listening yet (steps may start and listen).
pub const NOT_LISTENING: u8 = 64;
/// Setup flag: the application relays every message to everyone (`krmx serve --relay`).
pub const RELAY: u8 = 128;

impl Setup {
    fn decode(u: &mut Unstructured<'_>) -> Self {
        let flags = byte(u);
        let auth_timeout = Duration::from_millis((u64::from(byte(u)) + 1) * 4);
        let timers = byte(u);
        Self {
            flags,
            auth_timeout,
            immediate: timers & 3,
            unlinked: (timers >> 2) & 3,
            cap: (timers >> 4) & 3,
            pongs: timers >> 6,
        }
    }

    fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn config(self) -> KrmxConfig {
        let mut config = KrmxConfig::default()
            .auth(if self.has(APPLICATION) {
                AuthMode::Application
            } else {
                AuthMode::None
            })
            .accept_new_users(!self.has(NO_NEW_USERS))
            .auth_timeout(self.auth_timeout)
            .ping_interval(if self.has(PINGS) {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            })
            .inactivity_timeout(self.has(INACTIVITY).then_some(Duration::from_millis(300)))
            .unlinked_timeout(match self.unlinked {
                0 => None,
                1 => Some(Duration::from_millis(40)),
                2 => Some(Duration::from_millis(200)),
                _ => Some(Duration::ZERO),
            })
            .max_unlinked_connections(match self.cap {
                0 => None,
                1 => Some(0),
                2 => Some(1),
                _ => Some(3),
            });
        if self.has(RULES) {
            config = config
                .path("game")
                .query("room", QueryRequirement::Present)
                .query("debug", QueryRequirement::Absent);
        }
        if self.has(SMALL_LIMITS) {
            config = config
                .max_message_bytes(96)
                .max_queued_during_auth(2)
                .max_pending_auths(2);
        }
        config
    }
}

/// One step. Connection operands pick among every connection opened so far (closed ones
/// included; 255 picks one never opened), name and message operands index the vocabulary.
#[derive(Debug, Clone)]
pub enum Step {
    /// 0: a new connection with a target.
    Open(u8),
    /// 1: a vocabulary message as a text frame.
    Frame(u8, u8, u8),
    /// 2: a vocabulary message as a binary frame.
    FrameBinary(u8, u8, u8),
    /// 3: raw bytes: a text frame when UTF-8, else binary.
    Raw(u8, Vec<u8>),
    /// 4: raw bytes as a binary frame.
    RawBinary(u8, Vec<u8>),
    /// 5: the peer closed.
    PeerClosed(u8),
    /// 6: a pong.
    Pong(u8),
    /// 7: a framing violation.
    Violation(u8, u8),
    /// 8: an authentication decision (auth pick, decision, reason).
    Decide(u8, u8, u8),
    /// 9: time passes (4 ms units) and the server ticks.
    Advance(u8),
    /// 10: the clock jumps to `poll_timeout` and the server ticks.
    JumpToTimeout,
    /// 11: `join`.
    Join(u8),
    /// 12: `kick`.
    Kick(u8),
    /// 13: `unlink`.
    Unlink(u8),
    /// 14: `send` (name, message).
    Send(u8, u8),
    /// 15: `broadcast` (message, skip: a name or none).
    Broadcast(u8, u8),
    /// 16: close the server.
    Close,
    /// 17: start.
    Start,
    /// 18: listen.
    Listen,
    /// 19: a tick with a time earlier than the clock (4 ms units).
    BackInTime(u8),
    /// 20: open an id that is open already.
    DuplicateOpen(u8),
    /// 21: a frame (conn, kind, arg), then `k` outputs drained, then another connection drops
    /// before the rest is drained.
    DropMidDrain(u8, u8, u8, u8, u8),
}

const OPCODES: u8 = 22;

impl Step {
    fn decode(u: &mut Unstructured<'_>) -> Self {
        let op = byte(u) % OPCODES;
        match op {
            0 => Self::Open(byte(u)),
            1 => Self::Frame(byte(u), byte(u), byte(u)),
            2 => Self::FrameBinary(byte(u), byte(u), byte(u)),
            3 => Self::Raw(byte(u), raw(u).to_vec()),
            4 => Self::RawBinary(byte(u), raw(u).to_vec()),
            5 => Self::PeerClosed(byte(u)),
            6 => Self::Pong(byte(u)),
            7 => Self::Violation(byte(u), byte(u)),
            8 => Self::Decide(byte(u), byte(u), byte(u)),
            9 => Self::Advance(byte(u)),
            10 => Self::JumpToTimeout,
            11 => Self::Join(byte(u)),
            12 => Self::Kick(byte(u)),
            13 => Self::Unlink(byte(u)),
            14 => Self::Send(byte(u), byte(u)),
            15 => Self::Broadcast(byte(u), byte(u)),
            16 => Self::Close,
            17 => Self::Start,
            18 => Self::Listen,
            19 => Self::BackInTime(byte(u)),
            20 => Self::DuplicateOpen(byte(u)),
            _ => Self::DropMidDrain(byte(u), byte(u), byte(u), byte(u), byte(u)),
        }
    }
}

struct Harness {
    setup: Setup,
    krmx: Krmx,
    checker: ServerChecker,
    now: Instant,
    next_conn: u64,
    opened: Vec<ConnectionId>,
    auths: Vec<AuthId>,
    requests: u64,
    /// `KRMX_FUZZ_TRACE` is set: every step and output is printed.
    trace: bool,
    start: Instant,
}

fn fail(context: &str, error: &str) -> ! {
    panic!("invariant broken after {context}:\n{error}")
}

impl Harness {
    fn new(setup: Setup) -> Self {
        let now = Instant::now();
        let config = setup.config();
        let mut harness = Self {
            setup,
            checker: ServerChecker::judging(&config),
            krmx: Krmx::new(config),
            now,
            next_conn: 1,
            opened: Vec::new(),
            auths: Vec::new(),
            requests: 0,
            trace: std::env::var_os("KRMX_FUZZ_TRACE").is_some(),
            start: now,
        };
        if !setup.has(NOT_LISTENING) {
            let result = harness.feed(Input::Listen { port: 8082 });
            assert_eq!(result, Ok(()));
        }
        harness
    }

    /// Feeds the core at `at` (the timer reference is told first), without draining.
    fn handle_at(&mut self, at: Instant, input: Input) -> Result<(), Error> {
        self.checker.input(at, &input);
        self.krmx.handle_input(at, input)
    }

    fn handle(&mut self, input: Input) -> Result<(), Error> {
        self.handle_at(self.now, input)
    }

    fn feed(&mut self, input: Input) -> Result<(), Error> {
        let result = self.handle(input);
        self.drain(usize::MAX);
        self.checker.drained();
        result
    }

    /// Drains up to `limit` outputs, checking each and reacting as the application would; then
    /// the connections that answer pings by themselves answer the pings drained.
    fn drain(&mut self, limit: usize) {
        let mut pinged = Vec::new();
        for _ in 0..limit {
            let Some(output) = self.krmx.poll_output() else {
                break;
            };
            if self.trace {
                let ms = self.now.saturating_duration_since(self.start).as_millis();
                println!("  {ms}ms {output:?}");
            }
            if let Err(error) = self.checker.observe(&output) {
                fail(&format!("output {output:?}"), &error);
            }
            match output {
                Output::Event(Event::AuthRequested { id, .. }) => {
                    self.auths.push(id);
                    self.requests += 1;
                    let decision = match (self.setup.immediate, self.requests % 2) {
                        (1, _) | (3, 0) => Some(AuthDecision::Accept),
                        (2, _) | (3, _) => Some(AuthDecision::reject("no")),
                        _ => None,
                    };
                    if let Some(decision) = decision {
                        let result = self.handle(Input::AuthDecided { id, decision });
                        assert_eq!(result, Ok(()), "an immediate decision");
                    }
                }
                Output::Event(Event::Message { message, .. }) if self.setup.has(RELAY) => {
                    let result = self.handle(Input::Broadcast {
                        message,
                        skip: None,
                    });
                    assert_eq!(result, Ok(()), "relaying a message");
                }
                Output::Ping { to } => pinged.push(to),
                _ => {}
            }
        }
        for conn in pinged {
            // The transport writes the ping at once and reports it: awaited from now on.
            if self.checker.is_open(conn) {
                let result = self.handle(Input::PingSent { conn });
                assert_eq!(result, Ok(()), "the report of a ping to {conn}");
                self.drain(usize::MAX);
            }
            let answers = match self.setup.pongs {
                1 => true,
                2 => conn.get() % 2 == 1,
                _ => false,
            };
            if answers && self.checker.is_open(conn) {
                let result = self.handle(Input::Pong { conn });
                assert_eq!(result, Ok(()), "a pong from {conn}");
                self.drain(usize::MAX);
            }
        }
    }

    fn conn(&self, pick: u8) -> ConnectionId {
        if pick == u8::MAX || self.opened.is_empty() {
            return ConnectionId::new(1_000_000);
        }
        self.opened[usize::from(pick) % self.opened.len()]
    }

    /// Feeds a fact about a connection: refused exactly when it is not open.
    fn fact(&mut self, conn: ConnectionId, input: Input) {
        let open = self.checker.is_open(conn);
        let result = self.feed(input);
        let expected = if open {
            Ok(())
        } else {
            Err(Error::UnknownConnection(conn))
        };
        assert_eq!(result, expected, "fact about {conn}");
    }

    /// Feeds a server command: a refused one changes nothing and produces nothing.
    fn command(&mut self, input: Input) {
        let users: Vec<_> = self.krmx.users().collect();
        let status = self.krmx.status();
        let before = self.checker.outputs_observed();
        let result = self.feed(input);
        if let Err(error) = result {
            assert_eq!(
                self.checker.outputs_observed(),
                before,
                "refused command ({error}) produced outputs"
            );
            assert_eq!(self.krmx.users().collect::<Vec<_>>(), users);
            assert_eq!(self.krmx.status(), status);
        }
    }

    fn frame(conn: ConnectionId, bytes: Vec<u8>, binary: bool) -> Input {
        let frame = if binary {
            Frame::Binary(bytes)
        } else {
            match String::from_utf8(bytes) {
                Ok(text) => Frame::Text(text),
                Err(error) => Frame::Binary(error.into_bytes()),
            }
        };
        Input::Frame { conn, frame }
    }

    fn run_step(&mut self, step: Step) {
        match step {
            Step::Open(t) => {
                let conn = ConnectionId::new(self.next_conn);
                self.next_conn += 1;
                self.opened.push(conn);
                self.checker.opened(conn);
                let result = self.feed(Input::ConnectionOpened {
                    conn,
                    target: vocab::target(t).to_owned(),
                });
                assert_eq!(result, Ok(()));
            }
            Step::Frame(c, kind, arg) | Step::FrameBinary(c, kind, arg) => {
                let conn = self.conn(c);
                let binary = matches!(step, Step::FrameBinary(..));
                let text = vocab::message(kind, arg);
                self.fact(conn, Self::frame(conn, text.into_bytes(), binary));
            }
            Step::Raw(c, bytes) => {
                let conn = self.conn(c);
                self.fact(conn, Self::frame(conn, bytes, false));
            }
            Step::RawBinary(c, bytes) => {
                let conn = self.conn(c);
                self.fact(conn, Self::frame(conn, bytes, true));
            }
            Step::PeerClosed(c) => {
                let conn = self.conn(c);
                self.checker.peer_closed(conn);
                let result = self.feed(Input::ConnectionClosed { conn });
                assert_eq!(result, Ok(()));
            }
            Step::Pong(c) => {
                let conn = self.conn(c);
                self.fact(conn, Input::Pong { conn });
            }
            Step::Violation(c, v) => {
                let conn = self.conn(c);
                let violation = match v % 3 {
                    0 => Violation::MessageTooLarge,
                    1 => Violation::InvalidUtf8,
                    _ => Violation::SlowConsumer,
                };
                self.fact(conn, Input::Violation { conn, violation });
            }
            Step::Decide(a, d, r) => {
                let bogus = AuthId::from_number(999_999);
                let id = match self.auths.len() {
                    0 => bogus,
                    n => self
                        .auths
                        .get(usize::from(a) % (n + 1))
                        .copied()
                        .unwrap_or(bogus),
                };
                let decision = match d % 3 {
                    0 => AuthDecision::Accept,
                    1 => AuthDecision::reject(vocab::reason(r)),
                    _ => AuthDecision::Failed,
                };
                let result = self.feed(Input::AuthDecided { id, decision });
                assert_eq!(result, Ok(()));
                assert!(
                    !self.krmx.is_auth_pending(id),
                    "{id} still pending once decided"
                );
            }
            Step::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms) * 4);
                assert_eq!(self.feed(Input::Tick), Ok(()));
            }
            Step::JumpToTimeout => {
                if let Some(at) = self.krmx.poll_timeout() {
                    self.now = self.now.max(at);
                }
                assert_eq!(self.feed(Input::Tick), Ok(()));
            }
            Step::BackInTime(ms) => {
                let earlier = self
                    .now
                    .checked_sub(Duration::from_millis(u64::from(ms) * 4))
                    .unwrap_or(self.now);
                let result = self.handle_at(earlier, Input::Tick);
                self.drain(usize::MAX);
                self.checker.drained();
                assert_eq!(result, Ok(()));
            }
            Step::Join(n) => self.command(Input::Join {
                username: vocab::name(n).to_owned(),
            }),
            Step::Kick(n) => self.command(Input::Kick {
                username: vocab::name(n).to_owned(),
            }),
            Step::Unlink(n) => self.command(Input::Unlink {
                username: vocab::name(n).to_owned(),
            }),
            Step::Send(n, m) => self.command(Input::Send {
                username: vocab::name(n).to_owned(),
                message: vocab::app_message(m),
            }),
            Step::Broadcast(m, s) => self.command(Input::Broadcast {
                message: vocab::app_message(m),
                skip: (s % 2 == 1).then(|| vocab::name(s / 2).to_owned()),
            }),
            Step::Close => self.command(Input::Close),
            Step::Start => self.command(Input::Start),
            Step::Listen => self.command(Input::Listen { port: 8082 }),
            Step::DuplicateOpen(c) => {
                let conn = self.conn(c);
                if self.checker.is_open(conn) {
                    let before = self.checker.outputs_observed();
                    let result = self.feed(Input::ConnectionOpened {
                        conn,
                        target: "/".to_owned(),
                    });
                    assert_eq!(result, Err(Error::DuplicateConnection(conn)));
                    assert_eq!(self.checker.outputs_observed(), before);
                }
            }
            Step::DropMidDrain(c, kind, arg, k, d) => {
                let conn = self.conn(c);
                let text = vocab::message(kind, arg);
                let open = self.checker.is_open(conn);
                let result = self.handle(Self::frame(conn, text.into_bytes(), false));
                assert_eq!(result.is_ok(), open, "frame on {conn}: {result:?}");
                self.drain(usize::from(k % 8));
                let dropped = self.conn(d);
                self.checker.peer_closed_mid_drain(dropped);
                let result = self.handle(Input::ConnectionClosed { conn: dropped });
                assert_eq!(result, Ok(()));
                self.drain(usize::MAX);
                self.checker.drained();
            }
        }
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let setup = Setup::decode(&mut u);
    let mut harness = Harness::new(setup);
    if let Err(error) = harness.checker.check(&harness.krmx, harness.now) {
        fail("setup", &error);
    }
    let mut steps = 0;
    while !u.is_empty() && steps < 2000 {
        steps += 1;
        let step = Step::decode(&mut u);
        if harness.trace {
            println!("step {steps} {step:?}");
        }
        harness.run_step(step.clone());
        if let Err(error) = harness.checker.check(&harness.krmx, harness.now) {
            fail(&format!("step {steps} {step:?}"), &error);
        }
    }
}

// Opcodes, for seeds.
const OPEN: u8 = 0;
const FRAME: u8 = 1;
const FRAME_BINARY: u8 = 2;
const RAW: u8 = 3;
const PEER_CLOSED: u8 = 5;
const PONG: u8 = 6;
const VIOLATION: u8 = 7;
const DECIDE: u8 = 8;
const ADVANCE: u8 = 9;
const JUMP: u8 = 10;
const JOIN: u8 = 11;
const KICK: u8 = 12;
const UNLINK: u8 = 13;
const SEND: u8 = 14;
const BROADCAST: u8 = 15;
const CLOSE: u8 = 16;
const START: u8 = 17;
const LISTEN: u8 = 18;
const BACK: u8 = 19;
const DUPLICATE: u8 = 20;
const DROP_MID_DRAIN: u8 = 21;

// Message kinds of `vocab::message`, for seeds.
const LINK: u8 = 0;
const UNLINK_MSG: u8 = 1;
const LEAVE_MSG: u8 = 2;
const CHAT: u8 = 3;
const MOVE: u8 = 4;
const RESERVED: u8 = 5;
const NOT_JSON: u8 = 6;
const BIG: u8 = 10;

/// The link argument for name `n`, version `v`, auth `a` (0 absent, 1 `tok`, 2 other, 3 number).
fn link_arg(n: u8, v: u8, a: u8) -> u8 {
    n + v * 8 + a * 64
}

/// The committed seeds.
#[must_use]
pub fn seeds() -> crate::Seeds {
    let link_and_chat = Seed::new()
        .b(&[RELAY, 0, 0])
        .b(&[OPEN, 0, OPEN, 0, OPEN, 0])
        .b(&[FRAME, 0, LINK, link_arg(0, 0, 0)])
        .b(&[FRAME, 1, LINK, link_arg(1, 1, 0)])
        .b(&[FRAME, 2, LINK, link_arg(1, 2, 0)])
        .b(&[FRAME, 0, CHAT, 7, FRAME_BINARY, 1, MOVE, 9])
        .b(&[FRAME, 2, CHAT, 1, FRAME, 2, NOT_JSON, 0])
        .b(&[FRAME, 0, UNLINK_MSG, 0, FRAME, 0, LINK, link_arg(2, 0, 0)])
        .b(&[FRAME, 1, RESERVED, 0, FRAME, 1, LINK, link_arg(1, 0, 0)])
        .b(&[FRAME, 1, LEAVE_MSG, 0, FRAME, 0, CHAT, 3]);
    let application_auth = Seed::new()
        .b(&[APPLICATION, 50, 0])
        .b(&[OPEN, 0, OPEN, 0, OPEN, 0])
        .b(&[FRAME, 0, LINK, link_arg(0, 0, 1)])
        .b(&[FRAME, 0, CHAT, 1, FRAME, 0, UNLINK_MSG, 0])
        .b(&[FRAME, 1, LINK, link_arg(0, 0, 1)])
        .b(&[DECIDE, 0, 0, 0, DECIDE, 1, 0, 0])
        .b(&[FRAME, 2, LINK, link_arg(1, 0, 2)])
        .b(&[ADVANCE, 20, JUMP, DECIDE, 2, 0, 0])
        .b(&[FRAME, 2, LINK, link_arg(1, 0, 2), DECIDE, 3, 1, 1])
        .b(&[
            FRAME,
            2,
            LINK,
            link_arg(1, 0, 2),
            PEER_CLOSED,
            2,
            DECIDE,
            4,
            0,
            0,
        ]);
    let pings_and_inactivity = Seed::new()
        .b(&[PINGS | INACTIVITY, 0, 0])
        .b(&[OPEN, 0, OPEN, 0])
        .b(&[
            FRAME,
            0,
            LINK,
            link_arg(0, 0, 0),
            FRAME,
            1,
            LINK,
            link_arg(1, 0, 0),
        ])
        .b(&[JUMP, PONG, 0, PONG, 1, JUMP, PONG, 0, JUMP])
        .b(&[BACK, 200, ADVANCE, 10, FRAME, 0, UNLINK_MSG, 0])
        .b(&[JUMP, JUMP, JUMP, JUMP, JUMP, PONG, 0]);
    let server_api = Seed::new()
        .b(&[0, 0, 0])
        .b(&[JOIN, 0, JOIN, 0, JOIN, 5])
        .b(&[OPEN, 0, FRAME, 0, LINK, link_arg(1, 0, 0)])
        .b(&[SEND, 1, 0, SEND, 0, 1, BROADCAST, 2, BROADCAST, 0, 3])
        .b(&[UNLINK, 0, UNLINK, 1, FRAME, 0, LINK, link_arg(0, 0, 0)])
        .b(&[KICK, 0, KICK, 0, KICK, 1, JOIN, 2])
        .b(&[FRAME, 0, LINK, link_arg(2, 0, 0), CLOSE, CLOSE, JOIN, 3]);
    let rules_and_limits = Seed::new()
        .b(&[RULES | SMALL_LIMITS | NOT_LISTENING | APPLICATION, 10, 1])
        .b(&[OPEN, 2, JOIN, 0, START, START, LISTEN, LISTEN])
        .b(&[
            OPEN, 0, OPEN, 1, OPEN, 2, OPEN, 3, OPEN, 4, OPEN, 5, OPEN, 6, OPEN, 7,
        ])
        .b(&[DUPLICATE, 3, FRAME, 3, BIG, 100, VIOLATION, 5, 1])
        .b(&[FRAME, 6, LINK, link_arg(0, 0, 0), FRAME, 6, BIG, 10])
        .b(&[FRAME, 3, CHAT, 0, FRAME, 255, CHAT, 0, PONG, 255]);
    let drop_mid_broadcast = Seed::new()
        .b(&[RELAY | PINGS, 0, 0])
        .b(&[OPEN, 0, OPEN, 0, OPEN, 0])
        .b(&[FRAME, 0, LINK, link_arg(0, 0, 0)])
        .b(&[FRAME, 1, LINK, link_arg(1, 0, 0)])
        .b(&[FRAME, 2, LINK, link_arg(2, 0, 0)])
        .b(&[DROP_MID_DRAIN, 0, CHAT, 1, 1, 2])
        .b(&[DROP_MID_DRAIN, 1, LEAVE_MSG, 0, 2, 0])
        .b(&[OPEN, 0, DROP_MID_DRAIN, 3, LINK, link_arg(2, 0, 0), 1, 3]);
    let pending_overflow = Seed::new()
        .b(&[APPLICATION | SMALL_LIMITS, 100, 0])
        .b(&[OPEN, 0, OPEN, 0, OPEN, 0])
        .b(&[
            FRAME,
            0,
            LINK,
            link_arg(0, 0, 1),
            FRAME,
            1,
            LINK,
            link_arg(1, 0, 1),
        ])
        .b(&[FRAME, 2, LINK, link_arg(2, 0, 1)])
        .b(&[FRAME, 0, CHAT, 0, FRAME, 0, CHAT, 1, FRAME, 0, CHAT, 2])
        .b(&[DECIDE, 0, 0, 0, DECIDE, 1, 0, 0, FRAME, 1, CHAT, 5]);
    let raw_frames = Seed::new()
        .b(&[RELAY, 0, 0, OPEN, 0, OPEN, 0])
        .b(&[FRAME, 0, LINK, link_arg(0, 0, 0)])
        .b(&[RAW, 0])
        .raw(br#"{"type":"chat","payload":"\ud800"}"#)
        .b(&[RAW, 1])
        .raw(b"\xff\xfe{\"type\":\"krmx/link\"}")
        .b(&[4, 0])
        .raw(br#"{"type":"chat/say","type":"krmx/leave"}"#);
    // The unlinked timeout and cap: a link pending past the deadline and accepted stays; after
    // an unlink its next rejected link leaves it open until its new deadline.
    let unlinked_timeout_and_cap = Seed::new()
        .b(&[APPLICATION, 99, UNLINKED_200MS | CAP_3])
        .b(&[OPEN, 0, OPEN, 0, OPEN, 0, OPEN, 0])
        .b(&[
            FRAME,
            0,
            LINK,
            link_arg(0, 0, 0),
            ADVANCE,
            60,
            DECIDE,
            0,
            0,
            0,
        ])
        .b(&[FRAME, 0, UNLINK_MSG, 0, FRAME, 0, LINK, link_arg(0, 0, 0)])
        .b(&[
            DECIDE, 1, 1, 0, ADVANCE, 25, OPEN, 0, ADVANCE, 30, JUMP, JUMP,
        ]);
    let unlinked_floor = Seed::new()
        .b(&[0, 0, UNLINKED_1MS | PONG_ALL])
        .b(&[
            OPEN,
            0,
            FRAME,
            0,
            LINK,
            link_arg(0, 0, 0),
            OPEN,
            0,
            ADVANCE,
            1,
        ])
        .b(&[FRAME, 0, UNLINK_MSG, 0, JUMP, OPEN, 0, JUMP]);
    let cap_zero = Seed::new()
        .b(&[PINGS, 0, CAP_0 | PONG_ALL])
        .b(&[OPEN, 0, OPEN, 1, JOIN, 0, JUMP, JUMP]);
    // Pings: the odd-numbered connections answer, the others are terminated at the next round.
    let pings_answered_or_not = Seed::new()
        .b(&[PINGS | RELAY, 0, PONG_ODD])
        .b(&[OPEN, 0, OPEN, 0, OPEN, 0, OPEN, 0])
        .b(&[
            FRAME,
            0,
            LINK,
            link_arg(0, 0, 0),
            FRAME,
            1,
            LINK,
            link_arg(1, 0, 0),
        ])
        .b(&[FRAME, 2, LINK, link_arg(2, 0, 0), JUMP, ADVANCE, 10, JUMP])
        .b(&[FRAME, 0, CHAT, 1, OPEN, 0, JUMP, PONG, 4, JUMP, JUMP]);
    // Decisions now, later in time, after the timeout, never; inactivity kicks.
    let auth_decision_times = Seed::new()
        .b(&[APPLICATION | INACTIVITY, 24, 0])
        .b(&[OPEN, 0, OPEN, 0, OPEN, 0, OPEN, 0])
        .b(&[FRAME, 0, LINK, link_arg(0, 0, 1), DECIDE, 0, 0, 0])
        .b(&[
            FRAME,
            1,
            LINK,
            link_arg(1, 0, 1),
            ADVANCE,
            10,
            DECIDE,
            1,
            0,
            0,
        ])
        .b(&[
            FRAME,
            2,
            LINK,
            link_arg(2, 0, 1),
            ADVANCE,
            30,
            DECIDE,
            2,
            0,
            0,
        ])
        .b(&[FRAME, 3, LINK, link_arg(3, 0, 1), JUMP])
        .b(&[
            FRAME,
            1,
            UNLINK_MSG,
            0,
            ADVANCE,
            50,
            FRAME,
            1,
            LINK,
            link_arg(1, 0, 1),
        ])
        .b(&[ADVANCE, 20, DECIDE, 4, 2, 0, JUMP, JUMP, JUMP]);
    // Messages kept during a pending link are handled in arrival order after the decision.
    let kept_in_order = Seed::new()
        .b(&[APPLICATION | RELAY, 50, 0])
        .b(&[
            OPEN,
            0,
            OPEN,
            0,
            FRAME,
            1,
            LINK,
            link_arg(1, 0, 0),
            DECIDE,
            0,
            0,
            0,
        ])
        .b(&[
            FRAME,
            0,
            LINK,
            link_arg(0, 0, 0),
            FRAME,
            0,
            CHAT,
            1,
            FRAME,
            0,
            CHAT,
            2,
        ])
        .b(&[FRAME_BINARY, 0, MOVE, 3, FRAME, 0, CHAT, 4, DECIDE, 1, 0, 0])
        .b(&[FRAME, 0, UNLINK_MSG, 0, FRAME, 0, LINK, link_arg(0, 0, 0)])
        .b(&[
            FRAME, 0, CHAT, 5, FRAME, 0, UNLINK_MSG, 0, FRAME, 0, CHAT, 6,
        ])
        .b(&[
            FRAME,
            0,
            LINK,
            link_arg(0, 0, 0),
            FRAME,
            0,
            CHAT,
            7,
            DECIDE,
            2,
            0,
            0,
        ])
        .b(&[DECIDE, 3, 0, 0]);
    // Every timer and limit at once: the cap, the pending bound, kept messages and their bound,
    // pings answered by one connection and not the other, unlinked timeouts, inactivity kicks.
    let everything_on = Seed::new()
        .b(&[
            APPLICATION | PINGS | INACTIVITY | SMALL_LIMITS | RELAY,
            30,
            UNLINKED_200MS | CAP_3 | PONG_ODD,
        ])
        .b(&[OPEN, 0, OPEN, 0, OPEN, 0, OPEN, 0])
        .b(&[
            FRAME,
            0,
            LINK,
            link_arg(0, 0, 0),
            FRAME,
            0,
            CHAT,
            1,
            FRAME,
            0,
            CHAT,
            2,
        ])
        .b(&[
            FRAME,
            1,
            LINK,
            link_arg(1, 0, 0),
            FRAME,
            2,
            LINK,
            link_arg(2, 0, 0),
        ])
        .b(&[
            DECIDE,
            0,
            0,
            0,
            DECIDE,
            1,
            0,
            0,
            FRAME,
            2,
            LINK,
            link_arg(2, 0, 0),
        ])
        .b(&[FRAME, 2, CHAT, 3, FRAME, 2, CHAT, 4, FRAME, 2, CHAT, 5])
        .b(&[JUMP, JUMP, OPEN, 0, FRAME, 0, UNLINK_MSG, 0])
        .b(&[JUMP, JUMP, JUMP, JUMP, JUMP, JUMP, JUMP]);
    vec![
        ("link_and_chat", link_and_chat.0),
        ("application_auth", application_auth.0),
        ("pings_and_inactivity", pings_and_inactivity.0),
        ("server_api", server_api.0),
        ("rules_and_limits", rules_and_limits.0),
        ("drop_mid_broadcast", drop_mid_broadcast.0),
        ("pending_overflow", pending_overflow.0),
        ("raw_frames", raw_frames.0),
        ("unlinked_timeout_and_cap", unlinked_timeout_and_cap.0),
        ("unlinked_floor", unlinked_floor.0),
        ("cap_zero", cap_zero.0),
        ("pings_answered_or_not", pings_answered_or_not.0),
        ("auth_decision_times", auth_decision_times.0),
        ("kept_in_order", kept_in_order.0),
        ("everything_on", everything_on.0),
    ]
}
