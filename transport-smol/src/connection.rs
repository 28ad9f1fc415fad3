//! The reader task of one connection: the HTTP upgrade, then every message read, reported to
//! the driver. (The driver alone writes to the socket: what tungstenite writes while reading is
//! reported too.)

use crate::reading::Reading;
use crate::stream::{Socket, Written};
use async_tungstenite::WebSocketStream;
use krmx_core::{ConnectionId, Input, KrmxConfig};
use krmx_transport_shared::RequestCheck;
use smol::Timer;
use smol::channel::Sender;
use smol::io::AsyncReadExt;
use smol::net::TcpStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
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
/// connection, then maps every read to a report until the connection ends.
pub(crate) fn read(
    conn: ConnectionId,
    stream: TcpStream,
    already_read: Vec<u8>,
    settings: Settings,
    reports: Sender<Report>,
) -> Reader {
    let _ = stream.set_nodelay(true);
    let written = Written::default();
    let socket = Socket::new(stream.clone(), already_read, written.clone());
    let upgrade = upgrade(conn, socket, written.clone(), settings, reports.clone());
    Reader {
        conn,
        stream,
        written,
        reports,
        phase: Phase::Upgrading(Box::pin(upgrade)),
    }
}

/// The reader task, phase by phase. Written out by hand (not an `async fn`) so that an idle
/// connection keeps only what reading needs: the upgrade and the end are futures on the heap
/// while they last, and the reading phase is a plain struct.
pub(crate) struct Reader {
    conn: ConnectionId,
    stream: TcpStream,
    written: Written,
    reports: Sender<Report>,
    phase: Phase,
}

type Upgrade = Pin<Box<dyn Future<Output = Option<WebSocketStream<Socket>>> + Send>>;

// Reading is the phase a connection lives in: boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Phase {
    Upgrading(Upgrade),
    Reading(Reading),
    Ending(Pin<Box<dyn Future<Output = ()> + Send>>),
    Done,
}

impl Future for Reader {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Upgrading(upgrade) => match upgrade.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => this.phase = Phase::Done,
                    Poll::Ready(Some(ws)) => {
                        this.phase = Phase::Reading(Reading::new(
                            this.conn,
                            ws,
                            this.written.clone(),
                            this.reports.clone(),
                        ));
                    }
                },
                Phase::Reading(reading) => match Pin::new(reading).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(end) => {
                        let ending =
                            end_reading(this.conn, end, this.stream.clone(), this.reports.clone());
                        this.phase = Phase::Ending(Box::pin(ending));
                    }
                },
                Phase::Ending(ending) => match ending.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => this.phase = Phase::Done,
                },
                Phase::Done => return Poll::Ready(()),
            }
        }
    }
}

/// The HTTP upgrade: the WebSocket once it is open and reported, `None` when the connection
/// ended (reported too) or the driver is gone.
async fn upgrade(
    conn: ConnectionId,
    socket: Socket,
    written: Written,
    settings: Settings,
    reports: Sender<Report>,
) -> Option<WebSocketStream<Socket>> {
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
    if !hand_on(conn, &written, &reports).await {
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
async fn end_reading(conn: ConnectionId, end: End, stream: TcpStream, reports: Sender<Report>) {
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
pub(crate) enum End {
    /// The close handshake completed.
    Closed,
    /// A framing violation was reported to the core.
    Violation,
    /// The connection broke.
    Gone,
    /// The driver is gone.
    DriverGone,
}

/// Reports what the upgrade wrote (its response or refusal), if anything; `false` once the
/// driver is gone. (The reading phase hands on its own writes: [`Reading`].)
async fn hand_on(conn: ConnectionId, written: &Written, reports: &Sender<Report>) -> bool {
    let bytes = written.take();
    bytes.is_empty() || reports.send(Report::Wrote { conn, bytes }).await.is_ok()
}

/// Reads and drops whatever the peer still sends, until it closes or the socket fails.
async fn discard(mut stream: TcpStream) {
    let mut sink = vec![0_u8; 1024];
    while let Ok(1..) = stream.read(&mut sink).await {}
}
