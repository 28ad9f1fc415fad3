//! Turning what tungstenite reads into core inputs.

use crate::socket::Socket;
use krmx_core::{ConnectionId, Frame, Input, Violation};
use std::io::{self, Read};
use tungstenite::{Error, Message, WebSocket};

/// What one read produced.
pub(crate) enum Step {
    /// Feed this to the core.
    Input(Input),
    /// Nothing for the core (a ping, answered by tungstenite; a raw frame).
    Nothing,
    /// No complete message is available yet.
    WouldBlock,
    /// The peer sent a close frame; the reply is queued.
    PeerClosed,
    /// The connection is broken or closed.
    Gone,
}

/// Reads the next message.
pub(crate) fn next_input(ws: &mut WebSocket<Socket>, conn: ConnectionId) -> Step {
    let frame = match ws.read() {
        Ok(Message::Text(text)) => Frame::Text(text.as_str().to_owned()),
        Ok(Message::Binary(bytes)) => Frame::Binary(bytes.to_vec()),
        Ok(Message::Pong(_)) => return Step::Input(Input::Pong { conn }),
        Ok(Message::Ping(_) | Message::Frame(_)) => return Step::Nothing,
        Ok(Message::Close(_)) => return Step::PeerClosed,
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return Step::WouldBlock,
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => return Step::Nothing,
        Err(Error::Utf8(_)) => return violation(conn, Violation::InvalidUtf8),
        Err(Error::Capacity(_)) => return violation(conn, Violation::MessageTooLarge),
        Err(error) => {
            tracing::debug!(%conn, %error, "connection ended");
            return Step::Gone;
        }
    };
    Step::Input(Input::Frame { conn, frame })
}

fn violation(conn: ConnectionId, violation: Violation) -> Step {
    Step::Input(Input::Violation { conn, violation })
}

/// Reads and drops whatever a closing peer still sends. `true` once the peer closed (or the
/// socket failed): the connection can be dropped.
pub(crate) fn discard(socket: &mut Socket) -> bool {
    let mut sink = [0_u8; 4096];
    loop {
        match socket.stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}
