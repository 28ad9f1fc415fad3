//! `link`: N open connections send `krmx/link` at once; the time until every client has seen all
//! N users linked (and until the last one was accepted).

use super::{
    Env, Failure, Figures, Linking, Presence, Workload, cpu_ms, own_cpu, push, server_cpu,
};
use crate::fleet::Fleet;
use crate::probe;
use std::time::Instant;

#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) clients: usize,
}

impl Workload for Link {
    fn name(&self) -> &'static str {
        "link"
    }

    fn flags(&self) -> Vec<String> {
        ["--quiet"].map(String::from).to_vec()
    }

    fn supports_bare(&self) -> bool {
        false
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "clients": self.clients })
    }

    fn run(&self, env: &Env<'_>, fleet: &mut Fleet) -> Result<Figures, Failure> {
        let n = self.clients;
        let connect = Instant::now();
        let mut presence = Presence::new(n, Linking::Off, &env.common.version);
        super::open_clients(fleet, n, &mut presence, env)?;
        let connect_ms = connect.elapsed().as_secs_f64() * 1000.0;

        let cpu_before = server_cpu(env);
        let own_before = own_cpu();
        let start = Instant::now();
        for client in 0..n {
            fleet.send(
                client,
                &probe::link(&super::username(client), &env.common.version),
            );
        }
        let sent_ms = start.elapsed().as_secs_f64() * 1000.0;
        super::await_links(fleet, &mut presence, env)?;
        let since = |at: Option<Instant>| {
            at.map(|at| at.saturating_duration_since(start).as_secs_f64() * 1000.0)
        };
        let mut figures: Figures = Vec::new();
        push(&mut figures, "link_ms", since(presence.last_complete));
        push(&mut figures, "accepted_ms", since(presence.last_accepted));
        push(
            &mut figures,
            "server_cpu_ms",
            cpu_ms(cpu_before, server_cpu(env)),
        );
        push(&mut figures, "client_cpu_ms", cpu_ms(own_before, own_cpu()));
        push(
            &mut figures,
            "server_peak_rss_kib",
            env.server.peak_rss_kib().map(|kib| kib as f64),
        );
        figures.push(("send_links_ms", sent_ms));
        figures.push(("connect_ms", connect_ms));
        Ok(figures)
    }
}
