//! The servers under test: a command the generator starts itself (and measures through /proc),
//! or a URL of one already running.

use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A server to measure, as given on the command line.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) label: String,
    pub(crate) spec: Spec,
    /// Speaks bare WebSocket text (a relay or echo without Krmx): clients do not link.
    pub(crate) bare: bool,
    /// Reached over TLS (`wss://`).
    pub(crate) tls: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Spec {
    /// A shell-style command, started as `sh -c 'exec CMD --port 0 FLAGS'`.
    Command(String),
    /// A running server at `ws://host:port/path`, with its process id if known.
    Url { url: String, pid: Option<u32> },
}

impl Target {
    /// Parses `[LABEL:]CMD`: a label is a word of letters, digits, `.`, `_` and `-` before the
    /// first `:` (so paths and flags never look like one).
    pub(crate) fn command(spec: &str, bare: bool) -> Self {
        let (label, command) = match spec.split_once(':') {
            Some((label, command))
                if !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) =>
            {
                (label.to_owned(), command.trim().to_owned())
            }
            _ => {
                let program = spec.split_whitespace().next().unwrap_or("server");
                let name = program.rsplit('/').next().unwrap_or(program);
                (name.to_owned(), spec.trim().to_owned())
            }
        };
        Self {
            label,
            spec: Spec::Command(command),
            bare,
            tls: false,
        }
    }

    /// Starts the server (or resolves the URL) for one measurement.
    pub(crate) fn start(&self, flags: &[String]) -> io::Result<Running> {
        match &self.spec {
            Spec::Command(command) => Running::spawn(&self.label, command, flags),
            Spec::Url { url, pid } => {
                let (addr, path) = parse_url(url)?;
                Ok(Running {
                    addr,
                    path,
                    pid: *pid,
                    child: None,
                })
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        match &self.spec {
            Spec::Command(command) => command.clone(),
            Spec::Url { url, .. } => url.clone(),
        }
    }
}

/// `ws://host:port/path` to an address and a path.
pub(crate) fn parse_url(url: &str) -> io::Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| io::Error::other(format!("expected a ws:// URL, got {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{authority} resolves to no address")))?;
    Ok((addr, path.to_owned()))
}

/// A server being measured.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) pid: Option<u32>,
    child: Option<Child>,
}

/// How long a server may take to print its `listen` line.
const STARTUP: Duration = Duration::from_secs(30);

impl Running {
    fn spawn(label: &str, command: &str, flags: &[String]) -> io::Result<Self> {
        let shell = format!("exec {command} --port 0 {}", flags.join(" "));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&shell)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = child.id();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (first_line, first) = mpsc::channel();
        if let Some(stdout) = stdout {
            // Reads the first line for the port, then drains the rest so the server never blocks
            // on a full pipe.
            thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = first_line.send(line);
                let mut sink = [0_u8; 8192];
                while let Ok(1..) = reader.read(&mut sink) {}
            });
        }
        if let Some(stderr) = stderr {
            let label = label.to_owned();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[{label}] {line}");
                }
            });
        }
        let mut running = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            path: "/".to_owned(),
            pid: Some(pid),
            child: Some(child),
        };
        let line = first.recv_timeout(STARTUP).map_err(|_| {
            io::Error::other(format!(
                "`{shell}` printed no listen line within {STARTUP:?}"
            ))
        })?;
        let port = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .filter(|v| v.get("event").and_then(|e| e.as_str()) == Some("listen"))
            .and_then(|v| v.get("port").and_then(serde_json::Value::as_u64))
            .and_then(|port| u16::try_from(port).ok())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "`{shell}`: expected {{\"event\":\"listen\",\"port\":N}} first, got {:?}",
                    line.trim()
                ))
            })?;
        running.addr.set_port(port);
        Ok(running)
    }

    /// Resident memory, in KiB.
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        status_kib(self.pid?, "VmRSS")
    }

    /// The largest resident memory so far, in KiB.
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        status_kib(self.pid?, "VmHWM")
    }

    /// Open file descriptors (the entries of /proc/PID/fd).
    pub(crate) fn fds(&self) -> Option<usize> {
        Some(
            std::fs::read_dir(format!("/proc/{}/fd", self.pid?))
                .ok()?
                .count(),
        )
    }

    /// CPU time used so far (user and system, every thread).
    pub(crate) fn cpu(&self) -> Option<Duration> {
        cpu_time(&self.pid?.to_string())
    }

    /// Stops the server: SIGTERM, then SIGKILL if it is still running after `grace`. `wait` is
    /// called meanwhile (the clients answer the server's close frames there) and should block
    /// for a few milliseconds.
    pub(crate) fn stop(mut self, grace: Duration, wait: impl FnMut()) {
        self.stop_child(grace, wait);
    }

    fn stop_child(&mut self, grace: Duration, mut wait: impl FnMut()) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let sent = Instant::now();
            let deadline = sent + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    eprintln!(
                        "krmx-load: the server exited {:?} after SIGTERM",
                        sent.elapsed()
                    );
                    return;
                }
                wait();
            }
            eprintln!("krmx-load: the server did not stop within {grace:?} of SIGTERM: killed");
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_child(Duration::from_secs(5), || {
            thread::sleep(Duration::from_millis(10));
        });
    }
}

/// A memory figure of /proc/PID/status (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// CPU time of a process (`self` for this one): utime + stime of /proc/PID/stat.
pub(crate) fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = after.split_whitespace();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks(),
    ))
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_optional() {
        let t = Target::command("mio:target/release/krmx serve --krmx-version 0.5", false);
        assert_eq!(t.label, "mio");
        assert_eq!(t.describe(), "target/release/krmx serve --krmx-version 0.5");
        let t = Target::command("target/release/krmx serve --query a:b", false);
        assert_eq!(t.label, "krmx");
        assert_eq!(t.describe(), "target/release/krmx serve --query a:b");
    }

    #[test]
    fn urls() {
        let (addr, path) = parse_url("ws://127.0.0.1:9/x").unwrap();
        assert_eq!((addr.port(), path.as_str()), (9, "/x"));
        assert_eq!(parse_url("ws://127.0.0.1:9").unwrap().1, "/");
        assert!(parse_url("http://127.0.0.1:9").is_err());
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_time("self").is_some());
    }
}
