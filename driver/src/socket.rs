//! [`Socket`]: a connection's stream as tungstenite sees it: reads through the thread's
//! scratch buffer, writes kept for the driver to queue in the connection's outbox.

use crate::link::Link;
use crate::outbox::Outbox;
use crate::read_ahead::ReadAhead;
use crate::stream::Stream;
use std::io::{self, Read, Write};

/// The stream of one connection. tungstenite reads through the thread's scratch buffer
/// ([`ReadAhead`]); what it writes (the upgrade response, pongs, close replies) goes straight
/// to the stream while the connection has nothing queued, and is otherwise kept in `written`
/// until the driver moves it to the connection's [`Outbox`] ([`hand_over`](Self::hand_over)),
/// so every byte the connection sends leaves in order and is accounted for in one place.
#[derive(Debug)]
pub(crate) struct Socket<S> {
    pub(crate) stream: Link<S>,
    ahead: ReadAhead,
    /// tungstenite's writes not yet in the outbox.
    written: Vec<u8>,
    /// The connection's outbox is empty: tungstenite may write to the stream directly.
    direct: bool,
}

impl<S: Stream> Socket<S> {
    pub(crate) fn new(stream: Link<S>, already_read: Vec<u8>) -> Self {
        Self {
            stream,
            ahead: ReadAhead::new(already_read),
            written: Vec::new(),
            direct: true,
        }
    }

    /// Before a call into tungstenite: whether the connection's outbox is empty.
    pub(crate) fn set_direct(&mut self, outbox: &Outbox) {
        self.direct = outbox.is_empty();
    }

    /// After a call into tungstenite: what it wrote and the stream did not take goes to the end
    /// of the outbox.
    pub(crate) fn hand_over(&mut self, outbox: &mut Outbox) {
        if !self.written.is_empty() {
            outbox.push_bytes(&self.written);
            self.written.clear();
        }
    }

    /// Puts bytes already read back in front of the stream: the next reads serve them first.
    pub(crate) fn unread(&mut self, bytes: Vec<u8>) {
        self.ahead.unread(bytes);
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
}

impl<S: Stream> Read for Socket<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.ahead.read_from(buf, &mut self.stream)
    }
}

impl<S: Stream> Write for Socket<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        if self.direct && self.written.is_empty() {
            written = match self.stream.write(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => return Err(e),
            };
        }
        if let Some(rest) = buf.get(written..) {
            self.written.extend_from_slice(rest);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
