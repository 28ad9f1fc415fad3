//! The options of `krmx serve`, exactly as CLI.md names them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use krmx_core::{KrmxConfig, ProtocolVersion, QueryRequirement};
use krmx_driver::{AllowedOrigins, Monitor, RoomsConfig, ServerTls, StaticFiles, TransportConfig};
use std::path::PathBuf;
use std::time::Duration;

/// The krmx command-line server.
#[derive(Debug, Parser)]
#[command(
    name = "krmx",
    version,
    about = "Krmx: realtime multi-user WebSocket server"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a Krmx server: events as JSON lines on stdout, commands as lines on stdin.
    Serve(ServeArgs),
}

/// The transport the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Transport {
    /// One mio event loop with tungstenite.
    Mio,
    /// smol tasks with async-tungstenite.
    Smol,
}

/// Log verbosity on stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Port to bind; 0 picks a free one.
    #[arg(long, default_value_t = 8082)]
    pub(crate) port: u16,
    /// HTTP path of the WebSocket endpoint; a missing leading `/` is added.
    #[arg(long, default_value = "/")]
    pub(crate) path: String,
    /// Repeatable: `NAME` must be present, `!NAME` must be absent, `NAME=VALUE` must equal.
    #[arg(long = "query", value_name = "SPEC")]
    pub(crate) queries: Vec<String>,
    /// Repeatable: only browser pages of this origin may connect (`https://game.example.com`,
    /// or `https://*.example.com` for its subdomains); others get 403. Requests without an
    /// `Origin` header (not from a browser) are allowed. Off when not given.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub(crate) allowed_origins: Vec<String>,
    /// Answer plain HTTP GET/HEAD requests for PATH (for example `/health`) on the WebSocket
    /// port with the server's health as JSON. Off when not given.
    #[arg(long, value_name = "PATH")]
    pub(crate) health_path: Option<String>,
    /// Rooms: every WebSocket path `PREFIX/<id>` is its own Krmx world (users, presence,
    /// authentication), opened on its first connection and dropped `--room-idle-ms` after its
    /// last user left. Events carry a `room`; user commands take one (`in ROOM join bob`).
    #[arg(long, value_name = "PREFIX")]
    pub(crate) rooms: Option<String>,
    /// With `--rooms`: spread the rooms over this many event loops, one thread each (each room
    /// lives in one; connections are routed by their path). Default: the machine's cores on
    /// mio without TLS; 1 on smol or with TLS (the path is inside it), where more is refused.
    #[arg(long, requires = "rooms")]
    pub(crate) workers: Option<usize>,
    /// With `--rooms`: at most this many rooms at once; a connection to a new room past it is
    /// closed 1013 `too many rooms`.
    #[arg(long, default_value_t = krmx_driver::DEFAULT_MAX_ROOMS, requires = "rooms")]
    pub(crate) max_rooms: usize,
    /// With `--rooms`: the longest room id, in characters (ids are `A-Z a-z 0-9 - _ .`).
    #[arg(long, default_value_t = krmx_driver::DEFAULT_MAX_ROOM_ID_CHARS, requires = "rooms")]
    pub(crate) max_room_id_chars: usize,
    /// With `--rooms`: how long an empty room is kept before it is dropped.
    #[arg(long, default_value_t = 30_000, requires = "rooms")]
    pub(crate) room_idle_ms: u64,
    /// Turn the monitor on (a page at `--monitor-path` and its API, for operators): the API
    /// requires `Authorization: Bearer TOKEN`, at least 16 characters. Prefer the environment
    /// variable: command lines are visible to other users of the machine.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "KRMX_MONITOR_TOKEN",
        hide_env_values = true
    )]
    pub(crate) monitor_token: Option<String>,
    /// Where the monitor answers (with `--monitor-token`).
    #[arg(long, value_name = "PATH", default_value = "/monitor")]
    pub(crate) monitor_path: String,
    /// Serve the files of DIR (read once at start) on plain HTTP `GET`/`HEAD` for their paths,
    /// `index.html` for `/`: a page that links to this server from the same origin.
    #[arg(long, value_name = "DIR")]
    pub(crate) static_dir: Option<PathBuf>,
    /// Serve `wss://` (and `https://` for the health endpoint) with this PEM certificate
    /// chain, the server's certificate first. Needs `--tls-key`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS #8, PKCS #1 or SEC1) of `--tls-cert`. Needs `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Answer plain HTTP GET/HEAD requests for PATH (for example `/metrics`) on the WebSocket
    /// port with the server's metrics in the Prometheus/OpenMetrics text format. Off when not
    /// given.
    #[arg(long, value_name = "PATH")]
    pub(crate) metrics_path: Option<String>,
    /// Only users joined with the `join` command may link.
    #[arg(long)]
    pub(crate) no_new_users: bool,
    /// How long a pending authentication may take; values below 1 mean 1.
    #[arg(long, default_value_t = 10_000, allow_negative_numbers = true)]
    pub(crate) auth_timeout_ms: i64,
    /// Liveness ping interval; 0 disables, 1..99 mean 100.
    #[arg(long, default_value_t = 15_000, allow_negative_numbers = true)]
    pub(crate) ping_interval_ms: i64,
    /// The protocol version served; clients must send `X.Y.*`.
    #[arg(long, default_value = "0.6")]
    pub(crate) krmx_version: ProtocolVersion,
    /// Largest message a client may send; a larger one closes that connection with code 1009.
    #[arg(long, default_value_t = krmx_core::DEFAULT_MAX_MESSAGE_BYTES)]
    pub(crate) max_message_bytes: usize,
    /// Hard limit on bytes buffered for one connection: past it, it is closed at once as a
    /// slow consumer (1008).
    #[arg(long, default_value_t = krmx_core::DEFAULT_MAX_BUFFERED_BYTES)]
    pub(crate) max_buffered_bytes: usize,
    /// Soft limit on bytes buffered for one connection: a backlog over it for
    /// `--soft-buffered-ms` that did not come down from its peak is closed as a slow consumer.
    #[arg(long, default_value_t = krmx_core::DEFAULT_SOFT_BUFFERED_BYTES)]
    pub(crate) soft_buffered_bytes: usize,
    /// How long a backlog may stay over the soft limit without coming down.
    #[arg(long, default_value_t = 60_000)]
    pub(crate) soft_buffered_ms: u64,
    /// How long bytes may wait for a connection with none taken by its socket.
    #[arg(long, default_value_t = 30_000)]
    pub(crate) write_stall_ms: u64,
    /// Budget for bytes buffered across all connections: past it, the connections holding the
    /// most are closed as slow consumers until the total is under it.
    #[arg(long, default_value_t = krmx_core::DEFAULT_BUFFERED_BUDGET)]
    pub(crate) buffered_budget_bytes: usize,
    /// How long a new connection may take to finish its request or WebSocket upgrade (the TLS
    /// handshake included) before it is dropped.
    #[arg(long, default_value_t = 5_000)]
    pub(crate) handshake_timeout_ms: u64,
    /// How long a close (the `close` command, SIGINT, SIGTERM) may take before the connections
    /// still open are dropped.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) shutdown_grace_ms: u64,
    /// Every authentication waits for an `accept`/`reject` command.
    #[arg(long)]
    pub(crate) manual_auth: bool,
    /// Repeatable: linking as USER is rejected with REASON at once.
    #[arg(long = "reject", value_name = "USER=REASON")]
    pub(crate) rejects: Vec<String>,
    /// Every custom message from a user is broadcast to all linked users, sender included.
    #[arg(long, conflicts_with = "echo")]
    pub(crate) relay: bool,
    /// Every custom message from a user is sent back to that user only.
    #[arg(long)]
    pub(crate) echo: bool,
    /// Do not print `message` events (for benchmarks).
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Log verbosity on stderr.
    #[arg(long, value_enum, default_value = "warn")]
    pub(crate) log_level: LogLevel,
    /// The transport the server runs on.
    #[arg(long, value_enum, default_value = "mio")]
    pub(crate) transport: Transport,
}

