//! Turning what tungstenite read into core inputs: the facts the transports report.

use krmx_core::{ConnectionId, Frame, Input, Violation};
use std::io;
use tungstenite::{Error, Message};

/// What one read produced.
#[derive(Debug)]
pub(crate) enum Step {
    /// Feed this to the core.
    Input(Input),
    /// Nothing for the core (a ping, which tungstenite answers; a raw frame).
    Nothing,
    /// No complete message is available yet.
    WouldBlock,
    /// The peer sent a close frame (tungstenite queued the reply), with its code if it had one.
    PeerClosed(Option<u16>),
    /// The connection is broken or closed.
    Gone,
}

/// Maps the result of one `read` (or one item of an async stream) on connection `conn`.
#[must_use]
pub(crate) fn step(read: Result<Message, Error>, conn: ConnectionId) -> Step {
    let frame = match read {
        Ok(Message::Text(text)) => Frame::Text(text.as_str().to_owned()),
        Ok(Message::Binary(bytes)) => Frame::Binary(bytes.to_vec()),
        Ok(Message::Pong(_)) => return Step::Input(Input::Pong { conn }),
        Ok(Message::Ping(_) | Message::Frame(_)) => return Step::Nothing,
        Ok(Message::Close(frame)) => {
            return Step::PeerClosed(frame.map(|frame| u16::from(frame.code)));
        }
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
