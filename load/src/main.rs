//! `krmx-load`: workloads against Krmx servers, comparing several servers in one run.
//!
//! Each `--server` (a Krmx server) and `--bare` (a bare WebSocket relay/echo) is a command the
//! generator starts itself for every measurement, as `sh -c 'exec CMD --port 0 FLAGS'` where
//! FLAGS are the workload's (`--relay --quiet`, `--echo --quiet`, `--quiet`). It reads the port
//! from the first stdout line `{"event":"listen","port":N}`, drains the rest, reads the server's
//! memory and CPU time from /proc, and stops it with SIGTERM. With `--rounds K` the servers run
//! alternately (A B A B ...) and the report gives min/median/max and ratios of medians.
//!
//! ```text
//! krmx-load relay --clients 1000 --senders 10 --messages 1000 --window 16 --rounds 3 \
//!     --version 0.5.0 \
//!     --server "mio:target/release/krmx serve --krmx-version 0.5" \
//!     --server "node:node bench/node-reference/serve.js" \
//!     --bare "bare-mio:target/release/krmx-bare"
//! krmx-load rooms --rooms 1000 --users 10 --messages 100 --server target/release/krmx serve
//! krmx-load room-churn --rooms 10000 --room-idle-ms 100 --server target/release/krmx serve
//! ```
#![forbid(unsafe_code)]

mod fleet;
mod probe;
mod report;
mod server;
mod stats;
mod wire;
mod wire_stream;
mod workloads;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use server::{Spec, Target};
use std::process::ExitCode;
use std::time::Duration;
use workloads::{Common, Workload};

#[derive(Debug, Parser)]
#[command(
    name = "krmx-load",
    about = "Workloads against Krmx servers (and bare WebSocket peers), compared in alternating rounds"
)]
struct Cli {
    #[command(subcommand)]
    workload: WorkloadArgs,
}

#[derive(Debug, Subcommand)]
enum WorkloadArgs {
    /// N open connections link at once: time until every client sees all N users linked.
    Link {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[command(flatten)]
        run: RunArgs,
    },
    /// N linked clients, S senders of M messages each with a window of unacknowledged messages,
    /// against `--relay`: deliveries per second, latency, exactly-once in-order check.
    Relay {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Messages per sender.
        #[arg(long, default_value_t = 1000)]
        messages: u64,
        /// Unacknowledged messages per sender.
        #[arg(long, default_value_t = 16)]
        window: u64,
        /// Padding characters added to every message.
        #[arg(long, default_value_t = 0)]
        pad: usize,
        #[command(flatten)]
        run: RunArgs,
    },
    /// C linked clients making R round trips each against `--echo`: round trips per second and
    /// latency.
    Echo {
        #[arg(long, default_value_t = 10)]
        clients: usize,
        /// Round trips per client.
        #[arg(long, default_value_t = 10_000)]
        round_trips: u64,
        /// Round trips outstanding per client.
        #[arg(long, default_value_t = 1)]
        window: u64,
        #[arg(long, default_value_t = 0)]
        pad: usize,
        #[command(flatten)]
        run: RunArgs,
    },
    /// N clients link and stay idle: the server's memory per connection and the time to link
    /// them all.
    Idle {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Milliseconds to stay connected after linking before the memory is read.
        #[arg(long, default_value_t = 1000)]
        hold_ms: u64,
        #[command(flatten)]
        run: RunArgs,
    },
    /// R rooms of U linked users each against `--rooms /rooms --relay`: memory per idle room
    /// and connection, then one sender per room relaying M messages to its room: deliveries per
    /// second, latency, exactly-once in-order check, nothing across rooms.
    Rooms {
        #[arg(long, default_value_t = 1000)]
        rooms: usize,
        /// Users (connections) per room.
        #[arg(long, default_value_t = 10)]
        users: usize,
        /// Messages of each room's sender.
        #[arg(long, default_value_t = 100)]
        messages: u64,
        /// Unacknowledged messages per sender.
        #[arg(long, default_value_t = 16)]
        window: u64,
        /// Milliseconds to stay idle after linking before the memory is read.
        #[arg(long, default_value_t = 3000)]
        hold_ms: u64,
        #[command(flatten)]
        run: RunArgs,
    },
    /// N rooms, each created by one connection that links, leaves and closes (at most
    /// --in-flight at once), against `--rooms /rooms --room-idle-ms I --metrics-path /metrics`:
    /// rooms per second, time until the metrics report `krmx_rooms 0`, memory and open files
    /// before and after.
    RoomChurn {
        #[arg(long, default_value_t = 10_000)]
        rooms: usize,
        /// The server's --room-idle-ms.
        #[arg(long, default_value_t = 100)]
        room_idle_ms: u64,
        /// Milliseconds to wait after the last drop before memory and open files are read
        /// (over the server's ping interval, 15 s, for its heap trim to have run).
        #[arg(long, default_value_t = 1000)]
        hold_ms: u64,
        #[command(flatten)]
        run: RunArgs,
    },
}

