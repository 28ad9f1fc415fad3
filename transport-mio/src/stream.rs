//! [`Tcp`]: a mio TCP stream as the driver's [`Stream`].

use krmx_driver::Stream;
use mio::net::TcpStream;
use std::io::{self, Read, Write};

/// A mio TCP stream as the driver reads and writes it.
#[derive(Debug)]
pub(crate) struct Tcp(pub(crate) TcpStream);

impl Read for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Tcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Stream for Tcp {
    fn shutdown_write(&mut self) {
        // The peer may be gone already; the linger ends the connection either way.
        drop(self.0.shutdown(std::net::Shutdown::Write));
    }
}
