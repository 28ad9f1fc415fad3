//! [`Socket`]: the stream tungstenite reads from and writes to. Reads go to the TCP socket;
//! writes land in the connection's [`Outbox`], so tungstenite's own frames (handshake response,
//! pongs, close replies) keep their place among ours and the server decides when to hit the
//! socket.

use krmx_transport_shared::{Outbox, ReadAhead};
use mio::net::TcpStream;
use std::io::{self, Read, Write};

/// A TCP stream whose writes are queued.
#[derive(Debug)]
pub(crate) struct Socket {
    pub(crate) stream: TcpStream,
    pub(crate) outbox: Outbox,
    /// Bytes an application read before handing the connection over, replayed first, then
    /// bytes read past what tungstenite asked for.
    ahead: ReadAhead,
}

impl Socket {
    pub(crate) fn new(stream: TcpStream, prefix: Vec<u8>) -> Self {
        Self {
            stream,
            outbox: Outbox::default(),
            ahead: ReadAhead::new(prefix),
        }
    }

    /// Reads and drops whatever a closing peer still sends. `true` once the peer closed (or the
    /// socket failed): the connection can be dropped.
    pub(crate) fn discard_input(&mut self) -> bool {
        let mut sink = [0_u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Writes queued bytes to the socket: `Ok(true)` when none are left.
    pub(crate) fn flush_outbox(&mut self) -> io::Result<bool> {
        self.outbox.write_to(&mut self.stream)
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.ahead.read_from(buf, &mut self.stream)
    }
}

impl Write for Socket {
    /// Always takes everything: written straight through while nothing else is queued (so a
    /// handshake refusal reaches the peer even though the connection is dropped right after),
    /// the rest queued behind what is already waiting, never blocked on.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        if self.outbox.is_empty() {
            written = match self.stream.write(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => return Err(e),
            };
        }
        if let Some(rest) = buf.get(written..) {
            self.outbox.push_bytes(rest);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
