//! [`Link`]: a connection's stream as the driver reads and writes it: plain, or TLS over it.

use crate::stream::Stream;
use crate::tls::TlsStream;
use std::io::{self, IoSlice, Read, Write};

/// The stream of one connection, plain or TLS.
#[derive(Debug)]
pub(crate) enum Link<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
}

impl<S: Stream> Link<S> {
    /// The runtime's stream (to register it; never read or written directly).
    pub(crate) fn inner_mut(&mut self) -> &mut S {
        match self {
            Self::Plain(stream) => stream,
            Self::Tls(tls) => tls.get_mut(),
        }
    }

    /// Whether a TLS handshake is still under way.
    pub(crate) fn is_tls_handshaking(&self) -> bool {
        matches!(self, Self::Tls(tls) if tls.is_handshaking())
    }

    /// Whether bytes the link took are still to be written (TLS records).
    pub(crate) fn has_pending(&self) -> bool {
        matches!(self, Self::Tls(tls) if tls.has_records())
    }

    /// Writes what the link took and still holds: `Ok(true)` when nothing is left.
    pub(crate) fn flush_pending(&mut self) -> io::Result<bool> {
        match self {
            Self::Plain(_) => Ok(true),
            Self::Tls(tls) => tls.flush_records(),
        }
    }

    /// Shuts the link down for writing after the last byte: TLS says `close_notify` first.
    pub(crate) fn shutdown_write(&mut self) {
        match self {
            Self::Plain(stream) => stream.shutdown_write(),
            Self::Tls(tls) => {
                tls.close_notify();
                tls.get_mut().shutdown_write();
            }
        }
    }
}

impl<S: Stream> Read for Link<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.read(buf),
            Self::Tls(tls) => tls.read(buf),
        }
    }
}

impl<S: Stream> Write for Link<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.write(buf),
            Self::Tls(tls) => tls.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Plain(stream) => stream.write_vectored(bufs),
            Self::Tls(tls) => tls.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(stream) => stream.flush(),
            Self::Tls(tls) => tls.flush(),
        }
    }
}
