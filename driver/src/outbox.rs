//! [`Outbox`]: a per-connection outbound queue of whole WebSocket frames, written with vectored
//! writes, with an exact count of the bytes buffered. Used by the mio transport and the bare
//! benchmark peer.
//!
//! Small frames (the usual Krmx message) are copied into byte runs, so a burst of them leaves
//! in a few large slices; a large payload is shared with every other recipient of the same
//! broadcast instead of being copied once per recipient.

use krmx_core::Text;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// One piece of outbound bytes.
#[derive(Debug)]
enum Chunk {
    /// Whole frames copied in (small messages, control frames, tungstenite's writes).
    Run(Vec<u8>),
    /// The header of the frame whose payload follows as [`Chunk::Shared`].
    Header(Header),
    /// A large payload shared with every other recipient of the same broadcast.
    Shared(Arc<str>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Run(bytes) => bytes,
            Self::Header(header) => header.as_bytes(),
            Self::Shared(text) => text.as_bytes(),
        }
    }
}

/// The longest header of an unmasked frame: 2 bytes and an 8-byte length.
const MAX_HEADER: usize = 10;

/// The longest close reason: a control frame's payload is at most 125 bytes, 2 of them the code.
const MAX_CLOSE_REASON: usize = 123;

/// How many chunks one vectored write hands to the kernel at most.
const MAX_IOVECS: usize = 64;

/// Payloads up to this size are copied into a run; larger ones are shared.
const MAX_COPIED_PAYLOAD: usize = 1024;

/// A run takes frames until it holds this many bytes; the next one starts a new run.
const RUN_BYTES: usize = 16 << 10;

/// First capacity of a new run: most turns queue a few small frames.
const FIRST_RUN_BYTES: usize = 512;

/// Queued bytes worth writing before the end of the turn (see [`Outbox::is_batch_full`]).
const BATCH_BYTES: usize = 64 << 10;

