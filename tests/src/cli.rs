//! Driving the `krmx` binary as a script would: commands on stdin, JSON lines on stdout.

use crate::TIMEOUT;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// The `krmx` binary of this build (`target/<profile>/krmx` beside the test executable's
/// `deps` folder). Built with cargo first when it is missing or older than the sources of the
/// crates it is made of.
///
/// # Panics
/// The build failed.
#[must_use]
pub fn krmx_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test executable's path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test executable lives in target/<profile>/deps");
            let binary = profile_dir.join(format!("krmx{}", std::env::consts::EXE_SUFFIX));
            if is_stale(&binary) {
                build(profile_dir);
            }
            assert!(
                binary.exists(),
                "{} is missing after the build",
                binary.display()
            );
            binary
        })
        .clone()
}

/// The workspace root.
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

fn is_stale(binary: &Path) -> bool {
    let Ok(built) = binary.metadata().and_then(|m| m.modified()) else {
        return true;
    };
    // The sources of every crate of the workspace the binary may be made of.
    let Ok(entries) = std::fs::read_dir(workspace_root()) else {
        return true;
    };
    entries.flatten().any(|entry| {
        let dir = entry.path();
        let skipped = ["tests", "load", "fuzz", "target"]
            .iter()
            .any(|name| dir.file_name().is_some_and(|file| file == *name));
        !skipped
            && dir.join("Cargo.toml").is_file()
            && newest(&dir.join("src")).is_some_and(|at| at > built)
    })
}

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let at = if path.is_dir() {
            self::newest(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(at);
    }
    newest
}

fn build(profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "-p", "krmx-cli", "--bin", "krmx"]);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        command.arg("--release");
    }
    let status = command.status().expect("running cargo build");
    assert!(status.success(), "cargo build -p krmx-cli failed: {status}");
}

/// A running `krmx serve` process.
pub struct CliServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    port: u16,
}

impl CliServer {
    /// Starts `krmx serve --port 0 --transport <transport> <args>` and reads its listen event.
    #[must_use]
    pub fn start(transport: &str, args: &[&str]) -> Self {
        let mut child = Command::new(krmx_binary())
            .args(["serve", "--port", "0", "--transport", transport])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting krmx serve");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = collect_output(stderr_pipe);
        let mut server = Self {
            child,
            stdin,
            lines,
            stderr,
            port: 0,
        };
        let listen = server.next_json();
        assert_eq!(listen["event"], "listen", "the first line: {listen}");
        server.port = listen["port"]
            .as_u64()
            .and_then(|port| u16::try_from(port).ok())
            .filter(|port| *port != 0)
            .unwrap_or_else(|| panic!("no port in {listen}"));
        server
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one command line.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin was closed");
        writeln!(stdin, "{line}").expect("writing to krmx's stdin");
        stdin.flush().expect("flushing krmx's stdin");
    }

    /// Closes stdin (end of file for the server).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line within `timeout`, parsed as JSON.
    pub fn next_json_within(&mut self, timeout: Duration) -> Option<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(serde_json::from_str(&line).unwrap_or_else(|_| {
                panic!(
                    "stdout line is not JSON: {line}\nstderr:\n{}",
                    self.stderr()
                )
            })),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next stdout line as JSON; panics after [`TIMEOUT`] or at the end of stdout.
    pub fn next_json(&mut self) -> Value {
        self.next_json_within(TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no stdout line within {TIMEOUT:?}\nstderr:\n{}",
                self.stderr()
            )
        })
    }

    /// Asserts the next stdout line.
    pub fn expect(&mut self, expected: &Value) {
        let line = self.next_json();
        assert_eq!(line, *expected, "unexpected stdout line");
    }

    /// Asserts the next stdout lines, in order.
    pub fn expect_lines(&mut self, expected: &[Value]) {
        for line in expected {
            self.expect(line);
        }
    }

    /// Sends a command and asserts that its reply is the very next line.
    pub fn command(&mut self, line: &str, reply: &Value) {
        self.send_line(line);
        self.expect(reply);
    }

    /// Asserts that stdout stays silent for `duration`.
    pub fn expect_silence_for(&mut self, duration: Duration) {
        if let Some(line) = self.next_json_within(duration) {
            panic!("expected no stdout line for {duration:?}, got {line}");
        }
    }

    /// Sends a signal with `kill -<name> <pid>`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit; panics after [`TIMEOUT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_with_timeout(&mut self.child)
            .unwrap_or_else(|| panic!("krmx did not exit\nstderr:\n{}", self.stderr()))
    }

    /// Asserts that the process is still running.
    pub fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "krmx exited with {status:?}\nstderr:\n{}",
            self.stderr()
        );
    }

    /// What the server wrote to stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }
}

impl Drop for CliServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `krmx <args>` to its end (at most [`TIMEOUT`]); returns its status and stderr.
///
/// # Panics
/// It did not end in time.
#[must_use]
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(krmx_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting krmx");
    let status = wait_with_timeout(&mut child);
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    match status {
        Some(status) => (status, stderr),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("krmx {args:?} did not exit within {TIMEOUT:?}");
        }
    }
}

/// What [`run_with_timeout`] observed.
#[derive(Debug)]
pub struct Finished {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

/// Runs `command` with piped output to its end; kills it and panics after `timeout`.
///
/// # Panics
/// It could not start or did not end in time.
#[must_use]
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Finished {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {command:?} failed: {error}"));
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = collect(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = collect(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_until(&mut child, timeout);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        panic!("{command:?} did not end within {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn wait_with_timeout(child: &mut Child) -> Option<ExitStatus> {
    wait_until(child, TIMEOUT)
}

fn wait_until(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Collects everything `pipe` (a child's stdout or stderr) writes, on a thread of its own, so
/// that the child never blocks on a full pipe and a failing test can show what it said.
pub fn collect_output(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let output = Arc::new(Mutex::new(String::new()));
    let collected = Arc::clone(&output);
    std::thread::spawn(move || {
        let mut chunk = [0_u8; 1024];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut text) = collected.lock() {
                text.push_str(&String::from_utf8_lossy(chunk.get(..n).unwrap_or_default()));
            }
        }
    });
    output
}
