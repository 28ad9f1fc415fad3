#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! Model test: random sequences of transport facts, application decisions, time steps and
//! server commands, judged against a reference server (`model/reference.rs`) that predicts
//! every output of every step, in order.
//!
//! The setups turn every limit and timer of `KrmxConfig` on in some cases and off in others:
//! authentication (at once, later, after its timeout, or never), the auth timeout, liveness
//! pings with connections that answer them or not, the inactivity timeout, the unlinked timeout
//! and the cap on unlinked connections, the queue bound during a pending link, the bound on
//! pending authentications and the message size limit. Time moves by ticks (to a deadline, a
//! nanosecond before it, arbitrary steps, backwards) and also silently, so that the next network
//! fact or command arrives while timers are due.
//!
//! After every input the core's outputs must equal the reference's, in order (who is closed,
//! with which code and reason, who is kicked, pinged, rejected, in which order), and the
//! `handle_input` result must be the reference's. After every step:
//! - the open connections, the users and their links, the pending authentications, the count
//!   of unlinked connections and `poll_timeout` equal the reference's;
//! - no connection is open that has been unlinked for longer than the unlinked timeout, and no
//!   user exists that has been unlinked for longer than the inactivity timeout;
//! - users and connections are linked one to one, no output addresses a connection never opened
//!   or closed, every linked connection's view rebuilt from its presence messages equals
//!   `users()`, and the events rebuild the same users and links.
//!
//! Each case runs twice and the two output logs must be identical (determinism).
//! `generator_statistics` proves that the generated runs reach every timer rule.
//!
//! `PROPTEST_CASES=5000 cargo test -p krmx-core --test model` runs a longer search.

#[path = "model/reference.rs"]
mod reference;

