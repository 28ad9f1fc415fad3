//! The workloads (one per file) and what they share: the run environment, the figures they
//! report, and the connect-and-link setup.

pub(crate) mod echo;
pub(crate) mod idle;
pub(crate) mod link;
pub(crate) mod relay;
pub(crate) mod room_churn;
pub(crate) mod rooms;
pub(crate) mod scrape;

use crate::fleet::{Fleet, Handler, Outgoing};
use crate::probe;
use crate::server::Running;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// The figures of one run, in report order: name and value.
pub(crate) type Figures = Vec<(&'static str, f64)>;

/// Why a run failed (a correctness failure, a timeout, an I/O error).
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self(format!("I/O error: {error}"))
    }
}

/// Settings every workload shares.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    /// The version clients send in `krmx/link`.
    pub(crate) version: String,
    /// Connections in their TCP connect or HTTP upgrade at once.
    pub(crate) in_flight: usize,
    /// Links awaiting `krmx/accepted` at once during a workload's setup.
    pub(crate) links_in_flight: usize,
    /// The limit of each phase (connecting, linking, measuring).
    pub(crate) phase_timeout: Duration,
    /// How long a server may take to exit after SIGTERM before it is killed.
    pub(crate) stop_grace: Duration,
    /// `wss://`: the clients' TLS configuration.
    pub(crate) tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// One measurement: the server, how to talk to it, and the shared settings.
pub(crate) struct Env<'a> {
    pub(crate) server: &'a Running,
    /// Bare WebSocket (no Krmx): clients do not link.
    pub(crate) bare: bool,
    /// Reached over TLS with [`Common::tls`].
    pub(crate) tls: bool,
    pub(crate) common: &'a Common,
}

impl Env<'_> {
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.common.phase_timeout
    }

    /// A fleet aimed at the server.
    pub(crate) fn fleet(&self) -> std::io::Result<Fleet> {
        Fleet::new(
            self.server.addr,
            &self.server.path,
            self.common.tls.clone().filter(|_| self.tls),
        )
    }
}

/// A workload: its server flags, parameters, and one measurement.
pub(crate) trait Workload {
    fn name(&self) -> &'static str;
    /// Appended to the server command after `--port 0`.
    fn flags(&self) -> Vec<String>;
    /// Whether it means anything against a bare WebSocket server.
    fn supports_bare(&self) -> bool;
    /// The parameters, for the report.
    fn params(&self) -> serde_json::Value;
    /// Measures once, with a fresh server, on `fleet` (which the caller drops after stopping
    /// the server, so the teardown is not measured).
    fn run(&self, env: &Env<'_>, fleet: &mut Fleet) -> Result<Figures, Failure>;
}

/// The username of client `index`.
pub(crate) fn username(index: usize) -> String {
    format!("user{index}")
}

/// How the setup links clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Linking {
    /// Not at all (bare servers; `link` sends the links itself).
    Off,
    /// As soon as each client is open, with at most this many links awaiting `krmx/accepted`
    /// (the others wait their turn, so no link waits long in the server's queue).
    OnOpen { in_flight: usize },
}

/// Counts, per client, the `krmx/linked` messages (every user linked, its own included),
/// notices rejections, and links clients as they open.
pub(crate) struct Presence {
    linking: Linking,
    version: String,
    /// Open clients waiting for their turn to link.
    waiting: VecDeque<usize>,
    /// Links sent and not answered yet.
    pending: usize,
    /// `krmx/linked` seen per client.
    pub(crate) linked: Vec<u32>,
    /// Clients that saw `target` users linked.
    pub(crate) complete: usize,
    pub(crate) target: u32,
    /// Clients that got `krmx/accepted`, and when the last one did.
    pub(crate) accepted: usize,
    pub(crate) last_accepted: Option<Instant>,
    /// When the last client saw every user linked.
    pub(crate) last_complete: Option<Instant>,
    pub(crate) rejected: Option<String>,
    /// Rooms of this many clients each (clients `r*U..(r+1)*U` share room `r`): usernames
    /// repeat per room, and a client that sees more than `U` users linked fails the run.
    room_users: Option<usize>,
}

