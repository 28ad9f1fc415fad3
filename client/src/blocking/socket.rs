//! Opening and closing the client's blocking WebSocket: TCP with a connect timeout, TLS for
//! `wss://`, then tungstenite's client handshake.

use super::stream::Transport;
use crate::target::target;
use crate::tls::server_name;
use crate::{ClientFailure, ClientTls};
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use tungstenite::{HandshakeError, WebSocket};

/// Connects to `url` and runs the TLS (for `wss://`) and WebSocket handshakes, each step within
/// `timeout`. The stream keeps `timeout` as its write timeout; reads set their own.
pub(super) fn open(
    url: &str,
    timeout: Duration,
    tls: &ClientTls,
) -> Result<WebSocket<Transport>, ClientFailure> {
    let target = target(url)?;
    let stream = connect_tcp(&target.host, target.port, timeout)
        .map_err(|error| ClientFailure::opening_io(&error))?;
    let configured = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(timeout)))
        .and_then(|()| stream.set_write_timeout(Some(timeout)));
    configured.map_err(|error| ClientFailure::opening_io(&error))?;
    let stream = if target.tls {
        let session = rustls::ClientConnection::new(tls.config()?, server_name(&target.host)?)
            .map_err(|error| ClientFailure::Tls {
                message: error.to_string(),
            })?;
        let mut tls = rustls::StreamOwned::new(session, stream);
        // The TLS handshake first, so that its failures are told apart from the WebSocket's.
        while tls.conn.is_handshaking() {
            if let Err(error) = tls.conn.complete_io(&mut tls.sock) {
                return Err(match ClientFailure::opening_io(&error) {
                    ClientFailure::Timeout => ClientFailure::Timeout,
                    _ => ClientFailure::Tls {
                        message: error.to_string(),
                    },
                });
            }
        }
        Transport::Tls(Box::new(tls))
    } else {
        Transport::Plain(stream)
    };
    match tungstenite::client::client(target.request, stream) {
        Ok((ws, _response)) => Ok(ws),
        Err(HandshakeError::Failure(error)) => Err(ClientFailure::handshake(error)),
        // A read timed out: the blocking stream reported `WouldBlock`.
        Err(HandshakeError::Interrupted(_)) => Err(ClientFailure::Timeout),
    }
}

/// The first address of `host` that accepts a connection within `timeout`.
fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
    }))
}

/// Sends a close frame and reads until the server closes too, at most `timeout`; the socket is
/// dropped either way.
pub(super) fn close(mut ws: WebSocket<Transport>, timeout: Duration) {
    if ws.close(None).is_err() {
        return;
    }
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        if left.is_some_and(|left| left.is_zero())
            || ws.get_mut().tcp().set_read_timeout(left).is_err()
        {
            return;
        }
        match ws.read() {
            // What still arrives is dropped: the client is closing.
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            // The close handshake finished (`ConnectionClosed`), the time is up, or it broke.
            Err(_) => return,
        }
    }
}