impl ServeArgs {
    /// The core configuration these options describe.
    pub(crate) fn krmx_config(&self) -> KrmxConfig {
        let auth_timeout = Duration::from_millis(self.auth_timeout_ms.max(1).unsigned_abs());
        let ping = Duration::from_millis(self.ping_interval_ms.max(0).unsigned_abs());
        let mut config = KrmxConfig::default()
            .auth(krmx_core::AuthMode::Application)
            .accept_new_users(!self.no_new_users)
            .auth_timeout(auth_timeout)
            .ping_interval(ping)
            .version(self.krmx_version)
            .path(&self.path)
            .max_message_bytes(self.max_message_bytes)
            .max_buffered_bytes(self.max_buffered_bytes)
            .soft_buffered_bytes(
                self.soft_buffered_bytes,
                Duration::from_millis(self.soft_buffered_ms),
            )
            .write_stall_timeout(Duration::from_millis(self.write_stall_ms))
            .buffered_budget(self.buffered_budget_bytes);
        for spec in &self.queries {
            let (name, requirement) = query_requirement(spec);
            config = config.query(name, requirement);
        }
        config
    }

    /// How many event loops serve the rooms (see `--workers`).
    pub(crate) fn workers(&self) -> usize {
        let routable =
            self.rooms.is_some() && self.transport == Transport::Mio && self.tls_cert.is_none();
        match self.workers {
            Some(workers) => workers.max(1),
            None if routable => std::thread::available_parallelism().map_or(1, usize::from),
            None => 1,
        }
    }