use krmx_core::{
    AuthDecision, AuthId, AuthMode, ConnectionId, Error, Event, Frame, Input, Krmx, KrmxConfig,
    Message, Output, Status, Violation,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use reference::{Expected, Reference, Rules, Tally};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// What the generator draws from.
// ---------------------------------------------------------------------------------------------

/// Usernames: the first five pass the default rule, the rest do not.
const NAMES: [&str; 8] = [
    "alice", "bob", "carol", "dave.k", "Eve_2", "a", "1bob", "bob..x",
];
const VALID_NAMES: usize = 5;

/// Client versions and whether the default served version (0.6) accepts them.
const VERSIONS: [(&str, bool); 9] = [
    ("0.6.0", true),
    ("0.6", true),
    ("0.6.12", true),
    ("0.6.1-beta", true),
    ("0.5.9", false),
    ("0.60.1", false),
    ("1.6.0", false),
    ("v0.6.0", false),
    ("", false),
];

/// Custom message types (none reserved: `krmx/` is case sensitive).
const CUSTOM_KINDS: [&str; 5] = ["chat/say", "move", "", "krmxx/x", "KRMX/x"];
const NOT_JSON: [&str; 4] = ["not json", "{", "", "{\"type\":\"chat\""];
const NOT_OBJECTS: [&str; 8] = [
    "[]",
    "3",
    "\"krmx/leave\"",
    "null",
    "true",
    "{}",
    "{\"type\":3}",
    "[{\"type\":\"chat\"}]",
];
const RESERVED: [&str; 4] = ["krmx/whatever", "krmx/accepted", "krmx/", "krmx/joined"];
const BAD_LINK_PAYLOADS: [&str; 5] = [
    "null",
    "\"alice\"",
    "{\"version\":\"0.6.0\"}",
    "{\"username\":\"alice\"}",
    "{\"username\":\"alice\",\"version\":0.6}",
];
const REJECT_REASONS: [&str; 3] = ["no thanks", "say \"no\"", ""];

#[derive(Debug, Clone, Copy)]
enum AuthField {
    Absent,
    Token,
    Other,
    /// Not a string: an invalid link request.
    Number,
}

#[derive(Debug, Clone)]
enum Payload {
    Custom {
        kind: usize,
        n: u8,
        extra: bool,
    },
    /// A custom message bigger than the small message-size limit.
    Big,
    NotJson(usize),
    NotObject(usize),
    Reserved(usize),
    Unlink,
    Leave,
    Link {
        name: usize,
        version: usize,
        auth: AuthField,
    },
    LinkInvalid(usize),
}

impl Payload {
    fn text(&self) -> String {
        match self {
            Self::Custom { kind, n, extra } => {
                let mut value = json!({"type": CUSTOM_KINDS[*kind], "payload": {"n": n}});
                if *extra {
                    value["seq"] = json!(n);
                }
                value.to_string()
            }
            Self::Big => json!({"type": "chat/say", "payload": "x".repeat(200)}).to_string(),
            Self::NotJson(i) => NOT_JSON[*i].to_owned(),
            Self::NotObject(i) => NOT_OBJECTS[*i].to_owned(),
            Self::Reserved(i) => json!({"type": RESERVED[*i], "payload": 1}).to_string(),
            Self::Unlink => json!({"type": "krmx/unlink"}).to_string(),
            Self::Leave => json!({"type": "krmx/leave"}).to_string(),
            Self::Link {
                name,
                version,
                auth,
            } => {
                let mut payload =
                    json!({"username": NAMES[*name], "version": VERSIONS[*version].0});
                match auth {
                    AuthField::Absent => {}
                    AuthField::Token => payload["auth"] = json!("tok"),
                    AuthField::Other => payload["auth"] = json!("other"),
                    AuthField::Number => payload["auth"] = json!(5),
                }
                json!({"type": "krmx/link", "payload": payload}).to_string()
            }
            Self::LinkInvalid(i) => {
                format!(
                    "{{\"type\":\"krmx/link\",\"payload\":{}}}",
                    BAD_LINK_PAYLOADS[*i]
                )
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Encoding {
    Text,
    Binary,
    /// Binary whose bytes are not UTF-8: an invalid message.
    BinaryNotUtf8,
}

#[derive(Debug, Clone, Copy)]
enum ConnPick {
    /// One of the connections linked at this point.
    Linked(usize),
    /// One of the connections open at this point (as the test sees it).
    Open(usize),
    /// Any connection the test opened, closed ones included.
    Any(usize),
    /// A connection the test never opened.
    Bogus,
}

#[derive(Debug, Clone, Copy)]
enum NamePick {
    /// A name from [`NAMES`].
    Pool(usize),
    /// One of the users that exist at this point (or the first name when there are none).
    User(usize),
}

#[derive(Debug, Clone, Copy)]
enum AuthPick {
    /// One of the authentications pending at this point (as the test sees it).
    Pending(usize),
    Seen(usize),
    Bogus,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Decision {
    Accept,
    Reject(usize),
    Failed,
}

impl Decision {
    fn to_core(self) -> AuthDecision {
        match self {
            Self::Accept => AuthDecision::Accept,
            Self::Reject(i) => AuthDecision::reject(REJECT_REASONS[i]),
            Self::Failed => AuthDecision::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Wait {
    /// Tick after this long.
    For(Duration),
    /// Tick exactly at `poll_timeout()`.
    ToTimeout,
    /// Tick a nanosecond before `poll_timeout()`.
    JustBeforeTimeout,
    /// Tick with a time five seconds before the latest one (the core must treat it as the
    /// latest time).
    Backwards,
    /// Let this much time pass without a tick: the next input arrives while timers are due.
    Silently(Duration),
    /// Let time pass up to `poll_timeout()` without a tick.
    SilentlyToTimeout,
}

#[derive(Debug, Clone)]
enum Step {
    Open,
    /// Open a connection id that is open already: a caller mistake.
    OpenDuplicate(usize),
    Frame(ConnPick, Payload, Encoding),
    Close(ConnPick),
    Pong(ConnPick),
    /// Time passes silently up to the next ping round, and one of the connections that owe a
    /// pong answers just then: its pong is handled before the round, so it stays.
    LatePong(usize),
    Violation(ConnPick, usize),
    Decide(AuthPick, Decision),
    Wait(Wait),
    Join(usize),
    Kick(NamePick),
    Unlink(NamePick),
    Send(NamePick, u8),
    Broadcast(Option<NamePick>, u8),
    CloseServer,
}

/// Which connections answer pings on their own (any may still answer in a `Pong` step).
#[derive(Debug, Clone, Copy)]
enum PingAnswers {
    /// None: only `Pong` steps answer.
    Manual,
    /// Every connection answers each ping at once.
    All,
    /// Connection `n` answers at once unless bit `n % 8` is set.
    AllBut(u8),
}

#[derive(Debug, Clone)]
struct Setup {
    application: bool,
    accept_new_users: bool,
    auth_timeout: Duration,
    /// Zero turns pings off.
    ping_interval: Duration,
    inactivity_timeout: Option<Duration>,
    unlinked_timeout: Option<Duration>,
    max_unlinked_connections: Option<usize>,
    max_queued_during_auth: usize,
    max_pending_auths: usize,
    max_message_bytes: usize,
    /// A transport's bound: the core only sees its `SlowConsumer` violation and must not act on
    /// the number itself.
    max_buffered_bytes: usize,
    ping_answers: PingAnswers,
    /// Decisions made in the drain loop as soon as `AuthRequested` is seen, cycled through;
    /// `None` leaves the decision for a later step, the timeout, or never.
    immediate: Vec<Option<Decision>>,
}

impl Setup {
    fn config(&self) -> KrmxConfig {
        KrmxConfig::default()
            .auth(if self.application {
                AuthMode::Application
            } else {
                AuthMode::None
            })
            .accept_new_users(self.accept_new_users)
            .auth_timeout(self.auth_timeout)
            .ping_interval(self.ping_interval)
            .inactivity_timeout(self.inactivity_timeout)
            .unlinked_timeout(self.unlinked_timeout)
            .max_unlinked_connections(self.max_unlinked_connections)
            .max_queued_during_auth(self.max_queued_during_auth)
            .max_pending_auths(self.max_pending_auths)
            .max_message_bytes(self.max_message_bytes)
            .max_buffered_bytes(self.max_buffered_bytes)
    }

    /// The reference's rules: the same options with the spec's floors applied.
    fn rules(&self) -> Rules {
        Rules {
            application_auth: self.application,
            accept_new_users: self.accept_new_users,
            auth_timeout: Rules::auth_timeout_floor(self.auth_timeout),
            ping_interval: Rules::ping_interval_rule(self.ping_interval),
            inactivity_timeout: self.inactivity_timeout,
            unlinked_timeout: Rules::unlinked_timeout_floor(self.unlinked_timeout),
            max_unlinked_connections: self.max_unlinked_connections,
            max_queued_during_auth: self.max_queued_during_auth,
            max_pending_auths: self.max_pending_auths,
            max_message_bytes: self.max_message_bytes,
            valid_username: |name| NAMES[..VALID_NAMES].contains(&name),
            version_accepted: |version| {
                VERSIONS
                    .iter()
                    .find(|(known, _)| *known == version)
                    .unwrap_or_else(|| panic!("version {version:?} not in the table"))
                    .1
            },
        }
    }

    fn answers_pings(&self, conn: ConnectionId) -> bool {
        match self.ping_answers {
            PingAnswers::Manual => false,
            PingAnswers::All => true,
            PingAnswers::AllBut(silent) => silent & (1 << (conn.get() % 8)) == 0,
        }
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn decision() -> impl Strategy<Value = Decision> {
    prop_oneof![
        4 => Just(Decision::Accept),
        2 => (0..REJECT_REASONS.len()).prop_map(Decision::Reject),
        1 => Just(Decision::Failed),
    ]
}

fn ping_answers() -> impl Strategy<Value = PingAnswers> {
    prop_oneof![
        2 => Just(PingAnswers::Manual),
        2 => Just(PingAnswers::All),
        3 => any::<u8>().prop_map(PingAnswers::AllBut),
    ]
}

/// A setup; in a fifth of the cases the unlinked limits are off, as before they existed, and
/// each other timer is off in some cases too.
fn setup() -> impl Strategy<Value = Setup> {
    (
        (
            any::<bool>(),
            prop_oneof![4 => Just(true), 1 => Just(false)],
            prop::sample::select(vec![ms(0), ms(1), ms(100), ms(600), ms(2_000), ms(10_000)]),
            prop::sample::select(vec![ms(0), ms(1), ms(500), ms(15_000)]),
            prop::option::weighted(
                0.6,
                prop::sample::select(vec![ms(50), ms(1_000), ms(60_000)]),
            ),
            prop_oneof![1 => Just(false), 4 => Just(true)],
            prop::option::weighted(
                0.7,
                prop::sample::select(vec![ms(0), ms(300), ms(1_000), ms(2_500)]),
            ),
            prop::option::weighted(
                0.5,
                prop_oneof![1 => Just(0_usize), 3 => Just(1_usize), 4 => Just(2_usize), 4 => Just(4_usize)],
            ),
        ),
        (
            prop::sample::select(vec![0_usize, 1, 2, 64]),
            prop::sample::select(vec![1_usize, 2, 4096]),
            prop::sample::select(vec![96_usize, 1 << 20]),
            prop::sample::select(vec![1_usize, 4 << 20]),
            ping_answers(),
            prop::collection::vec(prop::option::of(decision()), 1..6),
        ),
    )
        .prop_map(
            |(
                (
                    application,
                    accept_new_users,
                    auth_timeout,
                    ping_interval,
                    inactivity_timeout,
                    unlinked_limits,
                    unlinked_timeout,
                    max_unlinked_connections,
                ),
                (
                    max_queued_during_auth,
                    max_pending_auths,
                    max_message_bytes,
                    max_buffered_bytes,
                    ping_answers,
                    immediate,
                ),
            )| Setup {
                application,
                accept_new_users,
                auth_timeout,
                ping_interval,
                inactivity_timeout,
                unlinked_timeout: unlinked_timeout.filter(|_| unlinked_limits),
                max_unlinked_connections: max_unlinked_connections.filter(|_| unlinked_limits),
                max_queued_during_auth,
                max_pending_auths,
                max_message_bytes,
                max_buffered_bytes,
                ping_answers,
                immediate,
            },
        )
}
fn conn_pick() -> impl Strategy<Value = ConnPick> {
    prop_oneof![
        8 => any::<prop::sample::Index>().prop_map(|i| ConnPick::Linked(i.index(1 << 16))),
        10 => any::<prop::sample::Index>().prop_map(|i| ConnPick::Open(i.index(1 << 16))),
        2 => any::<prop::sample::Index>().prop_map(|i| ConnPick::Any(i.index(1 << 16))),
        1 => Just(ConnPick::Bogus),
    ]
}

fn name() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0..VALID_NAMES, 1 => VALID_NAMES..NAMES.len()]
}

/// A name for a server command: mostly a user that exists at this point.
fn user_pick() -> impl Strategy<Value = NamePick> {
    prop_oneof![
        3 => any::<prop::sample::Index>().prop_map(|i| NamePick::User(i.index(1 << 16))),
        1 => name().prop_map(NamePick::Pool),
    ]
}

fn auth_field() -> impl Strategy<Value = AuthField> {
    prop_oneof![
        3 => Just(AuthField::Absent),
        3 => Just(AuthField::Token),
        1 => Just(AuthField::Other),
        1 => Just(AuthField::Number),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        10 => (0..CUSTOM_KINDS.len(), any::<u8>(), any::<bool>())
            .prop_map(|(kind, n, extra)| Payload::Custom { kind, n, extra }),
        1 => Just(Payload::Big),
        2 => (0..NOT_JSON.len()).prop_map(Payload::NotJson),
        2 => (0..NOT_OBJECTS.len()).prop_map(Payload::NotObject),
        2 => (0..RESERVED.len()).prop_map(Payload::Reserved),
        3 => Just(Payload::Unlink),
        2 => Just(Payload::Leave),
        12 => (name(), prop_oneof![6 => Just(0_usize), 2 => 0..VERSIONS.len()], auth_field())
            .prop_map(|(name, version, auth)| Payload::Link { name, version, auth }),
        1 => (0..BAD_LINK_PAYLOADS.len()).prop_map(Payload::LinkInvalid),
    ]
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        12 => Just(Encoding::Text),
        2 => Just(Encoding::Binary),
        1 => Just(Encoding::BinaryNotUtf8),
    ]
}

fn wait() -> impl Strategy<Value = Wait> {
    let durations = || {
        prop::sample::select(vec![
            ms(0),
            ms(1),
            ms(37),
            ms(100),
            ms(299),
            ms(600),
            ms(1_000),
            ms(3_000),
            ms(11_000),
            ms(70_000),
        ])
    };
    prop_oneof![
        6 => durations().prop_map(Wait::For),
        5 => Just(Wait::ToTimeout),
        2 => Just(Wait::JustBeforeTimeout),
        1 => Just(Wait::Backwards),
        2 => durations().prop_map(Wait::Silently),
        2 => Just(Wait::SilentlyToTimeout),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        16 => Just(Step::Open),
        1 => any::<prop::sample::Index>().prop_map(|i| Step::OpenDuplicate(i.index(1 << 16))),
        80 => (conn_pick(), payload(), encoding()).prop_map(|(c, p, e)| Step::Frame(c, p, e)),
        6 => conn_pick().prop_map(Step::Close),
        5 => conn_pick().prop_map(Step::Pong),
        2 => any::<prop::sample::Index>().prop_map(|i| Step::LatePong(i.index(1 << 16))),
        2 => (conn_pick(), 0..3_usize).prop_map(|(c, v)| Step::Violation(c, v)),
        14 => (
            prop_oneof![
                6 => any::<prop::sample::Index>().prop_map(|i| AuthPick::Pending(i.index(1 << 16))),
                3 => any::<prop::sample::Index>().prop_map(|i| AuthPick::Seen(i.index(1 << 16))),
                1 => Just(AuthPick::Bogus),
            ],
            decision()
        )
            .prop_map(|(a, d)| Step::Decide(a, d)),
        24 => wait().prop_map(Step::Wait),
        5 => name().prop_map(Step::Join),
        3 => user_pick().prop_map(Step::Kick),
        3 => user_pick().prop_map(Step::Unlink),
        5 => (user_pick(), any::<u8>()).prop_map(|(n, m)| Step::Send(n, m)),
        5 => (prop::option::of(user_pick()), any::<u8>()).prop_map(|(s, m)| Step::Broadcast(s, m)),
    ]
}

// ---------------------------------------------------------------------------------------------
// The harness: drives the core and the reference side by side and compares them.
// ---------------------------------------------------------------------------------------------

/// What one connection knows of the users, from the presence messages it received.
#[derive(Debug, Default)]
struct View {
    users: Vec<(String, bool)>,
    /// A presence message that made no sense for this view (e.g. `linked` of an unknown user).
    anomaly: Option<String>,
}

impl View {
    fn apply(&mut self, kind: &str, username: &str) {
        let position = self.users.iter().position(|(name, _)| name == username);
        match (kind, position) {
            ("krmx/joined", None) => self.users.push((username.to_owned(), false)),
            ("krmx/linked", Some(i)) if !self.users[i].1 => self.users[i].1 = true,
            ("krmx/unlinked", Some(i)) if self.users[i].1 => self.users[i].1 = false,
            ("krmx/left", Some(i)) if !self.users[i].1 => {
                self.users.remove(i);
            }
            _ => {
                if self.anomaly.is_none() {
                    self.anomaly = Some(format!("{kind} {username} with view {:?}", self.users));
                }
            }
        }
    }
}

struct Harness {
    setup: Setup,
    krmx: Krmx,
    reference: Reference,
    /// The test's clock: the time of the next input. A silent wait moves it without a tick;
    /// `reference.now` is the time of the latest input.
    now: Instant,
    next_conn: u64,
    /// Every connection the test opened, in order.
    opened: Vec<ConnectionId>,
    /// Closed by the test (`ConnectionClosed`) or by an `Output::Close`: no output may address
    /// them any more.
    closed: BTreeSet<ConnectionId>,
    views: BTreeMap<ConnectionId, View>,
    /// Users and links as the events tell them, in join order.
    event_users: Vec<(String, Option<ConnectionId>)>,
    /// Every `AuthId` the core minted, in order.
    seen_auths: Vec<AuthId>,
    /// The core's id of each of the reference's authentications.
    core_auth_ids: BTreeMap<u64, AuthId>,
    /// `AuthRequested` events drained from the core and from the reference, for the cycling
    /// through `setup.immediate`.
    core_auth_requests: usize,
    reference_auth_requests: usize,
    /// The core's results for the pongs the drain loop fed since the last input.
    answers: Vec<Result<(), Error>>,
    /// The time of the input being drained: pings are reported sent at that time.
    fed_at: Instant,
    /// The outputs of the current step.
    outputs: Vec<Output>,
    /// Every input result and output, for the determinism check.
    log: Vec<String>,
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("core sent invalid JSON {text:?}: {e}"))
}

/// An output in the reference's comparable form.
fn describe(output: &Output) -> Expected {
    match output {
        Output::Send { to, text } => (Some(*to), parse(text)),
        Output::Ping { to } => (Some(*to), json!("ping")),
        Output::Close { to, code, reason } => (Some(*to), reference::close_value(code.0, reason)),
        Output::Event(event) => (
            None,
            match event {
                Event::AuthRequested {
                    conn,
                    username,
                    is_new_user,
                    auth,
                    ..
                } => json!({
                    "event": "auth",
                    "conn": conn.get(),
                    "username": username.as_str(),
                    "is_new_user": is_new_user,
                    "auth": auth,
                }),
                Event::Joined { username } => {
                    json!({"event": "joined", "username": username.as_str()})
                }
                Event::Linked { username, conn } => {
                    json!({"event": "linked", "username": username.as_str(), "conn": conn.get()})
                }
                Event::Unlinked { username, conn } => {
                    json!({"event": "unlinked", "username": username.as_str(), "conn": conn.get()})
                }
                Event::Left { username } => json!({"event": "left", "username": username.as_str()}),
                Event::Message { username, message } => json!({
                    "event": "message",
                    "username": username.as_str(),
                    "text": message.to_text().as_str(),
                }),
                Event::Closed => json!({"event": "closed"}),
                other => json!(format!("{other:?}")),
            },
        ),
        other => (None, json!(format!("{other:?}"))),
    }
}

/// The outputs one output stands for: a broadcast as a send to each recipient, in order.
fn expand(output: Output) -> Vec<Output> {
    match output {
        Output::Broadcast { to, text } => to
            .into_iter()
            .map(|to| Output::Send {
                to,
                text: text.clone(),
            })
            .collect(),
        output => vec![output],
    }
}

fn describe_all(outputs: &[Output]) -> Vec<Expected> {
    outputs.iter().map(describe).collect()
}

fn show(outputs: &[Expected]) -> String {
    outputs
        .iter()
        .map(|(to, value)| match to {
            Some(conn) => format!("\n    {conn}: {value}"),
            None => format!("\n    event {value}"),
        })
        .collect()
}

impl Harness {
    fn new(setup: Setup, start: Instant) -> Self {
        let mut krmx = Krmx::new(setup.config());
        krmx.handle_input(start, Input::Listen { port: 8082 })
            .unwrap();
        assert_eq!(
            krmx.poll_output(),
            Some(Output::Event(Event::Listening { port: 8082 }))
        );
        assert_eq!(krmx.poll_output(), None);
        let rules = setup.rules();
        // The floors the reference applies are the ones the core's configuration applies.
        let config = krmx.config();
        assert_eq!(config.auth_timeout_value(), rules.auth_timeout);
        assert_eq!(config.ping_interval_value(), rules.ping_interval);
        assert_eq!(config.inactivity_timeout_value(), rules.inactivity_timeout);
        assert_eq!(config.unlinked_timeout_value(), rules.unlinked_timeout);
        assert_eq!(
            config.max_unlinked_connections_value(),
            rules.max_unlinked_connections
        );
        let reference = Reference::listening(rules, start);
        let harness = Self {
            setup,
            krmx,
            reference,
            now: start,
            next_conn: 1,
            opened: Vec::new(),
            closed: BTreeSet::new(),
            views: BTreeMap::new(),
            event_users: Vec::new(),
            seen_auths: Vec::new(),
            core_auth_ids: BTreeMap::new(),
            core_auth_requests: 0,
            reference_auth_requests: 0,
            answers: Vec::new(),
            fed_at: start,
            outputs: Vec::new(),
            log: Vec::new(),
        };
        harness.check_invariants();
        harness
    }

    fn feed(&mut self, input: Input) -> Result<(), Error> {
        self.feed_at(self.now, input)
    }

    /// Feeds one input to the core at `at` and drains every output (deciding authentications
    /// and answering pings on the spot when the setup says so); does the same with the
    /// reference, and compares the results and the outputs, in order.
    fn feed_at(&mut self, at: Instant, input: Input) -> Result<(), Error> {
        let description = format!("{input:?}");
        let first = self.outputs.len();
        let result = self.krmx.handle_input(at, input.clone());
        self.log.push(format!("> {description} = {result:?}"));
        self.fed_at = at;
        self.drain();
        let (expected_result, expected_answers) = self.expect(at, &input);
        let when = self.reference.at(self.reference.now);
        assert_eq!(
            result, expected_result,
            "{description} at {when}: the result differs from the reference's"
        );
        let actual = describe_all(&self.outputs[first..]);
        let expected = std::mem::take(&mut self.reference.out);
        if actual != expected {
            let at = actual
                .iter()
                .zip(&expected)
                .position(|(a, e)| a != e)
                .unwrap_or(actual.len().min(expected.len()));
            panic!(
                "{description} at {when}: output #{at} is {:?}, the reference expects {:?}\n  \
                 core:{}\n  reference:{}",
                actual.get(at),
                expected.get(at),
                show(&actual),
                show(&expected)
            );
        }
        let answers = std::mem::take(&mut self.answers);
        assert_eq!(
            answers,
            expected_answers,
            "{description} at {when}: results of the pings' reports and pongs\n{}",
            self.log.join("\n")
        );
        let minted: Vec<AuthId> = self.outputs[first..]
            .iter()
            .filter_map(|output| match output {
                Output::Event(Event::AuthRequested { id, .. }) => Some(*id),
                _ => None,
            })
            .collect();
        let requested = std::mem::take(&mut self.reference.requested);
        assert_eq!(minted.len(), requested.len());
        for (core, reference) in minted.into_iter().zip(requested) {
            self.reference.auth_ids.insert(core, reference);
            self.core_auth_ids.insert(reference, core);
        }
        result
    }

    /// The immediate decision for the next `AuthRequested`, cycling through the setup's list.
    fn immediate_decision(&self, requests_so_far: usize) -> Option<Decision> {
        self.setup.immediate[requests_so_far % self.setup.immediate.len()]
    }

    fn drain(&mut self) {
        // A broadcast is compared as the sends it stands for, recipient by recipient.
        while let Some(output) = self.krmx.poll_output() {
            for output in expand(output) {
                self.drain_one(output);
            }
        }
    }

    fn drain_one(&mut self, output: Output) {
        {
            self.log.push(format!("{output:?}"));
            self.observe(&output);
            self.outputs.push(output.clone());
            match output {
                Output::Event(Event::AuthRequested { id, .. }) => {
                    let policy = self.immediate_decision(self.core_auth_requests);
                    self.core_auth_requests += 1;
                    if let Some(decision) = policy {
                        let result = self.krmx.handle_input(
                            self.now,
                            Input::AuthDecided {
                                id,
                                decision: decision.to_core(),
                            },
                        );
                        self.log
                            .push(format!("> immediate {id} {decision:?} = {result:?}"));
                        assert_eq!(result, Ok(()));
                    }
                }
                Output::Ping { to } => {
                    // The transport writes the ping at once. The input that pinged may have
                    // closed the connection after its ping round: then the report and the
                    // pong are for an unknown connection.
                    let sent = self
                        .krmx
                        .handle_input(self.fed_at, Input::PingSent { conn: to });
                    self.log.push(format!("> sent {to} = {sent:?}"));
                    self.answers.push(sent);
                    if !self.setup.answers_pings(to) {
                        return;
                    }
                    let result = self.krmx.handle_input(self.now, Input::Pong { conn: to });
                    self.log.push(format!("> answer {to} = {result:?}"));
                    self.answers.push(result);
                }
                _ => {}
            }
        }
    }

    /// The reference's side of `feed_at`: the input, then the same immediate decisions and
    /// pongs as the drain loop, at the same points of the output stream.
    /// Returns the input's result and those of the pongs.
    fn expect(
        &mut self,
        at: Instant,
        input: &Input,
    ) -> (Result<(), Error>, Vec<Result<(), Error>>) {
        // The core closes lazily while a connection is linked (else at once).
        let anyone_linked = self
            .reference
            .connections
            .values()
            .any(|connection| matches!(connection.link, reference::Link::Linked(_)));
        let result = self.reference.handle(at, input);
        let closing = matches!(input, Input::Close) && result.is_ok() && anyone_linked;
        let mut expected_answers = Vec::new();
        let (mut next, mut requests) = (0, 0);
        while let Some((to, value)) = self.reference.out.get(next).cloned() {
            next += 1;
            if value["event"] == "auth" {
                let id = self.reference.requested[requests];
                requests += 1;
                let policy = self.immediate_decision(self.reference_auth_requests);
                self.reference_auth_requests += 1;
                if let Some(decision) = policy {
                    self.reference.decide_now(self.now, id, &decision.to_core());
                }
            } else if value == "ping" && closing {
                // The pings of a round due before the close: the core closes lazily, so while
                // it drains the close the connection is still open (and the report and the
                // pong change nothing); the reference closed every connection at once.
                let conn = to.unwrap();
                expected_answers.push(Ok(()));
                if self.setup.answers_pings(conn) {
                    expected_answers.push(Ok(()));
                }
            } else if value == "ping" {
                let conn = to.unwrap();
                expected_answers.push(self.reference.handle(at, &Input::PingSent { conn }));
                if self.setup.answers_pings(conn) {
                    let answer = self.reference.handle(self.now, &Input::Pong { conn });
                    expected_answers.push(answer);
                }
            }
        }
        (result, expected_answers)
    }

    /// Checks one output as it is pulled and updates the test's own views.
    fn observe(&mut self, output: &Output) {
        let addressed = match output {
            Output::Send { to, .. } | Output::Ping { to } | Output::Close { to, .. } => Some(*to),
            _ => None,
        };
        if let Some(to) = addressed {
            assert!(
                self.opened.contains(&to),
                "{output:?} addresses a connection never opened"
            );
            assert!(
                !self.closed.contains(&to),
                "{output:?} addresses a closed connection"
            );
        }
        match output {
            Output::Send { to, text } => {
                let value = parse(text);
                let kind = value["type"]
                    .as_str()
                    .unwrap_or_else(|| panic!("sent a text without a string type: {text}"));
                if kind == "krmx/accepted" {
                    self.views.insert(*to, View::default());
                } else if let Some(username) = value["payload"]["username"].as_str() {
                    if let Some(view) = self.views.get_mut(to) {
                        view.apply(kind, username);
                    }
                }
            }
            Output::Ping { .. } => {}
            Output::Close { to, .. } => {
                assert!(
                    !self.krmx.connections().any(|c| c == *to),
                    "{output:?} while the core still has the connection"
                );
                self.closed.insert(*to);
            }
            Output::Event(event) => self.observe_event(event),
            other => panic!("unexpected output {other:?}"),
        }
    }

    fn event_user(&mut self, name: &str) -> Option<&mut (String, Option<ConnectionId>)> {
        self.event_users.iter_mut().find(|(user, _)| user == name)
    }

    fn observe_event(&mut self, event: &Event) {
        match event {
            Event::AuthRequested { id, conn, .. } => {
                assert!(
                    self.setup.application,
                    "AuthRequested without AuthMode::Application"
                );
                assert!(
                    !self.closed.contains(conn),
                    "AuthRequested for a closed connection"
                );
                assert!(!self.seen_auths.contains(id), "AuthId {id} minted twice");
                self.seen_auths.push(*id);
            }
            Event::Joined { username } => {
                assert!(
                    self.event_user(username.as_str()).is_none(),
                    "{username} joined twice"
                );
                self.event_users.push((username.to_string(), None));
            }
            Event::Linked { username, conn } => {
                let user = self
                    .event_user(username.as_str())
                    .unwrap_or_else(|| panic!("{username} linked before it joined"));
                assert_eq!(user.1, None, "{username} linked twice");
                user.1 = Some(*conn);
            }
            Event::Unlinked { username, conn } => {
                let user = self
                    .event_user(username.as_str())
                    .unwrap_or_else(|| panic!("{username} unlinked but unknown"));
                assert_eq!(
                    user.1,
                    Some(*conn),
                    "{username} unlinked from the wrong connection"
                );
                user.1 = None;
            }
            Event::Left { username } => {
                let position = self
                    .event_users
                    .iter()
                    .position(|(user, _)| user == username.as_str())
                    .unwrap_or_else(|| panic!("{username} left but unknown"));
                assert_eq!(
                    self.event_users[position].1, None,
                    "{username} left while linked"
                );
                self.event_users.remove(position);
            }
            Event::Message { username, .. } => {
                assert!(
                    self.event_user(username.as_str())
                        .is_some_and(|(_, conn)| conn.is_some()),
                    "message from {username}, who is not linked"
                );
            }
            Event::Closed => assert_eq!(self.krmx.status(), Status::Closed),
            other => panic!("unexpected event {other:?}"),
        }
    }

    /// Resolves a connection pick. A pick among open connections when none is open (and the
    /// server listens) opens one first, so that steps are not wasted.
    fn pick(&mut self, pick: ConnPick) -> ConnectionId {
        let bogus = ConnectionId::new(1_000_000);
        match pick {
            ConnPick::Linked(i) => {
                let linked = self.reference.linked_connections();
                if linked.is_empty() {
                    self.pick(ConnPick::Open(i))
                } else {
                    linked[i % linked.len()]
                }
            }
            ConnPick::Open(i) => {
                if self.reference.connections.is_empty()
                    && self.reference.status() == Status::Listening
                {
                    self.open_connection();
                }
                let open = &self.reference.connections;
                match open.keys().nth(i % open.len().max(1)) {
                    Some(conn) => *conn,
                    None => bogus,
                }
            }
            ConnPick::Any(i) if !self.opened.is_empty() => self.opened[i % self.opened.len()],
            ConnPick::Any(_) | ConnPick::Bogus => bogus,
        }
    }

    fn name(&self, pick: NamePick) -> String {
        let users = &self.reference.users;
        match pick {
            NamePick::User(i) if !users.is_empty() => users[i % users.len()].name.clone(),
            NamePick::User(_) => NAMES[0].to_owned(),
            NamePick::Pool(i) => NAMES[i].to_owned(),
        }
    }

    fn run_step(&mut self, step: &Step) {
        self.outputs.clear();
        self.log.push(format!("step {step:?}"));
        match step {
            Step::Open => self.open_connection(),
            Step::OpenDuplicate(i) => {
                let open = &self.reference.connections;
                let Some(&conn) = open.keys().nth(i % open.len().max(1)) else {
                    return;
                };
                let result = self.feed(Input::ConnectionOpened {
                    conn,
                    target: "/".into(),
                });
                assert_eq!(result, Err(Error::DuplicateConnection(conn)));
            }
            Step::Frame(pick, payload, encoding) => {
                let conn = self.pick(*pick);
                let text = payload.text();
                let frame = match encoding {
                    Encoding::Text => Frame::Text(text),
                    Encoding::Binary => Frame::Binary(text.into_bytes()),
                    Encoding::BinaryNotUtf8 => {
                        let mut bytes = text.into_bytes();
                        bytes.insert(bytes.len() / 2, 0xff);
                        Frame::Binary(bytes)
                    }
                };
                let _ = self.feed(Input::Frame { conn, frame });
            }
            Step::Close(pick) => {
                let conn = self.pick(*pick);
                if self.opened.contains(&conn) {
                    self.closed.insert(conn);
                }
                assert_eq!(self.feed(Input::ConnectionClosed { conn }), Ok(()));
            }
            Step::Pong(pick) => {
                let conn = self.pick(*pick);
                let _ = self.feed(Input::Pong { conn });
            }
            Step::LatePong(i) => {
                let owing: Vec<ConnectionId> = self
                    .reference
                    .connections
                    .iter()
                    .filter(|(_, connection)| connection.awaiting_pong)
                    .map(|(conn, _)| *conn)
                    .collect();
                let (Some(round), false) = (self.reference.ping_round, owing.is_empty()) else {
                    return self.check_invariants();
                };
                self.now = self.now.max(round);
                let conn = owing[i % owing.len()];
                let _ = self.feed(Input::Pong { conn });
            }
            Step::Violation(pick, kind) => {
                let conn = self.pick(*pick);
                let violation = [
                    Violation::MessageTooLarge,
                    Violation::InvalidUtf8,
                    Violation::SlowConsumer,
                ][*kind];
                let _ = self.feed(Input::Violation { conn, violation });
            }
            Step::Decide(pick, decision) => {
                let pending = &self.reference.pending;
                let id = match pick {
                    AuthPick::Pending(i) if !pending.is_empty() => {
                        let reference_id = pending.keys().nth(i % pending.len()).unwrap();
                        self.core_auth_ids[reference_id]
                    }
                    AuthPick::Seen(i) | AuthPick::Pending(i) if !self.seen_auths.is_empty() => {
                        self.seen_auths[i % self.seen_auths.len()]
                    }
                    _ => AuthId::from_number(1_000_000),
                };
                let decision = decision.to_core();
                assert_eq!(self.feed(Input::AuthDecided { id, decision }), Ok(()));
            }
            Step::Wait(wait) => self.wait(*wait),
            Step::Join(name) => {
                let username = NAMES[*name].to_owned();
                let _ = self.feed(Input::Join { username });
            }
            Step::Kick(name) => {
                let username = self.name(*name);
                let _ = self.feed(Input::Kick { username });
            }
            Step::Unlink(name) => {
                let username = self.name(*name);
                let _ = self.feed(Input::Unlink { username });
            }
            Step::Send(name, n) => {
                let username = self.name(*name);
                let message = Message::new("app/send").with_payload(json!(n));
                let _ = self.feed(Input::Send { username, message });
            }
            Step::Broadcast(skip, n) => {
                let skip = skip.map(|pick| self.name(pick));
                let message = Message::new("app/broadcast").with_payload(json!({"n": n}));
                let _ = self.feed(Input::Broadcast { message, skip });
            }
            Step::CloseServer => {
                let _ = self.feed(Input::Close);
                if self.krmx.status() == Status::Closed {
                    assert_eq!(self.krmx.poll_timeout(), None);
                }
            }
        }
        self.check_invariants();
    }

    fn open_connection(&mut self) {
        let conn = ConnectionId::new(self.next_conn);
        self.next_conn += 1;
        self.opened.push(conn);
        let result = self.feed(Input::ConnectionOpened {
            conn,
            target: "/".into(),
        });
        assert_eq!(result, Ok(()));
    }

    fn wait(&mut self, wait: Wait) {
        let timeout = self.krmx.poll_timeout();
        let (target, tick) = match wait {
            Wait::For(duration) => (self.now + duration, true),
            Wait::ToTimeout => (timeout.unwrap_or(self.now + ms(1_000)), true),
            Wait::JustBeforeTimeout => (
                timeout
                    .and_then(|t| t.checked_sub(Duration::from_nanos(1)))
                    .unwrap_or(self.now),
                true,
            ),
            Wait::Silently(duration) => (self.now + duration, false),
            Wait::SilentlyToTimeout => (timeout.unwrap_or(self.now), false),
            Wait::Backwards => {
                let earlier = self.now.checked_sub(ms(5_000)).unwrap_or(self.now);
                let nothing_due = earlier <= self.reference.now;
                assert_eq!(self.feed_at(earlier, Input::Tick), Ok(()));
                if nothing_due {
                    assert_eq!(self.outputs, vec![], "a tick back in time did something");
                    assert_eq!(self.krmx.poll_timeout(), timeout);
                }
                return;
            }
        };
        self.now = self.now.max(target);
        if tick {
            assert_eq!(self.feed(Input::Tick), Ok(()));
        }
    }

    fn check_invariants(&self) {
        let krmx = &self.krmx;
        let reference = &self.reference;
        let now = reference.now;
        let when = reference.at(now);

        // The open connections are the reference's: none closed too early or too late.
        let core_open: BTreeSet<ConnectionId> = krmx.connections().collect();
        let reference_open: BTreeSet<ConnectionId> =
            reference.connections.keys().copied().collect();
        if let Some(conn) = core_open.symmetric_difference(&reference_open).next() {
            let state = if core_open.contains(conn) {
                "open"
            } else {
                "closed"
            };
            panic!(
                "{conn} is {state} in the core at {when}; the reference: {}",
                reference.explain(*conn)
            );
        }

        // Docs (`unlinked_timeout`): a connection that is neither linked nor waiting for a
        // decision does not stay open longer than the unlinked timeout since it opened or was
        // last unlinked.
        if let Some(timeout) = reference.rules().unlinked_timeout {
            for conn in &core_open {
                let connection = &reference.connections[conn];
                if krmx.linked_user(*conn).is_none() && connection.link == reference::Link::Unlinked
                {
                    assert!(
                        connection.unlinked_since + timeout > now,
                        "{conn} unlinked since {} must have been closed (1008 unlinked timeout) \
                         at {}, still open at {when}",
                        reference.at(connection.unlinked_since),
                        reference.at(connection.unlinked_since + timeout),
                    );
                }
            }
        }
        // Docs (`inactivity_timeout`): no user stays unlinked longer than the timeout.
        if let Some(timeout) = reference.rules().inactivity_timeout {
            for user in krmx.users().filter(|user| !user.is_linked) {
                let since = reference
                    .users
                    .iter()
                    .find(|known| known.name == user.username.as_str())
                    .map(|known| known.unlinked_since);
                if let Some(since) = since {
                    assert!(
                        since + timeout > now,
                        "{} unlinked since {} must have been kicked at {}, still there at {when}",
                        user.username,
                        reference.at(since),
                        reference.at(since + timeout),
                    );
                }
            }
        }

        // Users and links, in join order.
        let core_users: Vec<(String, Option<ConnectionId>)> = krmx
            .users()
            .map(|user| {
                let conn = krmx.linked_connection(user.username.as_str());
                assert_eq!(
                    conn.is_some(),
                    user.is_linked,
                    "{}: is_linked",
                    user.username
                );
                (user.username.to_string(), conn)
            })
            .collect();
        assert_eq!(
            core_users,
            reference.user_table(),
            "users at {when} differ from the reference's"
        );
        assert_eq!(self.event_users, core_users, "events disagree with users()");

        // Users and connections are linked one to one.
        let mut linked_conns = BTreeSet::new();
        for (name, conn) in &core_users {
            if let Some(conn) = conn {
                assert!(linked_conns.insert(*conn), "{conn} linked to two users");
                assert_eq!(
                    krmx.linked_user(*conn).map(|u| u.as_str()),
                    Some(name.as_str())
                );
                assert!(
                    core_open.contains(conn),
                    "{name} linked to {conn}, not open"
                );
            }
        }
        for conn in &core_open {
            if let Some(user) = krmx.linked_user(*conn) {
                assert_eq!(krmx.linked_connection(user.as_str()), Some(*conn));
            }
        }

        // Every linked connection's view equals users().
        let users: Vec<(String, bool)> = core_users
            .iter()
            .map(|(name, conn)| (name.clone(), conn.is_some()))
            .collect();
        for conn in &linked_conns {
            let view = self
                .views
                .get(conn)
                .unwrap_or_else(|| panic!("{conn} is linked but never got krmx/accepted"));
            assert_eq!(view.anomaly, None, "{conn}: inconsistent presence messages");
            assert_eq!(view.users, users, "{conn}'s view differs from users()");
        }

        // Pending authentications and deadlines.
        assert_eq!(
            krmx.pending_auths(),
            reference.pending.len(),
            "pending authentications at {when}"
        );
        for id in reference.pending.keys() {
            assert!(krmx.is_auth_pending(self.core_auth_ids[id]));
        }
        assert_eq!(
            krmx.unlinked_connections(),
            reference.unlinked_connections(),
            "unlinked connections at {when}"
        );
        reference.assert_nothing_due();
        let next = reference.next_deadline();
        assert_eq!(
            krmx.poll_timeout(),
            next,
            "poll_timeout at {when}: the reference's next deadline is {:?}",
            next.map(|at| reference.at(at))
        );
        if krmx.status() == Status::Listening && reference.rules().ping_interval.is_some() {
            assert!(krmx.poll_timeout().is_some(), "no ping round scheduled");
        }
    }
}

/// A payload for the timer-focused mix: mostly valid links (to few names), messages and
/// unlinks, so that connections link, wait for decisions, unlink and link again.
fn timer_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        10 => (0..3_usize, prop_oneof![Just(AuthField::Absent), Just(AuthField::Token)])
            .prop_map(|(name, auth)| Payload::Link { name, version: 0, auth }),
        4 => (0..2_usize, any::<u8>()).prop_map(|(kind, n)| Payload::Custom { kind, n, extra: false }),
        4 => Just(Payload::Unlink),
        1 => Just(Payload::Leave),
        1 => (0..NOT_JSON.len()).prop_map(Payload::NotJson),
    ]
}

/// A step of the timer-focused mix: few connections, mostly links, decisions and waits, so that
/// links are pending when deadlines pass and overdue connections link, unlink and link again.
fn timer_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Open),
        30 => (
            prop_oneof![
                2 => any::<prop::sample::Index>().prop_map(|i| ConnPick::Linked(i.index(1 << 16))),
                3 => any::<prop::sample::Index>().prop_map(|i| ConnPick::Open(i.index(1 << 16))),
            ],
            timer_payload()
        )
            .prop_map(|(c, p)| Step::Frame(c, p, Encoding::Text)),
        16 => (
            any::<prop::sample::Index>().prop_map(|i| AuthPick::Pending(i.index(1 << 16))),
            decision()
        )
            .prop_map(|(a, d)| Step::Decide(a, d)),
        30 => wait().prop_map(Step::Wait),
        4 => any::<prop::sample::Index>().prop_map(|i| Step::Pong(ConnPick::Open(i.index(1 << 16)))),
        4 => any::<prop::sample::Index>().prop_map(|i| Step::LatePong(i.index(1 << 16))),
        3 => user_pick().prop_map(Step::Unlink),
        2 => conn_pick().prop_map(Step::Close),
        2 => user_pick().prop_map(Step::Kick),
        2 => name().prop_map(Step::Join),
    ]
}

/// Up to 200 steps from `step`; in a fifth of the cases the server closes at some point.
fn steps_of(step: impl Strategy<Value = Step>) -> impl Strategy<Value = Vec<Step>> {
    (
        prop::collection::vec(step, 1..200),
        prop_oneof![4 => Just(None), 1 => any::<prop::sample::Index>().prop_map(Some)],
    )
        .prop_map(|(mut steps, close)| {
            if let Some(at) = close {
                let at = at.index(steps.len() + 1);
                steps.insert(at, Step::CloseServer);
            }
            steps
        })
}

/// A timer-focused setup: mostly application authentication, whose decisions mostly come
/// later, and an unlinked timeout that a pending link can outlast.
fn timer_setup() -> impl Strategy<Value = Setup> {
    (
        setup(),
        prop::bool::weighted(0.8),
        prop::sample::select(vec![ms(300), ms(1_000), ms(2_500)]),
        prop::sample::select(vec![ms(600), ms(2_000), ms(10_000)]),
        prop::collection::vec(
            prop_oneof![
                3 => Just(None),
                2 => (0..REJECT_REASONS.len()).prop_map(|i| Some(Decision::Reject(i))),
                1 => decision().prop_map(Some),
            ],
            1..6,
        ),
    )
        .prop_map(|(mut setup, focused, unlinked, auth, immediate)| {
            if focused {
                setup.application = true;
                setup.unlinked_timeout = Some(unlinked);
                setup.auth_timeout = auth;
                setup.immediate = immediate;
            }
            setup
        })
}

/// A case: half from the general mix, half timer-focused.
fn case() -> impl Strategy<Value = (Setup, Vec<Step>)> {
    prop_oneof![
        (setup(), steps_of(step())),
        (timer_setup(), steps_of(timer_step())),
    ]
}

/// Runs one case and returns the harness, with its log and the reference's tally.
fn run(setup: &Setup, steps: &[Step], start: Instant) -> Harness {
    let mut harness = Harness::new(setup.clone(), start);
    for step in steps {
        harness.run_step(step);
    }
    harness
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        // Relative to the package root, where cargo runs tests.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/model.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn model((setup, steps) in case()) {
        let start = Instant::now();
        let first = run(&setup, &steps, start).log;
        let second = run(&setup, &steps, start).log;
        prop_assert_eq!(first, second, "two runs of the same inputs differ");
    }
}

/// How often each timer rule fires and each kind of output occurs over the generated cases, so
/// that a generator change cannot silently stop reaching a rule: every counter of the reference's
/// tally must be above zero. `cargo test -p krmx-core --test model generator_statistics --
/// --nocapture` prints them.
#[test]
fn generator_statistics() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut tally = Tally::default();
    let mut setups_with_every_timer = 0;
    let start = Instant::now();
    for _ in 0..256 {
        let (setup, steps) = strategy.new_tree(&mut runner).unwrap().current();
        if setup.application
            && setup.inactivity_timeout.is_some()
            && setup.unlinked_timeout.is_some()
            && setup.max_unlinked_connections.is_some()
            && !setup.ping_interval.is_zero()
        {
            setups_with_every_timer += 1;
        }
        let harness = run(&setup, &steps, start);
        tally.add(&harness.reference.tally);
        for line in harness.log {
            let key = if let Some(rest) = line.strip_prefix("Event(") {
                format!("event {}", rest.split([' ', '(']).next().unwrap_or(""))
            } else if line.starts_with("Close") {
                let reason = line.split("reason: ").nth(1).unwrap_or("");
                format!("close {reason}")
            } else if line.starts_with("Send") {
                let kind = line.split("type\\\":\\\"").nth(1).unwrap_or("");
                let kind = kind.split('\\').next().unwrap_or("");
                let reason = line.split("reason\\\":\\\"").nth(1).unwrap_or("");
                format!("send {kind} {}", reason.split('\\').next().unwrap_or(""))
            } else if line.starts_with("> ") {
                let result = line.rsplit(" = ").next().unwrap_or("");
                let bogus = if line.contains("1000000") {
                    "bogus "
                } else {
                    ""
                };
                let input = line
                    .trim_start_matches("> ")
                    .split([' ', '{', '('])
                    .next()
                    .unwrap_or("");
                format!(
                    "input {bogus}{input} = {}",
                    result.split('(').take(2).collect::<Vec<_>>().join("(")
                )
            } else {
                line.split([' ', '(', '{']).next().unwrap_or("").to_owned()
            };
            *counts.entry(key).or_default() += 1;
        }
    }
    for (key, count) in &counts {
        println!("{count:>8}  {key}");
    }
    println!("{setups_with_every_timer:>8}  setups with every timer and limit on");
    for (rule, count) in tally.entries() {
        println!("{count:>8}  reference: {rule}");
    }
    assert!(setups_with_every_timer > 0, "no setup turns every timer on");
    for (rule, count) in tally.entries() {
        assert!(count > 0, "the generated runs never reach: {rule}");
    }
}

