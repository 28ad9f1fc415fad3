//! Promptness of `unlink` when connections end abruptly (issue 11).
//!
//! Every round starts a fresh server, links 20 users (`user0`..`user19`) on 20 connections at
//! once, and ends every connection abruptly (even ones with a plain TCP close, odd ones with a
//! reset: SO_LINGER 0, then close) as soon as each has its `krmx/accepted`. From the last close
//! on, the test does nothing that could wake the server (no stdin line, no command, no new
//! connection; pings are off, and nothing else is timed to fire within the window) and requires
//! every user that was linked to be unlinked, as the application sees it, within
//! [`DEADLINE`]. Then it checks that the server keeps nothing and still serves: a fresh client
//! links, leaves and resets, and no user is left linked. That check is the first thing to wake
//! the server after the window, so whatever was stuck comes out then and the next round starts
//! clean.
//!
//! The server under test is either `krmx serve` (events read as JSON lines from its stdout) or
//! an in-process server of [`Transport`] (events as its run loop hands them to the
//! application): [`Target`]. A fresh server per round means no timer of an earlier round (a
//! handshake deadline, a close linger) can wake the server during a later round's window and
//! hide a stuck event.
//!
//! The connections that cannot have a user end before the linked ones: any event of theirs that
//! reached the server after an `unlink` got stuck would wake it and hide the stuck event.
//!
//! [`Variant`]s add to the plain round: broadcasts in flight when the connections drop, links
//! pending an authentication decision (some decided just before the drop), and connections
//! reset in the middle of their WebSocket handshake beside the linked ones.
//!
//! [`run`] repeats a round up to [`rounds`] times and fails with the late rounds (stopping after
//! [`MAX_LATE_ROUNDS`] of them).

use crate::cli::CliServer;
use crate::server::{Command, ServerEvent, Setup, to_message};
use crate::{RunningServer, TIMEOUT, Transport, VERSION, msg};
use krmx_core::{AuthDecision, AuthId, AuthMode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tungstenite::{HandshakeError, Message, WebSocket};

/// How long after the last close every `unlink` must have reached the application.
pub const DEADLINE: Duration = Duration::from_secs(1);

/// How many users each round links and drops (as in the issue).
pub const USERS: usize = 20;

/// How many connections link in a [`Variant::PendingAuth`] round: more than [`USERS`], so that
/// half of them are linked at the drop, as many as in the plain round.
pub const PENDING_AUTH_USERS: usize = 40;

/// With [`Variant::PendingAuth`]: how many links (the first ones) are accepted, all at once,
/// before the drop.
const DECIDED: usize = PENDING_AUTH_USERS / 2;
/// With [`Variant::PendingAuth`]: how many links (the next ones) are accepted right before the
/// drop, their decisions in flight; the rest are never decided before the deadline.
const IN_FLIGHT: usize = PENDING_AUTH_USERS / 4;

/// The environment variable that sets the number of rounds per test.
pub const ROUNDS_VAR: &str = "KRMX_PROMPTNESS_ROUNDS";

/// The number of rounds per test: [`ROUNDS_VAR`] when set to a number, else `default`.
#[must_use]
pub fn rounds(default: usize) -> usize {
    std::env::var(ROUNDS_VAR)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(default)
}

/// The server a round runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `krmx serve --transport <name>`.
    Cli(&'static str),
    /// An in-process server, its events as the run loop hands them to the application.
    InProcess(Transport),
}

/// What happens around the drop, besides the plain round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The reproduction: drop right after every `krmx/accepted`.
    AtOnce,
    /// The server relays (`--relay`): every user sends chat messages and the server broadcasts
    /// a large message right before the drop, so broadcasts to all of them are in flight.
    DuringBroadcast,
    /// Authentication is deferred (`--manual-auth`; in process, the application's own
    /// decisions) on 40 connections: half the links are accepted at once and linked before the
    /// drop; the connections of a quarter end while their links still wait for a decision
    /// (their decisions come after the deadline and must do nothing); a quarter are accepted
    /// right before the drop (decisions in flight: each user is linked, then unlinked, or
    /// forgotten).
    PendingAuth,
    /// Beside the linked users, as many connections are reset in the middle of their WebSocket
    /// handshake (connected only, half a request, a whole request unanswered, upgraded but not
    /// linked): no event for them, and every descriptor of theirs released.
    MidHandshake,
}

