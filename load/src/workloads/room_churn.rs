//! `room-churn`: N rooms, each created by one connection to `/rooms/churn-<i>` that links,
//! leaves (`krmx/leave`) once accepted, and closes (code 1000) once it saw its own `krmx/left`;
//! at most `--in-flight` such connections at once. Against `krmx serve --rooms /rooms
//! --room-idle-ms I --metrics-path /metrics`: the time until every connection is closed (rooms
//! created per second), then until the metrics report `krmx_rooms 0` (every room dropped), the
//! server's CPU time per room, and its memory and open files before and after.

use super::rooms::PREFIX;
use super::scrape;
use super::{Env, Failure, Figures, Progress, Workload, cpu_ms, own_cpu, push, server_cpu};
use crate::fleet::{Fleet, Handler, Outgoing};
use crate::probe;
use std::time::{Duration, Instant};

/// The metrics path the server is started with.
const METRICS: &str = "/metrics";

#[derive(Debug, Clone)]
pub(crate) struct RoomChurn {
    pub(crate) rooms: usize,
    /// The server's `--room-idle-ms`.
    pub(crate) room_idle: Duration,
    /// How long to wait after the last drop before memory and open files are read.
    pub(crate) hold: Duration,
}

impl Workload for RoomChurn {
    fn name(&self) -> &'static str {
        "room-churn"
    }

    fn flags(&self) -> Vec<String> {
        let max_rooms = self.rooms.max(krmx_driver::DEFAULT_MAX_ROOMS).to_string();
        let idle = self.room_idle.as_millis().to_string();
        [
            "--rooms",
            PREFIX,
            "--max-rooms",
            &max_rooms,
            "--room-idle-ms",
            &idle,
            "--metrics-path",
            METRICS,
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
            "room_idle_ms": self.room_idle.as_millis() as u64,
            "hold_ms": self.hold.as_millis() as u64,
        })
    }

    fn run(&self, env: &Env<'_>, fleet: &mut Fleet) -> Result<Figures, Failure> {
        let n = self.rooms;
        let addr = env.server.addr;
        let rooms_open = || {
            scrape::gauge(addr, METRICS, "krmx_rooms")
                .map_err(|e| Failure(format!("room-churn: reading krmx_rooms: {e}")))
        };
        fleet.route(|client| format!("{PREFIX}/churn-{client}"));
        let rss_before = env.server.rss_kib();
        let fds_before = env.server.fds();
        let cpu_before = server_cpu(env);
        let own_before = own_cpu();
        let mut churn = Churn::new(n, &env.common.version);
        let in_flight = env.common.in_flight.max(1);
        let deadline = env.deadline();
        let mut progress = Progress::new("creating rooms");
        let mut rooms_max = 0.0_f64;
        let mut next_scrape = Instant::now();
        let start = Instant::now();
        loop {
            let census = fleet.census();
            let busy = census.connecting + census.open + census.closing;
            for _ in busy..in_flight {
                if fleet.len() == n {
                    break;
                }
                fleet.add()?;
            }
            progress.tick(fleet, &churn);
            if let Some(why) = &churn.failure {
                return Err(Failure(format!("room-churn: {why}")));
            }
            if let Some(why) = fleet.first_failure() {
                return Err(Failure(format!("room-churn: a client failed: {why}")));
            }
            if fleet.census().closed == n {
                break;
            }
            let now = Instant::now();
            if now > deadline {
                return Err(Failure(format!(
                    "room-churn: timed out with {} of {n} rooms closed",
                    fleet.census().closed
                )));
            }
            if now >= next_scrape {
                rooms_max = rooms_max.max(rooms_open()?);
                next_scrape = now + Duration::from_millis(100);
            }
            fleet.turn(Duration::from_millis(5), &mut churn)?;
            churn.after_turn(fleet);
        }
        let closed = Instant::now();
        let create_ms = (closed - start).as_secs_f64() * 1000.0;
        // Every connection is gone: now the rooms' idle timers run out.
        let dropped = loop {
            if rooms_open()? == 0.0 {
                break Instant::now();
            }
            if Instant::now() > deadline {
                return Err(Failure(format!(
                    "room-churn: {} rooms still open {:?} after the last close",
                    rooms_open()?,
                    closed.elapsed()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let drop_ms = (dropped - closed).as_secs_f64() * 1000.0;
        let cpu = cpu_ms(cpu_before, server_cpu(env));
        let own = cpu_ms(own_before, own_cpu());
        let rss_dropped = env.server.rss_kib();
        // Let the server give freed heap back before its memory is read (`krmx serve` trims
        // after 0.5 s without a turn of its loop; timers of closed connections, such as the
        // 15 s ping interval, still make turns until they are due).
        std::thread::sleep(self.hold);
        let rss_after = env.server.rss_kib();
        let fds_after = env.server.fds();
        let mut figures: Figures = vec![
            ("rooms_per_s", n as f64 / (create_ms / 1000.0)),
            ("create_ms", create_ms),
            ("drop_ms", drop_ms),
        ];
        push(
            &mut figures,
            "server_cpu_us_per_room",
            cpu.map(|ms| ms * 1000.0 / n as f64),
        );
        figures.push(("rooms_open_max", rooms_max));
        push(&mut figures, "server_cpu_ms", cpu);
        push(&mut figures, "client_cpu_ms", own);
        push(
            &mut figures,
            "server_peak_rss_kib",
            env.server.peak_rss_kib().map(|kib| kib as f64),
        );
        push(&mut figures, "rss_before_kib", rss_before.map(|v| v as f64));
        push(
            &mut figures,
            "rss_dropped_kib",
            rss_dropped.map(|v| v as f64),
        );
        push(&mut figures, "rss_after_kib", rss_after.map(|v| v as f64));
        push(
            &mut figures,
            "rss_retained_kib",
            rss_before
                .zip(rss_after)
                .map(|(before, after)| after as f64 - before as f64),
        );
        push(&mut figures, "fds_before", fds_before.map(|v| v as f64));
        push(&mut figures, "fds_after", fds_after.map(|v| v as f64));
        Ok(figures)
    }
}

/// Each client: link on open, leave once accepted, close once its user left. A room is fresh,
/// so a client sees its own user only; anything else is another room's.
struct Churn {
    version: String,
    /// `krmx/joined` seen per client.
    joined: Vec<u8>,
    /// Clients whose user left: closed after the turn.
    to_close: Vec<usize>,
    failure: Option<String>,
    accepted: usize,
    left: usize,
}

impl Churn {
    fn new(clients: usize, version: &str) -> Self {
        Self {
            version: version.to_owned(),
            joined: vec![0; clients],
            to_close: Vec::new(),
            failure: None,
            accepted: 0,
            left: 0,
        }
    }

    fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
    }
}

impl Handler for Churn {
    fn status(&self) -> String {
        format!("; {} accepted, {} left", self.accepted, self.left)
    }

    fn on_open(&mut self, _client: usize, out: &mut Outgoing<'_>) {
        out.text(&probe::link(&super::username(0), &self.version));
    }

    fn on_message(&mut self, client: usize, text: &[u8], _: Instant, out: &mut Outgoing<'_>) {
        if probe::is_type(text, b"krmx/accepted") {
            self.accepted += 1;
            out.text(br#"{"type":"krmx/leave"}"#);
        } else if probe::is_type(text, b"krmx/joined") {
            let Some(joined) = self.joined.get_mut(client) else {
                return;
            };
            *joined += 1;
            if *joined > 1 {
                self.fail(format!(
                    "client {client} saw a second user join its fresh room: {}",
                    String::from_utf8_lossy(text)
                ));
            }
        } else if probe::is_type(text, b"krmx/left") {
            self.left += 1;
            self.to_close.push(client);
        } else if !(probe::is_type(text, b"krmx/linked") || probe::is_type(text, b"krmx/unlinked"))
        {
            self.fail(format!(
                "client {client} got an unexpected message: {}",
                String::from_utf8_lossy(text)
            ));
        }
    }

    fn after_turn(&mut self, fleet: &mut Fleet) {
        for client in self.to_close.drain(..) {
            fleet.close(client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::capture;

    fn deliver(churn: &mut Churn, client: usize, text: &[u8]) -> Vec<u8> {
        let mut sent = Vec::new();
        capture(&mut sent, |out| {
            churn.on_message(client, text, Instant::now(), out);
        });
        sent
    }

    #[test]
    fn a_client_leaves_once_accepted_and_closes_once_left() {
        let mut churn = Churn::new(2, "0.6.0");
        let leave = deliver(&mut churn, 1, br#"{"type":"krmx/accepted"}"#);
        // The masked krmx/leave frame.
        assert!(!leave.is_empty());
        for text in [
            &br#"{"type":"krmx/joined","payload":{"username":"user0"}}"#[..],
            br#"{"type":"krmx/linked","payload":{"username":"user0"}}"#,
            br#"{"type":"krmx/unlinked","payload":{"username":"user0"}}"#,
        ] {
            assert!(deliver(&mut churn, 1, text).is_empty());
        }
        assert!(churn.to_close.is_empty());
        deliver(
            &mut churn,
            1,
            br#"{"type":"krmx/left","payload":{"username":"user0"}}"#,
        );
        assert_eq!(churn.to_close, vec![1]);
        assert!(churn.failure.is_none());
    }

    #[test]
    fn a_second_user_in_a_fresh_room_fails_the_run() {
        let mut churn = Churn::new(1, "0.6.0");
        let joined = br#"{"type":"krmx/joined","payload":{"username":"user0"}}"#;
        deliver(&mut churn, 0, joined);
        deliver(&mut churn, 0, joined);
        assert!(churn.failure.unwrap().contains("second user"));
    }
}