/// Options every workload takes.
#[derive(Debug, Args)]
struct RunArgs {
    /// A Krmx server command, `[LABEL:]CMD`; repeatable. Run as `sh -c 'exec CMD --port 0
    /// FLAGS'`.
    #[arg(long = "server", value_name = "[LABEL:]CMD")]
    servers: Vec<String>,
    /// A Krmx server command serving TLS (`--tls-cert`, `--tls-key`), reached over `wss://`
    /// with the `--tls-ca` roots, `[LABEL:]CMD`; repeatable.
    #[arg(long = "tls-server", value_name = "[LABEL:]CMD", requires = "tls_ca")]
    tls_servers: Vec<String>,
    /// A bare WebSocket relay/echo command (no Krmx: clients do not link), `[LABEL:]CMD`;
    /// repeatable.
    #[arg(long = "bare", value_name = "[LABEL:]CMD")]
    bares: Vec<String>,
    /// A Krmx server already running at this ws:// URL (measured once per round; memory and
    /// CPU only with --server-pid).
    #[arg(long)]
    url: Option<String>,
    /// The process id of the server at --url.
    #[arg(long, requires = "url")]
    server_pid: Option<u32>,
    /// Rounds: every server is measured once per round, in the order given.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// The protocol version clients send in krmx/link.
    #[arg(long, default_value = "0.6.0")]
    version: String,
    /// Connections in their TCP connect or HTTP upgrade at once. Keep it below the server's
    /// listen backlog (128 for a mio or std listener): a burst past it gets SYNs dropped and
    /// retried a second later, which measures the kernel's retry timer, not the server.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Links awaiting `krmx/accepted` at once while a workload links its clients (not in
    /// `link`, where all link at once): enough to keep the server busy, few enough that no link
    /// waits long in the server's queue (a link storm otherwise runs into the auth timeout).
    #[arg(long, default_value_t = 8)]
    links_in_flight: usize,
    /// Limit of each phase (connecting, linking, measuring), in seconds.
    #[arg(long, default_value_t = 300)]
    phase_timeout_secs: u64,
    /// Seconds a server may take to exit after SIGTERM before it is killed (longer when the
    /// command is a profiler wrapping the server, which must write its data).
    #[arg(long, default_value_t = 5)]
    stop_grace_secs: u64,
    /// The roots (PEM) the clients of `--tls-server`s trust; they connect to `localhost`.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// Pause between measurements, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pause_ms: u64,
}

