//! A fleet of WebSocket clients on one mio poll: non-blocking connects and handshakes, links,
//! and a callback for every text message.

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tungstenite::handshake::MidHandshake;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{HandshakeError, Message, WebSocket};

enum State {
    Handshaking(Box<MidHandshake<ClientHandshake<TcpStream>>>),
    Open(Box<WebSocket<TcpStream>>),
    Gone,
}

/// One client.
pub(crate) struct Client {
    state: State,
    /// Text messages to send once open.
    pending: Vec<String>,
}

/// Many clients on one poll.
pub(crate) struct Fleet {
    poll: Poll,
    events: Events,
    clients: Vec<Client>,
    url: String,
    addr: SocketAddr,
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 << 10)
        .write_buffer_size(0)
        .max_message_size(Some(64 << 20))
}

impl Fleet {
    pub(crate) fn new(url: &str) -> io::Result<Self> {
        let authority = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| io::Error::other("expected a ws:// URL"))?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)?
            .next()
            .ok_or_else(|| io::Error::other("the URL resolves to no address"))?;
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            clients: Vec::new(),
            url: url.to_owned(),
            addr,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.clients.len()
    }

    /// Starts connecting a client that sends `first` once open; returns its index.
    pub(crate) fn add(&mut self, first: Vec<String>) -> io::Result<usize> {
        let index = self.clients.len();
        let mut stream = TcpStream::connect(self.addr)?;
        let _ = stream.set_nodelay(true);
        self.poll.registry().register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let request =
            tungstenite::client::IntoClientRequest::into_client_request(self.url.as_str())
                .map_err(io::Error::other)?;
        let state =
            match tungstenite::client::client_with_config(request, stream, Some(ws_config())) {
                Ok((ws, _)) => State::Open(Box::new(ws)),
                Err(HandshakeError::Interrupted(mid)) => State::Handshaking(Box::new(mid)),
                Err(HandshakeError::Failure(error)) => return Err(io::Error::other(error)),
            };
        self.clients.push(Client {
            state,
            pending: first,
        });
        self.flush_pending(index);
        Ok(index)
    }

    /// Whether client `index` failed (handshake refused, connection lost).
    pub(crate) fn is_gone(&self, index: usize) -> bool {
        matches!(self.clients.get(index).map(|c| &c.state), Some(State::Gone))
    }

    /// Whether client `index` finished its handshake.
    pub(crate) fn is_open(&self, index: usize) -> bool {
        matches!(
            self.clients.get(index).map(|c| &c.state),
            Some(State::Open(_))
        )
    }

    fn flush_pending(&mut self, index: usize) {
        let Some(client) = self.clients.get_mut(index) else {
            return;
        };
        let State::Open(ws) = &mut client.state else {
            return;
        };
        for text in client.pending.drain(..) {
            let _ = ws.write(Message::text(text));
        }
        let _ = ws.flush();
    }

    /// Polls once (up to `timeout`) and hands every text message received to `on_text(client,
    /// text)`. Returns how many messages were handled.
    pub(crate) fn turn(
        &mut self,
        timeout: Duration,
        on_text: &mut dyn FnMut(usize, &str),
    ) -> io::Result<usize> {
        self.poll.poll(&mut self.events, Some(timeout))?;
        let ready: Vec<usize> = self.events.iter().map(|e| e.token().0).collect();
        let mut handled = 0;
        for index in ready {
            handled += self.drive(index, on_text);
        }
        Ok(handled)
    }

    fn drive(&mut self, index: usize, on_text: &mut dyn FnMut(usize, &str)) -> usize {
        let Some(client) = self.clients.get_mut(index) else {
            return 0;
        };
        if let State::Handshaking(_) = client.state {
            let State::Handshaking(mid) = std::mem::replace(&mut client.state, State::Gone) else {
                return 0;
            };
            client.state = match mid.handshake() {
                Ok((ws, _)) => State::Open(Box::new(ws)),
                Err(HandshakeError::Interrupted(mid)) => State::Handshaking(Box::new(mid)),
                Err(HandshakeError::Failure(error)) => {
                    eprintln!("client {index}: handshake failed: {error}");
                    State::Gone
                }
            };
            self.flush_pending(index);
        }
        let Some(client) = self.clients.get_mut(index) else {
            return 0;
        };
        let State::Open(ws) = &mut client.state else {
            return 0;
        };
        let mut handled = 0;
        loop {
            match ws.read() {
                Ok(Message::Text(text)) => {
                    handled += 1;
                    on_text(index, text.as_str());
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    eprintln!("client {index}: {error}");
                    client.state = State::Gone;
                    break;
                }
            }
        }
        if let State::Open(ws) = &mut client.state {
            let _ = ws.flush();
        }
        handled
    }
}

/// A `krmx/link` message.
pub(crate) fn link_message(username: &str, version: &str) -> String {
    serde_json::json!({"type": "krmx/link", "payload": {"username": username, "version": version}})
        .to_string()
}