/// A test stops after this many late rounds: the bug is shown, and each late round costs the
/// whole [`DEADLINE`].
pub const MAX_LATE_ROUNDS: usize = 3;

/// Runs up to `rounds` rounds of `variant` against fresh servers of `target`; panics with a
/// summary when any `unlink` came later than [`DEADLINE`] after the close (stopping after
/// [`MAX_LATE_ROUNDS`] such rounds), or never came.
pub fn run(target: Target, variant: Variant, rounds: usize) {
    let _serial = serial();
    let started = Instant::now();
    let mut late = Vec::new();
    let mut ran = 0;
    for round in 0..rounds {
        ran += 1;
        let report = run_round(target, variant, round);
        if !report.late.is_empty() {
            eprintln!(
                "{target:?} {variant:?} round {round}: {}",
                report.describe()
            );
            late.push((round, report));
            if late.len() == MAX_LATE_ROUNDS {
                break;
            }
        }
    }
    let summary = format!(
        "{target:?} {variant:?}: {} of {ran} rounds had an unlink later than {DEADLINE:?} after \
         the connections ended ({rounds} rounds planned, {:.1?})",
        late.len(),
        started.elapsed()
    );
    eprintln!("{summary}");
    if !late.is_empty() {
        let mut message = format!(
            "{summary}; each late unlink came only once the final check woke the server with a \
             new connection:"
        );
        for (round, report) in &late {
            let _ = write!(message, "\n  round {round}: {}", report.describe());
        }
        panic!("{message}");
    }
}

/// The tests of one binary run one at a time: they are timing-sensitive (and count file
/// descriptors of their own process).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

// ----- one round -----

/// What a round found.
#[derive(Debug, Default)]
struct RoundReport {
    /// Users whose `unlink` did not come within the deadline: when it came after the close,
    /// if it came at all.
    late: Vec<(String, Option<Duration>)>,
    /// How many users had been linked.
    linked: usize,
}

impl RoundReport {
    fn describe(&self) -> String {
        let mut late: Vec<&(String, Option<Duration>)> = self.late.iter().collect();
        late.sort_by_key(|(name, _)| (name.len(), name.clone()));
        let shown: Vec<String> = late
            .into_iter()
            .map(|(name, after)| match after {
                Some(after) => format!("{name} after {after:.2?}"),
                None => format!("{name} never"),
            })
            .collect();
        format!(
            "{} of {} unlinks late: {}",
            self.late.len(),
            self.linked,
            shown.join(", ")
        )
    }
}

fn victim_name(i: usize) -> String {
    format!("user{i}")
}

/// The name of the client of the final check.
const FRESH: &str = "fresh";

