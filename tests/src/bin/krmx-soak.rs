//! `krmx-soak`: a long run of many churning clients against `krmx serve --relay --quiet`, with
//! exactly-once accounting of every relayed message and the server's memory and descriptors
//! watched throughout.
//!
//! ```text
//! cargo build --release -p krmx-cli -p krmx-tests
//! target/release/krmx-soak                      # 1000 clients, 600 s, mio
//! target/release/krmx-soak --secs 60 --transport smol
//! ```
//!
//! Each client, on a smol executor, loops until the end: connect, link as its own user, chat
//! (numbered messages, 1 to 8 per session, one every `--chat-ms` on average), then end the
//! session one of five ways: unlink and link again on the same connection, leave and link
//! again, close the WebSocket, drop the TCP connection (FIN), or reset it (RST); then connect
//! again. The server relays every chat to every linked user.
//!
//! Exactly-once accounting, from each receiver's own stream (the server orders it): per sender
//! session, the messages must come numbered without gap, duplicate or reordering; a session
//! that links while the receiver is linked must arrive from its first message; a session that
//! ends (graceful ways) while the receiver is linked must arrive up to its last message; a
//! session seen to link and unlink with nothing between is lost whole; a sender that unlinks
//! or leaves has its own messages all echoed first. Whatever breaks one of these is counted as
//! lost (or as an anomaly when it is no loss: a message twice, a server-side close, ...).
//!
//! Every `--sample-secs` it prints the server's resident memory and open descriptors
//! (`/proc/<pid>`); at the end the figures at the start (all clients linked), the middle, the
//! end, and after every client left, and the totals. The exit status is 0 only with no loss,
//! no anomaly and the descriptors back to their baseline.

use async_tungstenite::WebSocketStream;
use serde_json::{Value, json};
use smol::net::TcpStream;
use smol::stream::StreamExt;
use smol::{Executor, Timer};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::Shutdown;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tungstenite::Message;

const USAGE: &str = "\
krmx-soak: many churning clients against `krmx serve --relay --quiet`

options:
  --secs N            how long the clients churn (default 600)
  --clients N         how many clients (default 1000)
  --transport T       mio or smol (default mio)
  --chat-ms N         mean time between two chats of one client (default 10000)
  --sample-secs N     how often the server is measured (default 10)
  --client-threads N  threads running the clients (default 2)
  --seed N            seeds the clients' choices (default 1)
  --server PATH       the krmx binary (default: beside this one, built if missing)
  --ignore-every N    check the checker: receivers ignore every Nth chat, which must then
                      be reported lost (default 0: off)";

/// The run's settings.
#[derive(Debug, Clone)]
struct Options {
    secs: u64,
    clients: u32,
    transport: String,
    chat_ms: u64,
    sample_secs: u64,
    client_threads: usize,
    seed: u64,
    server: Option<PathBuf>,
    ignore_every: u64,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Self {
            secs: 600,
            clients: 1000,
            transport: "mio".to_owned(),
            chat_ms: 10_000,
            sample_secs: 10,
            client_threads: 2,
            seed: 1,
            server: None,
            ignore_every: 0,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Err(String::new());
            }
            let value = args.next().ok_or(format!("{arg} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{arg}: not a number: {value}"))
            };
            match arg.as_str() {
                "--secs" => options.secs = number()?,
                "--clients" => {
                    options.clients = u32::try_from(number()?).map_err(|e| e.to_string())?;
                }
                "--transport" if value == "mio" || value == "smol" => options.transport = value,
                "--chat-ms" => options.chat_ms = number()?.max(1),
                "--sample-secs" => options.sample_secs = number()?.max(1),
                "--client-threads" => {
                    options.client_threads =
                        usize::try_from(number()?.clamp(1, 64)).map_err(|e| e.to_string())?;
                }
                "--seed" => options.seed = number()?,
                "--server" => options.server = Some(PathBuf::from(value)),
                "--ignore-every" => options.ignore_every = number()?,
                _ => return Err(format!("unknown option {arg} {value}")),
            }
        }
        Ok(options)
    }
}

