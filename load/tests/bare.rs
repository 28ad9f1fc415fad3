//! The generator end to end on loopback against the bare servers (no Krmx, no Node): every
//! workload that applies runs, checks, and reports one JSON line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::Command;

fn load(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_krmx-load"))
        .args(args)
        .args(["--phase-timeout-secs", "30", "--pause-ms", "0"])
        .output()
        .expect("krmx-load runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "krmx-load {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(json).expect("the last line is JSON")
}

fn bare(transport: &str) -> String {
    format!(
        "bare-{transport}:{} --transport {transport}",
        env!("CARGO_BIN_EXE_krmx-bare")
    )
}

#[test]
fn relay_against_both_bare_servers_in_alternating_rounds() {
    let report = load(&[
        "relay",
        "--clients",
        "20",
        "--senders",
        "3",
        "--messages",
        "50",
        "--window",
        "4",
        "--rounds",
        "2",
        "--bare",
        &bare("mio"),
        "--bare",
        &bare("smol"),
    ]);
    assert_eq!(report["workload"], "relay");
    assert_eq!(report["ok"], true);
    let servers = report["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    for server in servers {
        assert_eq!(server["runs"], 2);
        let deliveries = &server["figures"]["deliveries_per_s"];
        assert!(deliveries["median"].as_f64().unwrap() > 0.0);
        assert_eq!(deliveries["values"].as_array().unwrap().len(), 2);
    }
    assert_eq!(
        servers[0]["figures"]["deliveries_per_s"]["ratio_to_first"],
        1.0
    );
}

#[test]
fn echo_and_idle_against_a_bare_server() {
    let report = load(&[
        "echo",
        "--clients",
        "3",
        "--round-trips",
        "100",
        "--bare",
        &bare("mio"),
    ]);
    assert_eq!(report["ok"], true);
    assert!(
        report["servers"][0]["figures"]["latency_p99_us"]["median"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let report = load(&[
        "idle",
        "--clients",
        "50",
        "--hold-ms",
        "10",
        "--bare",
        &bare("smol"),
    ]);
    assert_eq!(report["ok"], true);
    assert!(
        report["servers"][0]["figures"]["rss_after_kib"]["median"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
fn link_skips_bare_servers() {
    let report = load(&["link", "--clients", "5", "--bare", &bare("mio")]);
    assert_eq!(report["servers"][0]["skipped"], true);
}

#[test]
fn a_server_that_does_not_announce_its_port_fails_the_run() {
    let output = Command::new(env!("CARGO_BIN_EXE_krmx-load"))
        .args([
            "echo",
            "--clients",
            "1",
            "--round-trips",
            "1",
            "--server",
            "true",
        ])
        .output()
        .expect("krmx-load runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("FAILED"));
}