fn run_round(target: Target, variant: Variant, round: usize) -> RoundReport {
    let mut server = start(target, variant);
    let baseline_fds = server.open_fds();
    let addr = server.addr();
    let mut log = Log::default();
    // Connections to be reset in their handshake are opened first, so the drop finds the server
    // as busy with the links as in the plain round.
    let handshaking: Vec<TcpStream> = if variant == Variant::MidHandshake {
        (0..USERS).map(|i| half_open(addr, i % 4)).collect()
    } else {
        Vec::new()
    };
    let users = if variant == Variant::PendingAuth {
        PENDING_AUTH_USERS
    } else {
        USERS
    };
    let mut victims: Vec<Victim> = (0..users).map(|_| Victim::connect(addr)).collect();
    for (i, victim) in victims.iter_mut().enumerate() {
        victim.send(&msg::link(&victim_name(i), VERSION, None));
    }
    let mut required: BTreeSet<String> = (0..users).map(victim_name).collect();
    match variant {
        Variant::AtOnce | Variant::MidHandshake => {
            for (i, victim) in victims.iter_mut().enumerate() {
                victim.expect_accepted(&victim_name(i));
            }
        }
        Variant::DuringBroadcast => {
            for (i, victim) in victims.iter_mut().enumerate() {
                victim.expect_accepted(&victim_name(i));
            }
            let fill = "b".repeat(16 << 10);
            log.replies_expected += server.broadcast(&json!({"type": "big", "payload": fill}));
            let fill = "c".repeat(1 << 10);
            for seq in 0..3 {
                for victim in &mut victims {
                    victim.send(&json!({"type": "chat", "payload": {"seq": seq, "fill": fill}}));
                }
            }
        }
        Variant::PendingAuth => {
            let ids = wait_for_authentications(server.as_mut(), &mut log);
            // The first links are accepted all at once, so the server is as busy with them at
            // the drop as in the plain round.
            let first: Vec<u64> = (0..DECIDED).map(|i| ids[&victim_name(i)]).collect();
            log.replies_expected += server.accept_first(&first);
            for (i, victim) in victims.iter_mut().enumerate().take(DECIDED) {
                victim.expect_accepted(&victim_name(i));
            }
            // The undecided links' connections end while their links wait for a decision.
            for (k, victim) in victims
                .split_off(DECIDED + IN_FLIGHT)
                .into_iter()
                .enumerate()
            {
                victim.end(if k % 2 == 0 { End::Close } else { End::Reset });
            }
            // Decisions in flight at the drop: each user is linked or forgotten, either way
            // not left linked.
            let in_flight: Vec<u64> = (DECIDED..DECIDED + IN_FLIGHT)
                .map(|i| ids[&victim_name(i)])
                .collect();
            log.replies_expected += server.accept_in_flight(&in_flight, &mut victims[0]);
            required = (0..DECIDED).map(victim_name).collect();
            log.undecided = (DECIDED + IN_FLIGHT..users)
                .map(|i| (victim_name(i), ids[&victim_name(i)]))
                .collect();
        }
    }

    // The drop: the connections without a user first (any event of theirs that reached the
    // server after a stuck one would wake it and hide the bug), then the linked ones, in
    // order, even ones with a plain close and odd ones with a reset.
    for stream in handshaking {
        reset(stream);
    }
    for (i, victim) in victims.into_iter().enumerate() {
        victim.end(if i % 2 == 0 { End::Close } else { End::Reset });
    }
    let closed_at = Instant::now();
    // From here until the deadline: only wait and read what the application got.
    let deadline = closed_at + DEADLINE;
    let on_time = log.wait_until(server.as_mut(), deadline, |log| log.settled(&required));
    let mut report = RoundReport::default();
    if !on_time {
        // Anything stuck comes out once something wakes the server: the final check does.
        let missing = log.missing(&required);
        fresh_client_links_and_leaves(server.as_mut(), &mut log);
        let settled = log.wait_until(server.as_mut(), Instant::now() + TIMEOUT, |log| {
            log.settled(&required)
        });
        report.late = missing
            .into_iter()
            .map(|name| {
                let after = log
                    .unlinked
                    .get(&name)
                    .map(|at| at.saturating_duration_since(closed_at));
                (name, after)
            })
            .collect();
        assert!(
            settled,
            "round {round}: even after the server was woken, not every linked user was \
             unlinked: {}\n{}",
            report.describe(),
            server.diagnostics()
        );
    } else {
        fresh_client_links_and_leaves(server.as_mut(), &mut log);
    }
    report.linked = log.linked.iter().filter(|name| *name != FRESH).count();

    if variant == Variant::PendingAuth {
        late_decisions_do_nothing(server.as_mut(), &mut log);
    }
    nobody_is_left_linked(server.as_mut(), &mut log, round);
    if variant == Variant::MidHandshake {
        let released = eventually(TIMEOUT, || server.open_fds() <= baseline_fds);
        assert!(
            released,
            "round {round}: the server still holds {} descriptors, {baseline_fds} before the round",
            server.open_fds()
        );
    }
    if let Some(other) = log.unexpected.first() {
        panic!(
            "round {round}: unexpected {other:?}\n{}",
            server.diagnostics()
        );
    }
    report
}

/// Waits for the authenticate event of every victim; returns their ids by name.
fn wait_for_authentications(server: &mut dyn Observed, log: &mut Log) -> BTreeMap<String, u64> {
    let complete = log.wait_until(server, Instant::now() + TIMEOUT, |log| {
        log.authenticating.len() == PENDING_AUTH_USERS
    });
    assert!(
        complete,
        "only {} of {PENDING_AUTH_USERS} authentications were asked for\n{}",
        log.authenticating.len(),
        server.diagnostics()
    );
    log.authenticating.clone()
}

