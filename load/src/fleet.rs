//! [`Fleet`]: many WebSocket clients on one mio poll. Non-blocking connects and upgrades; every
//! message is handed to a [`Handler`] as a slice of the shared read buffer, which may answer on
//! the same client through [`Outgoing`].

use crate::wire::{self, Frame, Upgrade};
use crate::wire_stream::WireStream;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the workloads do with what the clients receive.
pub(crate) trait Handler {
    /// Client `client` finished its upgrade.
    fn on_open(&mut self, _client: usize, _out: &mut Outgoing<'_>) {}
    /// Client `client` received a text or binary message; `now` is when it was read.
    fn on_message(&mut self, client: usize, text: &[u8], now: Instant, out: &mut Outgoing<'_>);
    /// Called after every turn of a workload's loop (to send on other clients).
    fn after_turn(&mut self, _fleet: &mut Fleet) {}
    /// A progress note for long phases.
    fn status(&self) -> String {
        String::new()
    }
}

/// Sends on the client whose message is being handled.
pub(crate) struct Outgoing<'a> {
    buf: &'a mut Vec<u8>,
    mask: &'a mut Mask,
}

impl Outgoing<'_> {
    /// Queues a text message (written when the handler returns).
    pub(crate) fn text(&mut self, text: &[u8]) {
        wire::push_text(self.buf, text, self.mask.next());
    }
}

/// Runs `f` with an [`Outgoing`] that collects into `buf` (for handler tests).
#[cfg(test)]
pub(crate) fn capture<R>(buf: &mut Vec<u8>, f: impl FnOnce(&mut Outgoing<'_>) -> R) -> R {
    let mut mask = Mask(1);
    f(&mut Outgoing {
        buf,
        mask: &mut mask,
    })
}

/// Masking keys from a xorshift generator (servers cannot tell them from random ones).
struct Mask(u64);

impl Mask {
    fn next(&mut self) -> [u8; 4] {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 as u32).to_le_bytes()
    }
}

enum Phase {
    /// TCP connect in progress: the upgrade request for `path` goes out once connected.
    Connecting {
        key: String,
        path: String,
    },
    /// Upgrade request sent, response being read (into `partial`).
    Upgrading {
        key: String,
    },
    Open,
    /// The client sent its close frame and waits for the server's (or the end of the stream).
    Closing,
    /// Closed or failed (the first failure's reason is kept by the fleet).
    Gone,
}

struct Conn {
    stream: WireStream,
    phase: Phase,
    /// Bytes read but not consumed yet (an incomplete frame or response head).
    partial: Vec<u8>,
    /// A fragmented message being put together.
    fragments: Option<Vec<u8>>,
    /// Bytes to write, from `written` on.
    out: Vec<u8>,
    written: usize,
}

/// How many clients are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Census {
    pub(crate) connecting: usize,
    pub(crate) open: usize,
    /// Closing from the client side ([`Fleet::close`]), waiting for the server's close.
    pub(crate) closing: usize,
    /// Closed cleanly: the client's close was answered (a close frame or the end of stream).
    pub(crate) closed: usize,
    /// Failed (the first failure's reason is kept by the fleet).
    pub(crate) gone: usize,
}

/// Many clients on one poll.
pub(crate) struct Fleet {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    scratch: Vec<u8>,
    addr: SocketAddr,
    host: String,
    path: String,
    mask: Mask,
    census: Census,
    first_failure: Option<String>,
    /// Clients whose read budget ran out while still readable: read again next turn.
    again: Vec<usize>,
    /// `wss://`: every client speaks TLS to `localhost` with this.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The path of client `index`, when not every client connects to `path` (rooms).
    route: Option<Box<dyn Fn(usize) -> String>>,
}

/// The read buffer (grown for a message larger than this).
const SCRATCH: usize = 256 << 10;

/// Reads per client per turn.
const READ_BUDGET: usize = 16;