impl Presence {
    pub(crate) fn new(clients: usize, linking: Linking, version: &str) -> Self {
        Self {
            linking,
            version: version.to_owned(),
            waiting: VecDeque::new(),
            pending: 0,
            linked: vec![0; clients],
            complete: 0,
            target: u32::try_from(clients).unwrap_or(u32::MAX),
            accepted: 0,
            last_accepted: None,
            last_complete: None,
            rejected: None,
            room_users: None,
        }
    }

    /// Clients in rooms of `users` each: every client expects `users` users linked, its room's.
    pub(crate) fn in_rooms(mut self, users: usize) -> Self {
        self.target = u32::try_from(users).unwrap_or(u32::MAX);
        self.room_users = Some(users.max(1));
        self
    }

    /// The username client `client` links as.
    fn username(&self, client: usize) -> String {
        match self.room_users {
            Some(users) => username(client % users),
            None => username(client),
        }
    }

    /// The setup's presence counter for a workload's environment: clients link on open
    /// (unless bare).
    pub(crate) fn for_setup(clients: usize, env: &Env<'_>) -> Self {
        let linking = if env.bare {
            Linking::Off
        } else {
            Linking::OnOpen {
                in_flight: env.common.links_in_flight.max(1),
            }
        };
        Self::new(clients, linking, &env.common.version)
    }

    /// Sends the links whose turn has come.
    fn release(&mut self, fleet: &mut Fleet) {
        let Linking::OnOpen { in_flight } = self.linking else {
            return;
        };
        while self.pending < in_flight {
            let Some(client) = self.waiting.pop_front() else {
                return;
            };
            self.pending += 1;
            fleet.send(client, &probe::link(&self.username(client), &self.version));
        }
    }
}

impl Handler for Presence {
    fn status(&self) -> String {
        format!(
            "; {} accepted, {} saw all {} users linked",
            self.accepted, self.complete, self.target
        )
    }

    fn after_turn(&mut self, fleet: &mut Fleet) {
        self.release(fleet);
    }

    fn on_open(&mut self, client: usize, out: &mut Outgoing<'_>) {
        if let Linking::OnOpen { in_flight } = self.linking {
            if self.pending < in_flight && self.waiting.is_empty() {
                self.pending += 1;
                out.text(&probe::link(&self.username(client), &self.version));
            } else {
                self.waiting.push_back(client);
            }
        }
    }

    fn on_message(&mut self, client: usize, text: &[u8], now: Instant, _: &mut Outgoing<'_>) {
        if probe::is_type(text, b"krmx/linked") {
            if let Some(seen) = self.linked.get_mut(client) {
                *seen += 1;
                if *seen == self.target {
                    self.complete += 1;
                    self.last_complete = Some(now);
                } else if *seen > self.target && self.room_users.is_some() {
                    self.rejected.get_or_insert_with(|| {
                        format!(
                            "client {client} saw {seen} users linked, its room has {}: a user \
                             crossed rooms",
                            self.target
                        )
                    });
                }
            }
        } else if probe::is_type(text, b"krmx/accepted") {
            self.accepted += 1;
            self.pending = self.pending.saturating_sub(1);
            self.last_accepted = Some(now);
        } else if probe::is_type(text, b"krmx/rejected") {
            self.pending = self.pending.saturating_sub(1);
            self.rejected.get_or_insert_with(|| {
                format!(
                    "client {client} was rejected: {}",
                    String::from_utf8_lossy(text)
                )
            });
        }
    }
}

/// Turns the fleet until `done` holds; fails on a client failure, a rejection or the deadline.
pub(crate) fn drive<H: Handler>(
    fleet: &mut Fleet,
    handler: &mut H,
    deadline: Instant,
    what: &str,
    mut done: impl FnMut(&Fleet, &H) -> bool,
    mut failed: impl FnMut(&H) -> Option<String>,
) -> Result<(), Failure> {
    let mut progress = Progress::new(what);
    loop {
        progress.tick(fleet, handler);
        if let Some(why) = failed(handler) {
            return Err(Failure(format!("{what}: {why}")));
        }
        if let Some(why) = fleet.first_failure() {
            let census = fleet.census();
            return Err(Failure(format!(
                "{what}: {} client(s) failed, the first: {why}",
                census.gone
            )));
        }
        if done(fleet, handler) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Failure(format!("{what}: timed out")));
        }
        fleet.turn(Duration::from_millis(5), handler)?;
        handler.after_turn(fleet);
    }
}

