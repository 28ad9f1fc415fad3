//! [`Client`]: a blocking WebSocket test client (tungstenite over a std `TcpStream` with read
//! timeouts), and [`RawConnection`]: the same socket without tungstenite, for frames a client
//! library would not send and for a peer that never answers pings.

use crate::frames::{self, ServerFrame};
use crate::{TIMEOUT, VERSION, msg};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::{Error, HandshakeError, Message, WebSocket};

/// What a client read next.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A text message, parsed as JSON.
    Json(Value),
    /// A binary message.
    Binary(Vec<u8>),
    /// A close frame: its code and reason, if it had any.
    Close(Option<(u16, String)>),
    /// The connection ended without (further) close frame: EOF, reset, or an error.
    Ended(String),
}

/// A blocking WebSocket client. Pings are answered whenever it reads; one that should stop
/// answering simply stops reading, or goes [`raw`](Self::into_raw).
#[derive(Debug)]
pub struct Client {
    ws: WebSocket<TcpStream>,
}

impl Client {
    /// Connects to `ws://addr/`; panics when the handshake fails.
    #[must_use]
    pub fn connect(addr: SocketAddr) -> Self {
        Self::connect_path(addr, "/")
    }

    /// Connects to `ws://addr{path}`; panics when the handshake fails.
    #[must_use]
    pub fn connect_path(addr: SocketAddr, path: &str) -> Self {
        Self::try_connect(addr, path)
            .unwrap_or_else(|error| panic!("connecting to ws://{addr}{path} failed: {error}"))
    }

    /// Connects to `ws://addr{path}`.
    ///
    /// # Errors
    /// The handshake failed (for example `Error::Http` with the refusal's status).
    pub fn try_connect(addr: SocketAddr, path: &str) -> Result<Self, Error> {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        Self::handshake(stream, &format!("ws://{addr}{path}"))
    }

    /// Runs the client handshake for `url` over a connected stream.
    ///
    /// # Errors
    /// The handshake failed or timed out.
    pub fn handshake(stream: TcpStream, url: &str) -> Result<Self, Error> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        match tungstenite::client::client(url, stream) {
            Ok((ws, _response)) => Ok(Self { ws }),
            Err(HandshakeError::Failure(error)) => Err(error),
            Err(HandshakeError::Interrupted(_)) => Err(Error::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "the handshake timed out",
            ))),
        }
    }

    /// Sends a JSON value as a text message.
    pub fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string());
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .unwrap_or_else(|error| panic!("sending {text} failed: {error}"));
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::binary(bytes.to_vec()))
            .unwrap_or_else(|error| panic!("sending a binary message failed: {error}"));
    }

    /// Writes raw bytes to the socket (hand-crafted frames from [`frames`]), after anything
    /// tungstenite still has to write.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.ws.flush().expect("flushing before raw bytes");
        let stream = self.ws.get_mut();
        stream.write_all(bytes).expect("writing raw bytes");
        stream.flush().expect("flushing raw bytes");
    }

    /// Sends `krmx/link` for `username` with the default version and no auth.
    pub fn link(&mut self, username: &str) {
        self.send_json(&msg::link(username, VERSION, None));
    }

    /// Sends `krmx/link` with every field chosen.
    pub fn link_with(&mut self, username: &str, version: &str, auth: Option<&str>) {
        self.send_json(&msg::link(username, version, auth));
    }

    /// Links as `username` and expects the accepted sequence for `roster`: every user in join
    /// order (itself included) with whether it is linked.
    pub fn link_as(&mut self, username: &str, roster: &[(&str, bool)]) {
        self.link(username);
        self.expect_linked(roster);
    }

    /// Expects `krmx/accepted`, then for every user of `roster` in order `krmx/joined` and, if
    /// linked, `krmx/linked`.
    pub fn expect_linked(&mut self, roster: &[(&str, bool)]) {
        self.expect_json(&msg::accepted());
        for (username, is_linked) in roster {
            self.expect_json(&msg::joined(username));
            if *is_linked {
                self.expect_json(&msg::linked(username));
            }
        }
    }

    /// The next message, close frame or end within `timeout` (pings are answered and skipped);
    /// `None` when nothing came.
    pub fn next_within(&mut self, timeout: Duration) -> Option<Incoming> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = self
                .ws
                .get_mut()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    let value = serde_json::from_str(text.as_str()).unwrap_or_else(|_| {
                        panic!("the server sent text that is not JSON: {text}")
                    });
                    return Some(Incoming::Json(value));
                }
                Ok(Message::Binary(bytes)) => return Some(Incoming::Binary(bytes.to_vec())),
                Ok(Message::Close(frame)) => {
                    return Some(Incoming::Close(
                        frame.map(|frame| (u16::from(frame.code), frame.reason.to_string())),
                    ));
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Err(Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                    return Some(Incoming::Ended("closed".to_owned()));
                }
                Err(error) => return Some(Incoming::Ended(error.to_string())),
            }
        }
    }

    /// The next message, close frame or end; panics after [`TIMEOUT`].
    pub fn next_incoming(&mut self) -> Incoming {
        self.next_within(TIMEOUT)
            .unwrap_or_else(|| panic!("nothing arrived within {TIMEOUT:?}"))
    }

    /// The next text message as JSON; panics on anything else.
    pub fn next_json(&mut self) -> Value {
        match self.next_incoming() {
            Incoming::Json(value) => value,
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Asserts that the next message is exactly `expected`.
    pub fn expect_json(&mut self, expected: &Value) {
        match self.next_within(TIMEOUT) {
            Some(Incoming::Json(value)) if value == *expected => {}
            Some(other) => panic!("expected {expected}, got {other:?}"),
            None => panic!("expected {expected}, got nothing within {TIMEOUT:?}"),
        }
    }

    /// Asserts that the next messages are exactly these, in this order.
    pub fn expect_jsons(&mut self, expected: &[Value]) {
        for value in expected {
            self.expect_json(value);
        }
    }

    /// Asserts that the next thing is a close frame with `code`, completes the close handshake
    /// and closes the socket. Returns the close reason.
    pub fn expect_close(&mut self, code: u16) -> String {
        match self.next_incoming() {
            Incoming::Close(Some((got, reason))) if got == code => {
                self.finish_close();
                reason
            }
            other => panic!("expected a close frame with code {code}, got {other:?}"),
        }
    }

    /// Collects text messages until a close frame with `code`, completes the close handshake
    /// and returns the messages.
    pub fn expect_close_after_texts(&mut self, code: u16) -> Vec<Value> {
        let mut texts = Vec::new();
        loop {
            match self.next_incoming() {
                Incoming::Json(value) => texts.push(value),
                Incoming::Close(Some((got, _))) if got == code => {
                    self.finish_close();
                    return texts;
                }
                other => panic!(
                    "expected a close frame with code {code} (after {} messages), got {other:?}",
                    texts.len()
                ),
            }
        }
    }

    /// Asserts that nothing but pings arrives for `duration` (pings are answered).
    pub fn expect_nothing_for(&mut self, duration: Duration) {
        if let Some(incoming) = self.next_within(duration) {
            panic!("expected nothing for {duration:?}, got {incoming:?}");
        }
    }

    /// Closes from the client side (code 1000) and waits for the server's answer.
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        loop {
            match self.next_within(TIMEOUT) {
                Some(Incoming::Ended(_)) | None => break,
                Some(_) => {}
            }
        }
        let _ = self.ws.get_mut().shutdown(Shutdown::Both);
    }

    /// Drops the TCP connection without a close handshake.
    pub fn drop_connection(mut self) {
        let _ = self.ws.get_mut().shutdown(Shutdown::Both);
    }

    /// The socket without tungstenite: nothing answers pings any more.
    #[must_use]
    pub fn into_raw(self) -> RawConnection {
        RawConnection::new(self.ws.into_inner())
    }

    /// Reads until the end of the connection so that the close reply goes out, then closes the
    /// socket.
    fn finish_close(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            match self.next_within(Duration::from_millis(200)) {
                Some(Incoming::Ended(_)) => break,
                Some(other) => panic!("expected the end of the connection, got {other:?}"),
                None => {}
            }
        }
        let _ = self.ws.get_mut().shutdown(Shutdown::Both);
    }
}