/// The final check, which also wakes the server: a new client links, leaves and resets.
fn fresh_client_links_and_leaves(server: &mut dyn Observed, log: &mut Log) {
    let mut fresh = Victim::connect(server.addr());
    fresh.send(&msg::link(FRESH, VERSION, None));
    if server.is_manual_auth() {
        let asked = log.wait_until(server, Instant::now() + TIMEOUT, |log| {
            log.authenticating.contains_key(FRESH)
        });
        assert!(asked, "no authentication for {FRESH}");
        log.replies_expected += server.accept(log.authenticating[FRESH]);
    }
    fresh.expect_accepted(FRESH);
    fresh.send(&json!({"type": "krmx/leave"}));
    let left = log.wait_until(server, Instant::now() + TIMEOUT, |log| {
        log.left.contains(FRESH)
    });
    assert!(
        left,
        "the fresh client did not link and leave\n{}",
        server.diagnostics()
    );
    fresh.end(End::Reset);
}

/// Decides the authentications never decided before the drop: they were forgotten with their
/// connections, so nothing may come of it.
fn late_decisions_do_nothing(server: &mut dyn Observed, log: &mut Log) {
    let undecided = log.undecided.clone();
    let replies_before = log.replies.len();
    for (_, id) in &undecided {
        log.replies_expected += server.accept(*id);
    }
    let answered = log.wait_until(server, Instant::now() + TIMEOUT, |log| {
        log.replies.len() >= log.replies_expected
    });
    assert!(answered, "the late decisions were not answered");
    for reply in log.replies.iter().skip(replies_before) {
        let reply_is_the_error = reply["error"]
            .as_str()
            .is_some_and(|error| error.starts_with("no pending authentication with id"));
        assert!(
            reply_is_the_error,
            "a late decision for a connection that is gone got {reply}"
        );
    }
    for (name, _) in &undecided {
        assert!(
            !log.linked.contains(name),
            "{name} was linked by a decision for a connection that is gone"
        );
    }
}

/// Asks for the users: none may be linked, no undecided one may exist.
fn nobody_is_left_linked(server: &mut dyn Observed, log: &mut Log, round: usize) {
    log.users = None;
    server.request_users();
    let answered = log.wait_until(server, Instant::now() + TIMEOUT, |log| log.users.is_some());
    assert!(answered, "round {round}: no answer to the users query");
    let users = log.users.take().unwrap_or_default();
    let linked: Vec<&String> = users
        .iter()
        .filter(|(_, is_linked)| *is_linked)
        .map(|(name, _)| name)
        .collect();
    assert!(
        linked.is_empty(),
        "round {round}: still linked after every connection ended: {linked:?}\n{}",
        server.diagnostics()
    );
    let joined: BTreeSet<&String> = users.iter().map(|(name, _)| name).collect();
    for (name, _) in &log.undecided {
        assert!(
            !joined.contains(name),
            "round {round}: {name} joined though its authentication was never accepted in time"
        );
    }
    for name in &log.linked {
        assert!(
            *name == FRESH || joined.contains(name),
            "round {round}: {name} linked but is no user"
        );
    }
}

/// Polls `condition` until it holds (true) or `timeout` passes (false).
fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ----- what the application saw -----

/// What the server reported, as the application saw it.
#[derive(Debug)]
enum Seen {
    Authenticate {
        username: String,
        id: u64,
    },
    Link(String),
    Unlink(String),
    Leave(String),
    /// The answer to a users query: every user with whether it is linked.
    Users(Vec<(String, bool)>),
    /// The reply line of a `krmx serve` command.
    Reply(Value),
    /// Anything else (join, message, ...): not checked.
    Other,
    /// Something no round should ever see.
    Unexpected(String),
}

/// Everything a round saw, in the order it came.
#[derive(Debug, Default)]
struct Log {
    authenticating: BTreeMap<String, u64>,
    linked: BTreeSet<String>,
    /// When each unlink reached the test.
    unlinked: BTreeMap<String, Instant>,
    left: BTreeSet<String>,
    users: Option<Vec<(String, bool)>>,
    replies: Vec<Value>,
    /// Command replies the round waits for.
    replies_expected: usize,
    /// Authentications left undecided until after the deadline, with their ids.
    undecided: Vec<(String, u64)>,
    unexpected: Vec<String>,
}

