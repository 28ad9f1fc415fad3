//! The reader task of one connection: the HTTP upgrade, then every message read, reported to
//! the driver. (What the connection sends goes through its [`Outbound`] queue and writer.)

use crate::outbound::Outbound;
use crate::stream::Socket;
use krmx_core::{ConnectionId, Input, KrmxConfig, Violation};
use krmx_transport_shared::{RequestCheck, Step};
use smol::Timer;
use smol::channel::Sender;
use smol::io::AsyncReadExt;
use smol::net::TcpStream;
use smol::stream::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tungstenite::protocol::WebSocketConfig;

/// What the connection tasks tell the driver, in order per connection.
pub(crate) enum Report {
    /// The listener accepted a connection.
    Accepted(TcpStream),
    /// The upgrade succeeded: the driver tells the core.
    Opened { conn: ConnectionId, target: String },
    /// A fact for the core (a message, a pong, a framing violation).
    Read { conn: ConnectionId, input: Input },
    /// The peer sent a close frame; the reply is on its way.
    PeerClosed(ConnectionId),
    /// Writing failed: the socket is broken.
    Broken(ConnectionId),
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
/// connection, then maps every read to a report until the connection ends.
pub(crate) async fn read(
    conn: ConnectionId,
    stream: TcpStream,
    already_read: Vec<u8>,
    outbound: Outbound,
    settings: Settings,
    reports: Sender<Report>,
) {
    let _ = stream.set_nodelay(true);
    let max_buffered = settings.config.max_buffered_bytes_value();
    let check = RequestCheck::new(settings.config);
    let target = check.target_slot();
    // Boxed: the upgrade's state is freed once it is done, not kept in the reader for the
    // connection's life.
    let handshake = Box::pin(async_tungstenite::accept_hdr_async_with_config(
        Socket::new(stream.clone(), already_read, outbound.clone()),
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
    let opened = Report::Opened {
        conn,
        target: target.take(),
    };
    if reports.send(opened).await.is_err() {
        return;
    }
    match read_messages(conn, ws, &outbound, max_buffered, &reports).await {
        End::DriverGone => return,
        End::Gone => {}
        End::Closed => {
            // The close handshake is complete (the reply to a peer's close is queued): close
            // our side once it is written, as RFC 6455 asks of a server, and wait for the
            // peer's.
            outbound.finish();
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
    outbound: &Outbound,
    max_buffered: usize,
    reports: &Sender<Report>,
) -> End {
    // After a close frame (ours or the peer's) reading goes on: it queues tungstenite's close
    // reply and ends when the peer's close arrives.
    while let Some(read) = ws.next().await {
        if outbound.buffered() > max_buffered {
            // tungstenite answers every ping with a pong, queued while reading: a peer that
            // floods pings and does not read would grow the queue without bound. Past the
            // bound it is a slow consumer like any other, and its bytes are read no more.
            tracing::debug!(%conn, "slow consumer (pongs)");
            let input = Input::Violation {
                conn,
                violation: Violation::SlowConsumer,
            };
            if reports.send(Report::Read { conn, input }).await.is_err() {
                return End::DriverGone;
            }
            return End::Violation;
        }
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