/// A status line on stderr every 10 s of a long phase.
struct Progress {
    what: String,
    start: Instant,
    next: Instant,
}

impl Progress {
    const EVERY: Duration = Duration::from_secs(10);

    fn new(what: &str) -> Self {
        let start = Instant::now();
        Self {
            what: what.to_owned(),
            start,
            next: start + Self::EVERY,
        }
    }

    fn tick<H: Handler>(&mut self, fleet: &Fleet, handler: &H) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + Self::EVERY;
        let census = fleet.census();
        eprintln!(
            "krmx-load: {} for {:.0} s: {} started, {} connecting, {} open, {} failed{}",
            self.what,
            (now - self.start).as_secs_f64(),
            fleet.len(),
            census.connecting,
            census.open,
            census.gone,
            handler.status()
        );
    }
}

/// Opens `clients` clients, at most `in_flight` connecting at once, and waits until all are
/// open. With [`Linking::OnOpen`] each links as soon as it is open and its turn has come.
pub(crate) fn open_clients(
    fleet: &mut Fleet,
    clients: usize,
    presence: &mut Presence,
    env: &Env<'_>,
) -> Result<(), Failure> {
    let deadline = env.deadline();
    let in_flight = env.common.in_flight.max(1);
    let mut progress = Progress::new("connecting");
    while fleet.len() < clients {
        while fleet.len() < clients && fleet.census().connecting < in_flight {
            fleet.add()?;
        }
        progress.tick(fleet, presence);
        if let Some(why) = fleet.first_failure() {
            return Err(Failure(format!("connecting: {why}")));
        }
        if let Some(why) = &presence.rejected {
            return Err(Failure(format!("connecting: {why}")));
        }
        if Instant::now() > deadline {
            return Err(Failure(format!(
                "connecting: timed out with {} of {clients} clients started",
                fleet.len()
            )));
        }
        fleet.turn(Duration::from_millis(5), presence)?;
        presence.release(fleet);
    }
    drive(
        fleet,
        presence,
        deadline,
        "connecting",
        |fleet, _| fleet.census().open == clients,
        |presence| presence.rejected.clone(),
    )
}

/// Waits until every client saw every user linked (nothing to wait for in bare mode).
pub(crate) fn await_links(
    fleet: &mut Fleet,
    presence: &mut Presence,
    env: &Env<'_>,
) -> Result<(), Failure> {
    if env.bare {
        return Ok(());
    }
    let clients = presence.linked.len();
    drive(
        fleet,
        presence,
        env.deadline(),
        "linking",
        |_, presence| presence.complete == clients,
        |presence| presence.rejected.clone(),
    )
    .map_err(|Failure(why)| {
        Failure(format!(
            "{why} ({} of {clients} clients saw all {clients} users linked, {} accepted)",
            presence.complete, presence.accepted
        ))
    })
}

/// The server's CPU time, if it can be read.
pub(crate) fn server_cpu(env: &Env<'_>) -> Option<Duration> {
    env.server.cpu()
}

/// The CPU time of this process.
pub(crate) fn own_cpu() -> Option<Duration> {
    crate::server::cpu_time("self")
}

/// Milliseconds between two optional CPU readings.
pub(crate) fn cpu_ms(before: Option<Duration>, after: Option<Duration>) -> Option<f64> {
    Some(after?.saturating_sub(before?).as_secs_f64() * 1000.0)
}

/// Pushes a figure if it is known.
pub(crate) fn push(figures: &mut Figures, name: &'static str, value: Option<f64>) {
    if let Some(value) = value {
        figures.push((name, value));
    }
}