/// Outbound bytes of one connection, in order.
#[derive(Debug, Default)]
pub struct Outbox {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_written: usize,
    /// Bytes queued and not yet written.
    buffered: usize,
    /// Bytes still to write before the last ping queued is out; `None` when no ping waits.
    ping_after: Option<usize>,
    /// The last ping queued left the outbox since [`take_ping_sent`](Self::take_ping_sent).
    ping_sent: bool,
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
        self.chunks.len() >= MAX_IOVECS || self.buffered >= BATCH_BYTES
    }

    /// Queues an unmasked text frame carrying `text` (server frames are never masked).
    pub fn push_text_frame(&mut self, text: &Text) {
        let header = Header::new(0x1, text.len());
        if text.len() <= MAX_COPIED_PAYLOAD {
            self.append(&[header.as_bytes(), text.as_bytes()]);
        } else {
            self.buffered += header.as_bytes().len() + text.len();
            self.chunks.push_back(Chunk::Header(header));
            self.chunks.push_back(Chunk::Shared(text.shared()));
        }
    }

    /// Queues an empty ping frame; [`take_ping_sent`](Self::take_ping_sent) tells when it left.
    pub fn push_ping(&mut self) {
        self.append(&[&[0x89, 0x00]]);
        self.ping_after = Some(self.buffered);
    }

    /// Whether the last ping queued was written to the socket since the last call.
    pub fn take_ping_sent(&mut self) -> bool {
        std::mem::take(&mut self.ping_sent)
    }

    /// Drops every queued frame not started yet, keeping the one being written (so the stream
    /// stays whole and a close frame can follow). Returns the bytes dropped. For a connection
    /// closed as a slow consumer: what it would not read is freed at once.
    pub fn drop_unstarted(&mut self) -> usize {
        let before = self.buffered;
        // Chunk boundaries are frame boundaries, except between a header and its shared payload.
        let keep = match self.chunks.front() {
            None => 0,
            Some(_) if self.front_written == 0 => 0,
            Some(Chunk::Header(_)) => 2,
            Some(_) => 1,
        };
        self.chunks.truncate(keep);
        self.buffered = self
            .chunks
            .iter()
            .map(|chunk| chunk.bytes().len())
            .sum::<usize>()
            .saturating_sub(self.front_written);
        if self.ping_after.is_some_and(|after| after > self.buffered) {
            self.ping_after = None;
        }
        before - self.buffered
    }

    /// Queues a close frame with a code and a reason (truncated to fit a control frame).
    pub fn push_close(&mut self, code: u16, reason: &str) {
        let mut end = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason = reason.as_bytes().split_at(end).0;
        let header = Header::new(0x8, 2 + reason.len());
        self.append(&[header.as_bytes(), &code.to_be_bytes(), reason]);
    }

    /// Queues raw bytes (written by tungstenite: handshake responses, pongs, close replies).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if bytes.len() <= MAX_COPIED_PAYLOAD {
            self.append(&[bytes]);
        } else {
            self.buffered += bytes.len();
            self.chunks.push_back(Chunk::Run(bytes.to_vec()));
        }
    }

    /// Copies `parts` (one frame, or raw bytes) to the end of the last run, or to a new run
    /// when the last chunk is not a run or is full.
    fn append(&mut self, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        if len == 0 {
            return;
        }
        self.buffered += len;
        let run = match self.chunks.back_mut() {
            Some(Chunk::Run(run)) if run.len() + len <= RUN_BYTES => run,
            _ => {
                self.chunks
                    .push_back(Chunk::Run(Vec::with_capacity(len.max(FIRST_RUN_BYTES))));
                match self.chunks.back_mut() {
                    Some(Chunk::Run(run)) => run,
                    _ => return,
                }
            }
        };
        for part in parts {
            run.extend_from_slice(part);
        }
    }

    /// Writes as much as the socket takes. `Ok(true)` when everything is written, `Ok(false)`
    /// when the socket would block.
    pub fn write_to(&mut self, socket: &mut impl Write) -> io::Result<bool> {
        while !self.chunks.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, chunk) in slices.iter_mut().zip(self.chunks.iter()) {
                let bytes = chunk.bytes();
                *slot = IoSlice::new(if count == 0 {
                    debug_assert!(
                        self.front_written < bytes.len(),
                        "a written chunk is popped"
                    );
                    // Less than the front chunk's length: `consume` pops a chunk once written.
                    #[allow(clippy::indexing_slicing)]
                    &bytes[self.front_written..]
                } else {
                    bytes
                });
                count += 1;
            }
            // At most `MAX_IOVECS`: the zip above stops at the array's end.
            #[allow(clippy::indexing_slicing)]
            let slices = &slices[..count];
            let written = match socket.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written);
        }
        // An idle connection keeps no queue memory (the next burst allocates one small deque:
        // frames are copied into runs, so it holds few chunks).
        self.chunks = VecDeque::new();
        Ok(true)
    }

    fn consume(&mut self, mut written: usize) {
        self.buffered = self.buffered.saturating_sub(written);
        if let Some(after) = self.ping_after {
            if written >= after {
                self.ping_after = None;
                self.ping_sent = true;
            } else {
                self.ping_after = Some(after - written);
            }
        }
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

/// The header of an unmasked, final frame: the first `len` bytes of `bytes`.
#[derive(Debug, Clone, Copy)]
struct Header {
    bytes: [u8; MAX_HEADER],
    /// 2, 4 or 10, set only by [`Header::new`].
    len: u8,
}

impl Header {
    /// The header of a frame with this opcode and payload length.
    fn new(opcode: u8, payload: usize) -> Self {
        let mut bytes = [0; MAX_HEADER];
        let (first, rest) = bytes.split_at_mut(2);
        let len = if payload < 126 {
            first.copy_from_slice(&[0x80 | opcode, payload as u8]);
            2
        } else if let Ok(payload) = u16::try_from(payload) {
            first.copy_from_slice(&[0x80 | opcode, 126]);
            rest.split_at_mut(2)
                .0
                .copy_from_slice(&payload.to_be_bytes());
            4
        } else {
            first.copy_from_slice(&[0x80 | opcode, 127]);
            rest.copy_from_slice(&(payload as u64).to_be_bytes());
            10
        };
        Self { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        let len = usize::from(self.len);
        debug_assert!(len <= MAX_HEADER, "a header is at most {MAX_HEADER} bytes");
        // `len` is 2, 4 or 10 by construction: the whole header, never a payload without it.
        #[allow(clippy::indexing_slicing)]
        &self.bytes[..len]
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
        let header = |len| Header::new(1, len).as_bytes().to_vec();
        assert_eq!(header(5), vec![0x81, 5]);
        assert_eq!(header(125), vec![0x81, 125]);
        assert_eq!(header(65_535), vec![0x81, 126, 0xff, 0xff]);
        assert_eq!(header(126), vec![0x81, 126, 0, 126]);
        assert_eq!(header(65_536), vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary_to_fit_a_control_frame() {
        let mut outbox = Outbox::default();
        let reason = "é".repeat(100); // 200 bytes
        outbox.push_close(1008, &reason);
        let mut socket = Trickle {
            written: Vec::new(),
            limit: usize::MAX,
        };
        assert!(outbox.write_to(&mut socket).unwrap());
        // 2 header bytes, the code, then 61 whole characters (122 bytes).
        assert_eq!(socket.written[..4], [0x88, 124, 0x03, 0xf0]);
        assert_eq!(socket.written[4..], "é".repeat(61).into_bytes()[..]);
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

    /// A socket that records how many slices each vectored write was given.
    #[derive(Default)]
    struct Counting {
        written: Vec<u8>,
        slices: Vec<usize>,
    }

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.slices.push(bufs.len());
            let mut n = 0;
            for buf in bufs {
                self.written.extend_from_slice(buf);
                n += buf.len();
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn small_frames_leave_in_one_slice_and_large_payloads_are_shared() {
        let mut outbox = Outbox::default();
        for _ in 0..100 {
            outbox.push_text_frame(&Text::from("abc"));
        }
        let mut socket = Counting::default();
        assert!(outbox.write_to(&mut socket).unwrap());
        assert_eq!(socket.slices, vec![1]);
        assert_eq!(socket.written, [0x81, 3, b'a', b'b', b'c'].repeat(100));

        let large = Text::from("x".repeat(MAX_COPIED_PAYLOAD + 1));
        outbox.push_text_frame(&Text::from("a"));
        outbox.push_text_frame(&large);
        outbox.push_text_frame(&Text::from("b"));
        // The payload is the broadcast's own allocation, not a copy.
        assert!(
            matches!(outbox.chunks.get(2), Some(Chunk::Shared(shared)) if Arc::ptr_eq(shared, &large.shared()))
        );
        let mut socket = Counting::default();
        assert!(outbox.write_to(&mut socket).unwrap());
        assert_eq!(socket.slices, vec![4]);
        assert_eq!(socket.written.len(), 3 + 4 + MAX_COPIED_PAYLOAD + 1 + 3);
        assert_eq!(outbox.buffered(), 0);
        assert_eq!(
            outbox.chunks.capacity(),
            0,
            "an idle outbox keeps no memory"
        );
    }

    #[test]
    fn a_ping_is_reported_sent_once_its_last_byte_is_written() {
        let mut outbox = Outbox::default();
        outbox.push_text_frame(&Text::from("hello"));
        outbox.push_ping();
        outbox.push_text_frame(&Text::from("after"));
        let mut socket = Trickle {
            written: Vec::new(),
            limit: 8,
        };
        // 7 bytes of text and 1 of the ping: not out yet.
        assert!(!outbox.write_to(&mut LimitOnce(&mut socket)).unwrap());
        assert!(!outbox.take_ping_sent());
        socket.limit = 1;
        assert!(!outbox.write_to(&mut LimitOnce(&mut socket)).unwrap());
        assert!(outbox.take_ping_sent());
        assert!(!outbox.take_ping_sent(), "reported once");
    }

    /// Takes one write of at most the inner socket's limit, then would block.
    struct LimitOnce<'a>(&'a mut Trickle);

    impl Write for LimitOnce<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.0.write(buf)?;
            self.0.limit = 0;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn dropping_the_unstarted_frames_keeps_the_one_being_written() {
        let mut outbox = Outbox::default();
        let large = Text::from("x".repeat(MAX_COPIED_PAYLOAD + 10));
        outbox.push_text_frame(&large);
        outbox.push_ping();
        outbox.push_text_frame(&Text::from("tail"));
        let total = outbox.buffered();
        // Nothing started: everything goes.
        let mut fresh = Outbox::default();
        fresh.push_text_frame(&Text::from("a"));
        assert_eq!(fresh.drop_unstarted(), 3);
        assert!(fresh.is_empty());
        // Two bytes of the large frame's header written: the header and its payload stay.
        let mut socket = Trickle {
            written: Vec::new(),
            limit: 2,
        };
        assert!(!outbox.write_to(&mut LimitOnce(&mut socket)).unwrap());
        let dropped = outbox.drop_unstarted();
        assert_eq!(dropped, 2 + 2 + 4);
        assert_eq!(outbox.buffered(), total - 2 - dropped);
        let mut socket = Trickle {
            written: Vec::new(),
            limit: usize::MAX,
        };
        assert!(outbox.write_to(&mut socket).unwrap());
        assert_eq!(socket.written.len(), 4 - 2 + MAX_COPIED_PAYLOAD + 10);
        assert!(!outbox.take_ping_sent(), "the dropped ping never left");
        outbox.push_close(1008, "slow consumer");
        assert!(outbox.write_to(&mut socket).unwrap());
    }
}