/// What a [`RawConnection`] read next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawIncoming {
    /// One server frame.
    Frame(ServerFrame),
    /// The peer closed the connection (EOF or reset).
    Ended,
}

/// A WebSocket connection past its handshake, driven byte by byte: it never answers a ping.
#[derive(Debug)]
pub struct RawConnection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl RawConnection {
    /// Wraps a stream whose handshake is done.
    #[must_use]
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing raw bytes");
    }

    /// The next frame or the end within `timeout`; `None` when nothing came.
    pub fn next_within(&mut self, timeout: Duration) -> Option<RawIncoming> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((frame, used)) = ServerFrame::parse(&self.buffer) {
                self.buffer.drain(..used);
                return Some(RawIncoming::Frame(frame));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = self
                .stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            let mut chunk = [0_u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Some(RawIncoming::Ended),
                Ok(n) => self
                    .buffer
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Some(RawIncoming::Ended),
            }
        }
    }

    /// Reads until a close frame with `code`, never answering pings; returns how many pings
    /// came and the text messages (as JSON) in order. Panics on anything else or after
    /// `timeout`.
    pub fn expect_close_raw(&mut self, code: u16, timeout: Duration) -> (usize, Vec<Value>) {
        let deadline = Instant::now() + timeout;
        let mut pings = 0;
        let mut texts = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left) {
                Some(RawIncoming::Frame(frame)) if frame.opcode == frames::PING => pings += 1,
                Some(RawIncoming::Frame(frame)) if frame.opcode == frames::TEXT && frame.fin => {
                    texts.push(serde_json::from_slice(&frame.payload).expect("JSON text"));
                }
                Some(RawIncoming::Frame(frame)) if frame.close_code() == Some(code) => {
                    return (pings, texts);
                }
                other => panic!(
                    "expected a close frame with code {code} (after {pings} pings and {texts:?}), got {other:?}"
                ),
            }
        }
    }

    /// Expects the end of the connection within `timeout`, skipping whatever frames come first.
    pub fn expect_end(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left) {
                Some(RawIncoming::Ended) => return,
                Some(RawIncoming::Frame(_)) => {}
                None => panic!("the connection did not end within {timeout:?}"),
            }
        }
    }
}
