//! The simulated world: one server state machine, many clients, a network of per-connection
//! FIFO queues, a virtual clock, and a ledger of the messages each client is owed.

// Indices here are either drawn with `rng.index(len)` from the very list they index, or a
// wire's owner (`Owner::Client(i)`, `Owner::Chaos(j)`) into the client and chaos lists, which are
// built once per seed and never shrink. A harness bug panics, and the seed's runner reports it.
#![allow(clippy::indexing_slicing)]

use crate::check::{ServerChecker, client_disagreement};
use crate::deadlines::Judged;
use crate::rng::SplitMix64;
use krmx_core::{
    AuthDecision, AuthId, AuthMode, ClientConfig, ClientEvent, ClientInput, ClientOutput,
    ClientStatus, ConnectionId, Error, Event, Frame, Input, Krmx, KrmxClient, KrmxConfig, Message,
    Output, QueryRequirement, Status, Text,
};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// What a seed decides about a run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Well-behaved clients (each a [`KrmxClient`] linking its own user `userN`).
    pub clients: usize,
    /// Chaotic raw connections: random frames, links to anyone's name, silence to pings.
    pub chaos: usize,
    /// Raw connections that link as they connect, then unlink and link again back to back.
    pub relinkers: usize,
    /// Clients link users in pairs (`c0` and `c1` both `user0`, ...): links of one user race,
    /// the loser is rejected as already linked and tries again later.
    pub shared_names: bool,
    /// Links wait for the application's decision.
    pub application_auth: bool,
    /// The authentication timeout.
    pub auth_timeout: Duration,
    /// Per mille of decisions made at once (else later, possibly after the timeout, or never).
    pub decide_at_once: u64,
    /// Per mille of decisions that never come (the timeout rejects).
    pub decide_never: u64,
    /// Per mille of decisions that reject.
    pub decide_reject: u64,
    /// Per mille of links rejected at once when their connection was linked before.
    pub reject_relinks: u64,
    /// The ping interval, if pings are on.
    pub ping: Option<Duration>,
    /// Well-behaved clients whose WebSocket library does not answer pings (the last ones).
    pub deaf_clients: usize,
    /// The inactivity timeout, if on.
    pub inactivity: Option<Duration>,
    /// The unlinked timeout, if on.
    pub unlinked_timeout: Option<Duration>,
    /// The most connections open and not linked at once, if bounded.
    pub max_unlinked: Option<usize>,
    /// The most frames kept during a pending link.
    pub max_queued_during_auth: usize,
    /// The most authentications pending at once.
    pub max_pending_auths: usize,
    /// The largest message a client may send.
    pub max_message_bytes: usize,
    /// Connections must carry `?room=`.
    pub query_rule: bool,
    /// Scheduler steps before the network is settled.
    pub steps: usize,
    /// Per mille of steps that drop a connection.
    pub drop_rate: u64,
    /// Per mille of drained outputs after which a connection drops (mid-broadcast).
    pub mid_drain_drop_rate: u64,
    /// Per mille of steps where the application acts (broadcast, send, kick, unlink, join).
    pub app_rate: u64,
    /// Largest small clock step, in ms.
    pub max_step_ms: u64,
}

impl Params {
    /// The parameters a seed stands for: one in five seeds turns every timer and limit on, one
    /// in seven turns every timer off (auth timeouts aside), the others pick each at random.
    #[must_use]
    pub fn from_rng(rng: &mut SplitMix64) -> Self {
        let mode = rng.below(35);
        let (all_on, all_off) = (mode < 7, mode >= 30);
        let on =
            |rng: &mut SplitMix64, per_mille: u64| !all_off && (all_on || rng.chance(per_mille));
        let application_auth = all_on || rng.chance(600);
        let auth_timeout = Duration::from_millis(rng.range(20, 200));
        let clients = usize::try_from(rng.range(2, 8)).unwrap_or(2);
        let chaos = usize::try_from(rng.range(0, 2)).unwrap_or(0);
        let relinkers = usize::try_from(rng.range(2 * u64::from(all_on), 3)).unwrap_or(0);
        let ping = on(rng, 500).then(|| Duration::from_millis(rng.range(100, 500)));
        let deaf_clients = if ping.is_some() && rng.chance(300) {
            1
        } else {
            0
        };
        let inactivity = on(rng, 300).then(|| Duration::from_millis(rng.range(200, 1500)));
        // With every timer on, the unlinked timeout is close to the auth timeout, so that it often
        // runs out while a link waits for its decision.
        let auth_ms = u64::try_from(auth_timeout.as_millis()).unwrap_or(20);
        let unlinked_ms = if all_on {
            (auth_ms / 4, auth_ms / 2)
        } else {
            (30, 400)
        };
        let unlinked_timeout =
            on(rng, 350).then(|| Duration::from_millis(rng.range(unlinked_ms.0, unlinked_ms.1)));
        let fewest = if all_on { 2 } else { 1 };
        let max_unlinked = on(rng, 250).then(|| usize::try_from(rng.range(fewest, 4)).unwrap_or(1));
        let max_queued_during_auth = if on(rng, 300) {
            usize::try_from(rng.range(0, 3)).unwrap_or(0)
        } else {
            krmx_core::DEFAULT_MAX_QUEUED_DURING_AUTH
        };
        let max_pending_auths = if on(rng, 200) {
            usize::try_from(rng.range(fewest, 4)).unwrap_or(1)
        } else {
            krmx_core::DEFAULT_MAX_PENDING_AUTHS
        };
        let max_message_bytes = if on(rng, 200) {
            usize::try_from(rng.range(200, 400)).unwrap_or(200)
        } else {
            krmx_core::DEFAULT_MAX_MESSAGE_BYTES
        };
        Self {
            clients,
            chaos,
            relinkers,
            shared_names: rng.chance(300),
            application_auth,
            auth_timeout,
            decide_at_once: rng.range(0, 800),
            decide_never: rng.range(0, 100),
            decide_reject: rng.range(0, 200),
            reject_relinks: if all_on || rng.chance(500) {
                rng.range(300, 1000)
            } else {
                0
            },
            ping,
            deaf_clients,
            inactivity,
            unlinked_timeout,
            max_unlinked,
            max_queued_during_auth,
            max_pending_auths,
            max_message_bytes,
            query_rule: rng.chance(300),
            steps: usize::try_from(rng.range(300, 1200)).unwrap_or(300),
            drop_rate: rng.range(5, 40),
            mid_drain_drop_rate: rng.range(0, 20),
            app_rate: rng.range(10, 60),
            max_step_ms: rng.range(1, 60),
        }
    }

