//! The bare server on mio: one thread, one poll, tungstenite over non-blocking sockets whose
//! writes land in a per-connection [`Outbox`]; a relayed payload is one allocation shared by
//! every recipient. Reads go until `WouldBlock`; queued bytes are written before each poll (and
//! at once when a batch fills up).

use crate::Mode;
use krmx_core::Text;
use krmx_driver::DEFAULT_READ_BUFFER_BYTES;
use krmx_driver::plumbing::{Outbox, ReadAhead};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use tungstenite::handshake::MidHandshake;
use tungstenite::handshake::server::{NoCallback, ServerHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{HandshakeError, Message, WebSocket};

const LISTENER: Token = Token(0);

/// A TCP stream whose writes are queued in its outbox, read through the thread's scratch
/// buffer (as the Krmx transports read).
struct Socket {
    stream: TcpStream,
    outbox: Outbox,
    ahead: ReadAhead,
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.ahead.read_from(buf, &mut self.stream)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbox.push_bytes(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Handshake = MidHandshake<ServerHandshake<Socket, NoCallback>>;

enum Conn {
    Handshaking(Option<Box<Handshake>>),
    Open(Box<WebSocket<Socket>>),
}

impl Conn {
    fn socket(&mut self) -> Option<&mut Socket> {
        match self {
            Self::Handshaking(mid) => mid.as_mut().map(|mid| mid.get_mut().get_mut()),
            Self::Open(ws) => Some(ws.get_mut()),
        }
    }
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    dirty: Vec<usize>,
    mode: Mode,
    max_buffered: usize,
    config: WebSocketConfig,
}

/// Messages read from one connection before they are delivered (the read goes on after).
const READ_BATCH: usize = 64;

/// Runs until killed.
pub(crate) fn serve(addr: SocketAddr, mode: Mode, max_buffered: usize) -> io::Result<()> {
    let mut listener = TcpListener::bind(addr)?;
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    crate::announce(listener.local_addr()?.port())?;
    let mut server = Server {
        poll,
        listener,
        slots: Vec::new(),
        free: Vec::new(),
        dirty: Vec::new(),
        mode,
        max_buffered,
        config: WebSocketConfig::default()
            .read_buffer_size(DEFAULT_READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20)),
    };
    let mut events = Events::with_capacity(1024);
    loop {
        server.flush_dirty();
        match server.poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            if event.token() == LISTENER {
                server.accept_all();
                continue;
            }
            let slot = event.token().0 - 1;
            if event.is_writable() {
                server.flush(slot);
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                server.read(slot);
            }
        }
    }
}

impl Server {
    fn accept_all(&mut self) {
        loop {
            let (stream, _) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("krmx-bare: accept: {e}");
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.slots.push(None);
                self.slots.len() - 1
            });
            let mut socket = Socket {
                stream,
                outbox: Outbox::default(),
                ahead: ReadAhead::default(),
            };
            if self
                .poll
                .registry()
                .register(
                    &mut socket.stream,
                    Token(slot + 1),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                self.free.push(slot);
                continue;
            }
            let conn = match tungstenite::accept_with_config(socket, Some(self.config)) {
                Ok(ws) => Conn::Open(Box::new(ws)),
                Err(HandshakeError::Interrupted(mid)) => Conn::Handshaking(Some(Box::new(mid))),
                Err(HandshakeError::Failure(_)) => {
                    self.free.push(slot);
                    continue;
                }
            };
            if let Some(entry) = self.slots.get_mut(slot) {
                *entry = Some(conn);
            }
            self.mark_dirty(slot);
        }
    }

    fn mark_dirty(&mut self, slot: usize) {
        self.dirty.push(slot);
    }

    fn drop_slot(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot) {
            if let Some(mut conn) = entry.take() {
                if let Some(socket) = conn.socket() {
                    let _ = self.poll.registry().deregister(&mut socket.stream);
                }
                self.free.push(slot);
            }
        }
    }

    /// Writes what is queued; drops the connection if the socket failed.
    fn flush(&mut self, slot: usize) {
        let failed = match self.slots.get_mut(slot).and_then(Option::as_mut) {
            Some(conn) => match conn.socket() {
                Some(socket) => socket.outbox.write_to(&mut socket.stream).is_err(),
                None => false,
            },
            None => return,
        };
        if failed {
            self.drop_slot(slot);
        }
    }

    fn flush_dirty(&mut self) {
        for slot in std::mem::take(&mut self.dirty) {
            self.flush(slot);
        }
    }

    fn read(&mut self, slot: usize) {
        // Bounded: a connection is read for at most this many batches per event.
        for _ in 0..1024 {
            let Some(conn) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if let Conn::Handshaking(mid) = conn {
                let Some(handshake) = mid.take() else {
                    return;
                };
                match handshake.handshake() {
                    Ok(ws) => *conn = Conn::Open(Box::new(ws)),
                    Err(HandshakeError::Interrupted(again)) => {
                        *mid = Some(Box::new(again));
                        self.mark_dirty(slot);
                        return;
                    }
                    Err(HandshakeError::Failure(_)) => {
                        self.drop_slot(slot);
                        return;
                    }
                }
                self.mark_dirty(slot);
                continue;
            }
            let Conn::Open(ws) = conn else {
                return;
            };
            let mut received: Vec<Text> = Vec::new();
            let mut more = true;
            let mut gone = false;
            while received.len() < READ_BATCH {
                match ws.read() {
                    Ok(Message::Text(text)) => received.push(Text::from(text.as_str())),
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        more = false;
                        break;
                    }
                    Err(_) => {
                        gone = true;
                        more = false;
                        break;
                    }
                }
            }
            // Pongs and close replies tungstenite has pending go to the outbox.
            let _ = ws.flush();
            self.mark_dirty(slot);
            for payload in &received {
                match self.mode {
                    Mode::Echo => self.deliver(slot, payload),
                    Mode::Relay => {
                        for to in 0..self.slots.len() {
                            self.deliver(to, payload);
                        }
                    }
                }
            }
            if gone {
                self.flush(slot);
                self.drop_slot(slot);
                return;
            }
            if !more {
                return;
            }
        }
    }

    /// Queues `payload` for an open connection.
    fn deliver(&mut self, slot: usize, payload: &Text) {
        let Some(Some(Conn::Open(ws))) = self.slots.get_mut(slot) else {
            return;
        };
        let socket = ws.get_mut();
        let was_empty = socket.outbox.is_empty();
        socket.outbox.push_text_frame(payload);
        if socket.outbox.is_batch_full() && socket.outbox.write_to(&mut socket.stream).is_err() {
            self.drop_slot(slot);
            return;
        }
        if socket.outbox.buffered() > self.max_buffered {
            eprintln!("krmx-bare: dropping a slow consumer");
            self.drop_slot(slot);
            return;
        }
        if was_empty {
            self.mark_dirty(slot);
        }
    }
}
