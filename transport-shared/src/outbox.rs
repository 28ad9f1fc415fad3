//! [`Outbox`]: a per-connection outbound queue of whole WebSocket frames as shared chunks,
//! written with vectored writes, with an exact count of the bytes buffered. Used by the mio
//! transport and the bare benchmark peer.

use krmx_core::Text;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// One piece of outbound bytes.
#[derive(Debug)]
enum Chunk {
    /// A frame header, kept inline (no allocation per message).
    Header { bytes: [u8; MAX_HEADER], len: u8 },
    /// Bytes owned by this queue (control frames, handshake responses, tungstenite's writes).
    Owned(Vec<u8>),
    /// A payload shared with every other recipient of the same broadcast.
    Shared(Arc<str>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Header { bytes, len } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Self::Owned(bytes) => bytes,
            Self::Shared(text) => text.as_bytes(),
        }
    }
}

/// The longest header of an unmasked frame: 2 bytes and an 8-byte length.
const MAX_HEADER: usize = 10;

/// How many chunks one vectored write hands to the kernel at most.
const MAX_IOVECS: usize = 64;

/// Chunk slots an empty outbox keeps allocated; above it the queue's memory is released.
const RETAINED_CHUNKS: usize = 16;

/// Outbound bytes of one connection, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_written: usize,
    /// Bytes queued and not yet written.
    buffered: usize,
}

impl Outbox {
    /// Bytes queued and not yet written.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Whether enough is queued to fill one vectored write: worth writing now rather than at
    /// the end of the turn, so a burst lands in the kernel's buffer instead of growing ours.
    pub fn is_batch_full(&self) -> bool {
        self.chunks.len() >= MAX_IOVECS
    }

    /// Queues an unmasked text frame carrying `text` (server frames are never masked).
    pub fn push_text_frame(&mut self, text: &Text) {
        let (bytes, len) = frame_header(0x1, text.len());
        self.buffered += usize::from(len);
        self.chunks.push_back(Chunk::Header { bytes, len });
        if !text.is_empty() {
            self.buffered += text.len();
            self.chunks.push_back(Chunk::Shared(text.shared()));
        }
    }

    /// Queues an empty ping frame.
    pub fn push_ping(&mut self) {
        self.push_owned(vec![0x89, 0x00]);
    }

    /// Queues a close frame with a code and a reason (truncated to fit a control frame).
    pub fn push_close(&mut self, code: u16, reason: &str) {
        let mut reason = reason;
        while reason.len() > 123 {
            let mut end = 123;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason = reason.get(..end).unwrap_or_default();
        }
        let (header, len) = frame_header(0x8, 2 + reason.len());
        let mut frame = header.get(..usize::from(len)).unwrap_or_default().to_vec();
        frame.extend_from_slice(&code.to_be_bytes());
        frame.extend_from_slice(reason.as_bytes());
        self.push_owned(frame);
    }

    /// Queues raw bytes (written by tungstenite: handshake responses, pongs, close replies).
    pub fn push_owned(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.buffered += bytes.len();
            self.chunks.push_back(Chunk::Owned(bytes));
        }
    }

    /// Writes as much as the socket takes. `Ok(true)` when everything is written, `Ok(false)`
    /// when the socket would block.
    pub fn write_to(&mut self, socket: &mut impl Write) -> io::Result<bool> {
        while !self.chunks.is_empty() {
            let mut slices: Vec<IoSlice<'_>> =
                Vec::with_capacity(self.chunks.len().min(MAX_IOVECS));
            for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                let bytes = chunk.bytes();
                let bytes = if i == 0 {
                    bytes.get(self.front_written..).unwrap_or_default()
                } else {
                    bytes
                };
                slices.push(IoSlice::new(bytes));
            }
            let written = match socket.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written);
        }
        if self.chunks.capacity() > RETAINED_CHUNKS {
            // A burst (a link storm, a broadcast flood) must not pin memory on an idle connection.
            self.chunks = VecDeque::new();
        }
        Ok(true)
    }

    fn consume(&mut self, mut written: usize) {
        self.buffered = self.buffered.saturating_sub(written);
        while written > 0 {
            let Some(front) = self.chunks.front() else {
                return;
            };
            let left = front.bytes().len() - self.front_written;
            if written < left {
                self.front_written += written;
                return;
            }
            written -= left;
            self.front_written = 0;
            self.chunks.pop_front();
        }
    }
}

/// The header of an unmasked, final frame with this opcode and payload length, and its length.
fn frame_header(opcode: u8, len: usize) -> ([u8; MAX_HEADER], u8) {
    let mut header = [0; MAX_HEADER];
    header[0] = 0x80 | opcode;
    if len < 126 {
        header[1] = len as u8;
        (header, 2)
    } else if let Ok(len) = u16::try_from(len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&len.to_be_bytes());
        (header, 4)
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (header, 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `limit` bytes per write.
    struct Trickle {
        written: Vec<u8>,
        limit: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.limit == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.limit);
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn frame_headers_use_the_three_length_forms() {
        let header = |len| {
            let (bytes, n) = frame_header(1, len);
            bytes[..usize::from(n)].to_vec()
        };
        assert_eq!(header(5), vec![0x81, 5]);
        assert_eq!(header(126), vec![0x81, 126, 0, 126]);
        assert_eq!(header(65_536), vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut outbox = Outbox::default();
        outbox.push_text_frame(&Text::from("hello"));
        outbox.push_ping();
        outbox.push_close(1001, "bye");
        let total = outbox.buffered();
        assert_eq!(total, 2 + 5 + 2 + 2 + 2 + 3);
        let mut socket = Trickle {
            written: Vec::new(),
            limit: 3,
        };
        assert!(outbox.write_to(&mut socket).unwrap());
        assert_eq!(outbox.buffered(), 0);
        assert_eq!(
            socket.written,
            [
                &[0x81, 5][..],
                b"hello",
                &[0x89, 0],
                &[0x88, 5, 0x03, 0xe9],
                b"bye"
            ]
            .concat()
        );
    }

    #[test]
    fn would_block_keeps_everything_queued() {
        let mut outbox = Outbox::default();
        outbox.push_text_frame(&Text::from("x"));
        let mut socket = Trickle {
            written: Vec::new(),
            limit: 0,
        };
        assert!(!outbox.write_to(&mut socket).unwrap());
        assert_eq!(outbox.buffered(), 3);
    }

    #[test]
    fn close_reasons_are_cut_to_fit_a_control_frame() {
        let mut outbox = Outbox::default();
        outbox.push_close(1000, &"é".repeat(100));
        assert!(outbox.buffered() <= 2 + 125);
    }
}