impl Log {
    fn record(&mut self, seen: Seen) {
        match seen {
            Seen::Authenticate { username, id } => {
                self.authenticating.insert(username, id);
            }
            Seen::Link(name) => {
                self.linked.insert(name);
            }
            Seen::Unlink(name) => {
                self.unlinked.entry(name).or_insert_with(Instant::now);
            }
            Seen::Leave(name) => {
                self.left.insert(name);
            }
            Seen::Users(users) => self.users = Some(users),
            Seen::Reply(reply) => self.replies.push(reply),
            Seen::Other => {}
            Seen::Unexpected(what) => self.unexpected.push(what),
        }
    }

    /// Every required user was linked, every linked one unlinked, every command answered.
    fn settled(&self, required: &BTreeSet<String>) -> bool {
        required.is_subset(&self.linked)
            && self
                .linked
                .iter()
                .all(|name| self.unlinked.contains_key(name))
            && self.replies.len() >= self.replies_expected
    }

    /// The users linked (or required to be) whose unlink has not come.
    fn missing(&self, required: &BTreeSet<String>) -> Vec<String> {
        required
            .union(&self.linked)
            .filter(|name| !self.unlinked.contains_key(*name))
            .cloned()
            .collect()
    }

    /// Records what comes until `done` holds (true) or `until` passes (false).
    fn wait_until(
        &mut self,
        server: &mut dyn Observed,
        until: Instant,
        mut done: impl FnMut(&Self) -> bool,
    ) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Some(seen) = server.next_within(left) {
                self.record(seen);
            }
        }
    }
}

// ----- the servers -----

/// A server under test, as a round drives and observes it.
trait Observed {
    fn addr(&self) -> SocketAddr;
    /// The next thing the application saw, within `timeout`.
    fn next_within(&mut self, timeout: Duration) -> Option<Seen>;
    /// Accepts a pending authentication; returns how many reply lines will come.
    fn accept(&mut self, id: u64) -> usize;
    /// Accepts the first links of a [`Variant::PendingAuth`] round at once (unless the
    /// application did already); returns how many reply lines will come.
    fn accept_first(&mut self, ids: &[u64]) -> usize;
    /// Has the next links of a [`Variant::PendingAuth`] round accepted without waiting for it
    /// to happen (`krmx serve`: `accept` lines; in process: `linked` sends the message on which
    /// the application decides); returns how many reply lines will come.
    fn accept_in_flight(&mut self, ids: &[u64], linked: &mut Victim) -> usize;
    /// Broadcasts a message to every linked user; returns how many reply lines will come.
    fn broadcast(&mut self, message: &Value) -> usize;
    /// Asks for the users; the answer comes as [`Seen::Users`].
    fn request_users(&mut self);
    /// Whether every link waits for [`accept`](Self::accept).
    fn is_manual_auth(&self) -> bool;
    /// The server process's open file descriptors.
    fn open_fds(&self) -> usize;
    /// What helps to understand a failure.
    fn diagnostics(&self) -> String;
}

fn start(target: Target, variant: Variant) -> Box<dyn Observed> {
    match target {
        Target::Cli(transport) => {
            let mut args = vec!["--ping-interval-ms", "0"];
            match variant {
                Variant::DuringBroadcast => args.extend(["--relay", "--quiet"]),
                Variant::PendingAuth => {
                    args.extend(["--manual-auth", "--auth-timeout-ms", "60000"])
                }
                Variant::AtOnce | Variant::MidHandshake => {}
            }
            Box::new(Cli {
                cli: CliServer::start(transport, &args),
                manual_auth: variant == Variant::PendingAuth,
            })
        }
        Target::InProcess(transport) => {
            let config = crate::scenarios::quiet_config();
            let setup = match variant {
                Variant::AtOnce | Variant::MidHandshake => Setup::new(config),
                Variant::DuringBroadcast => Setup::new(config).on_event(relay),
                Variant::PendingAuth => Setup::new(
                    config
                        .auth(AuthMode::Application)
                        .auth_timeout(Duration::from_secs(60)),
                )
                .on_event(deferred_auth()),
            };
            let manual_auth = variant == Variant::PendingAuth;
            Box::new(InProcess {
                server: transport.start_with(setup),
                answers: VecDeque::new(),
                manual_auth,
            })
        }
    }
}