impl RunArgs {
    /// The targets in command-line order (`--server` and `--bare` interleaved as given).
    fn targets(&self, matches: &ArgMatches) -> Vec<Target> {
        let mut ordered: Vec<(usize, Target)> = Vec::new();
        for (id, specs, bare, tls) in [
            ("servers", &self.servers, false, false),
            ("tls_servers", &self.tls_servers, false, true),
            ("bares", &self.bares, true, false),
        ] {
            let indices = matches.indices_of(id).into_iter().flatten();
            for (index, spec) in indices.zip(specs) {
                let mut target = Target::command(spec, bare);
                target.tls = tls;
                ordered.push((index, target));
            }
        }
        ordered.sort_by_key(|(index, _)| *index);
        let mut targets: Vec<Target> = ordered.into_iter().map(|(_, t)| t).collect();
        if let Some(url) = &self.url {
            targets.push(Target {
                label: "url".into(),
                spec: Spec::Url {
                    url: url.clone(),
                    pid: self.server_pid,
                },
                bare: false,
                tls: false,
            });
        }
        // Labels must tell the servers apart.
        for i in 1..targets.len() {
            let label = targets.get(i).map(|t| t.label.clone()).unwrap_or_default();
            let taken = targets.iter().take(i).filter(|t| t.label == label).count();
            if taken > 0 {
                if let Some(target) = targets.get_mut(i) {
                    target.label = format!("{label}#{}", taken + 1);
                }
            }
        }
        targets
    }

    fn common(&self) -> Result<Common, String> {
        let tls = match &self.tls_ca {
            Some(path) => Some(tls_config(path)?),
            None => None,
        };
        Ok(Common {
            version: self.version.clone(),
            in_flight: self.in_flight,
            links_in_flight: self.links_in_flight,
            phase_timeout: Duration::from_secs(self.phase_timeout_secs),
            stop_grace: Duration::from_secs(self.stop_grace_secs),
            tls,
        })
    }
}

/// A client configuration trusting the certificates in the PEM file at `path`.
fn tls_config(path: &std::path::Path) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|error| format!("{}: {error}", path.display()))?;
        roots.add(cert).map_err(|error| error.to_string())?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let sub = matches
        .subcommand()
        .map(|(_, sub)| sub.clone())
        .unwrap_or_default();
    let (workload, run): (Box<dyn Workload>, RunArgs) = match cli.workload {
        WorkloadArgs::Link { clients, run } => (Box::new(workloads::link::Link { clients }), run),
        WorkloadArgs::Relay {
            clients,
            senders,
            messages,
            window,
            pad,
            run,
        } => (
            Box::new(workloads::relay::Relay {
                clients,
                senders,
                messages,
                window: window.max(1),
                pad,
            }),
            run,
        ),
        WorkloadArgs::Echo {
            clients,
            round_trips,
            window,
            pad,
            run,
        } => (
            Box::new(workloads::echo::Echo {
                clients,
                round_trips,
                window,
                pad,
            }),
            run,
        ),
        WorkloadArgs::Idle {
            clients,
            hold_ms,
            run,
        } => (
            Box::new(workloads::idle::Idle {
                clients,
                hold: Duration::from_millis(hold_ms),
            }),
            run,
        ),
        WorkloadArgs::Rooms {
            rooms,
            users,
            messages,
            window,
            hold_ms,
            run,
        } => (
            Box::new(workloads::rooms::Rooms {
                rooms,
                users,
                messages,
                window: window.max(1),
                hold: Duration::from_millis(hold_ms),
            }),
            run,
        ),
        WorkloadArgs::RoomChurn {
            rooms,
            room_idle_ms,
            hold_ms,
            run,
        } => (
            Box::new(workloads::room_churn::RoomChurn {
                rooms,
                room_idle: Duration::from_millis(room_idle_ms),
                hold: Duration::from_millis(hold_ms),
            }),
            run,
        ),
    };
    let targets = run.targets(&sub);
    if targets.is_empty() {
        eprintln!("krmx-load: give at least one --server, --bare or --url");
        return ExitCode::from(2);
    }
    let rounds = run.rounds.max(1);
    let common = match run.common() {
        Ok(common) => common,
        Err(error) => {
            eprintln!("krmx-load: --tls-ca: {error}");
            return ExitCode::from(2);
        }
    };
    let series = report::compare(
        workload.as_ref(),
        &targets,
        &common,
        rounds,
        Duration::from_millis(run.pause_ms),
    );
    print!("{}", report::table(workload.as_ref(), &series, rounds));
    println!("{}", report::json(workload.as_ref(), &series, rounds));
    if series.iter().all(|s| s.errors.is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
