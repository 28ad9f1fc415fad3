//! [`Sim`]: one server running an application and any number of clients, on a virtual network
//! and a virtual clock.

use crate::check::{ServerChecker, client_disagreement};
use crate::ledger::Ledger;
use crate::rng::SplitMix64;
use crate::script::{AuthTiming, Op};
use krmx_core::{
    Application, AuthDecision, AuthId, ClientConfig, ClientEvent, ClientInput, ClientOutput,
    ClientStatus, ConnectionId, Control, Error, Event, Frame, Input, Krmx, KrmxClient, KrmxConfig,
    Message, Output,
};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// What a [`Sim`] is made of.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The server's configuration (authentication mode, timers, limits).
    pub krmx: KrmxConfig,
    /// How many clients there are (`c0`, `c1`, ...); a script's steps for clients beyond them
    /// are refused.
    pub clients: usize,
    /// The path (and query) every client connects to.
    pub path: String,
}

impl SimConfig {
    /// `clients` clients connecting to `/` of a server configured with `krmx`.
    #[must_use]
    pub fn new(krmx: KrmxConfig, clients: usize) -> Self {
        Self {
            krmx,
            clients,
            path: "/".to_owned(),
        }
    }
}

/// Client to server.
#[derive(Debug, Clone)]
enum Up {
    /// The WebSocket handshake.
    Open,
    Text(String),
    Pong,
    /// The client closed, or the network's reset reached the server.
    Closed,
}

/// Server to client.
#[derive(Debug, Clone)]
enum Down {
    /// The handshake's answer.
    Opened,
    Text(String),
    Ping,
    /// A close frame (or the connection's end).
    Close,
}

/// One connection: a FIFO each way, as TCP keeps a connection's order.
#[derive(Debug)]
struct Wire {
    client: usize,
    /// Items on their way, each with its place in the order the network took them in.
    up: VecDeque<(u64, Up)>,
    down: VecDeque<(u64, Down)>,
    /// The server is done with it: what still comes up is discarded.
    server_done: bool,
    /// The client end is closed: nothing more is delivered to it.
    client_done: bool,
}

#[derive(Debug)]
struct SimClient {
    client: KrmxClient,
    conn: Option<ConnectionId>,
    /// The connection it opened last, open or not (what `cN up` and `cN down` deliver on).
    last_conn: Option<ConnectionId>,
    received: Vec<Message>,
}

/// The server's side of a step: the core, what judges it, and where decisions go.
struct Server<'a> {
    krmx: &'a mut Krmx,
    start: Instant,
    now: Instant,
    checker: &'a mut ServerChecker,
    timing: AuthTiming,
    decisions: &'a mut Vec<(Instant, AuthId, AuthDecision)>,
    trace: &'a mut Vec<String>,
}

impl Server<'_> {
    fn log(&mut self, line: String) {
        self.trace.push(trace_line(self.now - self.start, &line));
    }
}

/// A line of the trace: the virtual time, then what happened.
fn trace_line(elapsed: Duration, line: &str) -> String {
    format!("{:>6} ms  {line}", elapsed.as_millis())
}

impl Control for Server<'_> {
    fn input(&mut self, input: Input) -> Result<(), Error> {
        if let Input::AuthDecided { id, decision } = &input {
            let delay = match self.timing {
                AuthTiming::Now => None,
                AuthTiming::Later { ms } => Some(Duration::from_millis(ms)),
                AuthTiming::AfterTimeout => {
                    Some(self.krmx.config().auth_timeout_value() + Duration::from_millis(1))
                }
                AuthTiming::Never => {
                    self.log(format!("app decides {id}: {decision:?} (lost)"));
                    return Ok(());
                }
            };
            if let Some(delay) = delay {
                match self
                    .now
                    .checked_add(delay)
                    .filter(|at| *at - self.start <= END_OF_TIME)
                {
                    Some(at) => {
                        self.log(format!(
                            "app decides {id}: {decision:?} (arrives in {} ms)",
                            delay.as_millis()
                        ));
                        self.decisions.push((at, *id, decision.clone()));
                    }
                    None => self.log(format!(
                        "app decides {id}: {decision:?} (arrives past the end of time: lost)"
                    )),
                }
                return Ok(());
            }
        }
        self.log(format!("app {input:?}"));
        self.checker.input(self.now, &input);
        self.krmx.handle_input(self.now, input)
    }

    fn krmx(&self) -> &Krmx {
        self.krmx
    }
}

