//! The comparison run (each round runs every server once, in the order given: A B A B ...) and
//! its report: a table of min/median/max per server and metric with the ratio of medians to the
//! first server, then one JSON line with every figure.

use crate::fleet::{Handler, Outgoing};
use crate::server::Target;
use crate::stats::{Summary, summarize};
use crate::workloads::{Common, Env, Failure, Figures, Workload};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// What one server gave over the rounds.
pub(crate) struct Series {
    pub(crate) target: Target,
    /// One entry per round that ran.
    pub(crate) runs: Vec<Figures>,
    pub(crate) errors: Vec<String>,
    /// The workload means nothing against this server (a bare server and `link`).
    pub(crate) skipped: bool,
}

impl Series {
    fn values(&self, metric: &str) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|figures| {
                figures
                    .iter()
                    .find(|(name, _)| *name == metric)
                    .map(|(_, v)| *v)
            })
            .collect()
    }
}

/// Runs `rounds` rounds over `targets`, a fresh server for every measurement.
pub(crate) fn compare(
    workload: &dyn Workload,
    targets: &[Target],
    common: &Common,
    rounds: usize,
    pause: Duration,
) -> Vec<Series> {
    let mut series: Vec<Series> = targets
        .iter()
        .map(|target| Series {
            target: target.clone(),
            runs: Vec::new(),
            errors: Vec::new(),
            skipped: target.bare && !workload.supports_bare(),
        })
        .collect();
    for round in 1..=rounds {
        for entry in &mut series {
            if entry.skipped {
                continue;
            }
            let label = entry.target.label.clone();
            let began = Instant::now();
            match measure(workload, &entry.target, common) {
                Ok(figures) => {
                    let shown: Vec<String> = figures
                        .iter()
                        .take(3)
                        .map(|(name, value)| format!("{name}={}", number(*value)))
                        .collect();
                    eprintln!(
                        "krmx-load: {} round {round}/{rounds} {label}: {} ({:.1} s)",
                        workload.name(),
                        shown.join(" "),
                        began.elapsed().as_secs_f64()
                    );
                    entry.runs.push(figures);
                }
                Err(Failure(why)) => {
                    eprintln!(
                        "krmx-load: {} round {round}/{rounds} {label}: FAILED: {why}",
                        workload.name()
                    );
                    entry.errors.push(format!("round {round}: {why}"));
                }
            }
            std::thread::sleep(pause);
        }
    }
    series
}

/// Ignores what clients receive while the server shuts down.
struct Discard;

impl Handler for Discard {
    fn on_message(&mut self, _: usize, _: &[u8], _: Instant, _: &mut Outgoing<'_>) {}
}

/// One measurement against a fresh server. The server is stopped before the clients are
/// dropped, so neither side's teardown is measured.
fn measure(workload: &dyn Workload, target: &Target, common: &Common) -> Result<Figures, Failure> {
    let server = target
        .start(&workload.flags())
        .map_err(|e| Failure(format!("starting the server: {e}")))?;
    let env = Env {
        server: &server,
        bare: target.bare,
        tls: target.tls,
        common,
    };
    let mut fleet = env.fleet()?;
    let result = workload.run(&env, &mut fleet);
    server.stop(common.stop_grace, || {
        let _ = fleet.turn(Duration::from_millis(10), &mut Discard);
    });
    drop(fleet);
    result
}

/// Metric names in the order they first appear.
fn metrics(series: &[Series]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for figures in series.iter().flat_map(|s| &s.runs) {
        for (name, _) in figures {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    names
}

/// A number for the table: no decimals from 100 on, then two, then three.
pub(crate) fn number(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// The table: one row per metric and server.
pub(crate) fn table(workload: &dyn Workload, series: &[Series], rounds: usize) -> String {
    let mut out = String::new();
    let order: Vec<&str> = series.iter().map(|s| s.target.label.as_str()).collect();
    let _ = writeln!(
        out,
        "{} {} | {rounds} round(s), order {}",
        workload.name(),
        workload.params(),
        order.join(" ")
    );
    let width = series
        .iter()
        .map(|s| s.target.label.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "{:<30} {:<width$} {:>12} {:>12} {:>12} {:>8}",
        "metric", "server", "min", "median", "max", "×first"
    );
    for metric in metrics(series) {
        let first = series
            .first()
            .and_then(|s| summarize(&s.values(metric)))
            .map(|s| s.median);
        for entry in series {
            let cells = match summarize(&entry.values(metric)) {
                Some(Summary { min, median, max }) => {
                    let ratio = first
                        .filter(|f| *f != 0.0)
                        .map_or("-".to_owned(), |f| format!("{:.2}", median / f));
                    [number(min), number(median), number(max), ratio]
                }
                None if entry.skipped => ["n/a".into(), "n/a".into(), "n/a".into(), "-".into()],
                None => ["-".into(), "-".into(), "-".into(), "-".into()],
            };
            let [min, median, max, ratio] = cells;
            let _ = writeln!(
                out,
                "{metric:<30} {:<width$} {min:>12} {median:>12} {max:>12} {ratio:>8}",
                entry.target.label
            );
        }
    }
    for entry in series {
        for error in &entry.errors {
            let _ = writeln!(out, "FAILED {}: {error}", entry.target.label);
        }
    }
    out
}

/// The JSON line: parameters, and per server every value, its summary and the ratio of medians
/// to the first server.
pub(crate) fn json(workload: &dyn Workload, series: &[Series], rounds: usize) -> String {
    let names = metrics(series);
    let first = series.first();
    let servers: Vec<serde_json::Value> = series
        .iter()
        .map(|entry| {
            let mut figures = serde_json::Map::new();
            for metric in &names {
                let values = entry.values(metric);
                let Some(summary) = summarize(&values) else {
                    continue;
                };
                let ratio = first
                    .and_then(|f| summarize(&f.values(metric)))
                    .filter(|f| f.median != 0.0)
                    .map(|f| summary.median / f.median);
                figures.insert(
                    (*metric).to_owned(),
                    serde_json::json!({
                        "min": summary.min,
                        "median": summary.median,
                        "max": summary.max,
                        "ratio_to_first": ratio,
                        "values": values,
                    }),
                );
            }
            serde_json::json!({
                "label": entry.target.label,
                "command": entry.target.describe(),
                "bare": entry.target.bare,
                "skipped": entry.skipped,
                "runs": entry.runs.len(),
                "figures": figures,
                "errors": entry.errors,
            })
        })
        .collect();
    serde_json::json!({
        "workload": workload.name(),
        "params": workload.params(),
        "rounds": rounds,
        "ok": series.iter().all(|s| s.errors.is_empty()),
        "servers": servers,
    })
    .to_string()
}