    fn config(&self) -> KrmxConfig {
        let mut config = KrmxConfig::default()
            .auth(if self.application_auth {
                AuthMode::Application
            } else {
                AuthMode::None
            })
            .auth_timeout(self.auth_timeout)
            .ping_interval(self.ping.unwrap_or(Duration::ZERO))
            .inactivity_timeout(self.inactivity)
            .unlinked_timeout(self.unlinked_timeout)
            .max_unlinked_connections(self.max_unlinked)
            .max_queued_during_auth(self.max_queued_during_auth)
            .max_pending_auths(self.max_pending_auths)
            .max_message_bytes(self.max_message_bytes);
        if self.query_rule {
            config = config.query("room", QueryRequirement::Present);
        }
        config
    }
}

/// What happened in a run, summed over seeds by the test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Deliveries owed to a well-behaved client and received, exactly once, in order.
    pub owed_received: u64,
    /// Owed deliveries lost because the connection dropped first.
    pub owed_lost_to_drops: u64,
    /// Owed deliveries the client discarded after it unlinked, left or disconnected itself.
    pub owed_discarded_by_client: u64,
    /// Messages sent by well-behaved clients and relayed by the server application.
    pub relayed: u64,
    /// Sent messages that never reached the server's application: dropped, or the server
    /// unlinked or closed the connection first.
    pub sends_lost: u64,
    /// Connections dropped by the network (mid-drain drops included).
    pub drops: u64,
    /// Connections dropped while their link waited for the application.
    pub drops_while_pending: u64,
    /// Connections dropped between the server draining two outputs.
    pub mid_drain_drops: u64,
    /// Links accepted by the server (`Linked` events).
    pub links: u64,
    /// Authentications requested.
    pub auth_requests: u64,
    /// Decisions that came after the timeout or the connection's close, and were ignored.
    pub late_decisions: u64,
    /// `authentication timeout` rejections sent.
    pub auth_timeouts: u64,
    /// Connections the server closed (ping timeouts, policy).
    pub server_closes: u64,
    /// Scheduler steps.
    pub steps: u64,
    /// Server outputs checked.
    pub outputs: u64,
    /// Timer and limit outcomes judged against the reference of their deadlines.
    pub timers: Judged,
}

impl Stats {
    /// Adds another run's numbers.
    pub fn add(&mut self, other: &Self) {
        self.owed_received += other.owed_received;
        self.owed_lost_to_drops += other.owed_lost_to_drops;
        self.owed_discarded_by_client += other.owed_discarded_by_client;
        self.relayed += other.relayed;
        self.sends_lost += other.sends_lost;
        self.drops += other.drops;
        self.drops_while_pending += other.drops_while_pending;
        self.mid_drain_drops += other.mid_drain_drops;
        self.links += other.links;
        self.auth_requests += other.auth_requests;
        self.late_decisions += other.late_decisions;
        self.auth_timeouts += other.auth_timeouts;
        self.server_closes += other.server_closes;
        self.steps += other.steps;
        self.outputs += other.outputs;
        self.timers.add(&other.timers);
    }
}

/// Who holds the client end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Client(usize),
    Chaos(usize),
}

/// Client to server.
#[derive(Debug, Clone)]
enum Up {
    /// The WebSocket handshake.
    Open(String),
    Frame(Frame),
    Pong,
    /// The client closed, or the network's drop reaches the server.
    Closed,
}

/// Server to client.
#[derive(Debug, Clone)]
enum Down {
    /// The handshake's answer.
    Opened,
    Text(Text),
    Ping,
    /// A close frame (or the connection's end).
    Close,
}

/// One connection: a FIFO each way, as TCP keeps a connection's order.
#[derive(Debug)]
struct Wire {
    owner: Owner,
    up: VecDeque<Up>,
    down: VecDeque<Down>,
    /// The server is done with it (closed it, or was told it closed): what still comes up is
    /// discarded.
    server_done: bool,
    /// The client end is closed: nothing more is delivered to it.
    client_done: bool,
    /// Dropped by the network: what the server still sends is discarded.
    dropped: bool,
}

impl Wire {
    fn deliverable_up(&self) -> bool {
        !self.up.is_empty()
    }

    fn deliverable_down(&self) -> bool {
        !self.down.is_empty() && !self.client_done
    }
}

/// A message of the simulation: its sender and the sender's sequence number.
type MsgId = (String, u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pending,
    Done,
    Excused,
}

/// A well-behaved client.
#[derive(Debug)]
struct SimClient {
    /// The client's own label (`c0`, `c1`, ...): the sender in its messages' payload.
    label: String,
    /// The user it links: its own, or shared with another client (two devices of one user).
    name: String,
    client: KrmxClient,
    conn: Option<ConnectionId>,
    next_seq: u64,
    /// The client unlinked, left or disconnected since its last `krmx/accepted`: custom
    /// messages still on their way may be discarded by it.
    left_since_accept: bool,
    /// Its WebSocket library does not answer pings.
    deaf: bool,
}

/// A raw connection: chaotic, or (from index `Params::chaos` on) a relinker.
#[derive(Debug)]
struct Chaos {
    conn: Option<ConnectionId>,
    answers_pings: bool,
    /// A relinker was sent `krmx/accepted` since it last linked.
    accepted: bool,
}

/// The outcome of a failed run.
pub type Failure = String;

/// One simulated run.
pub struct World {
    rng: SplitMix64,
    params: Params,
    now: Instant,
    server: Krmx,
    checker: ServerChecker,
    wires: BTreeMap<ConnectionId, Wire>,
    next_conn: u64,
    clients: Vec<SimClient>,
    /// The chaotic connections, then the relinkers.
    chaos: Vec<Chaos>,
    /// Decisions the application makes later: when, for which attempt, what.
    decisions: Vec<(Instant, AuthId, AuthDecision)>,
    /// Deliveries owed: to which connection, which message.
    owed: BTreeMap<(ConnectionId, MsgId), Fate>,
    /// Messages sent by well-behaved clients: their connection, the link epoch, their fate.
    sent: BTreeMap<MsgId, (ConnectionId, u64, Fate)>,
    /// Every simulation message's exact text.
    texts: BTreeMap<MsgId, Text>,
    /// The last sequence number received per receiving connection and sender.
    last_seq: BTreeMap<(ConnectionId, String), u64>,
    /// Link epochs: how many times each connection was linked.
    epochs: BTreeMap<ConnectionId, u64>,
    /// Connections (with their epoch) the application unlinked or kicked.
    app_unlinked: BTreeSet<(ConnectionId, u64)>,
    server_seq: u64,
    direct_seq: u64,
    /// The last relinker message's number.
    relinker_seq: u64,
    npcs: u64,
    stats: Stats,
    /// Authentication attempts and their connections.
    auth_conns: BTreeMap<AuthId, ConnectionId>,
    trace: Vec<String>,
    keep_trace: bool,
    /// FNV-1a over every trace line: equal runs give equal digests.
    digest: u64,
    failure: Option<Failure>,
}

/// How many trace lines a failure report shows.
const TRACE_TAIL: usize = 60;

fn sim_id(message: &Message) -> Option<MsgId> {
    let payload = message.payload()?;
    let from = payload.get("from")?.as_str()?;
    let seq = payload.get("seq")?.as_u64()?;
    Some((from.to_owned(), seq))
}