/// A small seeded generator (splitmix64): the clients' choices, reproducible per seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// `krmx/unlink`, then link again on the same connection.
    Unlink,
    /// `krmx/leave` (the user is removed), then link again on the same connection.
    Leave,
    /// The WebSocket close handshake.
    Close,
    /// The TCP connection is shut down for writing (FIN) without a close handshake.
    Drop,
    /// The TCP connection is reset (RST).
    Reset,
}

impl Ending {
    fn pick(rng: &mut Rng) -> Self {
        match rng.range(0, 99) {
            0..=34 => Self::Unlink,
            35..=44 => Self::Leave,
            45..=64 => Self::Close,
            65..=89 => Self::Drop,
            _ => Self::Reset,
        }
    }

    /// Whether every message the session sent reaches the server before its unlink.
    fn is_graceful(self) -> bool {
        self != Self::Reset
    }
}

/// Counters and the records checked at the end, shared by every client.
#[derive(Default)]
struct Shared {
    /// Per (sender, session): chats sent, and whether all reached the server.
    sent: Mutex<HashMap<(u32, u64), (u64, bool)>>,
    /// (sender, session, last number a receiver got) for sessions that ended while the
    /// receiver was linked.
    ends: Mutex<Vec<(u32, u64, u64)>>,
    anomalies: Mutex<Vec<String>>,
    /// Why the first connection attempts that failed did (the client tries again).
    connect_errors: Mutex<Vec<String>>,
    linked: AtomicU64,
    sessions: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    link_retries: AtomicU64,
    chats: AtomicU64,
    delivered: AtomicU64,
    lost: AtomicU64,
    anomaly_count: AtomicU64,
    /// Set once every client must finish.
    stopping: AtomicBool,
    /// `--ignore-every`: receivers ignore every Nth chat (0: none).
    ignore_every: u64,
    /// Chats received from others, for `--ignore-every`.
    received: AtomicU64,
}

impl Shared {
    fn anomaly(&self, what: String) {
        self.anomaly_count.fetch_add(1, Ordering::Relaxed);
        let mut log = self
            .anomalies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if log.len() < 20 {
            log.push(what);
        }
    }

    fn lose(&self, count: u64, what: impl FnOnce() -> String) {
        if count > 0 {
            self.lost.fetch_add(count, Ordering::Relaxed);
            self.anomaly(format!("lost {count}: {}", what()));
        }
    }
}

/// What a receiver knows of one other user during its own linked session.
#[derive(Debug, Default)]
struct Peer {
    linked: bool,
    /// Its link came while this receiver was linked: its first message must be number 0.
    live_start: bool,
    /// The sender session of the messages received since its link, and the last number.
    current: Option<(u64, u64)>,
}

/// One linked session of a client, as a receiver and as a sender.
struct Session {
    me: u32,
    k: u64,
    /// Past the accepted sequence (the roster): every `linked` now is a live link.
    live: bool,
    peers: HashMap<u32, Peer>,
    /// Chats sent in this session.
    sent: u64,
    /// Own chats echoed back.
    echoed: u64,
    /// Own unlink seen.
    unlinked: bool,
}

/// The client index of a username `u0042`.
fn index_of(name: &str) -> Option<u32> {
    name.strip_prefix('u')?.parse().ok()
}

impl Session {
    fn new(me: u32, k: u64) -> Self {
        Self {
            me,
            k,
            live: false,
            peers: HashMap::new(),
            sent: 0,
            echoed: 0,
            unlinked: false,
        }
    }

