//! The tasks of one connection: the reader (HTTP upgrade, then every message read, reported to
//! the driver) and the writer (drains the connection's outbound queue into the socket).

use crate::stream::Socket;
use async_tungstenite::{WebSocketReceiver, WebSocketSender};
use futures_sink::Sink;
use krmx_core::{ConnectionId, Input, KrmxConfig, Violation};
use krmx_transport_shared::{RequestCheck, Step};
use smol::Timer;
use smol::channel::{Receiver, Sender};
use smol::io::AsyncReadExt;
use smol::net::TcpStream;
use smol::stream::StreamExt;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tungstenite::Message;
use tungstenite::protocol::WebSocketConfig;

/// What the connection tasks tell the driver, in order per connection.
pub(crate) enum Report {
    /// The listener accepted a connection.
    Accepted(TcpStream),
    /// The upgrade succeeded: the driver starts the writer and tells the core.
    Opened {
        conn: ConnectionId,
        target: String,
        sender: WebSocketSender<Socket>,
        stream: TcpStream,
    },
    /// A fact for the core (a message, a pong, a framing violation).
    Read { conn: ConnectionId, input: Input },
    /// The peer sent a close frame; the reply is on its way.
    PeerClosed(ConnectionId),
    /// Writing failed: the socket is broken.
    Broken(ConnectionId),
    /// The reader finished: the handshake failed or timed out, or the connection ended.
    Ended(ConnectionId),
}

/// One frame for the writer, with the bytes it counts against the connection's bound.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) message: Message,
    pub(crate) counted: usize,
}

/// A connection's outbound queue, shared by the driver (which fills it) and the writer.
#[derive(Debug)]
struct Queue {
    frames: Mutex<VecDeque<Outgoing>>,
    /// Bytes queued and not yet taken by the writer.
    buffered: AtomicUsize,
}

impl Queue {
    fn frames(&self) -> MutexGuard<'_, VecDeque<Outgoing>> {
        // A panic while holding the lock leaves a consistent queue: keep using it.
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next frame; once the queue is empty, the memory of a burst is released.
    fn pop(&self) -> Option<Outgoing> {
        let mut frames = self.frames();
        let next = frames.pop_front();
        if next.is_none() && frames.capacity() > RETAINED_FRAMES {
            *frames = VecDeque::new();
        }
        next
    }
}

/// Frame slots an empty queue keeps allocated.
const RETAINED_FRAMES: usize = 16;

/// The driver's side of a connection's outbound queue.
#[derive(Debug)]
pub(crate) struct Outbound {
    queue: Arc<Queue>,
    /// Rung after every push; the writer waits on it when the queue is empty.
    doorbell: Sender<()>,
}

impl Outbound {
    /// Bytes queued and not yet handed to the socket.
    pub(crate) fn buffered(&self) -> usize {
        self.queue.buffered.load(Ordering::Relaxed)
    }

    /// Queues a frame (the queue itself is unbounded: the driver checks
    /// [`buffered`](Self::buffered) before it queues a message).
    pub(crate) fn push(&self, outgoing: Outgoing) {
        self.queue
            .buffered
            .fetch_add(outgoing.counted, Ordering::Relaxed);
        self.queue.frames().push_back(outgoing);
        // Full means rung already.
        let _ = self.doorbell.try_send(());
    }
}

/// The length of the unmasked header of a frame with this payload length.
pub(crate) fn header_len(payload: usize) -> usize {
    if payload < 126 {
        2
    } else if payload <= usize::from(u16::MAX) {
        4
    } else {
        10
    }
}

/// Settings a connection's tasks need.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) config: Arc<KrmxConfig>,
    pub(crate) ws_config: WebSocketConfig,
    pub(crate) handshake_timeout: Duration,
}

/// The reader: runs the upgrade (bounded by the handshake timeout), reports the open
/// connection, then maps every read to a report until the connection ends.
pub(crate) async fn read(
    conn: ConnectionId,
    stream: TcpStream,
    already_read: Vec<u8>,
    settings: Settings,
    reports: Sender<Report>,
) {
    let _ = stream.set_nodelay(true);
    let check = RequestCheck::new(settings.config);
    let target = check.target_slot();
    // Boxed: the upgrade's state is freed once it is done, not kept in the reader for the
    // connection's life.
    let handshake = Box::pin(async_tungstenite::accept_hdr_async_with_config(
        Socket::new(stream.clone(), already_read),
        check,
        Some(settings.ws_config),
    ));
    let timeout = async {
        Timer::after(settings.handshake_timeout).await;
        None
    };
    let ws = match smol::future::or(async { Some(handshake.await) }, timeout).await {
        Some(Ok(ws)) => ws,
        Some(Err(error)) => {
            tracing::debug!(%conn, %error, "handshake failed");
            let _ = reports.send(Report::Ended(conn)).await;
            return;
        }
        None => {
            tracing::debug!(%conn, "handshake timed out");
            let _ = reports.send(Report::Ended(conn)).await;
            return;
        }
    };
    let (sender, receiver) = ws.split();
    let opened = Report::Opened {
        conn,
        target: target.take(),
        sender,
        stream: stream.clone(),
    };
    if reports.send(opened).await.is_err() {
        return;
    }
    match read_messages(conn, receiver, &reports).await {
        End::DriverGone => return,
        End::Gone => {}
        End::Closed => {
            // The close handshake is complete (the reply to a peer's close is written): close
            // our side first, as RFC 6455 asks of a server, and wait for the peer's.
            let _ = stream.shutdown(Shutdown::Write);
            discard(stream).await;
        }
        End::Violation => {
            // Reading is over; the core closes the connection. Until the peer closes (or the
            // driver's linger passes) its bytes are dropped, so the close frame gets out and
            // unread bytes do not turn the close into a reset.
            discard(stream).await;
        }
    }
    let _ = reports.send(Report::Ended(conn)).await;
}

