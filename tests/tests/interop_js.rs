//! The JavaScript interop test (tests/interop-js, the published `@krmx/client`) against
//! `krmx serve`. Installs its packages with `npm ci` when they are missing; a failing install
//! fails this test, it never skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use krmx_tests::cli::{Finished, krmx_binary, run_with_timeout, workspace_root};
use std::process::Command;
use std::time::Duration;

fn report(what: &str, finished: &Finished) -> String {
    format!(
        "{what} exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        finished.status, finished.stdout, finished.stderr
    )
}

fn published_js_client_interoperates_with_krmx_serve_on(transport: &str) {
    let dir = workspace_root().join("tests").join("interop-js");
    if !dir.join("node_modules").is_dir() {
        let install = run_with_timeout(
            Command::new("npm").arg("ci").current_dir(&dir),
            Duration::from_secs(300),
        );
        assert!(install.status.success(), "{}", report("npm ci", &install));
    }
    let binary = krmx_binary();
    let binary = binary.canonicalize().unwrap_or(binary);
    let server_command = format!("{} serve --transport {transport}", binary.display());
    assert!(
        !binary.display().to_string().contains(char::is_whitespace),
        "KRMX_SERVER_CMD is split on whitespace: {server_command}"
    );
    let run = run_with_timeout(
        Command::new("node")
            .arg("--test")
            .current_dir(&dir)
            .env("KRMX_SERVER_CMD", &server_command)
            .env("KRMX_STARTUP_TIMEOUT_MS", "10000"),
        Duration::from_secs(180),
    );
    assert!(run.status.success(), "{}", report("node --test", &run));
    println!("{}", run.stdout);
}

#[test]
fn published_js_client_interoperates_with_krmx_serve_on_mio() {
    published_js_client_interoperates_with_krmx_serve_on("mio");
}

#[test]
fn published_js_client_interoperates_with_krmx_serve_on_smol() {
    published_js_client_interoperates_with_krmx_serve_on("smol");
}
