//! `idle`: N clients connect (at most `in_flight` connecting at once) and link as soon as they
//! are open, then stay idle: the time until every client saw all N users linked, and the
//! server's resident memory per connection once it settled. Clients only count presence
//! messages (a scan of each frame, no allocation), so the N² messages of the link storm cost
//! the client far less than the server.

use super::{Env, Failure, Figures, Presence, Workload, cpu_ms, own_cpu, push, server_cpu};
use crate::fleet::Fleet;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(crate) struct Idle {
    pub(crate) clients: usize,
    /// How long to stay connected after linking before the memory is read.
    pub(crate) hold: Duration,
}

impl Workload for Idle {
    fn name(&self) -> &'static str {
        "idle"
    }

    fn flags(&self) -> Vec<String> {
        ["--quiet"].map(String::from).to_vec()
    }

    fn supports_bare(&self) -> bool {
        true
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "clients": self.clients,
            "hold_ms": self.hold.as_millis() as u64,
        })
    }

    fn run(&self, env: &Env<'_>, fleet: &mut Fleet) -> Result<Figures, Failure> {
        let n = self.clients;
        let rss_before = env.server.rss_kib();
        let cpu_before = server_cpu(env);
        let own_before = own_cpu();
        let start = Instant::now();
        let mut presence = Presence::for_setup(n, env);
        super::open_clients(fleet, n, &mut presence, env)?;
        let open_ms = start.elapsed().as_secs_f64() * 1000.0;
        super::await_links(fleet, &mut presence, env)?;
        let link_ms = start.elapsed().as_secs_f64() * 1000.0;
        let cpu_after = server_cpu(env);
        let own_after = own_cpu();
        // Let the server settle (buffers written, memory released) before reading its memory.
        let hold_until = Instant::now() + self.hold;
        while Instant::now() < hold_until {
            fleet.turn(Duration::from_millis(20), &mut presence)?;
        }
        if let Some(why) = fleet.first_failure() {
            return Err(Failure(format!("idle: a client failed: {why}")));
        }
        let rss_after = env.server.rss_kib();
        let mut figures: Figures = vec![("link_ms", link_ms)];
        push(
            &mut figures,
            "bytes_per_conn",
            rss_before
                .zip(rss_after)
                .map(|(before, after)| after.saturating_sub(before) as f64 * 1024.0 / n as f64),
        );
        push(&mut figures, "rss_before_kib", rss_before.map(|v| v as f64));
        push(&mut figures, "rss_after_kib", rss_after.map(|v| v as f64));
        push(
            &mut figures,
            "server_peak_rss_kib",
            env.server.peak_rss_kib().map(|kib| kib as f64),
        );
        push(&mut figures, "server_cpu_ms", cpu_ms(cpu_before, cpu_after));
        push(&mut figures, "client_cpu_ms", cpu_ms(own_before, own_after));
        figures.push(("open_ms", open_ms));
        Ok(figures)
    }
}
