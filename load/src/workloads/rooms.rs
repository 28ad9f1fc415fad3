//! `rooms`: R rooms of U linked users each against `krmx serve --rooms /rooms --relay`; client
//! `c` connects to `/rooms/room-<c / U>` and links as `user<c % U>` (the same names in every
//! room). Once all are linked and have seen their room's U users, the server's memory is read
//! after a hold (memory per idle room and per connection). Then the first user of every room
//! sends M messages with at most W unacknowledged (acknowledged when the relay brings one back
//! to its sender), relayed to the room's U users: R × U × M deliveries. Every client checks that
//! it gets its room's messages exactly once and in order, and none of another room's.

use super::relay::micros;
use super::{Env, Failure, Figures, Presence, Workload, cpu_ms, own_cpu, push, server_cpu};
use crate::fleet::{Fleet, Handler, Outgoing};
use crate::probe::{self, Probe};
use crate::stats::Histogram;
use std::time::{Duration, Instant};

/// The path prefix the server is started with (`--rooms`).
pub(crate) const PREFIX: &str = "/rooms";

#[derive(Debug, Clone)]
pub(crate) struct Rooms {
    pub(crate) rooms: usize,
    /// Users (connections) per room.
    pub(crate) users: usize,
    /// Messages of each room's sender.
    pub(crate) messages: u64,
    /// Unacknowledged messages per sender.
    pub(crate) window: u64,
    /// How long to stay idle after linking before the memory is read.
    pub(crate) hold: Duration,
}

impl Workload for Rooms {
    fn name(&self) -> &'static str {
        "rooms"
    }

    fn flags(&self) -> Vec<String> {
        let max_rooms = self.rooms.max(krmx_driver::DEFAULT_MAX_ROOMS).to_string();
        [
            "--rooms",
            PREFIX,
            "--max-rooms",
            &max_rooms,
            "--relay",
            "--quiet",
        ]
        .map(String::from)
        .to_vec()
    }

    fn supports_bare(&self) -> bool {
        false
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "rooms": self.rooms,
            "users": self.users,
            "messages": self.messages,
            "window": self.window,
            "hold_ms": self.hold.as_millis() as u64,
        })
    }

    fn run(&self, env: &Env<'_>, fleet: &mut Fleet) -> Result<Figures, Failure> {
        let (rooms, users) = (self.rooms, self.users);
        if rooms == 0 || users == 0 {
            return Err(Failure(
                "rooms: --rooms and --users must be at least 1".into(),
            ));
        }
        let n = rooms * users;
        fleet.route(move |client| format!("{PREFIX}/room-{}", client / users));
        let rss_before = env.server.rss_kib();
        let setup_cpu_before = server_cpu(env);
        let setup = Instant::now();
        let mut presence = Presence::for_setup(n, env).in_rooms(users);
        super::open_clients(fleet, n, &mut presence, env)?;
        super::await_links(fleet, &mut presence, env)?;
        let setup_ms = setup.elapsed().as_secs_f64() * 1000.0;
        let setup_cpu = cpu_ms(setup_cpu_before, server_cpu(env));
        // Idle: let the server settle (buffers written, freed heap given back) before reading.
        let hold_until = Instant::now() + self.hold;
        while Instant::now() < hold_until {
            fleet.turn(Duration::from_millis(20), &mut presence)?;
        }
        if let Some(why) = fleet
            .first_failure()
            .map(str::to_owned)
            .or(presence.rejected)
        {
            return Err(Failure(format!("rooms: idle: {why}")));
        }
        let rss_idle = env.server.rss_kib();

        let mut check = Check::new(self);
        let total = n as u64 * self.messages;
        let cpu_before = server_cpu(env);
        let own_before = own_cpu();
        let start = Instant::now();
        for room in 0..rooms {
            for _ in 0..self.window.min(self.messages) {
                let text = check.next_probe(room);
                fleet.send(room * users, &text);
            }
        }
        let result = super::drive(
            fleet,
            &mut check,
            env.deadline(),
            "rooms relay",
            |_, check| check.delivered == total,
            |check| check.failure.clone(),
        );
        if let Err(Failure(why)) = result {
            return Err(Failure(format!(
                "{why}; {} of {total} deliveries",
                check.delivered
            )));
        }
        let elapsed = check.last_delivery.unwrap_or_else(Instant::now) - start;
        let cpu = cpu_ms(cpu_before, server_cpu(env));
        let own = cpu_ms(own_before, own_cpu());
        // Anything arriving now is a duplicate (or another room's).
        let grace = Instant::now() + Duration::from_millis(200);
        while Instant::now() < grace {
            fleet.turn(Duration::from_millis(10), &mut check)?;
        }
        if let Some(why) = check.failure.clone() {
            return Err(Failure(format!("rooms relay: {why}")));
        }
        if let Some(why) = fleet.first_failure() {
            return Err(Failure(format!("rooms relay: a client failed: {why}")));
        }
        if check.unexpected > 0 {
            eprintln!(
                "krmx-load: rooms: {} presence messages during the run",
                check.unexpected
            );
        }
        let secs = elapsed.as_secs_f64();
        let idle_bytes = rss_before
            .zip(rss_idle)
            .map(|(before, after)| after.saturating_sub(before) as f64 * 1024.0);
        let mut figures: Figures = vec![("deliveries_per_s", total as f64 / secs)];
        push(
            &mut figures,
            "server_cpu_ns_per_delivery",
            cpu.map(|ms| ms * 1e6 / total as f64),
        );
        push(
            &mut figures,
            "bytes_per_room",
            idle_bytes.map(|b| b / rooms as f64),
        );
        push(
            &mut figures,
            "bytes_per_conn",
            idle_bytes.map(|b| b / n as f64),
        );
        figures.extend([
            ("duration_ms", secs * 1000.0),
            ("latency_p50_us", micros(check.latency.quantile(0.5))),
            ("latency_p99_us", micros(check.latency.quantile(0.99))),
            ("latency_max_us", micros(check.latency.max())),
        ]);
        push(&mut figures, "server_cpu_ms", cpu);
        push(&mut figures, "client_cpu_ms", own);
        push(
            &mut figures,
            "server_peak_rss_kib",
            env.server.peak_rss_kib().map(|kib| kib as f64),
        );
        push(&mut figures, "rss_before_kib", rss_before.map(|v| v as f64));
        push(&mut figures, "rss_idle_kib", rss_idle.map(|v| v as f64));
        figures.push(("setup_ms", setup_ms));
        push(&mut figures, "setup_server_cpu_ms", setup_cpu);
        Ok(figures)
    }
}