/// The type of the message on which the in-process application of a [`Variant::PendingAuth`]
/// round decides the links in flight.
const DECIDE: &str = "decide";

/// The in-process application of a [`Variant::PendingAuth`] round: accepts the first links in
/// its event handler, at once; keeps the next ones pending until a [`DECIDE`] message comes
/// (as a decision that waited on something else would), then accepts them all; never decides
/// the rest.
fn deferred_auth() -> impl FnMut(&ServerEvent) -> Vec<Command> + Send + 'static {
    let mut pending = Vec::new();
    move |event| match event {
        ServerEvent::Authenticate { id, username, .. } => {
            if (0..DECIDED).any(|i| *username == victim_name(i)) {
                return vec![Command::DecideAuth(*id, AuthDecision::Accept)];
            }
            if (DECIDED..DECIDED + IN_FLIGHT).any(|i| *username == victim_name(i)) {
                pending.push(*id);
            }
            Vec::new()
        }
        ServerEvent::Message(_, message) if message["type"] == DECIDE => pending
            .drain(..)
            .map(|id| Command::DecideAuth(id, AuthDecision::Accept))
            .collect(),
        _ => Vec::new(),
    }
}

/// The in-process application's relay (as `krmx serve --relay`), for chat messages.
fn relay(event: &ServerEvent) -> Vec<Command> {
    match event {
        ServerEvent::Message(_, message) if message["type"] == "chat" => {
            vec![Command::Broadcast(to_message(message), None)]
        }
        _ => Vec::new(),
    }
}

