//! `echo`: C linked clients each make R round trips (at most W outstanding) against a server
//! that sends every message back to its sender; round trips per second and latency. Every
//! client checks that its messages come back exactly once and in order.

use super::{Env, Failure, Figures, Presence, Workload, cpu_ms, own_cpu, push, server_cpu};
use crate::fleet::{Fleet, Handler, Outgoing};
use crate::probe::{self, Probe};
use crate::stats::Histogram;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(crate) struct Echo {
    pub(crate) clients: usize,
    pub(crate) round_trips: u64,
    pub(crate) window: u64,
    pub(crate) pad: usize,
}

impl Workload for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn flags(&self) -> Vec<String> {
        ["--echo", "--quiet"].map(String::from).to_vec()
    }

    fn supports_bare(&self) -> bool {
        true
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "clients": self.clients,
            "round_trips": self.round_trips,
            "window": self.window,
            "pad": self.pad,
        })
    }

    fn run(&self, env: &Env<'_>, fleet: &mut Fleet) -> Result<Figures, Failure> {
        let n = self.clients;
        let mut presence = Presence::for_setup(n, env);
        super::open_clients(fleet, n, &mut presence, env)?;
        super::await_links(fleet, &mut presence, env)?;

        let mut check = Rounds {
            round_trips: self.round_trips,
            sent: vec![0; n],
            expected: vec![0; n],
            done: 0,
            latency: Histogram::default(),
            failure: None,
            pad: "x".repeat(self.pad),
            last: None,
        };
        let cpu_before = server_cpu(env);
        let own_before = own_cpu();
        let start = Instant::now();
        for client in 0..n {
            for _ in 0..self.window.max(1).min(self.round_trips) {
                let text = check.next_probe(client);
                fleet.send(client, &text);
            }
        }
        let total = n as u64 * self.round_trips;
        super::drive(
            fleet,
            &mut check,
            env.deadline(),
            "echo",
            |_, check| check.done == total,
            |check| check.failure.clone(),
        )
        .map_err(|Failure(why)| Failure(format!("{why}; {} of {total} round trips", check.done)))?;
        let elapsed = check.last.unwrap_or_else(Instant::now) - start;
        let cpu_after = server_cpu(env);
        let own_after = own_cpu();
        let grace = Instant::now() + Duration::from_millis(100);
        while Instant::now() < grace {
            fleet.turn(Duration::from_millis(10), &mut check)?;
        }
        if let Some(why) = check.failure.clone() {
            return Err(Failure(format!("echo: {why}")));
        }
        let secs = elapsed.as_secs_f64();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        let mut figures: Figures = vec![
            ("round_trips_per_s", total as f64 / secs),
            ("duration_ms", secs * 1000.0),
            ("latency_p50_us", micros(check.latency.quantile(0.5))),
            ("latency_p99_us", micros(check.latency.quantile(0.99))),
            ("latency_max_us", micros(check.latency.max())),
        ];
        push(&mut figures, "server_cpu_ms", cpu_ms(cpu_before, cpu_after));
        push(
            &mut figures,
            "server_cpu_us_per_round_trip",
            cpu_ms(cpu_before, cpu_after).map(|ms| ms * 1e3 / total as f64),
        );
        push(&mut figures, "client_cpu_ms", cpu_ms(own_before, own_after));
        Ok(figures)
    }
}

/// Each client's outstanding round trips and the order check.
struct Rounds {
    round_trips: u64,
    sent: Vec<u64>,
    expected: Vec<u64>,
    done: u64,
    latency: Histogram,
    failure: Option<String>,
    pad: String,
    last: Option<Instant>,
}

impl Rounds {
    fn next_probe(&mut self, client: usize) -> Vec<u8> {
        let seq = self.sent.get(client).copied().unwrap_or(0);
        if let Some(sent) = self.sent.get_mut(client) {
            *sent += 1;
        }
        probe::encode(
            Probe {
                sender: u32::try_from(client).unwrap_or(u32::MAX),
                seq,
                sent_ns: probe::stamp(Instant::now()),
            },
            &self.pad,
        )
    }
}

impl Handler for Rounds {
    fn status(&self) -> String {
        format!("; {} round trips", self.done)
    }

    fn on_message(&mut self, client: usize, text: &[u8], now: Instant, out: &mut Outgoing<'_>) {
        if self.failure.is_some() {
            return;
        }
        let Some(probe) = probe::parse(text) else {
            self.failure = Some(format!(
                "client {client} got an unexpected message: {}",
                String::from_utf8_lossy(text)
            ));
            return;
        };
        let Some(expected) = self.expected.get_mut(client) else {
            return;
        };
        if probe.sender as usize != client || probe.seq != *expected {
            self.failure = Some(format!(
                "client {client} got back seq {} of client {}, expected its own seq {}",
                probe.seq, probe.sender, *expected
            ));
            return;
        }
        *expected += 1;
        self.done += 1;
        self.last = Some(now);
        self.latency.record(probe::age(probe.sent_ns, now));
        if self.sent.get(client).is_some_and(|&s| s < self.round_trips) {
            let text = self.next_probe(client);
            out.text(&text);
        }
    }
}