    /// The transport configuration these options describe.
    ///
    /// # Errors
    /// The TLS certificate or key cannot be read or used.
    pub(crate) fn transport_config(&self) -> Result<TransportConfig, String> {
        let mut config = TransportConfig::default()
            .shutdown_grace(Duration::from_millis(self.shutdown_grace_ms))
            .handshake_timeout(Duration::from_millis(self.handshake_timeout_ms.max(1)));
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let tls = ServerTls::from_pem_files(cert, key).map_err(|error| {
                format!(
                    "cannot use --tls-cert {} --tls-key {}: {error}",
                    cert.display(),
                    key.display()
                )
            })?;
            config = config.tls(tls);
        }
        if let Some(path) = &self.health_path {
            config = config.health_path(path);
        }
        if let Some(prefix) = &self.rooms {
            // With workers, each takes its share of the cap.
            let per_worker = self.max_rooms.div_ceil(self.workers());
            config = config.rooms(
                RoomsConfig::new(prefix)
                    .max_rooms(per_worker)
                    .max_id_chars(self.max_room_id_chars)
                    .idle(Duration::from_millis(self.room_idle_ms)),
            );
        }
        if let Some(token) = &self.monitor_token {
            let monitor = Monitor::new(&self.monitor_path, token)
                .map_err(|error| format!("cannot use --monitor-token: {error}"))?;
            config = config.monitor(monitor);
        }
        if let Some(dir) = &self.static_dir {
            let files = StaticFiles::load(dir)
                .map_err(|error| format!("cannot use --static-dir {}: {error}", dir.display()))?;
            config = config.static_files(files);
        }
        if let Some(path) = &self.metrics_path {
            config = config.metrics_path(path);
        }
        if !self.allowed_origins.is_empty() {
            config = config.allowed_origins(AllowedOrigins::new(&self.allowed_origins));
        }
        Ok(config)
    }

    /// The `--reject USER=REASON` pairs; an entry without `=` rejects with `rejected`.
    pub(crate) fn reject_reasons(&self) -> Vec<(String, String)> {
        self.rejects
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((user, reason)) => (user.to_owned(), reason.to_owned()),
                None => (entry.clone(), "rejected".to_owned()),
            })
            .collect()
    }
}

