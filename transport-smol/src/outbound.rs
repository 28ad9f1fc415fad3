//! [`Outbound`]: a connection's outbound bytes (the shared [`Outbox`]) and the writer task
//! that drains them into the socket.
//!
//! Everything a connection sends lands in its outbox, in order: the HTTP upgrade response,
//! pongs and close replies (tungstenite writes them through the reader's
//! [`Socket`](crate::stream::Socket)), and the frames the driver queues. One writer task is the
//! only one to touch the socket's write side, so a partial write never interleaves with
//! another frame, and a burst leaves in one vectored write.

use krmx_core::Text;
use krmx_transport_shared::Outbox;
use smol::channel::{Receiver, Sender};
use smol::io::AsyncWrite;
use smol::net::TcpStream;
use std::future::poll_fn;
use std::io::{self, IoSlice, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

/// What a connection still has to send.
#[derive(Debug, Default)]
struct Pending {
    outbox: Outbox,
    /// Once the outbox is written, shut the socket down for writing and stop; nothing more is
    /// queued.
    finish: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Rung when the outbox stops being empty (or the connection is finished).
    doorbell: Sender<()>,
}

/// A connection's outbound queue, shared by the driver, the reader and the writer.
#[derive(Debug, Clone)]
pub(crate) struct Outbound(Arc<Shared>);

impl Outbound {
    /// A queue and the writer task draining it into `stream`; the task ends when the
    /// connection is finished and everything is written, or with the write error.
    pub(crate) fn new(stream: TcpStream) -> (Self, impl Future<Output = io::Result<()>>) {
        let (doorbell, rung) = smol::channel::bounded(1);
        let outbound = Self(Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            doorbell,
        }));
        let writer = write(outbound.clone(), rung, stream);
        (outbound, writer)
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves a consistent queue: keep using it.
        self.0
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes queued and not yet written.
    pub(crate) fn buffered(&self) -> usize {
        self.pending().outbox.buffered()
    }

    /// Queues a text frame unless that would put more than `limit` bytes in the queue; `false`
    /// when it did not.
    pub(crate) fn push_text_within(&self, text: &Text, limit: usize) -> bool {
        let pending = self.pending();
        let frame = header_len(text.len()) + text.len();
        if pending.outbox.buffered().saturating_add(frame) > limit {
            return false;
        }
        self.push(pending, |outbox| outbox.push_text_frame(text));
        true
    }

    /// Queues a ping.
    pub(crate) fn push_ping(&self) {
        self.push(self.pending(), Outbox::push_ping);
    }

    /// Queues a close frame; the socket is shut down for writing once it is out.
    pub(crate) fn push_close(&self, code: u16, reason: &str) {
        let mut pending = self.pending();
        if !pending.finish {
            pending.outbox.push_close(code, reason);
            pending.finish = true;
            drop(pending);
            let _ = self.0.doorbell.try_send(());
        }
    }

    /// Queues bytes tungstenite wrote (the upgrade response, pongs, close replies).
    pub(crate) fn push_bytes(&self, bytes: &[u8]) {
        self.push(self.pending(), |outbox| outbox.push_bytes(bytes));
    }

    /// Nothing more will be queued: once the outbox is written, the socket is shut down for
    /// writing.
    pub(crate) fn finish(&self) {
        self.pending().finish = true;
        let _ = self.0.doorbell.try_send(());
    }

    /// Queues with `add` unless the connection is finished, and rings the writer if the outbox
    /// was empty (otherwise it is awake already, or waiting for the socket).
    fn push(&self, mut pending: MutexGuard<'_, Pending>, add: impl FnOnce(&mut Outbox)) {
        if pending.finish {
            return;
        }
        let was_empty = pending.outbox.is_empty();
        add(&mut pending.outbox);
        drop(pending);
        if was_empty {
            // Full means rung already.
            let _ = self.0.doorbell.try_send(());
        }
    }

    /// Writes what the socket takes: ready with whether the connection is finished once the
    /// outbox is empty, pending while the socket is full.
    fn poll_write(&self, cx: &mut Context<'_>, stream: &mut TcpStream) -> Poll<io::Result<bool>> {
        let mut pending = self.pending();
        let mut socket = PollWriter { stream, cx };
        match pending.outbox.write_to(&mut socket) {
            Ok(true) => Poll::Ready(Ok(pending.finish)),
            Ok(false) => Poll::Pending,
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

/// The writer: whenever rung, writes the outbox out; once the connection is finished and the
/// outbox written, shuts the socket down for writing and ends.
async fn write(outbound: Outbound, rung: Receiver<()>, mut stream: TcpStream) -> io::Result<()> {
    while rung.recv().await.is_ok() {
        if poll_fn(|cx| outbound.poll_write(cx, &mut stream)).await? {
            let _ = stream.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
    Ok(())
}

/// A synchronous view of an async socket inside a poll: `WouldBlock` stands for pending (the
/// task is woken when the socket takes bytes again).
struct PollWriter<'a, 'b> {
    stream: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl Write for PollWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.stream).poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.stream).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The length of the unmasked header of a frame with this payload length.
fn header_len(payload: usize) -> usize {
    if payload < 126 {
        2
    } else if payload <= usize::from(u16::MAX) {
        4
    } else {
        10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lengths_follow_the_three_forms() {
        assert_eq!(header_len(0), 2);
        assert_eq!(header_len(125), 2);
        assert_eq!(header_len(126), 4);
        assert_eq!(header_len(65_535), 4);
        assert_eq!(header_len(65_536), 10);
    }

    #[test]
    fn frames_bytes_and_the_close_are_written_in_order_then_the_socket_shuts() {
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = smol::spawn(async move {
                let mut client = TcpStream::connect(addr).await.unwrap();
                let mut all = Vec::new();
                smol::io::AsyncReadExt::read_to_end(&mut client, &mut all)
                    .await
                    .unwrap();
                all
            });
            let (stream, _) = listener.accept().await.unwrap();
            let (outbound, writer) = Outbound::new(stream);
            let writer = smol::spawn(writer);
            outbound.push_bytes(b"HTTP");
            assert!(outbound.push_text_within(&Text::from("hi"), 1 << 10));
            assert!(!outbound.push_text_within(&Text::from("x".repeat(2000)), 1 << 10));
            outbound.push_ping();
            outbound.push_close(1000, "bye");
            outbound.push_ping(); // after the close: dropped
            writer.await.unwrap();
            let all = client.await;
            assert_eq!(
                all,
                [
                    &b"HTTP"[..],
                    &[0x81, 2],
                    b"hi",
                    &[0x89, 0],
                    &[0x88, 5, 0x03, 0xe8],
                    b"bye"
                ]
                .concat()
            );
        });
    }
}
