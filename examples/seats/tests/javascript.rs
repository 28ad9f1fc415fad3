//! The example served for real on both transports and played by the published JavaScript
//! client (`js/seats.test.js`, with the packages of `tests/interop-js`, installed by `npm ci`
//! when missing; a failing install fails the test, it never skips).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use krmx_tests::cli::workspace_root;
use krmx_tests::node::{assert_every_test_passed, install_packages, run_node_tests};
use std::time::Duration;

fn played_by_the_javascript_client_on(transport: &str) {
    let packages = workspace_root().join("tests").join("interop-js");
    install_packages(&packages);
    let command = format!(
        "{} --transport {transport} --krmx-version 0.5",
        env!("CARGO_BIN_EXE_seats")
    );
    let run = run_node_tests(
        &workspace_root().join("examples").join("seats").join("js"),
        &[
            ("SEATS_CMD", command.as_ref()),
            ("NODE_PATH", packages.join("node_modules").as_os_str()),
        ],
        Duration::from_secs(60),
    );
    assert_every_test_passed(&run, 1);
}

#[test]
fn played_by_the_javascript_client_on_mio() {
    played_by_the_javascript_client_on("mio");
}

#[test]
fn played_by_the_javascript_client_on_smol() {
    played_by_the_javascript_client_on("smol");
}
