//! [`WireStream`]: a load client's socket, plain TCP or TLS over it (for `wss://` rows).

use krmx_driver::plumbing::TlsStream;
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// A load client's socket.
pub(crate) enum WireStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl WireStream {
    /// `stream`, through TLS to `localhost` when `tls` is given.
    pub(crate) fn new(
        stream: TcpStream,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> io::Result<Self> {
        let Some(config) = tls else {
            return Ok(Self::Plain(stream));
        };
        let name =
            rustls::pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
        let session =
            rustls::ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
        Ok(Self::Tls(Box::new(TlsStream::new(stream, session))))
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref(),
        }
    }

    /// Whether TLS records wait to be written.
    pub(crate) fn has_records(&self) -> bool {
        matches!(self, Self::Tls(tls) if tls.has_records())
    }

    /// Writes the TLS records waiting, as far as the socket takes them.
    pub(crate) fn flush_records(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(_) => Ok(()),
            Self::Tls(tls) => tls.flush_records().map(drop),
        }
    }
}

impl Read for WireStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.read(buf),
            Self::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for WireStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(tcp) => tcp.write(buf),
            Self::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.flush(),
            Self::Tls(tls) => tls.flush(),
        }
    }
}