fn count_fds(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// `krmx serve`.
struct Cli {
    cli: CliServer,
    manual_auth: bool,
}

impl Observed for Cli {
    fn addr(&self) -> SocketAddr {
        self.cli.addr()
    }

    fn next_within(&mut self, timeout: Duration) -> Option<Seen> {
        let line = self.cli.next_json_within(timeout)?;
        let name = || line["username"].as_str().unwrap_or_default().to_owned();
        Some(match line["event"].as_str() {
            Some("authenticate") => match line["id"].as_u64() {
                Some(id) => Seen::Authenticate {
                    username: name(),
                    id,
                },
                None => Seen::Other,
            },
            Some("link") => Seen::Link(name()),
            Some("unlink") => Seen::Unlink(name()),
            Some("leave") => Seen::Leave(name()),
            Some("join" | "message") => Seen::Other,
            Some(_) => Seen::Unexpected(line.to_string()),
            None if line.get("users").is_some() => Seen::Users(
                line["users"]
                    .as_array()
                    .map(|users| {
                        users
                            .iter()
                            .map(|user| {
                                (
                                    user["username"].as_str().unwrap_or_default().to_owned(),
                                    user["isLinked"].as_bool().unwrap_or(true),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            None => Seen::Reply(line),
        })
    }

    fn accept(&mut self, id: u64) -> usize {
        self.cli.send_line(&format!("accept {id}"));
        1
    }

    fn accept_first(&mut self, ids: &[u64]) -> usize {
        // One write, so the server reads the lines together.
        let lines: Vec<String> = ids.iter().map(|id| format!("accept {id}")).collect();
        self.cli.send_line(&lines.join("\n"));
        ids.len()
    }

    fn accept_in_flight(&mut self, ids: &[u64], _linked: &mut Victim) -> usize {
        self.accept_first(ids)
    }

    fn broadcast(&mut self, message: &Value) -> usize {
        self.cli.send_line(&format!("broadcast {message}"));
        1
    }

    fn request_users(&mut self) {
        self.cli.send_line("users");
    }

    fn is_manual_auth(&self) -> bool {
        self.manual_auth
    }

    fn open_fds(&self) -> usize {
        count_fds(&self.cli.pid().to_string())
    }

    fn diagnostics(&self) -> String {
        format!("krmx serve's stderr:\n{}", self.cli.stderr())
    }
}

/// An in-process server.
struct InProcess {
    server: RunningServer,
    /// Answers to queries, handed out before the next event.
    answers: VecDeque<Seen>,
    manual_auth: bool,
}

impl Observed for InProcess {
    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn next_within(&mut self, timeout: Duration) -> Option<Seen> {
        if let Some(answer) = self.answers.pop_front() {
            return Some(answer);
        }
        Some(match self.server.next_event_within(timeout)? {
            ServerEvent::Authenticate { id, username, .. } => Seen::Authenticate {
                username,
                id: id.get(),
            },
            ServerEvent::Linked(name) => Seen::Link(name),
            ServerEvent::Unlinked(name) => Seen::Unlink(name),
            ServerEvent::Left(name) => Seen::Leave(name),
            ServerEvent::Joined(_) | ServerEvent::Message(..) => Seen::Other,
            other => Seen::Unexpected(format!("{other:?}")),
        })
    }

    fn accept(&mut self, id: u64) -> usize {
        self.server
            .decide_auth(AuthId::from_number(id), AuthDecision::Accept);
        0
    }

    fn accept_first(&mut self, _ids: &[u64]) -> usize {
        // The event handler accepted them ([`deferred_auth`]).
        0
    }

    fn accept_in_flight(&mut self, _ids: &[u64], linked: &mut Victim) -> usize {
        // The event handler accepts them on this message ([`deferred_auth`]).
        linked.send(&json!({ "type": DECIDE }));
        0
    }

    fn broadcast(&mut self, message: &Value) -> usize {
        self.server.broadcast(message, None);
        0
    }

    fn request_users(&mut self) {
        let users = self.server.users();
        self.answers.push_back(Seen::Users(users));
    }

    fn is_manual_auth(&self) -> bool {
        self.manual_auth
    }

    fn open_fds(&self) -> usize {
        count_fds("self")
    }

    fn diagnostics(&self) -> String {
        format!("in-process server status: {:?}", self.server.status())
    }
}

// ----- the clients -----

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// A plain close of the socket, without a WebSocket close.
    Close,
    /// SO_LINGER 0, then close: the server gets a reset.
    Reset,
}

/// A raw blocking WebSocket client that ends abruptly.
struct Victim {
    ws: WebSocket<TcpStream>,
}

impl Victim {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connecting");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(TIMEOUT))
            .expect("write timeout");
        match tungstenite::client::client(format!("ws://{addr}/"), stream) {
            Ok((ws, _)) => Self { ws },
            Err(HandshakeError::Failure(error)) => panic!("the handshake failed: {error}"),
            Err(HandshakeError::Interrupted(_)) => panic!("the handshake timed out"),
        }
    }

    fn send(&mut self, value: &Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .unwrap_or_else(|error| panic!("sending {value} failed: {error}"));
    }

    /// Reads the first message after the link, which must be `krmx/accepted`.
    fn expect_accepted(&mut self, name: &str) {
        let message = loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => break text.to_string(),
                Ok(_) => {}
                Err(error) => panic!("{name}: no krmx/accepted: {error}"),
            }
        };
        let value: Value = serde_json::from_str(&message).expect("JSON");
        assert_eq!(value, msg::accepted(), "{name}: the answer to its link");
    }

    fn end(self, how: End) {
        let stream = self.ws.into_inner();
        match how {
            End::Close => drop(stream),
            End::Reset => reset(stream),
        }
    }
}

/// Closes with SO_LINGER 0: the peer gets a reset, not a FIN.
fn reset(stream: TcpStream) {
    rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO))
        .expect("setting SO_LINGER 0");
    drop(stream);
}

/// A connection left in the middle of its WebSocket handshake, by `stage`: 0 connected only,
/// 1 half a request, 2 a whole request with its answer unread, 3 upgraded but never linked.
fn half_open(addr: SocketAddr, stage: usize) -> TcpStream {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connecting");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    match stage {
        0 => {}
        1 => stream
            .write_all(&request.as_bytes()[..request.len() / 2])
            .expect("writing half a request"),
        2 => stream
            .write_all(request.as_bytes())
            .expect("writing the request"),
        _ => {
            stream
                .write_all(request.as_bytes())
                .expect("writing the request");
            stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            let mut head = Vec::new();
            let mut byte = [0_u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    other => panic!("the upgrade answer ended early: {other:?}"),
                }
            }
            assert!(head.starts_with(b"HTTP/1.1 101"), "not upgraded");
        }
    }
    stream
}