fn sim_id_of_text(text: &str) -> Option<MsgId> {
    Message::parse(text).ok().as_ref().and_then(sim_id)
}

impl World {
    /// A world for `seed`; `keep_trace` keeps every trace line (else only the digest and the
    /// tail).
    #[must_use]
    pub fn new(seed: u64, keep_trace: bool) -> Self {
        let mut rng = SplitMix64::new(seed);
        let params = Params::from_rng(&mut rng);
        let clients = (0..params.clients)
            .map(|i| SimClient {
                label: format!("c{i}"),
                name: if params.shared_names {
                    format!("user{}", i / 2)
                } else {
                    format!("c{i}")
                },
                client: KrmxClient::new(ClientConfig::default()),
                conn: None,
                next_seq: 1,
                left_since_accept: false,
                deaf: i + params.deaf_clients >= params.clients,
            })
            .collect();
        let chaos = (0..params.chaos + params.relinkers)
            .map(|j| Chaos {
                conn: None,
                answers_pings: j >= params.chaos || rng.chance(700),
                accepted: false,
            })
            .collect();
        let config = params.config();
        Self {
            server: Krmx::new(config.clone()),
            params,
            rng,
            now: Instant::now(),
            checker: ServerChecker::judging(&config),
            wires: BTreeMap::new(),
            next_conn: 1,
            clients,
            chaos,
            decisions: Vec::new(),
            owed: BTreeMap::new(),
            sent: BTreeMap::new(),
            texts: BTreeMap::new(),
            last_seq: BTreeMap::new(),
            epochs: BTreeMap::new(),
            app_unlinked: BTreeSet::new(),
            server_seq: 0,
            direct_seq: 0,
            relinker_seq: 0,
            npcs: 0,
            stats: Stats::default(),
            auth_conns: BTreeMap::new(),
            trace: Vec::new(),
            keep_trace,
            digest: 0xcbf2_9ce4_8422_2325,
            failure: None,
        }
    }

    /// The run's parameters.
    #[must_use]
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Every trace line kept.
    #[must_use]
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    fn log(&mut self, line: String) {
        for b in line.bytes().chain([b'\n']) {
            self.digest ^= u64::from(b);
            self.digest = self.digest.wrapping_mul(0x0100_0000_01b3);
        }
        self.trace.push(line);
        if !self.keep_trace && self.trace.len() > 4 * TRACE_TAIL {
            self.trace.drain(..2 * TRACE_TAIL);
        }
    }

    fn fail(&mut self, message: String) {
        if self.failure.is_none() {
            let tail: Vec<&String> = self.trace.iter().rev().take(TRACE_TAIL).rev().collect();
            let mut report = format!("{message}\nparams: {:?}\nlast trace lines:\n", self.params);
            for line in tail {
                let _ = writeln!(report, "  {line}");
            }
            self.failure = Some(report);
        }
    }

    fn elapsed_ms(&self, start: Instant) -> u128 {
        self.now.saturating_duration_since(start).as_millis()
    }

    /// Runs the whole simulation: the random phase, settling, the agreement checks, the
    /// server's close.
    ///
    /// # Errors
    /// The first invariant or delivery guarantee that did not hold, with the trace's tail.
    pub fn run(self) -> Result<(Stats, u64), Failure> {
        self.run_traced().0
    }

    /// As [`run`](Self::run), also returning the trace lines kept.
    pub fn run_traced(mut self) -> (Result<(Stats, u64), Failure>, Vec<String>) {
        let start = self.now;
        let params = format!("params: {:?}", self.params);
        self.log(params);
        self.feed(Input::Listen { port: 8082 });
        for step in 0..self.params.steps {
            if self.failure.is_some() {
                break;
            }
            self.stats.steps += 1;
            self.log(format!("-- step {step}"));
            self.step();
        }
        if self.failure.is_none() {
            self.log("-- settle".to_owned());
            self.settle();
            self.check_agreement();
        }
        if self.failure.is_none() {
            self.log("-- close".to_owned());
            self.feed(Input::Close);
            self.settle();
            self.check_closed();
            self.check_ledger();
        }
        let ms = self.elapsed_ms(start);
        self.log(format!("-- end after {ms} virtual ms"));
        self.stats.outputs = self.checker.outputs_observed();
        self.stats.timers = self.checker.judged();
        let stats = format!("{:?}", self.stats);
        self.log(stats);
        let result = match self.failure.take() {
            Some(failure) => Err(failure),
            None => Ok((self.stats.clone(), self.digest)),
        };
        (result, self.trace)
    }

    // -----------------------------------------------------------------------------------------
    // The scheduler.
    // -----------------------------------------------------------------------------------------

    fn step(&mut self) {
        let roll = self.rng.below(1000);
        let drop = self.params.drop_rate;
        let app = self.params.app_rate;
        if roll < drop {
            self.drop_some_connection();
        } else if roll < drop + app {
            self.app_action();
        } else if roll < drop + app + 60 {
            let ms = self.rng.range(1, self.params.max_step_ms);
            self.advance_to(self.now + Duration::from_millis(ms));
        } else if roll < drop + app + 75 {
            self.jump_to_next_deadline();
        } else if roll < drop + app + 275 {
            let i = self.rng.index(self.clients.len());
            self.client_action(i);
        } else if roll < drop + app + 300 && self.params.chaos > 0 {
            let j = self.rng.index(self.params.chaos);
            self.chaos_action(j);
        } else if roll < drop + app + 380 && self.params.relinkers > 0 {
            let j = self.params.chaos + self.rng.index(self.params.relinkers);
            self.relinker_action(j);
        } else {
            self.deliver_one();
        }
    }

    /// Delivers one item on a random connection, in one random direction.
    fn deliver_one(&mut self) -> bool {
        let candidates: Vec<(ConnectionId, bool)> = self
            .wires
            .iter()
            .flat_map(|(conn, wire)| {
                let up = wire.deliverable_up().then_some((*conn, true));
                let down = wire.deliverable_down().then_some((*conn, false));
                up.into_iter().chain(down)
            })
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let (conn, up) = candidates[self.rng.index(candidates.len())];
        if up {
            self.deliver_up(conn);
            // A relinker's frames arrive together (one TCP segment): read back to back.
            while self.wires.get(&conn).is_some_and(|wire| {
                matches!(wire.owner, Owner::Chaos(j) if j >= self.params.chaos)
                    && matches!(wire.up.front(), Some(Up::Frame(_)))
            }) && self.failure.is_none()
            {
                self.deliver_up(conn);
            }
        } else {
            self.deliver_down(conn);
        }
        true
    }

