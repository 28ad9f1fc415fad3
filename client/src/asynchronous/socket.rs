//! Opening and closing the client's WebSocket on smol, and the deadline every wait is bound by.

use super::stream::Transport;
use crate::target::target;
use crate::tls::server_name;
use crate::{ClientFailure, ClientTls};
use async_tungstenite::WebSocketStream;
use smol::Timer;
use smol::net::TcpStream;
use smol::stream::StreamExt;
use std::future::Future;
use std::time::Instant;

/// The client's WebSocket.
pub(super) type Ws = WebSocketStream<Transport>;

/// `future`'s output, or `None` when `deadline` passes first (a future that is ready at once
/// wins even past the deadline). No deadline: no limit.
pub(super) async fn within<T>(
    deadline: Option<Instant>,
    future: impl Future<Output = T>,
) -> Option<T> {
    let Some(deadline) = deadline else {
        return Some(future.await);
    };
    smol::future::or(async { Some(future.await) }, async {
        Timer::at(deadline).await;
        None
    })
    .await
}

/// Connects to `url` and runs the TLS (for `wss://`) and WebSocket handshakes, all before
/// `deadline`.
pub(super) async fn open(
    url: &str,
    deadline: Option<Instant>,
    tls: &ClientTls,
) -> Result<Ws, ClientFailure> {
    let target = target(url)?;
    let opening = async {
        let connected = TcpStream::connect((target.host.as_str(), target.port)).await;
        let stream = connected.map_err(|error| ClientFailure::opening_io(&error))?;
        stream
            .set_nodelay(true)
            .map_err(|error| ClientFailure::opening_io(&error))?;
        let stream = if target.tls {
            let connector = futures_rustls::TlsConnector::from(tls.config()?);
            let secured = connector
                .connect(server_name(&target.host)?, stream)
                .await
                .map_err(|error| match ClientFailure::opening_io(&error) {
                    ClientFailure::Timeout => ClientFailure::Timeout,
                    _ => ClientFailure::Tls {
                        message: error.to_string(),
                    },
                })?;
            Transport::Tls(Box::new(secured))
        } else {
            Transport::Plain(stream)
        };
        let (ws, _response) = async_tungstenite::client_async(target.request, stream)
            .await
            .map_err(ClientFailure::handshake)?;
        Ok(ws)
    };
    within(deadline, opening)
        .await
        .unwrap_or(Err(ClientFailure::Timeout))
}

/// Sends a close frame and reads until the server closes too, at most until `deadline`; the
/// socket is dropped either way.
pub(super) async fn close(mut ws: Ws, deadline: Option<Instant>) {
    let closing = async {
        if ws.close(None).await.is_ok() {
            // What still arrives is dropped: the client is closing.
            while let Some(Ok(_)) = ws.next().await {}
        }
    };
    // Done or out of time: the socket is dropped either way.
    if within(deadline, closing).await.is_none() {
        tracing::debug!("the server did not answer the close in time");
    }
}