    /// Takes one message of this client's stream.
    fn take(&mut self, text: &str, shared: &Shared) {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return shared.anomaly(format!("not JSON: {text}"));
        };
        let kind = value
            .pointer("/type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let user = value
            .pointer("/payload/username")
            .and_then(Value::as_str)
            .and_then(index_of);
        match (kind, user) {
            ("krmx/joined", _) => {}
            ("krmx/linked", Some(user)) if user != self.me => {
                let live = self.live;
                self.peers.insert(
                    user,
                    Peer {
                        linked: true,
                        live_start: live,
                        current: None,
                    },
                );
            }
            ("krmx/linked", Some(_)) => {}
            ("krmx/unlinked", Some(user)) => {
                self.live = true;
                if user == self.me {
                    self.unlinked = true;
                    return;
                }
                let peer = self.peers.remove(&user).unwrap_or_default();
                match peer.current {
                    Some((k, last)) => shared
                        .ends
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((user, k, last)),
                    None if peer.live_start => shared.lose(1, || {
                        format!(
                            "u{:04} saw u{user:04} link and unlink with no message between",
                            self.me
                        )
                    }),
                    None => {}
                }
            }
            ("krmx/left", _) => self.live = true,
            ("chat", _) => {
                self.live = true;
                self.chat(&value, shared);
            }
            _ => shared.anomaly(format!("u{:04} got {text}", self.me)),
        }
    }

    fn chat(&mut self, value: &Value, shared: &Shared) {
        let number = |name: &str| value.pointer(&format!("/payload/{name}"))?.as_u64();
        let (Some(from), Some(k), Some(seq)) = (
            number("c").and_then(|c| u32::try_from(c).ok()),
            number("k"),
            number("s"),
        ) else {
            return shared.anomaly(format!("a malformed chat {value}"));
        };
        if from != self.me && shared.ignore_every > 0 {
            let n = shared.received.fetch_add(1, Ordering::Relaxed) + 1;
            if n % shared.ignore_every == 0 {
                return;
            }
        }
        shared.delivered.fetch_add(1, Ordering::Relaxed);
        if from == self.me {
            if k != self.k || seq != self.echoed {
                shared.anomaly(format!(
                    "u{from:04} got its own chat {k}/{seq}, expected {}/{}",
                    self.k, self.echoed
                ));
            }
            self.echoed = seq + 1;
            return;
        }
        let me = self.me;
        let Some(peer) = self.peers.get_mut(&from).filter(|peer| peer.linked) else {
            return shared.anomaly(format!(
                "u{me:04} got chat {k}/{seq} of u{from:04}, not linked as it knows"
            ));
        };
        match peer.current {
            None => {
                if peer.live_start {
                    shared.lose(seq, || {
                        format!("u{me:04} missed the first {seq} chats of u{from:04}/{k}")
                    });
                }
            }
            Some((current, last)) if current == k && seq > last => {
                shared.lose(seq - last - 1, || {
                    format!(
                        "u{me:04} missed chats {}..{seq} of u{from:04}/{k}",
                        last + 1
                    )
                });
            }
            Some((current, last)) => shared.anomaly(format!(
                "u{me:04} got chat {k}/{seq} of u{from:04} after {current}/{last}"
            )),
        }
        peer.current = Some((k, seq));
    }
}

/// One connection of a client.
struct Conn {
    ws: WebSocketStream<TcpStream>,
    tcp: TcpStream,
}

/// What a wait for the next message gave.
enum Next {
    Text(String),
    /// Something else (a ping, answered by tungstenite; a pong; a binary message).
    Other,
    /// The connection ended (a close frame, EOF, reset).
    Gone,
    /// The timer fired first.
    Timer,
}

async fn next(conn: &mut Conn, until: Instant) -> Next {
    let read = async {
        match conn.ws.next().await {
            Some(Ok(Message::Text(text))) => Next::Text(text.as_str().to_owned()),
            Some(Ok(Message::Close(_)) | Err(_)) | None => Next::Gone,
            Some(Ok(_)) => Next::Other,
        }
    };
    let timer = async {
        Timer::at(until).await;
        Next::Timer
    };
    smol::future::or(read, timer).await
}

