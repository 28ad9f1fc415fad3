//! What one read of the WebSocket (or one item of the async stream) means for a client.

use crate::ClientFailure;
use krmx_core::ClientInput;
use std::io;
use tungstenite::Message;

/// What one client read produced.
#[derive(Debug)]
pub(crate) enum Read {
    /// Feed this to the client.
    Input(ClientInput),
    /// The server's close frame; tungstenite queued the answer and the connection ends next.
    /// The failure is what a command still waiting would report.
    Closing(ClientFailure),
    /// Nothing for the client (a ping, which tungstenite answers; a pong; an invalid binary
    /// message, dropped).
    Nothing,
    /// No complete message yet (a read timeout passed).
    WouldBlock,
    /// The connection is closed or broken; with what broke it, when the server broke the
    /// WebSocket protocol.
    Gone(Option<ClientFailure>),
}

/// Maps the result of one `read`. A binary message that is valid UTF-8 is taken as text, as the
/// server does.
pub(crate) fn read(read: Result<Message, tungstenite::Error>) -> Read {
    let text = match read {
        Ok(Message::Text(text)) => text.as_str().to_owned(),
        Ok(Message::Binary(bytes)) => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => text,
            Err(_) => {
                tracing::warn!("dropped a binary message that is not UTF-8");
                return Read::Nothing;
            }
        },
        Ok(Message::Close(frame)) => {
            let (code, reason) = frame.map_or((None, String::new()), |frame| {
                (
                    Some(u16::from(frame.code)),
                    frame.reason.as_str().to_owned(),
                )
            });
            tracing::debug!(?code, %reason, "the server closes the connection");
            return Read::Closing(ClientFailure::Closed { code, reason });
        }
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => return Read::Nothing,
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Read::WouldBlock;
        }
        Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {
            return Read::Nothing;
        }
        Err(
            error @ (tungstenite::Error::ConnectionClosed
            | tungstenite::Error::AlreadyClosed
            | tungstenite::Error::Io(_)),
        ) => {
            tracing::debug!(%error, "client connection ended");
            return Read::Gone(None);
        }
        Err(error) => {
            tracing::debug!(%error, "the server broke the WebSocket protocol");
            let message = error.to_string();
            return Read::Gone(Some(ClientFailure::Protocol { message }));
        }
    };
    Read::Input(ClientInput::Received { text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::CloseFrame;
    use tungstenite::protocol::frame::coding::CloseCode;

    #[test]
    fn binary_utf8_is_text_and_other_binary_is_dropped() {
        let read_binary = read(Ok(Message::binary(b"{\"type\":\"a\"}".to_vec())));
        assert!(
            matches!(read_binary, Read::Input(ClientInput::Received { text }) if text == "{\"type\":\"a\"}")
        );
        assert!(matches!(
            read(Ok(Message::binary(vec![0xff, 0xfe]))),
            Read::Nothing
        ));
    }

    #[test]
    fn timeouts_closes_and_breaks() {
        let timeout = io::Error::from(io::ErrorKind::WouldBlock);
        assert!(matches!(read(Err(timeout.into())), Read::WouldBlock));
        assert!(matches!(
            read(Err(tungstenite::Error::ConnectionClosed)),
            Read::Gone(None)
        ));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(matches!(read(Err(reset.into())), Read::Gone(None)));
        let broken = tungstenite::error::ProtocolError::ResetWithoutClosingHandshake;
        assert!(matches!(
            read(Err(broken.into())),
            Read::Gone(Some(ClientFailure::Protocol { .. }))
        ));
    }

    #[test]
    fn a_close_frame_gives_its_code_and_reason() {
        let frame = CloseFrame {
            code: CloseCode::Policy,
            reason: "slow consumer".into(),
        };
        let Read::Closing(failure) = read(Ok(Message::Close(Some(frame)))) else {
            panic!("a close frame");
        };
        let expected = ClientFailure::Closed {
            code: Some(1008),
            reason: "slow consumer".into(),
        };
        assert_eq!(failure, expected);
        let Read::Closing(failure) = read(Ok(Message::Close(None))) else {
            panic!("a close frame");
        };
        assert_eq!(failure, ClientFailure::dropped());
    }
}