/// Per client: its room's messages exactly once and in order, none of another room; the
/// senders' windows.
struct Check {
    users: usize,
    messages: u64,
    /// The next sequence number each client expects from its room's sender.
    expected: Vec<u64>,
    /// Messages sent per room.
    sent: Vec<u64>,
    delivered: u64,
    last_delivery: Option<Instant>,
    latency: Histogram,
    failure: Option<String>,
    /// Presence messages during the run.
    unexpected: u64,
}

impl Check {
    fn new(rooms: &Rooms) -> Self {
        Self {
            users: rooms.users,
            messages: rooms.messages,
            expected: vec![0; rooms.rooms * rooms.users],
            sent: vec![0; rooms.rooms],
            delivered: 0,
            last_delivery: None,
            latency: Histogram::default(),
            failure: None,
            unexpected: 0,
        }
    }

    /// The next probe of room `room`'s sender, stamped now.
    fn next_probe(&mut self, room: usize) -> Vec<u8> {
        let seq = self.sent.get(room).copied().unwrap_or(0);
        if let Some(sent) = self.sent.get_mut(room) {
            *sent += 1;
        }
        probe::encode(
            Probe {
                sender: u32::try_from(room).unwrap_or(u32::MAX),
                seq,
                sent_ns: probe::stamp(Instant::now()),
            },
            "",
        )
    }
}

impl Handler for Check {
    fn status(&self) -> String {
        format!("; {} deliveries", self.delivered)
    }

    fn on_message(&mut self, client: usize, text: &[u8], now: Instant, out: &mut Outgoing<'_>) {
        if self.failure.is_some() {
            return;
        }
        let room = client / self.users;
        let Some(probe) = probe::parse(text) else {
            if probe::is_type(text, b"krmx/linked") || probe::is_type(text, b"krmx/joined") {
                self.unexpected += 1;
            } else {
                self.failure = Some(format!(
                    "client {client} (room {room}) got an unexpected message: {}",
                    String::from_utf8_lossy(text)
                ));
            }
            return;
        };
        if probe.sender as usize != room {
            self.failure = Some(format!(
                "crossed rooms: client {client} of room {room} got seq {} of room {}",
                probe.seq, probe.sender
            ));
            return;
        }
        let Some(expected) = self.expected.get_mut(client) else {
            self.failure = Some(format!("a message for unknown client {client}"));
            return;
        };
        if probe.seq != *expected {
            self.failure = Some(format!(
                "{}: client {client} of room {room} got seq {}, expected seq {}",
                if probe.seq > *expected {
                    "loss"
                } else {
                    "duplicate or reorder"
                },
                probe.seq,
                *expected
            ));
            return;
        }
        *expected += 1;
        self.delivered += 1;
        self.last_delivery = Some(now);
        self.latency.record(probe::age(probe.sent_ns, now));
        if client == room * self.users
            && self
                .sent
                .get(room)
                .is_some_and(|&sent| sent < self.messages)
        {
            // The sender's own message came back: one more may go.
            let text = self.next_probe(room);
            out.text(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::capture;

    fn rooms() -> Rooms {
        Rooms {
            rooms: 2,
            users: 3,
            messages: 2,
            window: 1,
            hold: Duration::ZERO,
        }
    }

    fn probe(room: u32, seq: u64) -> Vec<u8> {
        probe::encode(
            Probe {
                sender: room,
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
    fn the_room_sender_sends_again_when_its_message_comes_back() {
        let mut check = Check::new(&rooms());
        let _ = check.next_probe(1);
        // Client 4 is in room 1 but not its sender (client 3).
        assert!(deliver(&mut check, 4, &probe(1, 0)).is_empty());
        assert!(!deliver(&mut check, 3, &probe(1, 0)).is_empty());
        assert_eq!(check.sent, vec![0, 2]);
        assert_eq!(check.delivered, 2);
        assert!(check.failure.is_none());
    }

    #[test]
    fn another_rooms_message_fails_the_run() {
        let mut check = Check::new(&rooms());
        deliver(&mut check, 1, &probe(1, 0));
        let failure = check.failure.unwrap();
        assert!(
            failure.starts_with("crossed rooms: client 1 of room 0"),
            "{failure}"
        );
    }

    #[test]
    fn gaps_and_repeats_fail_the_run() {
        let mut check = Check::new(&rooms());
        deliver(&mut check, 5, &probe(1, 1));
        assert!(check.failure.unwrap().starts_with("loss"));
        let mut check = Check::new(&rooms());
        deliver(&mut check, 5, &probe(1, 0));
        deliver(&mut check, 5, &probe(1, 0));
        assert!(check.failure.unwrap().starts_with("duplicate or reorder"));
    }
}
