//! `relay`: N linked clients, S of them senders of M messages each with at most W unacknowledged
//! (a sender's message is acknowledged when the relay brings it back to the sender), against a
//! server that broadcasts every message to every client. Every client checks that it gets every
//! message exactly once and in order per sender; latency is from send to receipt.

use super::{Env, Failure, Figures, Presence, Workload, cpu_ms, own_cpu, push, server_cpu};
use crate::fleet::{Fleet, Handler, Outgoing};
use crate::probe::{self, Probe};
use crate::stats::Histogram;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(crate) struct Relay {
    pub(crate) clients: usize,
    pub(crate) senders: usize,
    pub(crate) messages: u64,
    pub(crate) window: u64,
    /// Padding characters added to every message.
    pub(crate) pad: usize,
}

impl Workload for Relay {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn flags(&self) -> Vec<String> {
        ["--relay", "--quiet"].map(String::from).to_vec()
    }

    fn supports_bare(&self) -> bool {
        true
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "clients": self.clients,
            "senders": self.senders,
            "messages": self.messages,
            "window": self.window,
            "pad": self.pad,
        })
    }

    fn run(&self, env: &Env<'_>, fleet: &mut Fleet) -> Result<Figures, Failure> {
        let n = self.clients;
        let s = self.senders;
        if s == 0 || s > n {
            return Err(Failure(format!("relay: senders must be 1..={n}, got {s}")));
        }
        let setup = Instant::now();
        let mut presence = Presence::for_setup(n, env);
        super::open_clients(fleet, n, &mut presence, env)?;
        super::await_links(fleet, &mut presence, env)?;
        let setup_ms = setup.elapsed().as_secs_f64() * 1000.0;

        let mut check = Check::new(self, n);
        let total = n as u64 * s as u64 * self.messages;
        let cpu_before = server_cpu(env);
        let own_before = own_cpu();
        let start = Instant::now();
        for sender in 0..s {
            let client = check.client_of(sender);
            for _ in 0..self.window.min(self.messages) {
                let text = check.next_probe(sender);
                fleet.send(client, &text);
            }
        }
        let deadline = env.deadline();
        let result = super::drive(
            fleet,
            &mut check,
            deadline,
            "relay",
            |_, check| check.delivered == total,
            |check| check.failure.clone(),
        );
        if let Err(Failure(why)) = result {
            return Err(Failure(format!(
                "{why}; {} of {total} deliveries{}",
                check.delivered,
                check.missing()
            )));
        }
        let elapsed = check.last_delivery.unwrap_or_else(Instant::now) - start;
        let cpu_after = server_cpu(env);
        let own_after = own_cpu();
        // Anything arriving now is a duplicate.
        let grace = Instant::now() + Duration::from_millis(200);
        while Instant::now() < grace {
            fleet.turn(Duration::from_millis(10), &mut check)?;
        }
        if let Some(why) = check.failure.clone() {
            return Err(Failure(format!("relay: {why}")));
        }
        if let Some(why) = fleet.first_failure() {
            return Err(Failure(format!("relay: a client failed: {why}")));
        }
        if check.unexpected > 0 {
            eprintln!(
                "krmx-load: relay: {} protocol messages during the run",
                check.unexpected
            );
        }
        let secs = elapsed.as_secs_f64();
        let mut figures: Figures = vec![
            ("deliveries_per_s", total as f64 / secs),
            ("duration_ms", secs * 1000.0),
            ("latency_p50_us", micros(check.latency.quantile(0.5))),
            ("latency_p99_us", micros(check.latency.quantile(0.99))),
            ("latency_max_us", micros(check.latency.max())),
        ];
        push(&mut figures, "server_cpu_ms", cpu_ms(cpu_before, cpu_after));
        push(
            &mut figures,
            "server_cpu_ns_per_delivery",
            cpu_ms(cpu_before, cpu_after).map(|ms| ms * 1e6 / total as f64),
        );
        push(&mut figures, "client_cpu_ms", cpu_ms(own_before, own_after));
        push(
            &mut figures,
            "server_peak_rss_kib",
            env.server.peak_rss_kib().map(|kib| kib as f64),
        );
        figures.push(("setup_ms", setup_ms));
        Ok(figures)
    }
}

