//! [`Tcp`]: a smol TCP socket as the driver's [`Stream`], read and written without waiting.

use krmx_driver::Stream;
use smol::Async;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

/// The socket of one connection: shared with the connection's readiness watcher, which only
/// waits on it; the driver alone reads and writes.
#[derive(Debug, Clone)]
pub(crate) struct Tcp(pub(crate) Arc<Async<TcpStream>>);

impl Read for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.get_ref().read(buf)
    }
}

impl Write for Tcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.get_ref().write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.get_ref().write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Tcp {
    fn shutdown_write(&mut self) {
        // The peer may be gone already; the linger ends the connection either way.
        drop(self.0.get_ref().shutdown(std::net::Shutdown::Write));
    }
}