async fn connect(addr: &str, shared: &Shared) -> Option<Conn> {
    let started = Instant::now();
    let attempt = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("TCP connect: {e}"))?;
        let connected = started.elapsed();
        let _ = tcp.set_nodelay(true);
        let (ws, _) = async_tungstenite::client_async(format!("ws://{addr}/"), tcp.clone())
            .await
            .map_err(|e| {
                format!(
                    "upgrade: {e} (TCP connected after {} ms, upgrade failed after {} ms)",
                    connected.as_millis(),
                    started.elapsed().as_millis()
                )
            })?;
        Ok(Conn { ws, tcp })
    };
    let timeout = async {
        Timer::after(Duration::from_secs(20)).await;
        Err("no connection within 20 s".to_owned())
    };
    match smol::future::or(attempt, timeout).await {
        Ok(conn) => {
            shared.connects.fetch_add(1, Ordering::Relaxed);
            Some(conn)
        }
        Err(error) => {
            shared.connect_failures.fetch_add(1, Ordering::Relaxed);
            let mut log = shared
                .connect_errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if log.len() < 5 {
                log.push(error);
            }
            None
        }
    }
}

async fn send(conn: &mut Conn, value: &Value) -> bool {
    conn.ws.send(Message::text(value.to_string())).await.is_ok()
}

/// Links `name`: `Some(true)` once accepted, `Some(false)` if the connection is gone, `None`
/// when rejected for good.
async fn link(conn: &mut Conn, me: u32, shared: &Shared) -> Option<bool> {
    let request = json!({"type": "krmx/link", "payload": {"username": format!("u{me:04}"), "version": "0.6.0"}});
    for _ in 0..400 {
        if !send(conn, &request).await {
            return Some(false);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match next(conn, deadline).await {
                Next::Text(text) if text == r#"{"type":"krmx/accepted"}"# => return Some(true),
                Next::Text(text) if text.contains("is already linked") => {
                    // Our previous connection's end is not handled yet.
                    shared.link_retries.fetch_add(1, Ordering::Relaxed);
                    Timer::after(Duration::from_millis(25)).await;
                    break;
                }
                Next::Text(text) if text.starts_with(r#"{"type":"krmx/rejected""#) => {
                    shared.anomaly(format!("u{me:04} rejected: {text}"));
                    return None;
                }
                // `krmx/left` after our own leave.
                Next::Text(_) | Next::Other => {}
                Next::Gone => return Some(false),
                Next::Timer => {
                    shared.anomaly(format!("u{me:04}: no answer to a link in 30 s"));
                    return Some(false);
                }
            }
        }
    }
    None
}

/// How a session left the connection.
enum After {
    /// Still open and unlinked: link again.
    Open,
    /// Gone: connect again.
    Gone,
}

