//! Running a folder of JavaScript tests with node's test runner from a Rust test (the interop
//! test's tests/interop-js, the browser tests' tests/browser): its packages installed with
//! `npm ci` when missing (once, however many tests and processes ask at the same time; a failing
//! install fails the test, it never skips), and node's TAP summary checked: node's own exit
//! status is not enough, as it exits 0 when it finds no test file at all.

use crate::cli::{Finished, run_with_timeout};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long `npm ci` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// A finished command's status and output, for a failure message.
#[must_use]
pub fn report(what: &str, finished: &Finished) -> String {
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

/// The lock of an install across processes: a file created with `create_new` (so one process
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

/// Runs `npm ci` in `dir` unless its packages are installed: once per folder and process (every
/// test of the process waits for the first), and under a lock file in `dir` across processes.
///
/// # Panics
/// The install failed (now or in an earlier attempt of this process).
pub fn install_packages(dir: &Path) {
    static INSTALLS: Mutex<Option<HashMap<PathBuf, Result<(), String>>>> = Mutex::new(None);
    let mut installs = INSTALLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let outcome = installs
        .get_or_insert_with(HashMap::new)
        .entry(dir.to_path_buf())
        .or_insert_with(|| install_under_lock(dir));
    if let Err(error) = outcome {
        panic!(
            "installing the JavaScript packages of {} failed: {error}",
            dir.display()
        );
    }
}

fn install_under_lock(dir: &Path) -> Result<(), String> {
    if installed(dir) {
        return Ok(());
    }
    let _lock = InstallLock::take(dir.join(".npm-ci.lock"))?;
    // Another process may have installed them while this one waited.
    if installed(dir) {
        return Ok(());
    }
    let install = run_with_timeout(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir),
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
}

/// Runs `node --test --test-reporter=tap` in `dir` with `env` added, at most `timeout`.
#[must_use]
pub fn run_node_tests(dir: &Path, env: &[(&str, &std::ffi::OsStr)], timeout: Duration) -> Finished {
    let mut command = Command::new("node");
    command
        .args(["--test", "--test-reporter=tap"])
        .current_dir(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    run_with_timeout(&mut command, timeout)
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

/// Asserts that node exited 0 and ran exactly `expected` tests, each passed: its TAP summary
/// says `tests` and `pass` are `expected`, and `fail`, `cancelled`, `skipped` and `todo` are 0.
///
/// # Panics
/// Any of that does not hold (the message holds node's whole output).
pub fn assert_every_test_passed(run: &Finished, expected: usize) {
    let shown = report("node --test", run);
    assert!(run.status.success(), "{shown}");
    let counts = ["tests", "pass", "fail", "cancelled", "skipped", "todo"]
        .map(|name| (name, summary(&run.stdout, name)));
    let wanted = [
        ("tests", expected),
        ("pass", expected),
        ("fail", 0),
        ("cancelled", 0),
        ("skipped", 0),
        ("todo", 0),
    ];
    assert_eq!(
        counts, wanted,
        "node did not run every JavaScript test, each passing\n{shown}"
    );
}

/// How many `it(` declarations `file` has (at the start of a line, after indentation), so that
/// a runner's expected count fails once a test is added or removed there.
///
/// # Panics
/// The file cannot be read.
#[must_use]
pub fn declared_tests(file: &Path) -> usize {
    let source = std::fs::read_to_string(file)
        .unwrap_or_else(|error| panic!("reading {}: {error}", file.display()));
    source
        .lines()
        .filter(|line| line.trim_start().starts_with("it("))
        .count()
}
