//! [`Front`]: rooms over several cores. One thread accepts connections and reads each one's
//! request head; the room its path names decides the worker (a [`Server`](crate::Server) on a
//! thread of its own, holding that room's core), which adopts the connection with the head
//! already read. A room never spans two workers, so each worker stays single-threaded and
//! deterministic; requests that name no room (health, metrics, pages, 404s) go to worker 0.

use krmx_driver::{Handle, RoomsConfig, TransportConfig, asks_for_figures, figures_response};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST: usize = 2;

/// Longest request head the front reads before it routes (as the driver's own limit).
const MAX_HEAD_BYTES: usize = 16 << 10;

/// The routing thread of a server with rooms over several workers.
///
/// ```no_run
/// use krmx_core::KrmxConfig;
/// use krmx_driver::RoomsConfig;
/// use krmx_transport_mio::{Front, Server, TransportConfig};
///
/// let rooms = RoomsConfig::new("/rooms");
/// let transport = TransportConfig::default().rooms(rooms.clone());
/// let mut handles = Vec::new();
/// for _ in 0..2 {
///     // Each worker: Server::without_listener(..) run on a thread of its own; its handle here.
/// #   let server = Server::without_listener(KrmxConfig::default(), transport.clone());
/// #   handles.extend(server.handle());
/// }
/// let front = Front::bind("127.0.0.1:8082".parse().unwrap(), rooms, handles)?;
/// let stop = front.stopper();
/// std::thread::spawn(move || front.run());
/// // ... later: stop.stop();
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Front {
    poll: Poll,
    listener: TcpListener,
    rooms: RoomsConfig,
    workers: Vec<Handle>,
    handshake_timeout: Duration,
    /// The health and metrics paths, answered here with every worker's figures.
    figures: Option<TransportConfig>,
    pending: Vec<Option<Pending>>,
    stop: Stopper,
}

struct Pending {
    stream: TcpStream,
    head: Vec<u8>,
    deadline: Instant,
}

/// Stops a [`Front`]: it stops accepting and drops the connections still in their request.
#[derive(Clone)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Stopper {
    /// Asks the front to stop.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Err(error) = self.waker.wake() {
            tracing::warn!(%error, "could not wake the front");
        }
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper").finish_non_exhaustive()
    }
}