/// A deterministic world: one [`Krmx`] server running application `A`, clients
/// ([`KrmxClient`]s) connected to it through a virtual network, and a virtual clock. Steps
/// ([`Op`]s) come from a [`Script`](crate::Script): clients act, the network delivers one
/// item on a chosen connection and direction (`c1 up`, `c0 down`; each connection keeps its
/// order, connections are reordered against each other), a seeded number of items on
/// connections the seed picks (`deliver 3`), or everything in the order it was sent
/// (`settle`); connections are closed and reset; time advances.
///
/// After every server input it checks the server's invariants
/// ([`ServerChecker`](crate::check::ServerChecker): links one to one, nothing addressed to a
/// closed connection, every linked connection's presence view equal to the server's users,
/// timers and limits justified); on every message a client passes on, that the server owed it
/// exactly then ([`Ledger`](crate::ledger::Ledger)); and once settled ([`Sim::settle`]), that
/// every client agrees with the server (status, link, user list) and got everything owed.
///
/// ```
/// use krmx_core::{Control, Event, KrmxConfig};
/// use krmx_testkit::{Op, Sim, SimConfig};
///
/// let relay = |server: &mut dyn Control, event: Event| {
///     if let Event::Message { message, .. } = event {
///         let _ = server.broadcast(message, None);
///     }
/// };
/// let mut sim = Sim::new(SimConfig::new(KrmxConfig::default(), 2), relay, 7);
/// for client in 0..2 {
///     sim.step(&Op::Connect { client })?;
/// }
/// sim.settle()?; // a client links once it is connected
/// for client in 0..2 {
///     sim.step(&Op::Link { client, username: format!("user{client}"), auth: None })?;
/// }
/// sim.settle()?;
/// let hello = krmx_core::Message::parse(r#"{"type":"chat/say","payload":"hi"}"#).unwrap();
/// sim.step(&Op::Send { client: 0, message: hello })?;
/// sim.settle()?;
/// assert_eq!(sim.received(1).len(), 1);
/// assert_eq!(sim.client(1).users().len(), 2);
/// # Ok::<(), String>(())
/// ```
pub struct Sim<A> {
    krmx: Krmx,
    app: A,
    config: SimConfig,
    start: Instant,
    now: Instant,
    rng: SplitMix64,
    clients: Vec<SimClient>,
    wires: BTreeMap<ConnectionId, Wire>,
    next_conn: u64,
    checker: ServerChecker,
    timing: AuthTiming,
    decisions: Vec<(Instant, AuthId, AuthDecision)>,
    ledger: Ledger,
    /// How many items the network took: the next item's place in that order.
    sent: u64,
    events: Vec<Event>,
    trace: Vec<String>,
    failure: Option<String>,
}

/// How far virtual time may go (a thousand years): beyond, a step fails instead of
/// overflowing the clock.
const END_OF_TIME: Duration = Duration::from_secs(1000 * 365 * 24 * 3600);

/// The most steps [`Sim::settle`] takes before it calls the network stuck.
const SETTLE_LIMIT: usize = 1_000_000;

impl<A: Application> Sim<A> {
    /// A listening server running `app`, `config.clients` clients that have not connected yet,
    /// and the seed that orders deliveries.
    #[must_use]
    pub fn new(config: SimConfig, app: A, seed: u64) -> Self {
        let start = Instant::now();
        let clients = (0..config.clients)
            .map(|_| SimClient {
                client: KrmxClient::new(ClientConfig::new()),
                conn: None,
                last_conn: None,
                received: Vec::new(),
            })
            .collect();
        let mut sim = Self {
            krmx: Krmx::new(config.krmx.clone()),
            checker: ServerChecker::judging(&config.krmx),
            app,
            config,
            start,
            now: start,
            rng: SplitMix64::new(seed),
            clients,
            wires: BTreeMap::new(),
            next_conn: 1,
            timing: AuthTiming::Now,
            decisions: Vec::new(),
            ledger: Ledger::default(),
            sent: 0,
            events: Vec::new(),
            trace: Vec::new(),
            failure: None,
        };
        sim.feed(Input::Listen { port: 8082 });
        sim
    }

