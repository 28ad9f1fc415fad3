//! [`Socket`]: a connection's stream with its outbox and read-ahead, as tungstenite sees it.

use crate::outbox::Outbox;
use crate::read_ahead::ReadAhead;
use crate::stream::Stream;
use std::io::{self, Read, Write};

/// The stream of one connection. tungstenite reads through the thread's scratch buffer
/// ([`ReadAhead`]) and writes into the [`Outbox`] (straight to the stream while the outbox is
/// empty), so every byte the connection sends is accounted for in one place.
#[derive(Debug)]
pub(crate) struct Socket<S> {
    pub(crate) stream: S,
    pub(crate) outbox: Outbox,
    ahead: ReadAhead,
}

impl<S: Stream> Socket<S> {
    pub(crate) fn new(stream: S, already_read: Vec<u8>) -> Self {
        Self {
            stream,
            outbox: Outbox::default(),
            ahead: ReadAhead::new(already_read),
        }
    }

    /// Reads and drops whatever the peer still sends. Returns whether the stream ended (or
    /// broke): a closing connection is then done.
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

    /// Writes what the stream takes; `Ok(true)` once the outbox is empty.
    pub(crate) fn flush_outbox(&mut self) -> io::Result<bool> {
        self.outbox.write_to(&mut self.stream)
    }
}

impl<S: Stream> Read for Socket<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.ahead.read_from(buf, &mut self.stream)
    }
}

impl<S: Stream> Write for Socket<S> {
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