/// How reading ended.
enum End {
    /// The close handshake completed.
    Closed,
    /// A framing violation was reported to the core.
    Violation,
    /// The connection broke.
    Gone,
    /// The driver is gone.
    DriverGone,
}

/// Reports every message until the WebSocket ends.
async fn read_messages(
    conn: ConnectionId,
    mut receiver: WebSocketReceiver<Socket>,
    reports: &Sender<Report>,
) -> End {
    // After a close frame (ours or the peer's) reading goes on: it flushes tungstenite's close
    // reply and ends when the peer's close arrives.
    while let Some(read) = receiver.next().await {
        let failed = read.is_err();
        let report = match krmx_transport_shared::step(read, conn) {
            Step::Input(input) => Report::Read { conn, input },
            Step::PeerClosed => Report::PeerClosed(conn),
            Step::Nothing | Step::WouldBlock => continue,
            Step::Gone => return End::Gone,
        };
        if reports.send(report).await.is_err() {
            return End::DriverGone;
        }
        if failed {
            return End::Violation;
        }
    }
    End::Closed
}

/// Reads and drops whatever the peer still sends, until it closes or the socket fails.
async fn discard(mut stream: TcpStream) {
    let mut sink = vec![0_u8; 1024];
    while let Ok(1..) = stream.read(&mut sink).await {}
}

/// Starts a writer: the queue the driver fills and the future that drains it.
pub(crate) fn writer(
    conn: ConnectionId,
    sender: WebSocketSender<Socket>,
    stream: TcpStream,
    reports: Sender<Report>,
) -> (Outbound, impl Future<Output = ()> + Send + 'static) {
    let queue = Arc::new(Queue {
        frames: Mutex::new(VecDeque::new()),
        buffered: AtomicUsize::new(0),
    });
    let (doorbell, rung) = smol::channel::bounded(1);
    let outbound = Outbound {
        queue: Arc::clone(&queue),
        doorbell,
    };
    let task = async move {
        if let Err(error) = write(sender, &queue, &rung, &stream).await {
            tracing::debug!(%conn, %error, "write failed");
            match error {
                tungstenite::Error::Io(_) => {
                    let _ = reports.send(Report::Broken(conn)).await;
                }
                tungstenite::Error::WriteBufferFull(_) => {
                    // tungstenite's buffer is full of pongs for a peer that sends pings and
                    // does not read: a slow consumer.
                    let violation = Violation::SlowConsumer;
                    let input = Input::Violation { conn, violation };
                    let _ = reports.send(Report::Read { conn, input }).await;
                }
                _ => {}
            }
        }
    };
    (outbound, task)
}

/// Takes every frame queued, hands them to tungstenite and flushes once per burst. After the
/// close frame it shuts the socket down for writing and stops.
async fn write(
    mut sender: WebSocketSender<Socket>,
    queue: &Queue,
    rung: &Receiver<()>,
    stream: &TcpStream,
) -> Result<(), tungstenite::Error> {
    while rung.recv().await.is_ok() {
        while let Some(outgoing) = queue.pop() {
            poll_fn(|cx| Pin::new(&mut sender).poll_ready(cx)).await?;
            let closing = matches!(outgoing.message, Message::Close(_));
            Pin::new(&mut sender).start_send(outgoing.message)?;
            // The frame is in tungstenite's write buffer now, which holds at most one batch.
            queue
                .buffered
                .fetch_sub(outgoing.counted, Ordering::Relaxed);
            if closing {
                poll_fn(|cx| Pin::new(&mut sender).poll_flush(cx)).await?;
                let _ = stream.shutdown(Shutdown::Write);
                return Ok(());
            }
        }
        poll_fn(|cx| Pin::new(&mut sender).poll_flush(cx)).await?;
    }
    Ok(())
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
}