impl Fleet {
    pub(crate) fn new(
        addr: SocketAddr,
        path: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> io::Result<Self> {
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            conns: Vec::new(),
            scratch: vec![0; SCRATCH],
            addr,
            host: addr.to_string(),
            path: path.to_owned(),
            mask: Mask(0x9e37_79b9_7f4a_7c15),
            census: Census::default(),
            first_failure: None,
            again: Vec::new(),
            tls,
            route: None,
        })
    }

    /// Connects client `index` to `route(index)` instead of the server's path (every room its
    /// own path). Applies to clients added from now on.
    pub(crate) fn route(&mut self, route: impl Fn(usize) -> String + 'static) {
        self.route = Some(Box::new(route));
    }

    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn census(&self) -> Census {
        self.census
    }

    /// Why the first client that failed failed.
    pub(crate) fn first_failure(&self) -> Option<&str> {
        self.first_failure.as_deref()
    }

    /// Starts connecting a new client; returns its index.
    pub(crate) fn add(&mut self) -> io::Result<usize> {
        let index = self.conns.len();
        let mut stream = TcpStream::connect(self.addr)?;
        let _ = stream.set_nodelay(true);
        self.poll.registry().register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let path = match &self.route {
            Some(route) => route(index),
            None => self.path.clone(),
        };
        self.conns.push(Conn {
            stream: WireStream::new(stream, self.tls.as_ref())?,
            phase: Phase::Connecting {
                key: tungstenite::handshake::client::generate_key(),
                path,
            },
            partial: Vec::new(),
            fragments: None,
            out: Vec::new(),
            written: 0,
        });
        self.census.connecting += 1;
        Ok(index)
    }

    /// Queues a text message on client `index` and writes what its socket takes.
    pub(crate) fn send(&mut self, index: usize, text: &[u8]) {
        if let Some(conn) = self.conns.get_mut(index) {
            if matches!(conn.phase, Phase::Open) {
                wire::push_text(&mut conn.out, text, self.mask.next());
                flush(conn, &mut self.census, &mut self.first_failure);
            }
        }
    }

    /// Starts the close handshake on open client `index` (code 1000); it counts as
    /// [`Census::closed`] once the server answers with its close frame or ends the stream.
    pub(crate) fn close(&mut self, index: usize) {
        if let Some(conn) = self.conns.get_mut(index) {
            if matches!(conn.phase, Phase::Open) {
                wire::push_close(&mut conn.out, 1000, self.mask.next());
                conn.phase = Phase::Closing;
                self.census.open -= 1;
                self.census.closing += 1;
                flush(conn, &mut self.census, &mut self.first_failure);
            }
        }
    }

    /// Waits up to `timeout` for readiness and handles what is ready.
    pub(crate) fn turn(&mut self, timeout: Duration, handler: &mut dyn Handler) -> io::Result<()> {
        let timeout = if self.again.is_empty() {
            timeout
        } else {
            Duration::ZERO
        };
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let Self {
            events,
            conns,
            scratch,
            mask,
            census,
            first_failure,
            host,
            again,
            ..
        } = self;
        for index in std::mem::take(again) {
            if let Some(conn) = conns.get_mut(index) {
                if read(conn, index, scratch, mask, census, first_failure, handler) {
                    again.push(index);
                }
                flush(conn, census, first_failure);
            }
        }
        for event in events.iter() {
            let index = event.token().0;
            let Some(conn) = conns.get_mut(index) else {
                continue;
            };
            if let Phase::Connecting { key, path } = &conn.phase {
                if let Ok(Some(error)) | Err(error) = conn.stream.tcp().take_error() {
                    fail(conn, census, first_failure, format!("connect: {error}"));
                    continue;
                }
                match conn.stream.tcp().peer_addr() {
                    Ok(_) => {
                        let key = key.clone();
                        conn.out = wire::upgrade_request(host, path, &key);
                        conn.phase = Phase::Upgrading { key };
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                    Err(e) => {
                        fail(conn, census, first_failure, format!("connect: {e}"));
                        continue;
                    }
                }
            }
            if !conn.out.is_empty() || conn.stream.has_records() {
                flush(conn, census, first_failure);
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                if read(conn, index, scratch, mask, census, first_failure, handler)
                    && !again.contains(&index)
                {
                    again.push(index);
                }
                flush(conn, census, first_failure);
            }
        }
        Ok(())
    }
}

/// Marks a client gone.
fn fail(conn: &mut Conn, census: &mut Census, first: &mut Option<String>, why: String) {
    match conn.phase {
        Phase::Connecting { .. } | Phase::Upgrading { .. } => census.connecting -= 1,
        Phase::Open => census.open -= 1,
        Phase::Closing => census.closing -= 1,
        Phase::Gone => return,
    }
    census.gone += 1;
    first.get_or_insert(why);
    conn.phase = Phase::Gone;
    // The server sees the end at once (the socket itself closes with the fleet).
    let _ = conn.stream.tcp().shutdown(std::net::Shutdown::Both);
    conn.out = Vec::new();
    conn.partial = Vec::new();
}

/// Ends a client whose close was answered: no failure.
fn closed(conn: &mut Conn, census: &mut Census) {
    census.closing -= 1;
    census.closed += 1;
    conn.phase = Phase::Gone;
    let _ = conn.stream.tcp().shutdown(std::net::Shutdown::Both);
    conn.out = Vec::new();
    conn.partial = Vec::new();
}

