//! [`ReadAhead`]: socket reads through one scratch buffer per thread, so a connection's own
//! read buffer (tungstenite's) can stay small without costing more system calls. One read
//! takes up to [`SCRATCH_BYTES`]; what the caller's buffer cannot take is kept by the
//! connection until its next read, and freed once served.

use std::cell::RefCell;
use std::io::{self, Read};
use std::task::Poll;

/// The scratch buffer each thread reads sockets into.
pub const SCRATCH_BYTES: usize = 64 << 10;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Bytes of one connection read ahead of its reader: handed over by an application that read
/// part of the HTTP request itself, or read from the socket past what the reader asked for.
///
/// ```
/// use krmx_driver::plumbing::ReadAhead;
/// use std::task::Poll;
///
/// let mut ahead = ReadAhead::new(b"GET".to_vec());
/// let mut buf = [0_u8; 2];
/// let mut socket: &[u8] = b" / HTTP/1.1";
/// let mut read = |buf: &mut [u8]| Poll::Ready(std::io::Read::read(&mut socket, buf));
/// let mut next = |buf: &mut [u8]| match ahead.read_with(buf, &mut read) {
///     Poll::Ready(Ok(n)) => n,
///     _ => panic!("the socket is ready"),
/// };
/// assert_eq!(next(&mut buf), 2); // "GE", handed over
/// assert_eq!(next(&mut buf), 1); // "T"
/// assert_eq!(next(&mut buf), 2); // " /", from the socket
/// assert_eq!(ahead.kept(), 9); // "HTTP/1.1" and its space, kept
/// ```
#[derive(Debug, Default)]
pub struct ReadAhead {
    bytes: Vec<u8>,
    served: usize,
}

impl ReadAhead {
    /// Starts with bytes already read (empty if none).
    #[must_use]
    pub fn new(already_read: Vec<u8>) -> Self {
        Self {
            bytes: already_read,
            served: 0,
        }
    }

    /// Puts `bytes` back in front of what is kept: they are served again first (a request head
    /// the driver read to route it, handed to the WebSocket handshake).
    pub fn unread(&mut self, mut bytes: Vec<u8>) {
        bytes.extend_from_slice(self.bytes.get(self.served..).unwrap_or_default());
        self.bytes = bytes;
        self.served = 0;
    }

    /// Bytes kept and not yet served.
    #[must_use]
    pub fn kept(&self) -> usize {
        self.bytes.len() - self.served
    }

    /// Fills `buf`: from the bytes kept if there are any, otherwise with one read of the socket
    /// (`read`, given a buffer to fill) into the thread's scratch buffer, keeping what `buf`
    /// cannot take. Large buffers are read into directly.
    pub fn read_with(
        &mut self,
        buf: &mut [u8],
        read: impl FnOnce(&mut [u8]) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if self.kept() > 0 {
            return Poll::Ready(Ok(self.serve(buf)));
        }
        if buf.len() >= SCRATCH_BYTES / 2 {
            return read(buf);
        }
        SCRATCH.with_borrow_mut(|scratch| {
            if scratch.len() < SCRATCH_BYTES {
                scratch.resize(SCRATCH_BYTES, 0);
            }
            let n = match read(scratch) {
                Poll::Ready(Ok(n)) => n.min(scratch.len()),
                other => return other,
            };
            let read = scratch.get(..n).unwrap_or_default();
            let now = n.min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..now), read.get(..now)) {
                dst.copy_from_slice(src);
            }
            if let Some(rest) = read.get(now..) {
                if !rest.is_empty() {
                    self.bytes.clear();
                    self.bytes.extend_from_slice(rest);
                    self.served = 0;
                }
            }
            Poll::Ready(Ok(now))
        })
    }

    /// [`read_with`](Self::read_with) for a non-blocking socket read synchronously: an empty
    /// socket is `WouldBlock`, as from the socket itself.
    ///
    /// # Errors
    /// The socket's read error.
    pub fn read_from(&mut self, buf: &mut [u8], socket: &mut impl Read) -> io::Result<usize> {
        match self.read_with(buf, |scratch| Poll::Ready(socket.read(scratch))) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Copies kept bytes into `buf`; frees them once all are served.
    fn serve(&mut self, buf: &mut [u8]) -> usize {
        let rest = self.bytes.get(self.served..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.served += n;
        if self.served == self.bytes.len() {
            self.bytes = Vec::new();
            self.served = 0;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(socket: &mut &[u8]) -> impl FnMut(&mut [u8]) -> Poll<io::Result<usize>> {
        move |buf| Poll::Ready(socket.read(buf))
    }

    #[test]
    fn a_large_read_is_served_in_small_pieces_without_reading_again() {
        let data: Vec<u8> = (0..10_000_u32).map(|i| i as u8).collect();
        let mut socket: &[u8] = &data;
        let mut ahead = ReadAhead::default();
        let mut out = Vec::new();
        let mut calls = 0;
        loop {
            let mut buf = [0_u8; 256];
            let mut counting = |scratch: &mut [u8]| {
                calls += 1;
                ready(&mut socket)(scratch)
            };
            match ahead.read_with(&mut buf, &mut counting) {
                Poll::Ready(Ok(0)) => break,
                Poll::Ready(Ok(n)) => out.extend_from_slice(&buf[..n]),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(out, data);
        // One read took everything, one more saw the end.
        assert_eq!(calls, 2);
        assert_eq!(ahead.kept(), 0);
        assert_eq!(ahead.bytes.capacity(), 0, "served bytes are freed");
    }

    #[test]
    fn pending_and_errors_pass_through_and_keep_nothing() {
        let mut ahead = ReadAhead::default();
        let mut buf = [0_u8; 16];
        assert!(ahead.read_with(&mut buf, |_| Poll::Pending).is_pending());
        let failed = ahead.read_with(&mut buf, |_| {
            Poll::Ready(Err(io::ErrorKind::WouldBlock.into()))
        });
        assert!(matches!(failed, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::WouldBlock));
        assert_eq!(ahead.kept(), 0);
    }

    #[test]
    fn a_synchronous_read_keeps_what_does_not_fit_and_reports_an_empty_socket() {
        struct Empty;
        impl Read for Empty {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
        let mut ahead = ReadAhead::default();
        let mut buf = [0_u8; 4];
        assert_eq!(ahead.read_from(&mut buf, &mut &b"hello"[..]).unwrap(), 4);
        assert_eq!(&buf, b"hell");
        assert_eq!(ahead.read_from(&mut buf, &mut Empty).unwrap(), 1);
        assert_eq!(buf[0], b'o');
        let empty = ahead.read_from(&mut buf, &mut Empty).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn large_buffers_are_read_into_directly() {
        let data = vec![7_u8; 40_000];
        let mut socket: &[u8] = &data;
        let mut ahead = ReadAhead::default();
        let mut buf = vec![0_u8; SCRATCH_BYTES];
        let read = ahead.read_with(&mut buf, ready(&mut socket));
        assert!(matches!(read, Poll::Ready(Ok(40_000))));
        assert_eq!(ahead.kept(), 0);
    }
}
