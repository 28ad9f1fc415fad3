//! [`Socket`]: the stream async-tungstenite reads from and writes to. Reads replay first the
//! bytes an application read before handing the connection over, then come from the TCP
//! socket; writes (the upgrade response, pongs, close replies) are kept for the reader to hand
//! to the driver, which alone writes to the socket, and never wait.

use krmx_transport_shared::ReadAhead;
use smol::io::{AsyncRead, AsyncWrite};
use smol::net::TcpStream;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

/// Bytes tungstenite wrote and the reader has not yet handed on (shared, so the bytes of a
/// refused upgrade are not lost with the failed handshake).
#[derive(Debug, Clone, Default)]
pub(crate) struct Written(Arc<Mutex<Vec<u8>>>);

impl Written {
    /// Takes what was written since the last call.
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether nothing waits to be taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn push(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
    }
}

/// A TCP stream with a prefix of already-read bytes, whose writes are kept.
#[derive(Debug)]
pub(crate) struct Socket {
    stream: TcpStream,
    /// Bytes read by an application before the hand-over, replayed before the socket's own,
    /// then bytes read past what tungstenite asked for.
    ahead: ReadAhead,
    written: Written,
}

impl Socket {
    pub(crate) fn new(stream: TcpStream, prefix: Vec<u8>, written: Written) -> Self {
        Self {
            stream,
            ahead: ReadAhead::new(prefix),
            written,
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let stream = &mut this.stream;
        this.ahead
            .read_with(buf, |scratch| Pin::new(stream).poll_read(cx, scratch))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The driver shuts the socket down once everything is written.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::io::AsyncReadExt;

    #[test]
    fn replays_the_prefix_before_the_socket() {
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = smol::spawn(async move {
                let mut client = TcpStream::connect(addr).await.unwrap();
                smol::io::AsyncWriteExt::write_all(&mut client, b" world")
                    .await
                    .unwrap();
            });
            let (stream, _) = listener.accept().await.unwrap();
            client.await;
            let mut socket = Socket::new(stream, b"hello".to_vec(), Written::default());
            let mut all = Vec::new();
            socket.read_to_end(&mut all).await.unwrap();
            assert_eq!(all, b"hello world");
        });
    }
}
