//! `krmx-load`: workloads against a running Krmx server.
#![forbid(unsafe_code)]

mod fleet;

use clap::{Parser, Subcommand};
use fleet::{Fleet, link_message};
use std::io;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(name = "krmx-load", about = "Workloads against a running Krmx server")]
struct Cli {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// N clients link and stay idle: time until every client sees all N users linked, and the
    /// server's memory per connection (RSS from /proc, with --server-pid).
    Idle {
        #[arg(long, default_value = "ws://127.0.0.1:8082/")]
        url: String,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// The server's process id, to read its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Protocol version the clients send.
        #[arg(long, default_value = "0.6.0")]
        version: String,
        /// Handshakes in flight at once.
        #[arg(long, default_value_t = 200)]
        in_flight: usize,
        /// Seconds to stay connected after linking (while memory is read).
        #[arg(long, default_value_t = 1)]
        hold_secs: u64,
        /// Only connect (no link): the cost of a bare connection.
        #[arg(long)]
        no_link: bool,
    },
}

fn main() -> io::Result<()> {
    match Cli::parse().workload {
        Workload::Idle {
            url,
            clients,
            server_pid,
            version,
            in_flight,
            hold_secs,
            no_link,
        } => idle(
            &url, clients, server_pid, &version, in_flight, hold_secs, no_link,
        ),
    }
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Counts, per client, the `krmx/linked` messages it received.
struct LinkCount {
    seen: Vec<usize>,
    target: usize,
    complete: usize,
}

impl LinkCount {
    fn on_text(&mut self, index: usize, text: &str) {
        if text.contains(r#""type":"krmx/linked""#) {
            if let Some(seen) = self.seen.get_mut(index) {
                *seen += 1;
                if *seen == self.target {
                    self.complete += 1;
                }
            }
        }
    }
}

fn idle(
    url: &str,
    clients: usize,
    server_pid: Option<u32>,
    version: &str,
    in_flight: usize,
    hold_secs: u64,
    no_link: bool,
) -> io::Result<()> {
    let before = server_pid.and_then(rss_kib);
    let mut fleet = Fleet::new(url)?;
    let mut count = LinkCount {
        seen: vec![0; clients],
        target: clients,
        complete: 0,
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs(900);
    while fleet.len() < clients {
        let opening = (0..fleet.len())
            .filter(|&i| !fleet.is_open(i) && !fleet.is_gone(i))
            .count();
        if opening < in_flight {
            let name = format!("user{}", fleet.len());
            let first = if no_link {
                Vec::new()
            } else {
                vec![link_message(&name, version)]
            };
            fleet.add(first)?;
        } else {
            fleet.turn(Duration::from_millis(5), &mut |i, t| count.on_text(i, t))?;
        }
    }
    if no_link {
        count.complete = clients;
        while (0..fleet.len()).any(|i| !fleet.is_open(i)) {
            fleet.turn(Duration::from_millis(5), &mut |_, _| {})?;
        }
    }
    while count.complete < clients {
        let gone = (0..fleet.len()).filter(|&i| fleet.is_gone(i)).count();
        if gone > 0 {
            return Err(io::Error::other(format!("idle: {gone} clients failed")));
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "idle: linking timed out",
            ));
        }
        fleet.turn(Duration::from_millis(50), &mut |i, t| count.on_text(i, t))?;
    }
    let link_time = start.elapsed();
    // Let the server settle (buffers drained) before reading its memory.
    let hold_until = Instant::now() + Duration::from_secs(hold_secs);
    while Instant::now() < hold_until {
        fleet.turn(Duration::from_millis(50), &mut |i, t| count.on_text(i, t))?;
    }
    let after = server_pid.and_then(rss_kib);
    let per_conn = match (before, after) {
        (Some(before), Some(after)) => {
            Some((after.saturating_sub(before) * 1024) as f64 / clients as f64)
        }
        _ => None,
    };
    println!("workload  clients  link_time_ms  rss_before_kib  rss_after_kib  bytes_per_conn");
    println!(
        "idle      {clients:<7}  {:<12}  {:<14}  {:<13}  {}",
        link_time.as_millis(),
        before.map_or("-".into(), |v| v.to_string()),
        after.map_or("-".into(), |v| v.to_string()),
        per_conn.map_or("-".into(), |v| format!("{v:.0}")),
    );
    println!(
        "{}",
        serde_json::json!({
            "workload": "idle",
            "clients": clients,
            "link_time_ms": link_time.as_secs_f64() * 1000.0,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "bytes_per_conn": per_conn,
        })
    );
    Ok(())
}