/// One linked session: chat, then end as `ending` says.
async fn session(
    conn: &mut Conn,
    me: u32,
    k: u64,
    options: &Options,
    rng: &mut Rng,
    shared: &Shared,
) -> After {
    let mut session = Session::new(me, k);
    let chats = rng.range(1, 8);
    let mean = options.chat_ms;
    let mut ending = Ending::pick(rng);
    let mut next_chat = Instant::now();
    let mut server_gone = false;
    // Chat.
    loop {
        match next(conn, next_chat).await {
            Next::Text(text) => {
                session.take(&text, shared);
                if session.unlinked {
                    shared.anomaly(format!("u{me:04} unlinked by the server"));
                    break;
                }
            }
            Next::Other => {}
            Next::Gone => {
                server_gone = true;
                break;
            }
            Next::Timer => {
                let stopping = shared.stopping.load(Ordering::Relaxed);
                if session.sent >= chats || (stopping && session.sent > 0) {
                    break;
                }
                let chat = json!({"type": "chat", "payload": {"c": me, "k": k, "s": session.sent}});
                if !send(conn, &chat).await {
                    server_gone = true;
                    break;
                }
                session.sent += 1;
                shared.chats.fetch_add(1, Ordering::Relaxed);
                next_chat =
                    Instant::now() + Duration::from_millis(rng.range(mean / 2, mean * 3 / 2));
            }
        }
    }
    shared.linked.fetch_sub(1, Ordering::Relaxed);
    if server_gone {
        shared.anomaly(format!("u{me:04}/{k}: the server ended the connection"));
    }
    if shared.stopping.load(Ordering::Relaxed) {
        ending = Ending::Unlink;
    }
    // A reset may lose what the server has not read: only once the first chat is known to be
    // handled (echoed), so that a session never vanishes whole.
    if ending == Ending::Reset && session.echoed == 0 {
        ending = Ending::Drop;
    }
    let graceful = ending.is_graceful() && !server_gone && !session.unlinked;
    shared
        .sent
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((me, k), (session.sent, graceful));
    if server_gone || session.unlinked {
        return if server_gone {
            After::Gone
        } else {
            After::Open
        };
    }
    let wait_until = Instant::now() + Duration::from_secs(30);
    match ending {
        Ending::Unlink | Ending::Leave => {
            let kind = if ending == Ending::Unlink {
                "krmx/unlink"
            } else {
                "krmx/leave"
            };
            if !send(conn, &json!({ "type": kind })).await {
                return After::Gone;
            }
            while !session.unlinked {
                match next(conn, wait_until).await {
                    Next::Text(text) => session.take(&text, shared),
                    Next::Other => {}
                    Next::Gone | Next::Timer => return After::Gone,
                }
            }
            shared.lose(session.sent.saturating_sub(session.echoed), || {
                format!(
                    "u{me:04}/{k} got {} of its {} chats back",
                    session.echoed, session.sent
                )
            });
            After::Open
        }
        Ending::Close | Ending::Drop => {
            if ending == Ending::Close {
                let _ = conn.ws.close(None).await;
            } else {
                let _ = conn.tcp.shutdown(Shutdown::Write);
            }
            // Read on (the server unlinks us once it has everything) until the end.
            loop {
                match next(conn, wait_until).await {
                    Next::Text(text) => session.take(&text, shared),
                    Next::Other => {}
                    Next::Gone | Next::Timer => return After::Gone,
                }
            }
        }
        Ending::Reset => {
            let _ = rustix::net::sockopt::set_socket_linger(&conn.tcp, Some(Duration::ZERO));
            After::Gone
        }
    }
}

/// One client: sessions until the run stops, then a last unlink and a close.
async fn client(me: u32, addr: String, options: Options, shared: Arc<Shared>) {
    let mut rng = Rng(options.seed ^ (u64::from(me) << 32) ^ 0x5eed);
    let mut k = 0;
    while !shared.stopping.load(Ordering::Relaxed) {
        let Some(mut conn) = connect(&addr, &shared).await else {
            Timer::after(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            match link(&mut conn, me, &shared).await {
                Some(true) => {}
                Some(false) => break,
                None => return,
            }
            k += 1;
            shared.sessions.fetch_add(1, Ordering::Relaxed);
            shared.linked.fetch_add(1, Ordering::Relaxed);
            let after = session(&mut conn, me, k, &options, &mut rng, &shared).await;
            if shared.stopping.load(Ordering::Relaxed) {
                if let After::Open = after {
                    let _ = conn.ws.close(None).await;
                    let until = Instant::now() + Duration::from_secs(10);
                    while !matches!(next(&mut conn, until).await, Next::Gone | Next::Timer) {}
                }
                return;
            }
            let pause = Duration::from_millis(rng.range(10, 500));
            Timer::after(pause).await;
            if let After::Gone = after {
                break;
            }
        }
    }
}

/// The server's resident memory (KiB) and open descriptors.
fn measure(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    (rss, fds)
}

/// The `krmx` binary beside this one, built by cargo if missing.
fn server_binary(options: &Options) -> Result<PathBuf, String> {
    if let Some(path) = &options.server {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no directory")?;
    let binary = dir.join(format!("krmx{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let target = dir.parent().ok_or("no target directory")?;
        let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        build
            .args(["build", "-p", "krmx-cli", "--bin", "krmx", "--target-dir"])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        let status = build.status().map_err(|e| format!("running cargo: {e}"))?;
        if !status.success() {
            return Err(format!("building krmx failed: {status}"));
        }
    }
    Ok(binary)
}

/// Starts `krmx serve` and returns it with its port; its output is drained on threads.
fn start_server(options: &Options) -> Result<(Child, u16), String> {
    let binary = server_binary(options)?;
    let mut child = Command::new(&binary)
        .args(["serve", "--port", "0", "--relay", "--quiet", "--transport"])
        .arg(&options.transport)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    std::thread::spawn(move || {
        let mut sink = [0_u8; 4096];
        while let Ok(1..) = stderr.read(&mut sink) {}
    });
    let (port_sender, port) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(r#""event":"listen""#) {
                let value: Value = serde_json::from_str(&line).unwrap_or_default();
                let _ = port_sender.send(value.get("port").and_then(Value::as_u64).unwrap_or(0));
            }
        }
    });
    let port = port
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the server did not report its port".to_owned())?;
    let port = u16::try_from(port).map_err(|e| e.to_string())?;
    Ok((child, port))
}