    /// The application, to check its state.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The server's core, to check its users and links.
    pub fn krmx(&self) -> &Krmx {
        &self.krmx
    }

    /// Client `i`'s state machine: its status, its user, its user list.
    ///
    /// # Panics
    /// When there is no client `i`.
    #[allow(clippy::indexing_slicing)] // documented: a test asking for a client it did not make
    pub fn client(&self, i: usize) -> &KrmxClient {
        &self.clients[i].client
    }

    /// Every custom message client `i` passed on to its application, in order.
    pub fn received(&self, i: usize) -> &[Message] {
        self.clients.get(i).map_or(&[], |c| c.received.as_slice())
    }

    /// Every event the application was given, in order (for properties about what happened
    /// between two steps, such as a user leaving and joining again).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// How many clients there are.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// The virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Everything that happened, a line per input, output, delivery and refusal.
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    /// Lets `act` drive the application from outside the server's events, at the current
    /// virtual time: an administrator's command, or the application's own timer (advance the
    /// clock with [`Op::Advance`], then call the application's timeout handler here). What it
    /// commands is carried out and checked like any other input.
    ///
    /// ```
    /// use krmx_core::{Control, Event, KrmxConfig};
    /// use krmx_testkit::{Sim, SimConfig};
    ///
    /// let app = |_: &mut dyn Control, _: Event| {};
    /// let mut sim = Sim::new(SimConfig::new(KrmxConfig::default(), 1), app, 0);
    /// sim.with_app(|_app, server| server.join("alice").map_err(|e| e.to_string()))??;
    /// assert_eq!(sim.krmx().users().count(), 1);
    /// # Ok::<(), String>(())
    /// ```
    ///
    /// # Errors
    /// An invariant broken by what `act` commanded (or earlier).
    pub fn with_app<T>(
        &mut self,
        act: impl FnOnce(&mut A, &mut dyn Control) -> T,
    ) -> Result<T, String> {
        self.log("the test drives the application".to_owned());
        let (app, mut server) = self.app_and_server();
        let result = act(app, &mut server);
        self.drain();
        self.result().map(|()| result)
    }