impl Front {
    /// Binds `addr` for `workers` (worker `i` owns the rooms [`RoomsConfig::worker_of`] gives
    /// `i`).
    ///
    /// # Errors
    /// Binding or polling failed, or `workers` is empty.
    pub fn bind(
        addr: std::net::SocketAddr,
        rooms: RoomsConfig,
        workers: Vec<Handle>,
    ) -> io::Result<Self> {
        if workers.is_empty() {
            return Err(io::Error::other("a front needs at least one worker"));
        }
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Self {
            poll,
            listener,
            rooms,
            workers,
            handshake_timeout: krmx_driver::DEFAULT_HANDSHAKE_TIMEOUT,
            figures: None,
            pending: Vec::new(),
            stop: Stopper {
                flag: Arc::new(AtomicBool::new(false)),
                waker,
            },
        })
    }

    /// How long a connection may take to send its request head (default 5 s).
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Answers the health and metrics endpoints of `transport` here, with the figures of
    /// every worker merged ([`Metrics::merge`](krmx_driver::Metrics::merge)), rather than
    /// routing them to worker 0. A scrape waits for every worker's answer (a turn each).
    #[must_use]
    pub fn figures(mut self, transport: TransportConfig) -> Self {
        self.figures = Some(transport);
        self
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// The socket's error.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// What stops it from another thread.
    #[must_use]
    pub fn stopper(&self) -> Stopper {
        self.stop.clone()
    }

    /// Accepts and routes until stopped.
    ///
    /// # Errors
    /// Polling failed.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if self.stop.flag.load(Ordering::SeqCst) {
                return Ok(());
            }
            let timeout = self
                .pending
                .iter()
                .flatten()
                .map(|pending| pending.deadline)
                .min()
                .map(|at| at.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    Token(token) => self.read(token - FIRST),
                }
            }
            let now = Instant::now();
            for index in 0..self.pending.len() {
                if self
                    .pending
                    .get(index)
                    .and_then(Option::as_ref)
                    .is_some_and(|pending| pending.deadline <= now)
                {
                    tracing::debug!("request head timed out at the front");
                    self.drop_pending(index);
                }
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let index = match self.pending.iter().position(Option::is_none) {
                        Some(index) => index,
                        None => {
                            self.pending.push(None);
                            self.pending.len() - 1
                        }
                    };
                    let token = Token(FIRST + index);
                    if let Err(error) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE)
                    {
                        tracing::warn!(%error, "could not register a connection");
                        continue;
                    }
                    if let Some(slot) = self.pending.get_mut(index) {
                        *slot = Some(Pending {
                            stream,
                            head: Vec::new(),
                            deadline: Instant::now() + self.handshake_timeout,
                        });
                    }
                    // Bytes may be there already.
                    self.read(index);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    return;
                }
            }
        }
    }

    /// Reads what a connection sent; once its head is complete, hands it to its worker.
    fn read(&mut self, index: usize) {
        let Some(Some(pending)) = self.pending.get_mut(index) else {
            return;
        };
        let mut buf = [0_u8; 4096];
        loop {
            match pending.stream.read(&mut buf) {
                Ok(0) => return self.drop_pending(index),
                Ok(n) => pending
                    .head
                    .extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.drop_pending(index),
            }
            if pending.head.len() > MAX_HEAD_BYTES {
                break;
            }
        }
        let complete = pending.head.windows(4).any(|w| w == b"\r\n\r\n");
        if !complete && pending.head.len() <= MAX_HEAD_BYTES {
            return;
        }
        // Complete, or too long: the worker answers (a 431 for the latter).
        let worker = worker_for(&self.rooms, &pending.head, self.workers.len());
        let Some(Some(pending)) = self.pending.get_mut(index).map(Option::take) else {
            return;
        };
        let Pending {
            mut stream, head, ..
        } = pending;
        if let Err(error) = self.poll.registry().deregister(&mut stream) {
            tracing::debug!(%error, "could not deregister a routed connection");
        }
        let stream = std::net::TcpStream::from(stream);
        if let Some(transport) = &self.figures {
            if asks_for_figures(transport, &head) {
                return answer_figures(transport, &self.workers, &head, stream);
            }
        }
        if let Some(handle) = self.workers.get(worker) {
            // The worker answers later; a closed worker drops the stream.
            drop(handle.adopt(stream, head));
        }
    }

    fn drop_pending(&mut self, index: usize) {
        if let Some(Some(mut pending)) = self.pending.get_mut(index).map(Option::take) {
            drop(self.poll.registry().deregister(&mut pending.stream));
        }
    }
}

/// Answers a health or metrics request with every worker's figures merged, then closes.
fn answer_figures(
    transport: &TransportConfig,
    workers: &[Handle],
    head: &[u8],
    mut stream: std::net::TcpStream,
) {
    let mut merged: Option<krmx_driver::Metrics> = None;
    for handle in workers {
        match handle.metrics().wait() {
            Ok(metrics) => match &mut merged {
                Some(all) => all.merge(&metrics),
                None => merged = Some(metrics),
            },
            Err(error) => tracing::debug!(%error, "a worker did not give its figures"),
        }
    }
    let Some(metrics) = merged else {
        return;
    };
    let response = figures_response(transport, head, &metrics);
    let written = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(1))))
        .and_then(|()| stream.write_all(&response));
    if let Err(error) = written {
        tracing::debug!(%error, "a figures answer was not written");
    }
    drop(stream.shutdown(std::net::Shutdown::Write));
}

/// The worker of a request head: its room's, or worker 0 for requests that name no room.
fn worker_for(rooms: &RoomsConfig, head: &[u8], workers: usize) -> usize {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split(' ');
    let target = words.nth(1).unwrap_or_default();
    let path = target.split(['?', '#']).next().unwrap_or_default();
    rooms
        .room_of(path)
        .map_or(0, |room| RoomsConfig::worker_of(room, workers))
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_go_to_their_rooms_worker_and_others_to_worker_0() {
        let rooms = RoomsConfig::new("/rooms");
        let head = b"GET /rooms/table-7?seat=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            worker_for(&rooms, head, 4),
            RoomsConfig::worker_of("table-7", 4)
        );
        assert_eq!(worker_for(&rooms, b"GET /health HTTP/1.1\r\n\r\n", 4), 0);
        assert_eq!(worker_for(&rooms, b"garbage", 4), 0);
    }
}
