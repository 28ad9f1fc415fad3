//! `krmx --help` runs; being an integration test of this package, it also makes cargo build
//! the `krmx` binary before the workspace's tests run (the CLI tests in `krmx-tests` use it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::Command;

#[test]
fn help_describes_the_serve_command() {
    let output = Command::new(env!("CARGO_BIN_EXE_krmx"))
        .arg("--help")
        .output()
        .expect("running krmx --help");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("serve"), "{text}");
}
