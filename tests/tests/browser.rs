//! The real-browser tests (tests/browser): headless Chromium, the Debian package's, driven by
//! playwright-core, loads pages from `krmx serve --static-dir` and links, chats, closes,
//! reloads and is rejected there, over `ws://` and `wss://`, on both transports; the demo
//! (demo/) and the monitor are driven the same way and photographed to
//! `target/screenshots/demo.png` and `monitor.png`.
//! Installs the packages with `npm ci` when they are missing; a missing browser or a failing
//! install fails these tests, they never skip. Passing means node ran every test of the files
//! below and each passed (see [`krmx_tests::node`]).
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
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The files of JavaScript tests, each with how many `it(` declarations it has (checked against
/// the file, so that a test added or removed there fails here until it is counted again). In
/// each, one declaration only reports missing packages and runs only when they are missing.
const TEST_FILES: [(&str, usize); 3] = [
    ("browser.test.js", 7),
    ("demo.test.js", 4),
    ("monitor.test.js", 2),
];

/// How many tests node must report, all passed: every declaration but the missing-packages one.
const EXPECTED_TESTS: usize = TEST_FILES[0].1 - 1 + TEST_FILES[1].1 - 1 + TEST_FILES[2].1 - 1;

/// The browser, as Debian installs it (`apt-get install chromium`).
const CHROMIUM: &str = "/usr/bin/chromium";

/// The build's target folder (the test executable runs from `target/<profile>/deps`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("the test executable lives in target/<profile>/deps")
}

fn pages_in_chromium_work_with_krmx_serve_on(transport: &str) {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "no browser at {CHROMIUM}: install it (apt-get install -y chromium)"
    );
    let dir = workspace_root().join("tests").join("browser");
    install_packages(&dir);
    let binary = krmx_binary();
    let binary = binary.canonicalize().unwrap_or(binary);
    let server_command = format!("{} serve --transport {transport}", binary.display());
    assert!(
        !binary.display().to_string().contains(char::is_whitespace),
        "KRMX_SERVER_CMD is split on whitespace: {server_command}"
    );
    // The wss:// test's certificates, made now; its browser contexts ignore certificate errors.
    let certs = TestCerts::generate();
    let screenshot = target_dir().join("screenshots").join("demo.png");
    let monitor_screenshot = target_dir().join("screenshots").join("monitor.png");
    let run = run_node_tests(
        &dir,
        &[
            ("KRMX_SERVER_CMD", server_command.as_ref()),
            ("KRMX_TLS_CERT", certs.cert_file().as_os_str()),
            ("KRMX_TLS_KEY", certs.key_file().as_os_str()),
            ("KRMX_CHROMIUM", CHROMIUM.as_ref()),
            ("KRMX_SCREENSHOT", screenshot.as_os_str()),
            ("KRMX_MONITOR_SCREENSHOT", monitor_screenshot.as_os_str()),
            ("KRMX_STARTUP_TIMEOUT_MS", "20000".as_ref()),
        ],
        Duration::from_secs(120),
    );
    assert_every_test_passed(&run, EXPECTED_TESTS);
    for (file, counted) in TEST_FILES {
        let declared = declared_tests(&dir.join(file));
        assert_eq!(
            declared, counted,
            "{file} declares {declared} tests, this file counted {counted}: count TEST_FILES again"
        );
    }
    for written in [&screenshot, &monitor_screenshot] {
        assert!(
            written.is_file(),
            "the browser tests wrote no {}",
            written.display()
        );
    }
    println!("{}", run.stdout);
}

#[test]
fn pages_in_chromium_work_with_krmx_serve_on_mio() {
    pages_in_chromium_work_with_krmx_serve_on("mio");
}

#[test]
fn pages_in_chromium_work_with_krmx_serve_on_smol() {
    pages_in_chromium_work_with_krmx_serve_on("smol");
}
