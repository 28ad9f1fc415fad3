//! [`TlsStream`]: TLS with rustls over a non-blocking stream, read and written without
//! waiting. The driver serves `wss://` through it; the load generator's clients reuse it.

use std::io::{self, IoSlice, Read, Write};

/// A rustls connection (server or client side) over a non-blocking stream `S`.
///
/// Reads return the plaintext rustls has, reading and decrypting records from the stream as
/// needed, and [`WouldBlock`](io::ErrorKind::WouldBlock) once the stream has nothing more;
/// whatever the TLS layer must answer on its own (the handshake, session tickets, alerts) is
/// written as it is produced. A write first sends the records still waiting and takes new
/// plaintext only once they are out, so at most one write's records (bounded by rustls'
/// buffer limit) wait in the TLS layer: backpressure stays with the caller's own queue.
/// Records left waiting after a write are sent by [`flush_records`](Self::flush_records),
/// which the owner calls when the stream is writable again.
#[derive(Debug)]
pub struct TlsStream<S> {
    io: S,
    tls: rustls::Connection,
}

/// The error a [`TlsStream`] returns when the peer broke the TLS protocol (a failed handshake,
/// a bad record, an alert): kind [`InvalidData`](io::ErrorKind::InvalidData), with the rustls
/// error inside.
///
/// ```
/// use krmx_driver::plumbing::tls_failure;
/// let error = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
/// assert!(tls_failure(&error).is_some());
/// assert!(tls_failure(&std::io::ErrorKind::BrokenPipe.into()).is_none());
/// ```
#[must_use]
pub fn tls_failure(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

impl<S: Read + Write> TlsStream<S> {
    /// TLS over `io`; the handshake runs as the stream is read and written.
    pub fn new(io: S, tls: impl Into<rustls::Connection>) -> Self {
        Self {
            io,
            tls: tls.into(),
        }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The stream underneath (to register it with a reactor; reading or writing it directly
    /// breaks the TLS session).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Whether the TLS handshake is still under way.
    #[must_use]
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// Whether records are waiting to be written.
    #[must_use]
    pub fn has_records(&self) -> bool {
        self.tls.wants_write()
    }

    /// Writes the records waiting, as far as the stream takes them: `Ok(true)` when none are
    /// left, `Ok(false)` when the stream would block.
    ///
    /// # Errors
    /// The stream's write error.
    pub fn flush_records(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.io) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Queues the TLS `close_notify` alert and writes what the stream takes.
    pub fn close_notify(&mut self) {
        self.tls.send_close_notify();
        // The stream is being shut down: what it does not take now is not owed.
        drop(self.flush_records());
    }

    /// Reads records from the stream into rustls and processes them, once. `Ok(false)` when
    /// the stream would block.
    fn read_records(&mut self) -> io::Result<bool> {
        loop {
            match self.tls.read_tls(&mut self.io) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        match self.tls.process_new_packets() {
            Ok(_) => {
                // The handshake's answers, session tickets and key updates go out at once; a
                // stream that would block keeps them for the next write.
                self.flush_records()?;
                Ok(true)
            }
            Err(error) => {
                // rustls queued an alert telling the peer why: best effort.
                drop(self.flush_records());
                Err(io::Error::new(io::ErrorKind::InvalidData, error))
            }
        }
    }
}

impl<S: Read + Write> Read for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                // Plaintext, or the end after the peer's close_notify.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The stream ended without close_notify: a truncated session.
                Err(e) => return Err(e),
            }
            if !self.read_records()? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
    }
}

impl<S: Read + Write> Write for TlsStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if !self.flush_records()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = self.tls.writer().write_vectored(bufs)?;
        if taken == 0 && bufs.iter().any(|buf| !buf.is_empty()) {
            // Nothing waits, yet rustls took nothing: it holds plaintext until the handshake
            // is done.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // What the stream does not take now waits for the next write or flush.
        self.flush_records()?;
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_records().map(drop)
    }
}
