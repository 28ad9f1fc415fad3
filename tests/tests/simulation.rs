//! The deterministic simulation (see `krmx_testkit::soak`): many clients and the server in
//! one process, a seeded scheduler, a virtual clock, dropped connections, late decisions, every
//! timer and limit on in some seeds and off in others, their outcomes judged against the
//! reference of their deadlines (`krmx_testkit::deadlines`).
//!
//! - `cargo test -p krmx-tests --test simulation` runs seeds 0 to 199;
//! - `KRMX_SIM_SEEDS=5000` runs more (from `KRMX_SIM_FIRST`, default 0);
//! - `KRMX_SIM_SEED=1234` replays exactly seed 1234 (add `KRMX_SIM_TRACE=1` for its trace).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use krmx_testkit::soak::{Outcome, Stats, run_seed, run_seed_traced};
use std::panic::{AssertUnwindSafe, catch_unwind};

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

fn replay(seed: u64) -> String {
    format!("KRMX_SIM_SEED={seed} cargo test -p krmx-tests --test simulation")
}

/// Runs one seed, turning a panic (in the core or the harness) into a failure.
fn run(seed: u64) -> Result<Outcome, String> {
    match catch_unwind(AssertUnwindSafe(|| run_seed(seed))) {
        Ok(result) => result,
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .map_or_else(|| "panicked".to_owned(), |m| format!("panicked: {m}"))),
    }
}

#[test]
fn every_client_gets_the_messages_it_is_owed() {
    if let Some(seed) = env_u64("KRMX_SIM_SEED") {
        let (result, trace) = run_seed_traced(seed);
        if std::env::var_os("KRMX_SIM_TRACE").is_some() {
            for line in &trace {
                println!("{line}");
            }
        }
        match result {
            Ok(outcome) => println!("seed {seed} passed: {:?}", outcome.stats),
            Err(failure) => panic!("seed {seed} failed: {failure}"),
        }
        return;
    }
    let first = env_u64("KRMX_SIM_FIRST").unwrap_or(0);
    let count = env_u64("KRMX_SIM_SEEDS").unwrap_or(200);
    let mut totals = Stats::default();
    let mut failures = Vec::new();
    for seed in first..first + count {
        match run(seed) {
            Ok(outcome) => totals.add(&outcome.stats),
            Err(failure) => {
                eprintln!(
                    "seed {seed} failed: {failure}\n  replay: {}\n",
                    replay(seed)
                );
                failures.push(seed);
            }
        }
    }
    println!("{count} seeds: {totals:#?}");
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed: {failures:?}; replay the first with: {}",
        failures.len(),
        replay(failures[0])
    );
    // The runs exercise what they claim to.
    assert!(totals.owed_received > 0, "{totals:?}");
    assert!(totals.drops_while_pending > 0, "{totals:?}");
    assert!(totals.mid_drain_drops > 0, "{totals:?}");
    assert!(totals.late_decisions > 0, "{totals:?}");
    assert!(totals.auth_timeouts > 0 || count < 50, "{totals:?}");
    if count >= 100 {
        // Every timer and limit acted, and was judged, in some seed.
        let timers = &totals.timers;
        for (what, n) in [
            ("unlinked timeouts", timers.unlinked_timeouts),
            ("rejections closed as overdue", timers.overdue_rejections),
            ("overdue links accepted", timers.overdue_accepts),
            (
                "rejections after an overdue accept",
                timers.rejected_after_overdue_accept,
            ),
            ("unlinked cap refusals", timers.cap_refusals),
            ("ping timeouts", timers.ping_timeouts),
            ("pings", timers.pings),
            ("auth timeouts", timers.auth_timeouts),
            ("inactivity kicks", timers.inactivity_kicks),
            ("queue overflows", timers.queue_overflows),
            (
                "messages kept during a link, handled in order",
                timers.replayed_messages,
            ),
            ("pending bound rejections", timers.pending_bound_rejections),
        ] {
            assert!(n > 0, "no {what} in {count} seeds: {timers:?}");
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [0, 1, 7, 42, 1234] {
        let first = run(seed);
        let second = run(seed);
        assert_eq!(first, second, "seed {seed} ran differently twice");
    }
}