    /// Runs one step.
    ///
    /// # Errors
    /// The first broken invariant, in this step or an earlier one.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        self.log(format!("> {op}"));
        match op {
            Op::Connect { client } => self.command(
                *client,
                ClientInput::Connect {
                    url: format!("ws://sim{}", self.config.path),
                },
            ),
            Op::Link {
                client,
                username,
                auth,
            } => self.command(
                *client,
                ClientInput::Link {
                    username: username.clone(),
                    auth: auth.clone(),
                },
            ),
            Op::Send { client, message } => self.command(
                *client,
                ClientInput::Send {
                    message: message.clone(),
                },
            ),
            Op::Unlink { client } => self.command(*client, ClientInput::Unlink),
            Op::Leave { client } => self.command(*client, ClientInput::Leave),
            Op::Close { client } => {
                self.command(*client, ClientInput::Disconnect { force: true });
            }
            Op::Reset { client } => self.reset(*client),
            Op::Deliver { count } => {
                for _ in 0..*count {
                    if !self.deliver_one() {
                        break;
                    }
                }
            }
            Op::Up { client } => match self.clients.get(*client).and_then(|c| c.last_conn) {
                Some(conn) => self.deliver_up(conn),
                None => self.log(format!("c{client} never connected: nothing goes up")),
            },
            Op::Down { client } => match self.clients.get(*client).and_then(|c| c.last_conn) {
                Some(conn) => self.deliver_down(conn),
                None => self.log(format!("c{client} never connected: nothing comes down")),
            },
            Op::Settle => return self.settle(),
            Op::Advance { ms } => match self.later(Duration::from_millis(*ms)) {
                Some(to) => self.advance_to(to),
                None => self.fail(format!("advance {ms}: past the end of time")),
            },
            Op::Auth(timing) => self.timing = *timing,
        }
        self.result()
    }

    /// Delivers everything in flight, moving time on to pending decisions and authentication
    /// timeouts, until the network is quiet; then checks that every client agrees with the
    /// server and got every message it was owed.
    ///
    /// # Errors
    /// The first broken invariant, or a disagreement.
    pub fn settle(&mut self) -> Result<(), String> {
        let mut settled = false;
        for _ in 0..SETTLE_LIMIT {
            if self.failure.is_some() {
                break;
            }
            if self.deliver_oldest() {
                continue;
            }
            // Decisions for authentications no longer pending change nothing: not waited for
            // (they still arrive if time moves on past them).
            let krmx = &self.krmx;
            let decision = self
                .decisions
                .iter()
                .filter(|(_, id, _)| krmx.is_auth_pending(*id))
                .map(|(at, _, _)| *at)
                .min();
            if decision.is_none() && self.krmx.pending_auths() == 0 {
                settled = true;
                break;
            }
            let next = match (decision, self.krmx.poll_timeout()) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            self.advance_to(next.max(self.now));
        }
        if !settled && self.failure.is_none() {
            self.fail("the network did not settle".to_owned());
        }
        if self.failure.is_none() {
            self.check_agreement();
        }
        self.result()
    }

    /// `delay` from now, unless that is past [`END_OF_TIME`].
    fn later(&self, delay: Duration) -> Option<Instant> {
        let at = self.now.checked_add(delay)?;
        (at - self.start <= END_OF_TIME).then_some(at)
    }

    fn result(&self) -> Result<(), String> {
        match &self.failure {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    fn log(&mut self, line: String) {
        self.trace.push(trace_line(self.elapsed(), &line));
    }

    fn fail(&mut self, message: String) {
        if self.failure.is_none() {
            self.log(format!("FAILED: {message}"));
            self.failure = Some(message);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Time
    // ---------------------------------------------------------------------------------------

    /// Moves the clock to `to`: decisions and the server's timers due in between act at their
    /// own times, in order.
    fn advance_to(&mut self, to: Instant) {
        for _ in 0..SETTLE_LIMIT {
            if self.failure.is_some() {
                return;
            }
            let decision = self
                .decisions
                .iter()
                .enumerate()
                .min_by_key(|(i, (at, _, _))| (*at, *i))
                .map(|(i, (at, _, _))| (i, *at));
            // With no connection open, the ping rounds between here and `to` are no-ops: the
            // remaining timers fire at the next decision or at `to`, so a long jump takes few
            // steps.
            let timer = if self.krmx.connections().next().is_none() {
                None
            } else {
                self.krmx.poll_timeout().filter(|at| *at <= to)
            };
            match (decision.filter(|(_, at)| *at <= to), timer) {
                (Some((i, at)), timer) if timer.is_none_or(|t| at <= t) => {
                    let (at, id, decision) = self.decisions.remove(i);
                    self.now = self.now.max(at);
                    self.log(format!("decision for {id} arrives: {decision:?}"));
                    self.feed(Input::AuthDecided { id, decision });
                }
                (_, Some(at)) if at > self.now => {
                    self.now = at;
                    self.feed(Input::Tick);
                }
                _ => break,
            }
        }
        self.now = self.now.max(to);
        self.feed(Input::Tick);
    }

    // ---------------------------------------------------------------------------------------
    // The server
    // ---------------------------------------------------------------------------------------

    /// Feeds the server, then drains its outputs into the network and the application.
    fn feed(&mut self, input: Input) {
        let must_succeed = !matches!(
            input,
            Input::AuthDecided { .. } | Input::ConnectionClosed { .. }
        );
        let shown = format!("{input:?}");
        if let Err(error) = self.handle(input) {
            if must_succeed {
                self.fail(format!("the server refused {shown}: {error}"));
            }
        }
        self.drain();
    }

    /// Feeds the server without draining: the timer reference is told first.
    fn handle(&mut self, input: Input) -> Result<(), Error> {
        self.checker.input(self.now, &input);
        self.krmx.handle_input(self.now, input)
    }

    fn drain(&mut self) {
        while let Some(output) = self.krmx.poll_output() {
            if let Err(error) = self.checker.observe(&output) {
                self.fail(format!("server invariant: {error}"));
                return;
            }
            match output {
                Output::Send { to, text } => {
                    self.ledger.sent(to, &text);
                    self.transmit(to, Down::Text(text.to_string()));
                }
                Output::Broadcast { to, text } => {
                    for to in to {
                        self.ledger.sent(to, &text);
                        self.transmit(to, Down::Text(text.to_string()));
                    }
                }
                Output::Ping { to } => {
                    self.transmit(to, Down::Ping);
                    if let Err(error) = self.handle(Input::PingSent { conn: to }) {
                        self.fail(format!("the server refused a ping's report: {error}"));
                    }
                }
                Output::Close { to, code, reason } => {
                    self.log(format!("server closes {to}: {} {reason}", code.0));
                    self.transmit(to, Down::Close);
                    if let Some(wire) = self.wires.get_mut(&to) {
                        wire.server_done = true;
                    }
                }
                Output::Event(event) => self.application(event),
            }
        }
        self.checker.drained();
        if let Err(error) = self.checker.check(&self.krmx, self.now) {
            self.fail(format!("server invariant: {error}"));
        }
    }

    fn application(&mut self, event: Event) {
        self.log(format!("event {event:?}"));
        self.events.push(event.clone());
        let (app, mut server) = self.app_and_server();
        app.on_event(&mut server, event);
    }

    /// The application and the server it commands, borrowed apart.
    fn app_and_server(&mut self) -> (&mut A, Server<'_>) {
        let server = Server {
            krmx: &mut self.krmx,
            start: self.start,
            now: self.now,
            checker: &mut self.checker,
            timing: self.timing,
            decisions: &mut self.decisions,
            trace: &mut self.trace,
        };
        (&mut self.app, server)
    }

    /// Hands a server output to the network; a connection whose client end is gone discards
    /// it.
    fn transmit(&mut self, to: ConnectionId, down: Down) {
        match self.wires.get_mut(&to) {
            None => self.fail(format!("output {down:?} to {to}, which never connected")),
            Some(wire) if wire.client_done => {}
            Some(wire) => {
                wire.down.push_back((self.sent, down));
                self.sent += 1;
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // The network
    // ---------------------------------------------------------------------------------------

    /// Delivers one item on a connection and in a direction the seed picks; `false` when
    /// nothing is in flight.
    fn deliver_one(&mut self) -> bool {
        let choices: Vec<(ConnectionId, bool)> = self
            .wires
            .iter()
            .flat_map(|(conn, wire)| {
                let up = (!wire.up.is_empty()).then_some((*conn, true));
                let down = (!wire.down.is_empty() && !wire.client_done).then_some((*conn, false));
                up.into_iter().chain(down)
            })
            .collect();
        let Some(&(conn, up)) = choices.get(self.rng.index(choices.len())) else {
            return false;
        };
        self.deliver(conn, up);
        true
    }

    /// Delivers the item the network took first, whatever its connection and direction
    /// (settling reorders nothing: reorderings are the script's); `false` when nothing is in
    /// flight.
    fn deliver_oldest(&mut self) -> bool {
        let oldest = self
            .wires
            .iter()
            .flat_map(|(conn, wire)| {
                let up = wire.up.front().map(|(seq, _)| (*seq, *conn, true));
                let down = wire
                    .down
                    .front()
                    .filter(|_| !wire.client_done)
                    .map(|(seq, _)| (*seq, *conn, false));
                up.into_iter().chain(down)
            })
            .min();
        let Some((_, conn, up)) = oldest else {
            return false;
        };
        self.deliver(conn, up);
        true
    }

    fn deliver(&mut self, conn: ConnectionId, up: bool) {
        if up {
            self.deliver_up(conn);
        } else {
            self.deliver_down(conn);
        }
    }

    fn deliver_up(&mut self, conn: ConnectionId) {
        let Some(wire) = self.wires.get_mut(&conn) else {
            return;
        };
        let Some((_, item)) = wire.up.pop_front() else {
            return;
        };
        let seq = self.sent;
        self.sent += 1;
        if wire.server_done {
            return; // The server closed it: what still comes up is discarded.
        }
        match item {
            Up::Open => {
                wire.down.push_back((seq, Down::Opened));
                self.log(format!("{conn} opens {}", self.config.path));
                self.checker.opened(conn);
                let target = self.config.path.clone();
                self.feed(Input::ConnectionOpened { conn, target });
            }
            Up::Text(text) => {
                self.log(format!("{conn} -> server {text}"));
                self.feed(Input::Frame {
                    conn,
                    frame: Frame::Text(text),
                });
            }
            Up::Pong => self.feed(Input::Pong { conn }),
            Up::Closed => {
                wire.server_done = true;
                wire.down.push_back((seq, Down::Close));
                self.log(format!("{conn} closed towards the server"));
                self.checker.peer_closed(conn);
                self.feed(Input::ConnectionClosed { conn });
            }
        }
    }

    fn deliver_down(&mut self, conn: ConnectionId) {
        let Some(wire) = self.wires.get_mut(&conn) else {
            return;
        };
        if wire.client_done {
            return;
        }
        let Some((_, item)) = wire.down.pop_front() else {
            return;
        };
        let seq = self.sent;
        self.sent += 1;
        let i = wire.client;
        match item {
            Down::Opened => self.client_input(i, ClientInput::ConnectionOpened),
            // The client's WebSocket library answers pings by itself.
            Down::Ping => wire.up.push_back((seq, Up::Pong)),
            Down::Close => {
                wire.client_done = true;
                self.log(format!("{conn} closed towards c{i}"));
                self.client_input(i, ClientInput::ConnectionClosed);
                if let Some(client) = self.clients.get_mut(i) {
                    client.conn = None;
                }
                // The transport reports the end of a connection the server closed.
                self.feed(Input::ConnectionClosed { conn });
            }
            Down::Text(text) => {
                self.log(format!("{conn} -> c{i} {text}"));
                self.ledger.arrived(conn, &text);
                self.client_input(i, ClientInput::Received { text });
            }
        }
    }

    /// The network resets client `i`'s connection.
    fn reset(&mut self, i: usize) {
        let Some(conn) = self.clients.get(i).and_then(|c| c.conn) else {
            self.log(format!("c{i} has no connection to reset"));
            return;
        };
        if let Some(wire) = self.wires.get_mut(&conn) {
            wire.client_done = true;
            wire.down.clear();
            if !wire.server_done {
                wire.up.push_back((self.sent, Up::Closed));
                self.sent += 1;
            }
        }
        self.log(format!("network resets {conn} of c{i}"));
        self.client_input(i, ClientInput::ConnectionClosed);
        if let Some(client) = self.clients.get_mut(i) {
            client.conn = None;
        }
    }

    // ---------------------------------------------------------------------------------------
    // The clients
    // ---------------------------------------------------------------------------------------

    fn command(&mut self, i: usize, input: ClientInput) {
        if i >= self.clients.len() {
            self.log(format!(
                "c{i} does not exist (the simulation has {})",
                self.clients.len()
            ));
            return;
        }
        self.client_input(i, input);
    }

    /// Feeds client `i` and carries out its outputs; a refused command is traced.
    fn client_input(&mut self, i: usize, input: ClientInput) {
        let Some(client) = self.clients.get_mut(i) else {
            return;
        };
        let shown = format!("{input:?}");
        // A command the client's state does not allow is refused, as in a real client; a fact
        // of its transport (opened, received, closed) must always be taken.
        let fact = matches!(
            input,
            ClientInput::ConnectionOpened
                | ClientInput::Received { .. }
                | ClientInput::ConnectionClosed
        );
        if let Err(error) = client.client.handle_input(input) {
            if fact {
                self.fail(format!("c{i} refused its transport's {shown}: {error}"));
            } else {
                self.log(format!("c{i} refuses {shown}: {error}"));
            }
            return;
        }
        while let Some(output) = self.clients.get_mut(i).and_then(|c| c.client.poll_output()) {
            self.client_output(i, output);
        }
    }

    fn client_output(&mut self, i: usize, output: ClientOutput) {
        let conn = self.clients.get(i).and_then(|c| c.conn);
        match output {
            ClientOutput::Connect { .. } => {
                let conn = ConnectionId::new(self.next_conn);
                self.next_conn += 1;
                self.wires.insert(
                    conn,
                    Wire {
                        client: i,
                        up: VecDeque::from([(self.sent, Up::Open)]),
                        down: VecDeque::new(),
                        server_done: false,
                        client_done: false,
                    },
                );
                self.sent += 1;
                if let Some(client) = self.clients.get_mut(i) {
                    client.conn = Some(conn);
                    client.last_conn = Some(conn);
                }
                self.log(format!("c{i} connects as {conn}"));
            }
            ClientOutput::Send { text } => match conn.and_then(|c| self.wires.get_mut(&c)) {
                Some(wire) => {
                    wire.up.push_back((self.sent, Up::Text(text.to_string())));
                    self.sent += 1;
                }
                None => self.fail(format!("c{i} sends {text} without a connection")),
            },
            ClientOutput::Close => {
                if let Some(wire) = conn.and_then(|c| self.wires.get_mut(&c)) {
                    wire.up.push_back((self.sent, Up::Closed));
                    self.sent += 1;
                }
            }
            ClientOutput::Event(ClientEvent::Message { message }) => {
                self.log(format!("c{i} gets {}", message.to_text()));
                if let Some(conn) = conn {
                    if let Err(error) = self.ledger.passed_on(conn, &message) {
                        self.fail(format!("delivery: c{i}: {error}"));
                    }
                }
                if let Some(client) = self.clients.get_mut(i) {
                    client.received.push(message);
                }
            }
            ClientOutput::Event(event) => self.log(format!("c{i} {}", event.name())),
            other => self.fail(format!("c{i}: unknown client output {other:?}")),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Agreement
    // ---------------------------------------------------------------------------------------

    /// On a settled network: every client agrees with the server, and every linked client got
    /// every message owed on its link.
    fn check_agreement(&mut self) {
        let mut problems = Vec::new();
        for (i, sim) in self.clients.iter().enumerate() {
            let open = sim.conn.is_some_and(|conn| self.checker.is_open(conn));
            problems.extend(client_disagreement(
                &format!("c{i}"),
                &sim.client,
                sim.conn,
                &self.krmx,
                open,
            ));
            if sim.client.status() == ClientStatus::Linked {
                if let Some(conn) = sim.conn {
                    let outstanding = self.ledger.outstanding(conn);
                    if !outstanding.is_empty() {
                        problems.push(format!(
                            "c{i} never got {} message(s) owed on its link: {outstanding:?}",
                            outstanding.len()
                        ));
                    }
                }
            }
        }
        for user in self.krmx.users().filter(|u| u.is_linked) {
            let holder = self
                .krmx
                .linked_connection(user.username.as_str())
                .and_then(|conn| self.wires.get(&conn))
                .map(|wire| wire.client);
            let agrees = holder.and_then(|i| self.clients.get(i)).is_some_and(|sim| {
                sim.client.status() == ClientStatus::Linked
                    && sim.client.username() == Some(user.username.as_str())
            });
            if !agrees {
                problems.push(format!(
                    "{} is linked on the server to a connection whose client (c{holder:?}) does \
                     not think so",
                    user.username
                ));
            }
        }
        if !problems.is_empty() {
            self.fail(format!(
                "disagreement on a settled network:\n{}",
                problems.join("\n")
            ));
        }
    }
}

impl<A> std::fmt::Debug for Sim<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now", &(self.now - self.start))
            .field("clients", &self.clients.len())
            .field("connections", &self.wires.len())
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}