    /// Delivers everything, making the pending decisions and timeouts happen, until nothing is
    /// in flight and nothing waits for a decision.
    fn settle(&mut self) {
        for _ in 0..1_000_000 {
            if self.failure.is_some() {
                return;
            }
            if self.deliver_one() {
                continue;
            }
            if self.decisions.is_empty() && self.server.pending_auths() == 0 {
                return;
            }
            self.jump_to_next_deadline();
        }
        self.fail("the network did not settle".to_owned());
    }

    fn jump_to_next_deadline(&mut self) {
        let decision = self.decisions.iter().map(|(at, _, _)| *at).min();
        let next = match (decision, self.server.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = next {
            self.advance_to(at.max(self.now));
        }
    }

    /// Moves the clock to `to`, making the decisions due by then at their own times, then ticks.
    fn advance_to(&mut self, to: Instant) {
        loop {
            let due = self
                .decisions
                .iter()
                .enumerate()
                .filter(|(_, (at, _, _))| *at <= to)
                .min_by_key(|(i, (at, _, _))| (*at, *i))
                .map(|(i, _)| i);
            let Some(i) = due else { break };
            let (at, id, decision) = self.decisions.remove(i);
            self.now = self.now.max(at);
            if !self.server.is_auth_pending(id) {
                self.stats.late_decisions += 1;
            }
            self.log(format!("decide {id} {decision:?} (later)"));
            self.feed(Input::AuthDecided { id, decision });
        }
        self.now = self.now.max(to);
        self.feed(Input::Tick);
    }

    // -----------------------------------------------------------------------------------------
    // The server side: feeding inputs, draining outputs, the application.
    // -----------------------------------------------------------------------------------------

    /// Feeds the server, then drains its outputs into the network and the application.
    fn feed(&mut self, input: Input) {
        let must_succeed = !matches!(
            input,
            Input::Join { .. } | Input::Kick { .. } | Input::Unlink { .. } | Input::Send { .. }
        );
        let shown = format!("{input:?}");
        let result = self.handle(input);
        if must_succeed {
            if let Err(error) = result {
                self.fail(format!("the server refused {shown}: {error}"));
            }
        }
        self.drain();
    }

    /// Feeds the server without draining: the timer reference is told first.
    fn handle(&mut self, input: Input) -> Result<(), Error> {
        self.checker.input(self.now, &input);
        self.server.handle_input(self.now, input)
    }

    fn drain(&mut self) {
        while let Some(output) = self.server.poll_output() {
            if let Err(error) = self.checker.observe(&output) {
                self.fail(format!("server invariant: {error}"));
                return;
            }
            match output {
                Output::Send { to, text } => {
                    if text.contains("\"authentication timeout\"") {
                        self.stats.auth_timeouts += 1;
                    }
                    self.transmit(to, Down::Text(text));
                }
                Output::Broadcast { to, text } => {
                    for to in to {
                        self.transmit(to, Down::Text(text.clone()));
                    }
                }
                Output::Ping { to } => {
                    // The transport writes the ping at once: awaited from now on (a ping
                    // queued before its connection dropped mid-drain is not reported).
                    self.transmit(to, Down::Ping);
                    if self.server.connections().any(|open| open == to) {
                        if let Err(error) = self.handle(Input::PingSent { conn: to }) {
                            self.fail(format!("the server refused a ping's report: {error}"));
                        }
                    }
                }
                Output::Close { to, reason, .. } => {
                    self.log(format!("server closes {to}: {reason}"));
                    self.stats.server_closes += 1;
                    self.transmit(to, Down::Close);
                    if let Some(wire) = self.wires.get_mut(&to) {
                        wire.server_done = true;
                    }
                }
                Output::Event(event) => self.application(event),
            }
            if self.params.mid_drain_drop_rate > 0
                && self.rng.chance(self.params.mid_drain_drop_rate)
            {
                self.mid_drain_drop();
            }
        }
        self.checker.drained();
        if let Err(error) = self.checker.check(&self.server, self.now) {
            self.fail(format!("server invariant: {error}"));
        }
    }

    /// Hands a server output to the network; a connection the network dropped discards it.
    fn transmit(&mut self, to: ConnectionId, down: Down) {
        let Some(wire) = self.wires.get_mut(&to) else {
            self.fail(format!(
                "output {down:?} to {to}, which the network never had"
            ));
            return;
        };
        if wire.dropped || wire.client_done {
            if let Down::Text(text) = &down {
                if let Some(id) = sim_id_of_text(text) {
                    self.excuse_delivery(to, &id);
                }
            }
            return;
        }
        wire.down.push_back(down);
    }

    fn excuse_delivery(&mut self, to: ConnectionId, id: &MsgId) {
        if let Some(fate) = self.owed.get_mut(&(to, id.clone())) {
            if *fate == Fate::Pending {
                *fate = Fate::Excused;
                self.stats.owed_lost_to_drops += 1;
            }
        }
    }

    /// The server application: decides authentications by the seed's policy, relays every
    /// message to everyone (as `krmx serve --relay`).
    fn application(&mut self, event: Event) {
        match event {
            Event::AuthRequested {
                id, conn, username, ..
            } => {
                self.stats.auth_requests += 1;
                self.auth_conns.insert(id, conn);
                // A relink the application refuses needs no lookup: it is rejected at once.
                let relink = self.epochs.contains_key(&conn);
                let refused_relink = relink && self.rng.chance(self.params.reject_relinks);
                let decision = if refused_relink || self.rng.chance(self.params.decide_reject) {
                    AuthDecision::reject("not today")
                } else {
                    AuthDecision::Accept
                };
                self.log(format!("auth {id} requested by {conn} for {username}"));
                if refused_relink || self.rng.chance(self.params.decide_at_once) {
                    self.log(format!("decide {id} {decision:?} (at once)"));
                    let result = self.handle(Input::AuthDecided { id, decision });
                    if let Err(error) = result {
                        self.fail(format!("decision refused: {error}"));
                    }
                } else if !self.rng.chance(self.params.decide_never) {
                    // Up to twice the timeout: some decisions come too late.
                    let timeout = u64::try_from(self.params.auth_timeout.as_millis()).unwrap_or(1);
                    let delay = Duration::from_millis(self.rng.range(0, 2 * timeout));
                    self.decisions.push((self.now + delay, id, decision));
                }
            }
            Event::Linked { username, conn } => {
                self.stats.links += 1;
                *self.epochs.entry(conn).or_insert(0) += 1;
                self.log(format!("linked {username} to {conn}"));
            }
            Event::Unlinked { username, conn } => {
                self.log(format!("unlinked {username} from {conn}"));
            }
            Event::Joined { username } => self.log(format!("joined {username}")),
            Event::Left { username } => self.log(format!("left {username}")),
            Event::Message { username, message } => {
                if let Some(id) = sim_id(&message) {
                    let sender = self.clients.iter().find(|c| c.label == id.0);
                    if sender.is_some_and(|c| c.name != username.as_str()) {
                        self.fail(format!("{id:?} arrived as a message of {username}"));
                    }
                    match self.sent.get_mut(&id) {
                        Some((_, _, fate)) if *fate == Fate::Pending => {
                            *fate = Fate::Done;
                            self.stats.relayed += 1;
                        }
                        other => {
                            let other = format!("{other:?}");
                            self.fail(format!("{id:?} handed to the application again ({other})"));
                        }
                    }
                }
                self.broadcast(message, None);
            }
            Event::Listening { .. } | Event::Closed => {}
        }
    }

    /// The linked connections of well-behaved clients, from the server's state.
    fn linked_client_conns(&self, skip: Option<&str>) -> Vec<ConnectionId> {
        self.server
            .users()
            .filter(|user| skip != Some(user.username.as_str()))
            .filter_map(|user| self.server.linked_connection(user.username.as_str()))
            .filter(|conn| {
                self.wires
                    .get(conn)
                    .is_some_and(|wire| matches!(wire.owner, Owner::Client(_)))
            })
            .collect()
    }

    /// Broadcasts a message, owed to every linked well-behaved client (but `skip`).
    fn broadcast(&mut self, message: Message, skip: Option<String>) {
        if let Some(id) = sim_id(&message) {
            for conn in self.linked_client_conns(skip.as_deref()) {
                self.owed.insert((conn, id.clone()), Fate::Pending);
            }
            self.texts.entry(id).or_insert_with(|| message.to_text());
        }
        self.feed(Input::Broadcast { message, skip });
    }

    /// A random application action: a broadcast, a direct send, a kick, an unlink, a join.
    fn app_action(&mut self) {
        let users: Vec<String> = self
            .server
            .users()
            .map(|u| u.username.to_string())
            .collect();
        let user = (!users.is_empty()).then(|| users[self.rng.index(users.len())].clone());
        match self.rng.below(10) {
            0..=4 => {
                self.server_seq += 1;
                let message = Message::from_value(json!({
                    "type": "sim/server",
                    "payload": {"from": "server", "seq": self.server_seq},
                }));
                let skip = user.filter(|_| self.rng.chance(300));
                self.log(format!(
                    "app broadcasts server/{} skipping {skip:?}",
                    self.server_seq
                ));
                if let Ok(message) = message {
                    self.broadcast(message, skip);
                }
            }
            5 | 6 => {
                let Some(user) = user else { return };
                self.direct_seq += 1;
                let id = ("direct".to_owned(), self.direct_seq);
                let Ok(message) = Message::from_value(json!({
                    "type": "sim/direct",
                    "payload": {"from": "direct", "seq": self.direct_seq},
                    "to": user,
                })) else {
                    return;
                };
                if let Some(conn) = self.server.linked_connection(&user) {
                    if self
                        .wires
                        .get(&conn)
                        .is_some_and(|w| matches!(w.owner, Owner::Client(_)))
                    {
                        self.owed.insert((conn, id.clone()), Fate::Pending);
                    }
                }
                self.texts.insert(id, message.to_text());
                self.log(format!("app sends direct/{} to {user}", self.direct_seq));
                self.feed(Input::Send {
                    username: user,
                    message,
                });
            }
            7 | 8 => {
                let Some(user) = user else { return };
                let kick = self.rng.chance(500);
                if let Some(conn) = self.server.linked_connection(&user) {
                    let epoch = self.epochs.get(&conn).copied().unwrap_or(0);
                    self.app_unlinked.insert((conn, epoch));
                }
                self.log(format!(
                    "app {} {user}",
                    if kick { "kicks" } else { "unlinks" }
                ));
                if kick {
                    self.feed(Input::Kick { username: user });
                } else {
                    self.feed(Input::Unlink { username: user });
                }
            }
            _ => {
                self.npcs += 1;
                let username = format!("npc{}", self.npcs);
                self.log(format!("app joins {username}"));
                self.feed(Input::Join { username });
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // The network.
    // -----------------------------------------------------------------------------------------

    fn new_wire(&mut self, owner: Owner, target: String) -> ConnectionId {
        let conn = ConnectionId::new(self.next_conn);
        self.next_conn += 1;
        self.wires.insert(
            conn,
            Wire {
                owner,
                up: VecDeque::from([Up::Open(target)]),
                down: VecDeque::new(),
                server_done: false,
                client_done: false,
                dropped: false,
            },
        );
        conn
    }

    fn deliver_up(&mut self, conn: ConnectionId) {
        let Some(wire) = self.wires.get_mut(&conn) else {
            return;
        };
        let Some(item) = wire.up.pop_front() else {
            return;
        };
        let owner = wire.owner;
        if wire.server_done {
            // The server closed it: what still comes up is discarded.
            if let Up::Frame(frame) = &item {
                self.lose_send(frame);
            }
            return;
        }
        match item {
            Up::Open(target) => {
                self.log(format!("{conn} opens {target}"));
                if let Some(wire) = self.wires.get_mut(&conn) {
                    wire.down.push_back(Down::Opened);
                }
                self.checker.opened(conn);
                self.feed(Input::ConnectionOpened { conn, target });
            }
            Up::Frame(frame) => self.frame_to_server(conn, owner, frame),
            Up::Pong => self.feed(Input::Pong { conn }),
            Up::Closed => {
                self.log(format!("{conn} closed towards the server"));
                if let Some(wire) = self.wires.get_mut(&conn) {
                    wire.server_done = true;
                    wire.down.push_back(Down::Close);
                }
                self.checker.peer_closed(conn);
                self.feed(Input::ConnectionClosed { conn });
            }
        }
    }

    /// A sent message will never reach the server's application.
    fn lose_send(&mut self, frame: &Frame) {
        let Frame::Text(text) = frame else { return };
        if let Some(id) = sim_id_of_text(text) {
            if let Some((_, _, fate)) = self.sent.get_mut(&id) {
                if *fate == Fate::Pending {
                    *fate = Fate::Excused;
                    self.stats.sends_lost += 1;
                }
            }
        }
    }

    fn frame_to_server(&mut self, conn: ConnectionId, owner: Owner, frame: Frame) {
        let id = match (&frame, owner) {
            (Frame::Text(text), Owner::Client(_)) => sim_id_of_text(text),
            _ => None,
        };
        let linked = self.server.linked_user(conn).map(ToString::to_string);
        self.log(format!("{conn} -> server {frame:?}"));
        self.feed(Input::Frame {
            conn,
            frame: frame.clone(),
        });
        let (Some(id), Owner::Client(i)) = (id, owner) else {
            return;
        };
        let name = self.clients[i].name.clone();
        let Some((_, epoch, fate)) = self.sent.get(&id).cloned() else {
            self.fail(format!("{id:?} arrived but was never sent"));
            return;
        };
        if linked.as_deref() == Some(name.as_str()) {
            if fate != Fate::Done {
                self.fail(format!(
                    "{id:?} from {name}, linked on {conn}, was not handed to the application"
                ));
            }
        } else if self.app_unlinked.contains(&(conn, epoch)) {
            self.lose_send(&frame);
        } else {
            self.fail(format!(
                "{id:?} from {name} arrived on {conn} while it was linked to {linked:?}, \
                 though only the client or the application could have unlinked it"
            ));
        }
    }

    fn deliver_down(&mut self, conn: ConnectionId) {
        let Some(wire) = self.wires.get_mut(&conn) else {
            return;
        };
        if wire.client_done {
            return;
        }
        let Some(item) = wire.down.pop_front() else {
            return;
        };
        match wire.owner {
            Owner::Client(i) => self.deliver_to_client(i, conn, item),
            Owner::Chaos(j) => match item {
                Down::Ping => {
                    if self.chaos[j].answers_pings {
                        wire.up.push_back(Up::Pong);
                    }
                }
                Down::Close => {
                    wire.client_done = true;
                    self.chaos[j].conn = None;
                }
                Down::Text(text) if text.contains("\"krmx/accepted\"") => {
                    self.chaos[j].accepted = true;
                }
                Down::Opened | Down::Text(_) => {}
            },
        }
    }

    fn deliver_to_client(&mut self, i: usize, conn: ConnectionId, item: Down) {
        match item {
            Down::Opened => {
                self.client_input(i, ClientInput::ConnectionOpened);
            }
            Down::Ping => {
                // The client's WebSocket library answers pings by itself (unless deaf).
                if !self.clients[i].deaf {
                    if let Some(wire) = self.wires.get_mut(&conn) {
                        wire.up.push_back(Up::Pong);
                    }
                }
            }
            Down::Close => {
                self.log(format!("{conn} closed towards c{i}"));
                if let Some(wire) = self.wires.get_mut(&conn) {
                    wire.client_done = true;
                }
                self.client_input(i, ClientInput::ConnectionClosed);
                self.clients[i].conn = None;
                // The transport reports the end of a connection the server closed: harmless.
                self.feed(Input::ConnectionClosed { conn });
            }
            Down::Text(text) => {
                self.log(format!("{conn} -> c{i} {text}"));
                let status = self.clients[i].client.status();
                let events = self.client_input(
                    i,
                    ClientInput::Received {
                        text: text.to_string(),
                    },
                );
                let got = events.iter().find_map(|event| match event {
                    ClientEvent::Message { message } => Some(message.clone()),
                    _ => None,
                });
                if let Some(id) = sim_id_of_text(&text) {
                    self.owed_arrived(i, conn, &id, status, got.as_ref());
                }
            }
        }
    }

    /// A simulation message reached client `i` on `conn`.
    fn owed_arrived(
        &mut self,
        i: usize,
        conn: ConnectionId,
        id: &MsgId,
        status: ClientStatus,
        got: Option<&Message>,
    ) {
        let key = (conn, id.clone());
        let fate = self.owed.get(&key).copied();
        let name = self.clients[i].name.clone();
        match (fate, got) {
            (Some(Fate::Pending), Some(message)) => {
                self.owed.insert(key, Fate::Done);
                self.stats.owed_received += 1;
                if self.texts.get(id) != Some(&message.to_text()) {
                    self.fail(format!("{name} got {id:?} altered: {message:?}"));
                }
                let last = self.last_seq.entry((conn, id.0.clone())).or_insert(0);
                if id.1 <= *last {
                    let last = *last;
                    self.fail(format!(
                        "{name} got {id:?} on {conn} after seq {last} of the same sender"
                    ));
                }
                self.last_seq.insert((conn, id.0.clone()), id.1);
            }
            (Some(Fate::Pending), None) => {
                if self.clients[i].left_since_accept {
                    self.owed.insert(key, Fate::Excused);
                    self.stats.owed_discarded_by_client += 1;
                } else {
                    self.fail(format!(
                        "{name} ({status}) discarded {id:?} it was owed on {conn}"
                    ));
                }
            }
            (fate, _) => self.fail(format!(
                "{name} was sent {id:?} on {conn}, which it was not owed ({fate:?})"
            )),
        }
    }

    /// Connections whose link waits for the application's decision.
    fn pending_conns(&self) -> BTreeSet<ConnectionId> {
        self.auth_conns
            .iter()
            .filter(|(id, _)| self.server.is_auth_pending(**id))
            .map(|(_, conn)| *conn)
            .collect()
    }

    /// The network drops a connection. Its client end learns at once. The server learns at
    /// once (`server_now`; what was still on its way up is lost) or after what is still on its
    /// way up (`keep_in_flight`: delivered first, as data that made it before the reset; else
    /// lost). `mid_drain`: the core is told between two of its outputs.
    fn drop_connection(
        &mut self,
        conn: ConnectionId,
        server_now: bool,
        keep_in_flight: bool,
        mid_drain: bool,
    ) {
        let pending = self.pending_conns().contains(&conn);
        let Some(wire) = self.wires.get_mut(&conn) else {
            return;
        };
        if wire.client_done || wire.dropped {
            return;
        }
        wire.dropped = true;
        wire.client_done = true;
        let owner = wire.owner;
        let tell_server = !wire.server_done;
        let lost_down: Vec<Down> = wire.down.drain(..).collect();
        let lost_up: Vec<Up> = if keep_in_flight && !server_now {
            Vec::new()
        } else {
            wire.up.drain(..).collect()
        };
        if tell_server {
            if server_now {
                wire.server_done = true;
            } else {
                wire.up.push_back(Up::Closed);
            }
        }
        self.stats.drops += 1;
        if pending {
            self.stats.drops_while_pending += 1;
        }
        if mid_drain {
            self.stats.mid_drain_drops += 1;
        }
        self.log({
            format!(
                "network drops {conn} (server told now: {server_now}, in flight kept: \
                 {keep_in_flight}, mid-drain: {mid_drain}, pending link: {pending})"
            )
        });
        for down in lost_down {
            if let Down::Text(text) = down {
                if let Some(id) = sim_id_of_text(&text) {
                    self.excuse_delivery(conn, &id);
                }
            }
        }
        for up in lost_up {
            if let Up::Frame(frame) = up {
                self.lose_send(&frame);
            }
        }
        match owner {
            Owner::Client(i) => {
                self.client_input(i, ClientInput::ConnectionClosed);
                self.clients[i].conn = None;
            }
            Owner::Chaos(j) => self.chaos[j].conn = None,
        }
        if server_now && tell_server {
            if mid_drain {
                // Outputs the core queued before this close may still address it.
                self.checker.peer_closed_mid_drain(conn);
                let closed = Input::ConnectionClosed { conn };
                if let Err(error) = self.handle(closed) {
                    self.fail(format!("closing {conn} mid-drain: {error}"));
                }
            } else {
                self.checker.peer_closed(conn);
                self.feed(Input::ConnectionClosed { conn });
            }
        }
    }

    /// Drops a random connection, preferring interesting moments: a link waiting for its
    /// decision, a link on its way, messages in flight.
    fn drop_some_connection(&mut self) {
        let live: Vec<ConnectionId> = self
            .wires
            .iter()
            .filter(|(_, w)| !w.client_done && !w.dropped)
            .map(|(c, _)| *c)
            .collect();
        if live.is_empty() {
            return;
        }
        let interesting: Vec<ConnectionId> = live
            .iter()
            .copied()
            .filter(|conn| {
                self.pending_conns().contains(conn)
                    || self.wires.get(conn).is_some_and(|w| match w.owner {
                        Owner::Client(i) => matches!(
                            self.clients[i].client.status(),
                            ClientStatus::Linking | ClientStatus::Unlinking
                        ),
                        Owner::Chaos(_) => false,
                    })
            })
            .collect();
        let conn = if !interesting.is_empty() && self.rng.chance(500) {
            interesting[self.rng.index(interesting.len())]
        } else {
            live[self.rng.index(live.len())]
        };
        let server_now = self.rng.chance(500);
        let keep = self.rng.chance(500);
        self.drop_connection(conn, server_now, keep, false);
    }

    /// Between two drained outputs, a connection drops and the server is told at once.
    fn mid_drain_drop(&mut self) {
        let live: Vec<ConnectionId> = self
            .wires
            .iter()
            .filter(|(c, w)| !w.client_done && !w.server_done && self.checker.is_open(**c))
            .map(|(c, _)| *c)
            .collect();
        if !live.is_empty() {
            let conn = live[self.rng.index(live.len())];
            self.drop_connection(conn, true, false, true);
        }
    }

    // -----------------------------------------------------------------------------------------
    // The clients.
    // -----------------------------------------------------------------------------------------

    /// Feeds client `i` and carries out its outputs; returns its events.
    fn client_input(&mut self, i: usize, input: ClientInput) -> Vec<ClientEvent> {
        let shown = format!("{input:?}");
        let result = self.clients[i].client.handle_input(input);
        if let Err(error) = result {
            self.fail(format!("c{i} refused {shown}: {error}"));
            return Vec::new();
        }
        let mut events = Vec::new();
        while let Some(output) = self.clients[i].client.poll_output() {
            match output {
                ClientOutput::Connect { url } => {
                    let target = url
                        .split_once("//")
                        .and_then(|(_, rest)| rest.find('/').map(|p| rest[p..].to_owned()))
                        .unwrap_or_else(|| "/".to_owned());
                    let conn = self.new_wire(Owner::Client(i), target);
                    self.clients[i].conn = Some(conn);
                    self.log(format!("c{i} connects as {conn}"));
                }
                ClientOutput::Send { text } => {
                    let Some(conn) = self.clients[i].conn else {
                        self.fail(format!("c{i} sends without a connection"));
                        continue;
                    };
                    if let Some(id) = sim_id_of_text(&text) {
                        let epoch = self.epochs.get(&conn).copied().unwrap_or(0);
                        self.sent.insert(id.clone(), (conn, epoch, Fate::Pending));
                        self.texts.insert(id, text.clone());
                    }
                    if let Some(wire) = self.wires.get_mut(&conn) {
                        wire.up.push_back(Up::Frame(Frame::Text(text.to_string())));
                    }
                }
                ClientOutput::Close => {
                    if let Some(conn) = self.clients[i].conn {
                        self.log(format!("c{i} closes {conn}"));
                        if let Some(wire) = self.wires.get_mut(&conn) {
                            wire.up.push_back(Up::Closed);
                        }
                    }
                }
                ClientOutput::Event(event) => {
                    if event == ClientEvent::Accepted {
                        self.clients[i].left_since_accept = false;
                    }
                    events.push(event);
                }
                other => self.fail(format!("unknown client output {other:?}")),
            }
        }
        events
    }

    fn command(&mut self, i: usize, input: ClientInput) {
        if matches!(
            input,
            ClientInput::Unlink | ClientInput::Leave | ClientInput::Disconnect { .. }
        ) {
            self.clients[i].left_since_accept = true;
        }
        self.log(format!("c{i} {input:?}"));
        self.client_input(i, input);
    }

    /// A well-behaved client does what its status allows: connect, link, send, sometimes
    /// unlink, leave or disconnect.
    fn client_action(&mut self, i: usize) {
        let roll = self.rng.below(1000);
        let name = self.clients[i].name.clone();
        let label = self.clients[i].label.clone();
        match self.clients[i].client.status() {
            ClientStatus::Initializing | ClientStatus::Closed if roll < 700 => {
                self.command(
                    i,
                    ClientInput::Connect {
                        url: "ws://sim.invalid:8082/?room=1".to_owned(),
                    },
                );
            }
            ClientStatus::Connected => {
                if roll < 850 {
                    self.command(
                        i,
                        ClientInput::Link {
                            username: name,
                            auth: Some("tok".to_owned()),
                        },
                    );
                } else if roll < 900 {
                    self.command(i, ClientInput::Disconnect { force: false });
                }
            }
            ClientStatus::Linking | ClientStatus::Unlinking if roll < 20 => {
                self.command(i, ClientInput::Disconnect { force: false });
            }
            ClientStatus::Linked => {
                if roll < 800 {
                    let seq = self.clients[i].next_seq;
                    self.clients[i].next_seq += 1;
                    let pad = ["", "é", "\u{1f600}", "\"quoted\"", "tab\there"][self.rng.index(5)];
                    let message = Message::from_value(json!({
                        "type": "sim/msg",
                        "payload": {"from": label, "seq": seq},
                        "pad": pad,
                    }));
                    if let Ok(message) = message {
                        self.command(i, ClientInput::Send { message });
                    }
                } else if roll < 840 {
                    self.command(i, ClientInput::Unlink);
                } else if roll < 870 {
                    self.command(i, ClientInput::Leave);
                } else if roll < 890 {
                    self.command(i, ClientInput::Disconnect { force: true });
                }
            }
            _ => {}
        }
    }

    /// A chaotic connection sends something random, connects, or goes away.
    fn chaos_action(&mut self, j: usize) {
        let names: Vec<String> = self
            .clients
            .iter()
            .map(|c| c.name.clone())
            .chain([format!("chaos{j}"), "x".to_owned()])
            .collect();
        let name = names[self.rng.index(names.len())].clone();
        let link = Frame::Text(
            json!({"type": "krmx/link", "payload": {"username": name, "version": "0.6.0", "auth": "tok"}})
                .to_string(),
        );
        let Some(conn) = self.chaos[j].conn else {
            let target = if self.rng.chance(800) {
                "/?room=2"
            } else {
                "/?other"
            };
            let conn = self.new_wire(Owner::Chaos(j), target.to_owned());
            self.chaos[j].conn = Some(conn);
            let at_once = self.rng.chance(500);
            if at_once {
                // Links on connect, without waiting for the handshake's answer.
                if let Some(wire) = self.wires.get_mut(&conn) {
                    wire.up.push_back(Up::Frame(link));
                }
            }
            self.log(format!(
                "chaos{j} connects as {conn} to {target} (links at once: {at_once})"
            ));
            return;
        };
        if self.rng.chance(70) {
            // Unlinks and links again at once.
            self.log(format!("chaos{j} relinks on {conn}"));
            if let Some(wire) = self.wires.get_mut(&conn) {
                wire.up.push_back(Up::Frame(Frame::Text(
                    r#"{"type":"krmx/unlink"}"#.to_owned(),
                )));
                wire.up.push_back(Up::Frame(link));
            }
            return;
        }
        let frame = match self.rng.below(14) {
            0..=2 => link,
            12 => {
                // A link and messages right behind it: kept while the link is pending, then
                // handled in order.
                let burst = self.rng.below(1000);
                let count = self.rng.range(2, 4);
                self.log(format!(
                    "chaos{j} bursts {count} messages after a link on {conn}"
                ));
                let frames = std::iter::once(link).chain((0..count).map(|n| {
                    Frame::Text(
                        json!({"type": "chaos/x", "payload": {"burst": burst, "n": n}}).to_string(),
                    )
                }));
                if let Some(wire) = self.wires.get_mut(&conn) {
                    wire.up.extend(frames.map(Up::Frame));
                }
                return;
            }
            13 => Frame::Text(
                json!({"type": "chaos/big", "payload": "x".repeat(self.rng.index(600))})
                    .to_string(),
            ),
            3 => Frame::Text(r#"{"type":"krmx/unlink"}"#.to_owned()),
            4 => Frame::Text(r#"{"type":"krmx/leave"}"#.to_owned()),
            5..=7 => {
                Frame::Text(json!({"type": "chaos/x", "payload": self.rng.below(100)}).to_string())
            }
            8 => Frame::Text("nope".to_owned()),
            9 => Frame::Text(r#"{"type":"krmx/whatever"}"#.to_owned()),
            10 => Frame::Binary(vec![0xff, 0xfe, b'{']),
            _ => {
                if self.rng.chance(500) {
                    if let Some(wire) = self.wires.get_mut(&conn) {
                        wire.up.push_back(Up::Closed);
                    }
                    self.log(format!("chaos{j} closes {conn}"));
                }
                return;
            }
        };
        if let Some(wire) = self.wires.get_mut(&conn) {
            wire.up.push_back(Up::Frame(frame));
        }
    }

    /// A relinker connects and links its user at once, or unlinks and links again back to back;
    /// a third of the time messages follow right behind the link (kept while it is pending, then
    /// handled in order).
    fn relinker_action(&mut self, j: usize) {
        let link = Frame::Text(
            json!({"type": "krmx/link", "payload": {"username": format!("r{j}"), "version": "0.6.0"}})
                .to_string(),
        );
        let unlink = Frame::Text(r#"{"type":"krmx/unlink"}"#.to_owned());
        let mut frames = match self.chaos[j].conn {
            None => {
                let conn = self.new_wire(Owner::Chaos(j), "/?room=3".to_owned());
                self.chaos[j].conn = Some(conn);
                self.log(format!("r{j} connects as {conn} and links"));
                vec![link]
            }
            Some(conn)
                if self
                    .rng
                    .chance(if self.chaos[j].accepted { 700 } else { 50 }) =>
            {
                self.log(format!("r{j} relinks on {conn}"));
                self.chaos[j].accepted = false;
                vec![unlink, link]
            }
            Some(_) => return,
        };
        if self.rng.chance(350) {
            let count = self.rng.range(1, 4);
            for _ in 0..count {
                self.relinker_seq += 1;
                let message = json!({"type": "r/msg", "payload": {"r": j, "n": self.relinker_seq}});
                frames.push(Frame::Text(message.to_string()));
            }
        }
        if let Some(wire) = self.chaos[j]
            .conn
            .and_then(|conn| self.wires.get_mut(&conn))
        {
            wire.up.extend(frames.into_iter().map(Up::Frame));
        }
    }

    // -----------------------------------------------------------------------------------------
    // The checks at the end.
    // -----------------------------------------------------------------------------------------

    /// On a settled network every client agrees with the server.
    fn check_agreement(&mut self) {
        let mut problems = Vec::new();
        for (i, sim) in self.clients.iter().enumerate() {
            let open = sim.conn.is_some_and(|conn| self.checker.is_open(conn));
            problems.extend(client_disagreement(
                &format!("c{i}"),
                &sim.client,
                sim.conn,
                &self.server,
                open,
            ));
        }
        for user in self.server.users().filter(|u| u.is_linked) {
            let conn = self.server.linked_connection(user.username.as_str());
            let holder = conn.and_then(|conn| self.wires.get(&conn)).map(|w| w.owner);
            match holder {
                Some(Owner::Client(i)) => {
                    let sim = &self.clients[i];
                    if sim.client.status() != ClientStatus::Linked
                        || sim.client.username() != Some(user.username.as_str())
                    {
                        problems.push(format!(
                            "{} is linked to c{i}'s connection, which is {}",
                            user.username,
                            sim.client.status()
                        ));
                    }
                }
                Some(Owner::Chaos(_)) => {}
                None => problems.push(format!("{} is linked to no connection", user.username)),
            }
        }
        if !problems.is_empty() {
            self.fail(format!(
                "disagreement on a settled network:\n{}",
                problems.join("\n")
            ));
        }
    }

    /// After the server's close: every client closed, the server closed.
    fn check_closed(&mut self) {
        if self.server.status() != Status::Closed {
            self.fail(format!(
                "the server is {} after closing",
                self.server.status()
            ));
        }
        let open: Vec<String> = self
            .clients
            .iter()
            .filter(|c| {
                !matches!(
                    c.client.status(),
                    ClientStatus::Closed | ClientStatus::Initializing
                ) || c.client.users().len() > 0
            })
            .map(|c| format!("{} ({})", c.name, c.client.status()))
            .collect();
        if !open.is_empty() {
            self.fail(format!(
                "clients not closed after the server closed: {open:?}"
            ));
        }
    }

    /// Every owed delivery happened or was excused; every sent message was relayed or lost
    /// for a stated reason.
    fn check_ledger(&mut self) {
        let missing: Vec<String> = self
            .owed
            .iter()
            .filter(|(_, fate)| **fate == Fate::Pending)
            .map(|((conn, id), _)| format!("{id:?} to {conn}"))
            .take(10)
            .collect();
        if !missing.is_empty() {
            self.fail(format!("owed messages never delivered: {missing:?}"));
        }
        let unrelayed: Vec<String> = self
            .sent
            .iter()
            .filter(|(_, (_, _, fate))| *fate == Fate::Pending)
            .map(|(id, (conn, _, _))| format!("{id:?} on {conn}"))
            .take(10)
            .collect();
        if !unrelayed.is_empty() {
            self.fail(format!(
                "sent messages never relayed nor lost: {unrelayed:?}"
            ));
        }
    }
}
