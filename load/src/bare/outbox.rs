//! The per-connection outbound queue of the mio server: frame headers inline, payloads shared
//! by every recipient, written with vectored writes (the transport-mio design).

use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

enum Chunk {
    Header { bytes: [u8; 10], len: u8 },
    Owned(Vec<u8>),
    Shared(Bytes),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Header { bytes, len } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Self::Owned(bytes) => bytes,
            Self::Shared(bytes) => bytes,
        }
    }
}

/// Chunks handed to one vectored write at most.
const MAX_IOVECS: usize = 64;

#[derive(Default)]
pub(crate) struct Outbox {
    chunks: VecDeque<Chunk>,
    front_written: usize,
    buffered: usize,
}

impl Outbox {
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Enough queued to fill a vectored write: worth writing now.
    pub(crate) fn is_batch_full(&self) -> bool {
        self.chunks.len() >= MAX_IOVECS
    }

    /// Queues an unmasked text frame with a shared payload.
    pub(crate) fn push_text(&mut self, payload: &Bytes) {
        let mut bytes = [0; 10];
        let n = payload.len();
        bytes[0] = 0x81;
        let len = if n < 126 {
            bytes[1] = n as u8;
            2
        } else if let Ok(n) = u16::try_from(n) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&n.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            10
        };
        self.buffered += usize::from(len) + n;
        self.chunks.push_back(Chunk::Header { bytes, len });
        if n > 0 {
            self.chunks.push_back(Chunk::Shared(payload.clone()));
        }
    }

    /// Queues bytes tungstenite wrote (the handshake response, pongs, close replies).
    pub(crate) fn push_owned(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.buffered += bytes.len();
            self.chunks.push_back(Chunk::Owned(bytes));
        }
    }

    /// Writes what the socket takes: `Ok(true)` when everything is out.
    pub(crate) fn write_to(&mut self, socket: &mut impl Write) -> io::Result<bool> {
        while !self.chunks.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, (i, chunk)) in slices.iter_mut().zip(self.chunks.iter().enumerate()) {
                let bytes = chunk.bytes();
                *slot = IoSlice::new(if i == 0 {
                    bytes.get(self.front_written..).unwrap_or_default()
                } else {
                    bytes
                });
                count += 1;
            }
            let written = match socket.write_vectored(slices.get(..count).unwrap_or_default()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.consume(written);
        }
        if self.chunks.capacity() > 16 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_out_in_order() {
        let mut outbox = Outbox::default();
        outbox.push_text(&Bytes::from_static(b"hi"));
        outbox.push_owned(vec![0x8a, 0]);
        outbox.push_text(&Bytes::from(vec![b'x'; 200]));
        assert_eq!(outbox.buffered(), 4 + 2 + 204);
        let mut out = Vec::new();
        assert!(outbox.write_to(&mut out).unwrap());
        assert_eq!(&out[..6], &[0x81, 2, b'h', b'i', 0x8a, 0]);
        assert_eq!(&out[6..10], &[0x81, 126, 0, 200]);
        assert_eq!(out.len(), 210);
        assert!(outbox.is_empty());
    }
}