/// Cases found by the search, and timer chains too long to leave to chance, kept as fixed step
/// lists so they survive generator changes. Each is judged by the reference like any case.
#[test]
fn model_regressions() {
    let plain = Setup {
        application: false,
        accept_new_users: true,
        auth_timeout: ms(10_000),
        ping_interval: ms(0),
        inactivity_timeout: None,
        unlinked_timeout: None,
        max_unlinked_connections: None,
        max_queued_during_auth: 64,
        max_pending_auths: 4096,
        max_message_bytes: 1 << 20,
        max_buffered_bytes: 4 << 20,
        ping_answers: PingAnswers::Manual,
        immediate: vec![None],
    };
    let link_alice = || {
        Step::Frame(
            ConnPick::Open(0),
            Payload::Link {
                name: 0,
                version: 0,
                auth: AuthField::Absent,
            },
            Encoding::Text,
        )
    };
    let start = Instant::now();

    // The transport reports a linked connection closed: the core used to send that gone
    // connection its own `krmx/unlinked` (fixed in 1b50a96).
    let gone_peer = [Step::Open, link_alice(), Step::Close(ConnPick::Open(0))];
    assert_eq!(
        run(&plain, &gone_peer, start).log,
        run(&plain, &gone_peer, start).log
    );

    // Docs (`unlinked_timeout`): a link pending when the unlinked timeout runs out and then
    // accepted stays; once unlinked again its clock starts afresh, so a later link rejected in
    // time must not close it, and only the new deadline does.
    let overdue = Setup {
        application: true,
        unlinked_timeout: Some(ms(300)),
        auth_timeout: ms(2_000),
        ..plain.clone()
    };
    let relink_after_overdue = [
        Step::Open,
        link_alice(),
        Step::Wait(Wait::ToTimeout),
        Step::Decide(AuthPick::Pending(0), Decision::Accept),
        Step::Frame(ConnPick::Linked(0), Payload::Unlink, Encoding::Text),
        link_alice(),
        Step::Decide(AuthPick::Pending(0), Decision::Reject(0)),
        Step::Wait(Wait::JustBeforeTimeout),
        Step::Wait(Wait::ToTimeout),
    ];
    let harness = run(&overdue, &relink_after_overdue, start);
    let tally = &harness.reference.tally;
    assert_eq!(tally.overdue_links_accepted, 1);
    assert_eq!(tally.rejections_after_overdue_link, 1);
    assert_eq!(tally.unlinked_timeout_closes, 1);
    assert_eq!(harness.reference.at(harness.reference.now), "+600 ms");

    // Docs (`handle_input`): a pong that arrived in time is handled before the ping round that
    // is due when the caller wakes late, so the connection stays and is pinged again.
    let pings = Setup {
        ping_interval: ms(500),
        ..plain
    };
    let late_pong = [
        Step::Open,
        Step::Wait(Wait::ToTimeout),
        Step::LatePong(0),
        Step::Wait(Wait::For(ms(0))),
    ];
    let harness = run(&pings, &late_pong, start);
    let tally = &harness.reference.tally;
    assert_eq!((tally.late_pongs_in_time, tally.pings), (1, 2));
    assert_eq!(tally.ping_timeout_closes, 0);
}
