//! The reader task of one connection: the HTTP upgrade, then every message read, reported to
//! the driver. (The driver alone writes to the socket: what tungstenite writes while reading is
//! reported too.)

use crate::stream::{Socket, Written};
use futures_sink::Sink;
use krmx_core::{ConnectionId, Input, KrmxConfig};
use krmx_transport_shared::{RequestCheck, Step};
use smol::Timer;
use smol::channel::{Sender, TrySendError};
use smol::io::AsyncReadExt;
use smol::net::TcpStream;
use smol::stream::Stream;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tungstenite::protocol::WebSocketConfig;

/// What the connection tasks tell the driver, in order per connection.
pub(crate) enum Report {
    /// The listener accepted a connection.
    Accepted(TcpStream),
    /// The upgrade succeeded: the driver tells the core.
    Opened { conn: ConnectionId, target: String },
    /// Bytes tungstenite wrote (the upgrade response, pongs, close replies), to be sent.
    Wrote { conn: ConnectionId, bytes: Vec<u8> },
    /// The close handshake is complete: once everything is written, the socket is shut down
    /// for writing.
    Finished(ConnectionId),
    /// The socket takes bytes again after a write would have blocked.
    Writable(ConnectionId),
    /// A fact for the core (a message, a pong, a framing violation).
    Read { conn: ConnectionId, input: Input },
    /// The peer sent a close frame; the reply is on its way.
    PeerClosed(ConnectionId),
    /// The reader finished: the handshake failed or timed out, or the connection ended.
    Ended(ConnectionId),
}

/// Settings a connection's tasks need.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) config: Arc<KrmxConfig>,
    pub(crate) ws_config: WebSocketConfig,
    pub(crate) handshake_timeout: Duration,
}

/// The reader: runs the upgrade (bounded by the handshake timeout), reports the open
/// connection, then maps every read to a report until the connection ends. Each phase is a
/// future of its own on the heap, so an idle connection keeps only the state of reading.
pub(crate) async fn read(
    conn: ConnectionId,
    stream: TcpStream,
    already_read: Vec<u8>,
    settings: Settings,
    reports: Sender<Report>,
) {
    let _ = stream.set_nodelay(true);
    let written = Written::default();
    let socket = Socket::new(stream.clone(), already_read, written.clone());
    let upgraded = Box::pin(upgrade(conn, socket, &written, settings, &reports)).await;
    let Some(ws) = upgraded else {
        return;
    };
    let end = Box::pin(read_messages(conn, ws, &written, &reports)).await;
    Box::pin(end_reading(conn, end, stream, &reports)).await;
}

/// The HTTP upgrade: the WebSocket once it is open and reported, `None` when the connection
/// ended (reported too) or the driver is gone.
async fn upgrade(
    conn: ConnectionId,
    socket: Socket,
    written: &Written,
    settings: Settings,
    reports: &Sender<Report>,
) -> Option<async_tungstenite::WebSocketStream<Socket>> {
    let check = RequestCheck::new(settings.config);
    let target = check.target_slot();
    let handshake =
        async_tungstenite::accept_hdr_async_with_config(socket, check, Some(settings.ws_config));
    let timeout = async {
        Timer::after(settings.handshake_timeout).await;
        None
    };
    let outcome = smol::future::or(async { Some(handshake.await) }, timeout).await;
    // The upgrade response, or the refusal (a 404, a 400), goes out either way.
    if !hand_on(conn, written, reports).await {
        return None;
    }
    let ws = match outcome {
        Some(Ok(ws)) => ws,
        Some(Err(error)) => {
            tracing::debug!(%conn, %error, "handshake failed");
            let _ = reports.send(Report::Ended(conn)).await;
            return None;
        }
        None => {
            tracing::debug!(%conn, "handshake timed out");
            let _ = reports.send(Report::Ended(conn)).await;
            return None;
        }
    };
    let opened = Report::Opened {
        conn,
        target: target.take(),
    };
    reports.send(opened).await.ok()?;
    Some(ws)
}

/// What follows the end of reading, until the connection is gone.
async fn end_reading(conn: ConnectionId, end: End, stream: TcpStream, reports: &Sender<Report>) {
    match end {
        End::DriverGone => return,
        End::Gone => {}
        End::Closed => {
            // The close handshake is complete (the reply to a peer's close is on its way):
            // close our side once it is written, as RFC 6455 asks of a server, and wait for
            // the peer's.
            if reports.send(Report::Finished(conn)).await.is_err() {
                return;
            }
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
    mut ws: async_tungstenite::WebSocketStream<Socket>,
    written: &Written,
    reports: &Sender<Report>,
) -> End {
    // After a close frame (ours or the peer's) reading goes on: it sends tungstenite's close
    // reply and ends when the peer's close arrives.
    loop {
        // tungstenite writes the pong it owes (or a close reply) at the start of its next
        // read, which may then find nothing to read: what it wrote is handed on at once, not
        // when the next message comes.
        let next = poll_fn(|cx| match Pin::new(&mut ws).poll_next(cx) {
            Poll::Ready(item) => Poll::Ready(Some(item)),
            Poll::Pending if written.is_empty() => Poll::Pending,
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        // (The driver bounds these bytes: a peer that floods pings and does not read is a
        // slow consumer.)
        if !hand_on(conn, written, reports).await {
            return End::DriverGone;
        }
        let read = match next {
            None => continue,
            Some(None) => break,
            Some(Some(read)) => read,
        };
        let failed = read.is_err();
        let report = match krmx_transport_shared::step(read, conn) {
            Step::Input(input) => Report::Read { conn, input },
            Step::PeerClosed => {
                // tungstenite queued its close reply, to be written on its next call: have it
                // written now, so it goes out before the driver finishes the connection.
                let _ = poll_fn(|cx| Pin::new(&mut ws).poll_flush(cx)).await;
                if !hand_on(conn, written, reports).await {
                    return End::DriverGone;
                }
                Report::PeerClosed(conn)
            }
            Step::Nothing | Step::WouldBlock => continue,
            Step::Gone => return End::Gone,
        };
        if !deliver(reports, report).await {
            return End::DriverGone;
        }
        if failed {
            return End::Violation;
        }
    }
    if !hand_on(conn, written, reports).await {
        return End::DriverGone;
    }
    End::Closed
}

/// Reports what tungstenite wrote, if anything; `false` once the driver is gone.
async fn hand_on(conn: ConnectionId, written: &Written, reports: &Sender<Report>) -> bool {
    if written.is_empty() {
        return true;
    }
    let bytes = written.take();
    deliver(reports, Report::Wrote { conn, bytes }).await
}

/// Sends a report, `false` once the driver is gone. At once when the channel has room;
/// otherwise the wait is a future on the heap, so the reader (alive as long as its
/// connection) does not carry room for it.
fn deliver(reports: &Sender<Report>, report: Report) -> impl Future<Output = bool> + '_ {
    let waiting = match reports.try_send(report) {
        Ok(()) => Ok(true),
        Err(TrySendError::Closed(_)) => Ok(false),
        Err(TrySendError::Full(report)) => Err(Box::pin(reports.send(report))),
    };
    async move {
        match waiting {
            Ok(sent) => sent,
            Err(send) => send.await.is_ok(),
        }
    }
}

/// Reads and drops whatever the peer still sends, until it closes or the socket fails.
async fn discard(mut stream: TcpStream) {
    let mut sink = vec![0_u8; 1024];
    while let Ok(1..) = stream.read(&mut sink).await {}
}