pub(crate) fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// The per-client exactly-once, in-order check, and the senders' windows.
struct Check {
    senders: usize,
    messages: u64,
    /// The client of each sender (spread over the fleet).
    sender_clients: Vec<usize>,
    /// Which sender a client is, if any.
    sender_of: Vec<Option<u32>>,
    /// The next sequence number each client expects from each sender: `client * S + sender`.
    expected: Vec<u64>,
    /// Messages sent per sender.
    sent: Vec<u64>,
    delivered: u64,
    last_delivery: Option<Instant>,
    latency: Histogram,
    failure: Option<String>,
    /// Messages that are no probes (presence changes during the run).
    unexpected: u64,
    pad: String,
}

impl Check {
    fn new(relay: &Relay, clients: usize) -> Self {
        let senders = relay.senders;
        let sender_clients: Vec<usize> = (0..senders).map(|s| s * clients / senders).collect();
        let mut sender_of = vec![None; clients];
        for (sender, &client) in sender_clients.iter().enumerate() {
            if let Some(slot) = sender_of.get_mut(client) {
                *slot = u32::try_from(sender).ok();
            }
        }
        Self {
            senders,
            messages: relay.messages,
            sender_clients,
            sender_of,
            expected: vec![0; clients * senders],
            sent: vec![0; senders],
            delivered: 0,
            last_delivery: None,
            latency: Histogram::default(),
            failure: None,
            unexpected: 0,
            pad: "x".repeat(relay.pad),
        }
    }

    fn client_of(&self, sender: usize) -> usize {
        self.sender_clients.get(sender).copied().unwrap_or(0)
    }

    /// The next probe of `sender`, stamped now.
    fn next_probe(&mut self, sender: usize) -> Vec<u8> {
        let seq = self.sent.get(sender).copied().unwrap_or(0);
        if let Some(sent) = self.sent.get_mut(sender) {
            *sent += 1;
        }
        probe::encode(
            Probe {
                sender: u32::try_from(sender).unwrap_or(u32::MAX),
                seq,
                sent_ns: probe::stamp(Instant::now()),
            },
            &self.pad,
        )
    }

    /// Which deliveries are missing, for the failure message (the first few).
    fn missing(&self) -> String {
        let mut lines = Vec::new();
        let mut short = 0_u64;
        for (slot, &next) in self.expected.iter().enumerate() {
            if next < self.messages {
                short += 1;
                if lines.len() < 5 {
                    lines.push(format!(
                        "client {} has sender {} up to seq {next} of {}",
                        slot / self.senders,
                        slot % self.senders,
                        self.messages
                    ));
                }
            }
        }
        if short == 0 {
            return String::new();
        }
        format!(
            "; {short} (client, sender) pairs incomplete, e.g. {}; senders sent {:?}",
            lines.join(", "),
            self.sent
        )
    }
}

impl Handler for Check {
    fn status(&self) -> String {
        format!("; {} deliveries, sent {:?}", self.delivered, self.sent)
    }

