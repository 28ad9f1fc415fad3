//! The JavaScript interop test (tests/interop-js, the published `@krmx/client`) against
//! `krmx serve`. Installs its packages with `npm ci` when they are missing (once, however many
//! tests and processes ask at the same time); a failing install fails this test, it never skips.
//! Passing means node ran every test of `interop.test.js` and each passed: node's own exit
//! status is not enough, as it exits 0 when it finds no test file at all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use krmx_tests::cli::{Finished, krmx_binary, run_with_timeout, workspace_root};
use krmx_tests::tls::TestCerts;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The file of JavaScript tests.
const TEST_FILE: &str = "interop.test.js";

/// How many `it(` declarations [`TEST_FILE`] has (checked against the file, so that a test added
/// or removed there fails here until [`EXPECTED_TESTS`] is counted again).
const DECLARED: usize = 15;

/// How many tests node must report, all passed, from the [`DECLARED`] declarations: less the
/// one that only reports missing packages (it runs only when they are missing), plus one, as
/// the lifecycle suite declares one test in a loop over two signals (SIGTERM and SIGINT).
const EXPECTED_TESTS: usize = DECLARED - 1 + 1;

/// How long `npm ci` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

fn report(what: &str, finished: &Finished) -> String {
    format!(
        "{what} exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        finished.status, finished.stdout, finished.stderr
    )
}

/// Whether a complete install is there: npm writes `node_modules/.package-lock.json` at the
/// end of an install, so a folder left by an interrupted one does not count.
fn installed(dir: &Path) -> bool {
    dir.join("node_modules")
        .join(".package-lock.json")
        .is_file()
}

/// The lock of the install across processes: a file created with `create_new` (so one process
/// has it at a time) holding its process id; removed when dropped.
struct InstallLock(PathBuf);

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl InstallLock {
    /// Takes the lock, waiting while another live process holds it. A lock whose holder is
    /// gone (killed during its install) is taken over.
    fn take(path: PathBuf) -> Result<Self, String> {
        let deadline = Instant::now() + INSTALL_TIMEOUT * 2;
        let can_check_processes = Path::new("/proc/self").exists();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let lock = Self(path);
                    write!(file, "{}", std::process::id())
                        .map_err(|error| format!("writing {}: {error}", lock.0.display()))?;
                    return Ok(lock);
                }
                Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|pid| pid.trim().parse::<u32>().ok());
                    if let Some(pid) = holder {
                        if can_check_processes && !Path::new(&format!("/proc/{pid}")).exists() {
                            // Its holder is gone: the next attempt may take it.
                            let _ = std::fs::remove_file(&path);
                            continue;
                        }
                    }
                    if Instant::now() > deadline {
                        return Err(format!(
                            "{} is still held by process {holder:?}",
                            path.display()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => return Err(format!("creating {}: {error}", path.display())),
            }
        }
    }
}

/// Runs `npm ci` in `dir` unless its packages are installed: once per process (every test
/// waits for the first), and under [`InstallLock`] across processes.
fn install_packages(dir: &Path) {
    static INSTALL: OnceLock<Result<(), String>> = OnceLock::new();
    let outcome = INSTALL.get_or_init(|| {
        if installed(dir) {
            return Ok(());
        }
        let _lock = InstallLock::take(dir.join(".npm-ci.lock"))?;
        // Another process may have installed them while this one waited.
        if installed(dir) {
            return Ok(());
        }
        let install = run_with_timeout(
            Command::new("npm").arg("ci").current_dir(dir),
            INSTALL_TIMEOUT,
        );
        if !install.status.success() {
            return Err(report("npm ci", &install));
        }
        if !installed(dir) {
            return Err(format!(
                "npm ci left no node_modules/.package-lock.json\n{}",
                report("npm ci", &install)
            ));
        }
        Ok(())
    });
    if let Err(error) = outcome {
        panic!("installing the JavaScript packages failed: {error}");
    }
}

/// The value of the summary line `# {name} N` of node's TAP output; panics without one.
fn summary(tap: &str, name: &str) -> usize {
    let prefix = format!("# {name} ");
    let values: Vec<usize> = tap
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|value| {
            value
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("not a number in the summary line # {name} {value}"))
        })
        .collect();
    match values[..] {
        [value] => value,
        _ => panic!("expected one summary line `# {name} N` in node's output, found {values:?}"),
    }
}

/// How many `it(` declarations the test file has (at the start of a line, after indentation).
fn declared_tests(file: &Path) -> usize {
    let source = std::fs::read_to_string(file)
        .unwrap_or_else(|error| panic!("reading {}: {error}", file.display()));
    source
        .lines()
        .filter(|line| line.trim_start().starts_with("it("))
        .count()
}

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
    let run = run_with_timeout(
        Command::new("node")
            .args(["--test", "--test-reporter=tap"])
            .current_dir(&dir)
            .env("KRMX_SERVER_CMD", &server_command)
            .env("KRMX_TLS_CERT", certs.cert_file())
            .env("KRMX_TLS_KEY", certs.key_file())
            .env("NODE_EXTRA_CA_CERTS", certs.ca_file())
            .env("KRMX_STARTUP_TIMEOUT_MS", "10000"),
        Duration::from_secs(180),
    );
    let shown = report("node --test", &run);
    assert!(run.status.success(), "{shown}");
    let counts = ["tests", "pass", "fail", "cancelled", "skipped", "todo"]
        .map(|name| (name, summary(&run.stdout, name)));
    let expected = [
        ("tests", EXPECTED_TESTS),
        ("pass", EXPECTED_TESTS),
        ("fail", 0),
        ("cancelled", 0),
        ("skipped", 0),
        ("todo", 0),
    ];
    assert_eq!(
        counts, expected,
        "node did not run every JavaScript test, each passing\n{shown}"
    );
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
