//! HAProxy in front of `krmx serve` processes: the recipe `deploy/haproxy/krmx-rooms.cfg` with
//! its ports filled in, run in the foreground on a loopback socket this process bound.

use crate::TIMEOUT;
use crate::cli::{collect_output, workspace_root};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The committed recipe, relative to the workspace root.
pub const RECIPE: &str = "deploy/haproxy/krmx-rooms.cfg";

/// The recipe's own frontend line and server addresses, replaced by [`recipe_config`].
const RECIPE_BIND: &str = "bind 127.0.0.1:8080";
const RECIPE_SERVERS: [&str; 3] = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];

/// The recipe with its three servers at `servers` and its frontend on the socket inherited as
/// file descriptor 0 (`bind fd@0`, see [`Haproxy::start`]).
///
/// # Panics
/// The recipe cannot be read or no longer has the lines this replaces.
#[must_use]
pub fn recipe_config(servers: [SocketAddr; 3]) -> String {
    let path = workspace_root().join(RECIPE);
    let mut config = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    let mut replace = |from: &str, to: &str| {
        assert_eq!(
            config.matches(from).count(),
            1,
            "{RECIPE} has `{from}` exactly once"
        );
        config = config.replace(from, to);
    };
    replace(RECIPE_BIND, "bind fd@0");
    for (from, server) in RECIPE_SERVERS.iter().zip(servers) {
        replace(from, &server.to_string());
    }
    config
}

/// A running `haproxy -db` (foreground) process; killed when dropped.
pub struct Haproxy {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl Haproxy {
    /// Writes `config` into a fresh temporary folder and starts `haproxy -f <it> -db` with a
    /// listening loopback socket on a free port as its standard input, which a config binds
    /// with `bind fd@0` (no port can be taken in between). Waits until a `GET /health` through
    /// it is answered `200`.
    ///
    /// # Panics
    /// `haproxy` is not installed (the test needs Debian's `haproxy` package), rejects the
    /// config, exits, or does not serve within [`TIMEOUT`].
    #[must_use]
    pub fn start(config: &str) -> Self {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let version = Command::new("haproxy").arg("-v").output();
        assert!(
            version.as_ref().is_ok_and(|out| out.status.success()),
            "haproxy is needed (apt-get install haproxy): {version:?}"
        );
        let dir = std::env::temp_dir().join(format!(
            "krmx-haproxy-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("creating the haproxy folder");
        let config_path = dir.join("haproxy.cfg");
        std::fs::write(&config_path, config).expect("writing the haproxy config");
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the balancer's port");
        let addr = listener.local_addr().expect("the balancer's address");
        let mut child = Command::new("haproxy")
            .arg("-f")
            .arg(&config_path)
            .arg("-db")
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting haproxy");
        let stderr = collect_output(child.stderr.take().expect("haproxy's stderr"));
        let mut haproxy = Self {
            child,
            addr,
            stderr,
            dir,
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            haproxy.assert_running();
            if http_get(addr, "/health")
                .is_some_and(|response| response.starts_with("HTTP/1.1 200"))
            {
                return haproxy;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy does not serve /health within {TIMEOUT:?}\nstderr:\n{}",
                haproxy.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The frontend's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What haproxy wrote to stderr so far (warnings, servers going DOWN and UP).
    #[must_use]
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// Waits until haproxy wrote `text` to stderr (a server going `DOWN`, for example);
    /// panics after [`TIMEOUT`].
    pub fn wait_for_stderr(&self, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.stderr().contains(text) {
            assert!(
                Instant::now() < deadline,
                "haproxy did not write `{text}` within {TIMEOUT:?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts that the process is still running.
    pub fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "haproxy exited with {status:?}\nstderr:\n{}",
            self.stderr()
        );
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The whole response to a plain `GET path` (connection closed after it), or `None` when the
/// connection failed or nothing came within [`TIMEOUT`].
#[must_use]
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(TIMEOUT)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    Some(String::from_utf8_lossy(&response).into_owned())
}