    fn on_message(&mut self, client: usize, text: &[u8], now: Instant, out: &mut Outgoing<'_>) {
        if self.failure.is_some() {
            return;
        }
        let Some(probe) = probe::parse(text) else {
            if probe::is_type(text, b"krmx/linked") || probe::is_type(text, b"krmx/joined") {
                self.unexpected += 1;
            } else {
                self.failure = Some(format!(
                    "client {client} got an unexpected message: {}",
                    String::from_utf8_lossy(text)
                ));
            }
            return;
        };
        let sender = probe.sender as usize;
        let Some(expected) = (sender < self.senders)
            .then(|| self.expected.get_mut(client * self.senders + sender))
            .flatten()
        else {
            self.failure = Some(format!(
                "client {client} got a message from unknown sender {sender}"
            ));
            return;
        };
        if probe.seq != *expected {
            self.failure = Some(if probe.seq > *expected {
                format!(
                    "loss: client {client} got seq {} from sender {sender}, expected seq {} \
                     (messages missing)",
                    probe.seq, *expected
                )
            } else {
                format!(
                    "duplicate or reorder: client {client} got seq {} from sender {sender} \
                     again (expected seq {})",
                    probe.seq, *expected
                )
            });
            return;
        }
        *expected += 1;
        self.delivered += 1;
        self.last_delivery = Some(now);
        self.latency.record(probe::age(probe.sent_ns, now));
        if self.sender_of.get(client).copied().flatten() == Some(probe.sender)
            && self
                .sent
                .get(sender)
                .is_some_and(|&sent| sent < self.messages)
        {
            // Our own message came back: one more may go.
            let text = self.next_probe(sender);
            out.text(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::capture;

    fn relay() -> Relay {
        Relay {
            clients: 4,
            senders: 2,
            messages: 3,
            window: 1,
            pad: 0,
        }
    }

    fn probe(sender: u32, seq: u64) -> Vec<u8> {
        probe::encode(
            Probe {
                sender,
                seq,
                sent_ns: 0,
            },
            "",
        )
    }

    fn deliver(check: &mut Check, client: usize, text: &[u8]) -> Vec<u8> {
        let mut sent = Vec::new();
        capture(&mut sent, |out| {
            check.on_message(client, text, Instant::now(), out);
        });
        sent
    }

    #[test]
    fn in_order_deliveries_pass_and_acks_release_the_window() {
        let mut check = Check::new(&relay(), 4);
        // Senders sit on clients 0 and 2.
        assert_eq!((check.client_of(0), check.client_of(1)), (0, 2));
        let _ = check.next_probe(0);
        assert!(deliver(&mut check, 1, &probe(0, 0)).is_empty());
        // Sender 0's own message comes back: the next one goes out.
        assert!(!deliver(&mut check, 0, &probe(0, 0)).is_empty());
        assert_eq!(check.sent[0], 2);
        assert_eq!(check.delivered, 2);
        assert!(check.failure.is_none());
    }

    #[test]
    fn a_gap_is_loss() {
        let mut check = Check::new(&relay(), 4);
        deliver(&mut check, 3, &probe(1, 0));
        deliver(&mut check, 3, &probe(1, 2));
        let failure = check.failure.clone().unwrap();
        assert!(
            failure.starts_with("loss: client 3 got seq 2 from sender 1"),
            "{failure}"
        );
    }

    #[test]
    fn a_repeat_is_a_duplicate() {
        let mut check = Check::new(&relay(), 4);
        deliver(&mut check, 1, &probe(0, 0));
        deliver(&mut check, 1, &probe(0, 0));
        let failure = check.failure.clone().unwrap();
        assert!(failure.starts_with("duplicate or reorder"), "{failure}");
    }

    #[test]
    fn missing_deliveries_are_listed() {
        let mut check = Check::new(&relay(), 4);
        deliver(&mut check, 1, &probe(0, 0));
        let missing = check.missing();
        assert!(
            missing.contains("8 (client, sender) pairs incomplete"),
            "{missing}"
        );
        assert!(
            missing.contains("client 0 has sender 0 up to seq 0 of 3"),
            "{missing}"
        );
    }

    #[test]
    fn foreign_messages_fail_the_run() {
        let mut check = Check::new(&relay(), 4);
        deliver(&mut check, 1, br#"{"type":"chat","payload":1}"#);
        assert!(check.failure.unwrap().contains("unexpected message"));
    }
}