/// One measurement during the run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss: u64,
    fds: usize,
    linked: u64,
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(error) => {
            if !error.is_empty() {
                eprintln!("{error}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("krmx-soak: {error}");
            ExitCode::from(2)
        }
    }
}

fn run(options: &Options) -> Result<bool, String> {
    let (mut child, port) = start_server(options)?;
    let pid = child.id();
    let addr = format!("127.0.0.1:{port}");
    std::thread::sleep(Duration::from_millis(200));
    let baseline = measure(pid);
    println!(
        "krmx serve --relay --quiet --transport {} (pid {pid}) on {addr}: RSS {} KiB, {} fds; \
         {} clients for {} s",
        options.transport, baseline.0, baseline.1, options.clients, options.secs
    );

    let shared = Arc::new(Shared {
        ignore_every: options.ignore_every,
        ..Shared::default()
    });
    let executor = Arc::new(Executor::new());
    let started = Instant::now();
    let ramp = Duration::from_secs((options.secs / 4).clamp(1, 30));
    let mut tasks = Vec::new();
    for me in 0..options.clients {
        let delay = ramp.mul_f64(f64::from(me) / f64::from(options.clients.max(1)));
        let (addr, options, shared) = (addr.clone(), options.clone(), Arc::clone(&shared));
        tasks.push(executor.spawn(async move {
            Timer::after(delay).await;
            client(me, addr, options, shared).await;
        }));
    }
    let all_done = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..options.client_threads)
        .map(|_| {
            let (executor, all_done) = (Arc::clone(&executor), Arc::clone(&all_done));
            std::thread::spawn(move || {
                smol::block_on(executor.run(async {
                    while !all_done.load(Ordering::Relaxed) {
                        Timer::after(Duration::from_millis(50)).await;
                    }
                }));
            })
        })
        .collect();

    let end = started + Duration::from_secs(options.secs);
    let mut samples: Vec<Sample> = Vec::new();
    let mut next_sample = started + Duration::from_secs(options.sample_secs);
    while Instant::now() < end {
        std::thread::sleep(
            next_sample
                .min(end)
                .saturating_duration_since(Instant::now()),
        );
        if child.try_wait().ok().flatten().is_some() {
            return Err("the server exited".to_owned());
        }
        let (rss, fds) = measure(pid);
        let sample = Sample {
            at: started.elapsed(),
            rss,
            fds,
            linked: shared.linked.load(Ordering::Relaxed),
        };
        println!(
            "{:>5} s  RSS {:>7} KiB  fds {:>5}  linked {:>5}  sessions {:>7}  chats {:>8}  \
             delivered {:>10}  lost {}  anomalies {}",
            sample.at.as_secs(),
            rss,
            fds,
            sample.linked,
            shared.sessions.load(Ordering::Relaxed),
            shared.chats.load(Ordering::Relaxed),
            shared.delivered.load(Ordering::Relaxed),
            shared.lost.load(Ordering::Relaxed),
            shared.anomaly_count.load(Ordering::Relaxed),
        );
        samples.push(sample);
        next_sample += Duration::from_secs(options.sample_secs);
    }
    shared.stopping.store(true, Ordering::Relaxed);
    let stop_deadline = Instant::now() + Duration::from_secs(60);
    while tasks.iter().any(|task| !task.is_finished()) && Instant::now() < stop_deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let unfinished = tasks.iter().filter(|task| !task.is_finished()).count();
    all_done.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    drop(tasks);
    // Closing connections linger at most a few seconds on the server.
    let mut after = measure(pid);
    let settle = Instant::now() + Duration::from_secs(10);
    while after.1 > baseline.1 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
        after = measure(pid);
    }

    // The sessions that ended while others were linked: did those get every last message?
    let sent = shared.sent.lock().unwrap_or_else(PoisonError::into_inner);
    let mut checked_ends = 0;
    for &(sender, k, last) in shared
        .ends
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        match sent.get(&(sender, k)) {
            Some(&(count, true)) => {
                checked_ends += 1;
                if last + 1 > count {
                    shared.anomaly(format!("u{sender:04}/{k}: chat {last} got, {count} sent"));
                }
                shared.lose(count.saturating_sub(last + 1), || {
                    format!("the last chats of u{sender:04}/{k} (got to {last} of {count})")
                });
            }
            Some(_) => {}
            None => shared.anomaly(format!("u{sender:04}/{k} ended but never recorded")),
        }
    }
    drop(sent);

    let _ = child.kill();
    let _ = child.wait();

    let pick = |at: Duration| {
        samples
            .iter()
            .min_by_key(|sample| sample.at.abs_diff(at))
            .copied()
    };
    let first = samples
        .iter()
        .find(|sample| sample.at >= ramp + Duration::from_secs(options.sample_secs))
        .or(samples.first())
        .copied();
    let middle = pick(Duration::from_secs(options.secs / 2));
    let last = samples.last().copied();
    println!();
    println!(
        "server ({}):          RSS KiB    fds  linked",
        options.transport
    );
    println!(
        "  baseline        {:>10} {:>6}       0",
        baseline.0, baseline.1
    );
    for (name, sample) in [("start", first), ("middle", middle), ("end", last)] {
        if let Some(sample) = sample {
            println!(
                "  {name:<6} {:>5} s {:>10} {:>6} {:>7}",
                sample.at.as_secs(),
                sample.rss,
                sample.fds,
                sample.linked
            );
        }
    }
    println!("  after all left  {:>10} {:>6}       0", after.0, after.1);
    let lost = shared.lost.load(Ordering::Relaxed);
    let anomalies = shared.anomaly_count.load(Ordering::Relaxed);
    println!(
        "clients {}, connections {} ({} failed), sessions {}, link retries {}, chats {}, \
         deliveries checked {}, session ends checked {checked_ends}",
        options.clients,
        shared.connects.load(Ordering::Relaxed),
        shared.connect_failures.load(Ordering::Relaxed),
        shared.sessions.load(Ordering::Relaxed),
        shared.link_retries.load(Ordering::Relaxed),
        shared.chats.load(Ordering::Relaxed),
        shared.delivered.load(Ordering::Relaxed),
    );
    println!("lost messages {lost}, anomalies {anomalies}, clients unfinished {unfinished}");
    for anomaly in shared
        .anomalies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        println!("  {anomaly}");
    }
    for error in shared
        .connect_errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        println!("  a connection attempt failed (tried again): {error}");
    }
    let fds_back = after.1 <= baseline.1;
    if !fds_back {
        println!(
            "descriptors did not come back: {} after, {} before",
            after.1, baseline.1
        );
    }
    Ok(lost == 0 && anomalies == 0 && unfinished == 0 && fds_back)
}
