//! Opening and closing the client's WebSocket on smol, and the deadline every wait is bound by.

use async_tungstenite::WebSocketStream;
use krmx_driver::client_target;
use smol::Timer;
use smol::net::TcpStream;
use smol::stream::StreamExt;
use std::future::Future;
use std::io;
use std::time::Instant;

/// The client's WebSocket.
pub(super) type Ws = WebSocketStream<TcpStream>;

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

/// Connects to `url` and runs the WebSocket handshake, both before `deadline`.
pub(super) async fn open(url: &str, deadline: Option<Instant>) -> Result<Ws, tungstenite::Error> {
    let (request, host, port) = client_target(url)?;
    let opening = async {
        let stream = TcpStream::connect((host.as_str(), port)).await?;
        stream.set_nodelay(true)?;
        let (ws, _response) = async_tungstenite::client_async(request, stream).await?;
        Ok(ws)
    };
    within(deadline, opening).await.unwrap_or_else(|| {
        Err(io::Error::new(io::ErrorKind::TimedOut, "connecting timed out").into())
    })
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
    let _ = within(deadline, closing).await;
}