/// `NAME` present, `!NAME` absent, `NAME=VALUE` equal.
fn query_requirement(spec: &str) -> (String, QueryRequirement) {
    if let Some(name) = spec.strip_prefix('!') {
        (name.to_owned(), QueryRequirement::Absent)
    } else if let Some((name, value)) = spec.split_once('=') {
        (name.to_owned(), QueryRequirement::Equals(value.to_owned()))
    } else {
        (spec.to_owned(), QueryRequirement::Present)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut all = vec!["krmx", "serve"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|cli| match cli.command {
            Command::Serve(args) => args,
        })
    }

    #[test]
    fn defaults_follow_the_contract() {
        let args = serve(&[]).unwrap();
        assert_eq!(
            (args.host.as_str(), args.port, args.path.as_str()),
            ("127.0.0.1", 8082, "/")
        );
        let config = args.krmx_config();
        assert_eq!(config.auth_timeout_value(), Duration::from_secs(10));
        assert_eq!(config.ping_interval_value(), Some(Duration::from_secs(15)));
        assert_eq!(config.served_version().to_string(), "0.6");
        assert_eq!(config.max_message_bytes_value(), 1_048_576);
        assert!(config.accepts_new_users());
        assert_eq!(config.path_rule(), Some("/"));
    }

    #[test]
    fn transport_defaults_to_mio() {
        assert_eq!(serve(&[]).unwrap().transport, Transport::Mio);
        let args = serve(&["--transport", "smol"]).unwrap();
        assert_eq!(args.transport, Transport::Smol);
        assert!(serve(&["--transport", "tokio"]).is_err());
    }

    #[test]
    fn relay_and_echo_exclude_each_other() {
        assert!(serve(&["--relay", "--echo"]).is_err());
        assert!(serve(&["--relay"]).is_ok());
    }

    #[test]
    fn timing_values_are_clamped_as_documented() {
        let config = serve(&["--auth-timeout-ms", "0", "--ping-interval-ms", "5"])
            .unwrap()
            .krmx_config();
        assert_eq!(config.auth_timeout_value(), Duration::from_millis(1));
        assert_eq!(
            config.ping_interval_value(),
            Some(Duration::from_millis(100))
        );
        let config = serve(&["--ping-interval-ms", "0"]).unwrap().krmx_config();
        assert_eq!(config.ping_interval_value(), None);
    }

    #[test]
    fn buffering_limits_and_the_shutdown_grace_have_flags() {
        let args = serve(&[]).unwrap();
        let config = args.krmx_config();
        assert_eq!(config.max_buffered_bytes_value(), 64 << 20);
        assert_eq!(config.soft_buffered_bytes_value(), 8 << 20);
        assert_eq!(config.soft_buffered_period_value(), Duration::from_secs(60));
        assert_eq!(config.write_stall_timeout_value(), Duration::from_secs(30));
        assert_eq!(config.buffered_budget_value(), 1 << 30);
        assert_eq!(
            args.transport_config().unwrap().shutdown_grace_value(),
            Duration::from_secs(10)
        );
        let args = serve(&[
            "--max-buffered-bytes",
            "1000",
            "--soft-buffered-bytes",
            "100",
            "--soft-buffered-ms",
            "20",
            "--write-stall-ms",
            "30",
            "--buffered-budget-bytes",
            "5000",
            "--shutdown-grace-ms",
            "40",
        ])
        .unwrap();
        let config = args.krmx_config();
        assert_eq!(config.max_buffered_bytes_value(), 1000);
        assert_eq!(config.soft_buffered_bytes_value(), 100);
        assert_eq!(
            config.soft_buffered_period_value(),
            Duration::from_millis(20)
        );
        assert_eq!(
            config.write_stall_timeout_value(),
            Duration::from_millis(30)
        );
        assert_eq!(config.buffered_budget_value(), 5000);
        assert_eq!(
            args.transport_config().unwrap().shutdown_grace_value(),
            Duration::from_millis(40)
        );
    }

    #[test]
    fn allowed_origins_are_off_unless_given() {
        let args = serve(&[]).unwrap();
        assert!(
            args.transport_config()
                .unwrap()
                .allowed_origins_value()
                .is_none()
        );
        let args = serve(&[
            "--allow-origin",
            "https://game.example.com",
            "--allow-origin",
            "*.example.org",
        ])
        .unwrap();
        let config = args.transport_config().unwrap();
        let origins = config.allowed_origins_value().unwrap();
        assert!(origins.allows("https://game.example.com"));
        assert!(origins.allows("http://a.example.org"));
        assert!(!origins.allows("https://evil.example.net"));
    }

    #[test]
    fn rooms_run_on_every_core_where_they_can_be_routed() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(serve(&["--rooms", "/r"]).unwrap().workers(), cores);
        assert_eq!(
            serve(&["--rooms", "/r", "--workers", "3"])
                .unwrap()
                .workers(),
            3
        );
        let smol = serve(&["--rooms", "/r", "--transport", "smol"]).unwrap();
        assert_eq!(smol.workers(), 1);
        let tls = serve(&["--rooms", "/r", "--tls-cert", "c", "--tls-key", "k"]).unwrap();
        assert_eq!(tls.workers(), 1);
        assert_eq!(serve(&[]).unwrap().workers(), 1);
        assert!(
            serve(&["--workers", "2"]).is_err(),
            "--workers needs --rooms"
        );
    }

    #[test]
    fn query_specs() {
        let config = serve(&[
            "--path", "game", "--query", "key", "--query", "!debug", "--query", "room=a",
        ])
        .unwrap()
        .krmx_config();
        assert_eq!(config.check_request("/game?key&room=a"), Ok(()));
        assert!(config.check_request("/game?key&room=b").is_err());
        assert!(config.check_request("/game?key&room=a&debug").is_err());
        assert!(config.check_request("/game?room=a").is_err());
        assert!(config.check_request("/?key&room=a").is_err());
    }

    #[test]
    fn reject_pairs() {
        let args = serve(&["--reject", "mallory=banned for life", "--reject", "eve"]).unwrap();
        assert_eq!(
            args.reject_reasons(),
            vec![
                ("mallory".to_owned(), "banned for life".to_owned()),
                ("eve".to_owned(), "rejected".to_owned())
            ]
        );
    }
}
