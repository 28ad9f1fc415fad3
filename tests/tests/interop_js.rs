//! The JavaScript interop test (tests/interop-js, the published `@krmx/client`) against
//! `krmx serve`. Installs its packages with `npm ci` when they are missing (once, however many
//! tests and processes ask at the same time); a failing install fails this test, it never skips.
//! Passing means node ran every test of `interop.test.js` and each passed: node's own exit
//! status is not enough, as it exits 0 when it finds no test file at all (see
//! [`krmx_tests::node`]).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use krmx_tests::cli::{krmx_binary, workspace_root};
use krmx_tests::node::{
    assert_every_test_passed, declared_tests, install_packages, run_node_tests,
};
use krmx_tests::tls::TestCerts;
use std::time::Duration;

/// The file of JavaScript tests.
const TEST_FILE: &str = "interop.test.js";

/// How many `it(` declarations [`TEST_FILE`] has (checked against the file, so that a test added
/// or removed there fails here until [`EXPECTED_TESTS`] is counted again).
const DECLARED: usize = 15;

/// How many tests node must report, all passed, from the [`DECLARED`] declarations: less the
/// one that only reports missing packages (it runs only when they are missing), plus one, as
/// the lifecycle suite declares one test in a loop over two signals (SIGTERM and SIGINT).
const EXPECTED_TESTS: usize = DECLARED - 1 + 1;

fn published_js_client_interoperates_with_krmx_serve_on(transport: &str) {
    let dir = workspace_root().join("tests").join("interop-js");
    install_packages(&dir);
    let binary = krmx_binary();
    let binary = binary.canonicalize().unwrap_or(binary);
    let server_command = format!("{} serve --transport {transport}", binary.display());
    assert!(
        !binary.display().to_string().contains(char::is_whitespace),
        "KRMX_SERVER_CMD is split on whitespace: {server_command}"
    );
    // The wss:// test's certificates, made now; node trusts their authority.
    let certs = TestCerts::generate();
    let run = run_node_tests(
        &dir,
        &[
            ("KRMX_SERVER_CMD", server_command.as_ref()),
            ("KRMX_TLS_CERT", certs.cert_file().as_os_str()),
            ("KRMX_TLS_KEY", certs.key_file().as_os_str()),
            ("NODE_EXTRA_CA_CERTS", certs.ca_file().as_os_str()),
            ("KRMX_STARTUP_TIMEOUT_MS", "10000".as_ref()),
        ],
        Duration::from_secs(180),
    );
    assert_every_test_passed(&run, EXPECTED_TESTS);
    let declared = declared_tests(&dir.join(TEST_FILE));
    assert_eq!(
        declared, DECLARED,
        "{TEST_FILE} declares {declared} tests, this file counted {DECLARED}: count \
         EXPECTED_TESTS again"
    );
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