/// Writes queued bytes until done or the socket would block.
fn write_out(conn: &mut Conn) -> io::Result<()> {
    while let Some(rest) = conn.out.get(conn.written..).filter(|rest| !rest.is_empty()) {
        match conn.stream.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    conn.out.clear();
    conn.written = 0;
    conn.stream.flush_records()
}

fn flush(conn: &mut Conn, census: &mut Census, first: &mut Option<String>) {
    if matches!(conn.phase, Phase::Gone) {
        return;
    }
    if let Err(error) = write_out(conn) {
        fail(conn, census, first, format!("write: {error}"));
    }
}

/// Reads until the socket would block, handing over every complete message. `true` when the
/// read budget ran out first (the socket may still be readable).
fn read(
    conn: &mut Conn,
    index: usize,
    scratch: &mut Vec<u8>,
    mask: &mut Mask,
    census: &mut Census,
    first: &mut Option<String>,
    handler: &mut dyn Handler,
) -> bool {
    // Bounded: a peer that never stops sending is read for at most this many buffers per turn;
    // the caller comes back to it (readiness is edge-triggered, no new event would come).
    for _ in 0..READ_BUDGET {
        if matches!(conn.phase, Phase::Gone | Phase::Connecting { .. }) {
            return false;
        }
        let carried = conn.partial.len();
        if carried >= scratch.len() {
            scratch.resize(carried * 2, 0);
        }
        if let Some(dst) = scratch.get_mut(..carried) {
            dst.copy_from_slice(&conn.partial);
        }
        let Some(free) = scratch.get_mut(carried..) else {
            return false;
        };
        let n = match conn.stream.read(free) {
            Ok(0) if matches!(conn.phase, Phase::Closing) => {
                closed(conn, census);
                return false;
            }
            Ok(0) => {
                let why = "the server closed the connection".to_owned();
                fail(conn, census, first, why);
                return false;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A reset after our close frame: the server is done with the connection.
            Err(_) if matches!(conn.phase, Phase::Closing) => {
                closed(conn, census);
                return false;
            }
            Err(e) => {
                fail(conn, census, first, format!("read: {e}"));
                return false;
            }
        };
        conn.partial.clear();
        let filled = scratch.get(..carried + n).unwrap_or_default();
        let used = match consume(conn, index, filled, mask, census, handler) {
            Ok(used) => used,
            Err(why) => {
                fail(conn, census, first, why);
                return false;
            }
        };
        if let Some(rest) = filled.get(used..) {
            conn.partial.extend_from_slice(rest);
        }
        if let Some(need) = wire::frame_len(&conn.partial) {
            if need > scratch.len() {
                scratch.resize(need, 0);
            }
        }
    }
    true
}

/// Handles the complete frames (or the upgrade response) at the start of `buf`; returns how many
/// bytes were used.
fn consume(
    conn: &mut Conn,
    index: usize,
    buf: &[u8],
    mask: &mut Mask,
    census: &mut Census,
    handler: &mut dyn Handler,
) -> Result<usize, String> {
    let mut used = 0;
    if let Phase::Upgrading { key } = &conn.phase {
        match wire::parse_upgrade(buf, key) {
            Upgrade::Incomplete => return Ok(0),
            Upgrade::Failed(why) => return Err(why),
            Upgrade::Done(head) => {
                used = head;
                conn.phase = Phase::Open;
                census.connecting -= 1;
                census.open += 1;
                let mut out = Outgoing {
                    buf: &mut conn.out,
                    mask,
                };
                handler.on_open(index, &mut out);
            }
        }
    }
    let now = Instant::now();
    while let Some((frame, len)) = wire::next_frame(buf.get(used..).unwrap_or_default())? {
        used += len;
        let mut out = Outgoing {
            buf: &mut conn.out,
            mask,
        };
        match frame {
            Frame::Data(payload) => handler.on_message(index, payload, now, &mut out),
            Frame::Fragment { payload, fin } => {
                let whole = conn.fragments.get_or_insert_with(Vec::new);
                whole.extend_from_slice(payload);
                if fin {
                    let whole = conn.fragments.take().unwrap_or_default();
                    handler.on_message(index, &whole, now, &mut out);
                }
            }
            Frame::Ping(payload) => wire::push_pong(&mut conn.out, payload, mask.next()),
            Frame::Pong => {}
            Frame::Close if matches!(conn.phase, Phase::Closing) => {
                closed(conn, census);
                return Ok(used);
            }
            Frame::Close => return Err("the server sent a close frame".into()),
        }
    }
    Ok(used)
}
