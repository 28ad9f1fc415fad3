//! A small WebSocket client on smol and helpers for the loopback tests.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used
)]

use async_tungstenite::WebSocketStream;
use krmx_core::{Event as CoreEvent, KrmxConfig};
use krmx_transport_smol::{Event, Events, Server, TransportConfig};
use serde_json::{Value, json};
use smol::Timer;
use smol::net::TcpStream;
use smol::stream::StreamExt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;

/// How long any single step may take.
pub const STEP: Duration = Duration::from_secs(5);

/// Fails the test if `future` takes longer than [`STEP`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    smol::future::or(future, async {
        Timer::after(STEP).await;
        panic!("timed out: {what}");
    })
    .await
}

/// A server on an ephemeral port, driven by `run` on a task, with its event stream.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: krmx_transport_smol::Handle,
    pub events: Events,
    pub driver: smol::Task<()>,
}

/// Binds and runs a server with `config` (1 s close linger).
pub async fn start(config: KrmxConfig) -> Running {
    start_with(
        config,
        TransportConfig::default().close_linger(Duration::from_secs(1)),
    )
    .await
}

/// Binds and runs a server with `config` and `transport`.
pub async fn start_with(config: KrmxConfig, transport: TransportConfig) -> Running {
    let mut server = Server::bind("127.0.0.1:0", config, transport)
        .await
        .expect("bind");
    let addr = server.local_addr().expect("a listener");
    let handle = server.handle();
    let events = server.events();
    let driver = smol::spawn(server.run());
    let mut running = Running {
        addr,
        handle,
        events,
        driver,
    };
    let first = running.next_event().await;
    assert!(
        matches!(
            first,
            Event { event: CoreEvent::Listening { port }, responder: None } if port == addr.port()
        ),
        "{first:?}"
    );
    running
}

impl Running {
    /// The next event with its responder, failing after [`STEP`].
    pub async fn next_event(&mut self) -> Event {
        within("an event", self.events.next_event())
            .await
            .expect("the event stream ended")
    }

    /// A client connected to `/`.
    pub async fn client(&self) -> Client {
        Client::connect(self.addr, "/").await
    }
}

/// A WebSocket client.
pub struct Client {
    pub ws: WebSocketStream<TcpStream>,
}

impl Client {
    /// Connects and upgrades on `path`.
    pub async fn connect(addr: SocketAddr, path: &str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let url = format!("ws://{addr}{path}");
        let (ws, _) = within("the upgrade", async_tungstenite::client_async(url, stream))
            .await
            .expect("upgrade");
        Self { ws }
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send");
    }

    /// Sends `krmx/link` for `username` with protocol version 0.6.0.
    pub async fn link(&mut self, username: &str, auth: Option<&str>) {
        let mut payload = json!({ "username": username, "version": "0.6.0" });
        if let Some(auth) = auth {
            payload["auth"] = json!(auth);
        }
        let link = json!({ "type": "krmx/link", "payload": payload });
        self.send_text(link.to_string()).await;
    }

    /// The next text or close frame (pings are answered by the client and skipped).
    pub async fn next(&mut self) -> Received {
        within("a message", async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        return Received::Json(serde_json::from_str(&text).expect("JSON"));
                    }
                    Some(Ok(Message::Close(frame))) => return Received::Close(frame),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Received::Ended,
                }
            }
        })
        .await
    }

    /// The next message, which must be JSON.
    pub async fn json(&mut self) -> Value {
        match self.next().await {
            Received::Json(value) => value,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The next message's type.
    pub async fn kind(&mut self) -> String {
        let value = self.json().await;
        value["type"].as_str().expect("a type").to_owned()
    }

    /// Reads until the close frame and returns its code and reason.
    pub async fn close_frame(&mut self) -> (u16, String) {
        loop {
            match self.next().await {
                Received::Json(_) => {}
                Received::Close(Some(frame)) => {
                    return (frame.code.into(), frame.reason.to_string());
                }
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}

/// What a client read.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Close(Option<CloseFrame>),
    Ended,
}

/// `{"type":kind,"payload":{"username":name}}`.
pub fn presence(kind: &str, username: &str) -> Value {
    json!({ "type": kind, "payload": { "username": username } })
}
