//! What the smol transport does on the wire: refusals, close codes, the outbound bound and the
//! deadlines it enforces (the same behaviour as the mio transport).

mod support;

use krmx_core::{Event, KrmxConfig, Message};
use krmx_transport_smol::TransportConfig;
use serde_json::json;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Client, start, start_with, within};
use tungstenite::Message as WsMessage;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

async fn linked(server: &mut support::Running, username: &str) -> Client {
    let mut client = server.client().await;
    client.link(username, None).await;
    assert_eq!(client.kind().await, "krmx/accepted");
    loop {
        if let Event::Linked {
            username: linked, ..
        } = server.next_event().await.event
        {
            assert_eq!(linked.as_str(), username);
            return client;
        }
    }
}

#[test]
fn a_wrong_path_is_refused_with_404() {
    smol::block_on(async {
        let config = KrmxConfig::default().path("game");
        let server = start(config).await;
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        let request = "GET /lobby HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        within("the refusal", stream.read_to_end(&mut response))
            .await
            .expect("read");
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");
        // The right path works.
        let mut client = Client::connect(server.addr, "/game").await;
        client.link("simon", None).await;
        assert_eq!(client.kind().await, "krmx/accepted");
    });
}

#[test]
fn a_failed_query_check_closes_with_1008_before_any_message() {
    smol::block_on(async {
        let config = KrmxConfig::default().query("room", krmx_core::QueryRequirement::Present);
        let server = start(config).await;
        let mut client = Client::connect(server.addr, "/?other=1").await;
        assert_eq!(
            client.close_frame().await,
            (1008, "invalid query parameters".to_owned())
        );
    });
}

#[test]
fn an_oversize_message_closes_with_1009_and_unlinks() {
    smol::block_on(async {
        let config = KrmxConfig::default().max_message_bytes(1024);
        let mut server = start(config).await;
        let mut client = linked(&mut server, "simon").await;
        let big = json!({ "type": "chat/say", "payload": "x".repeat(2000) });
        client.send_text(big.to_string()).await;
        assert_eq!(
            client.close_frame().await,
            (1009, "message too large".to_owned())
        );
        assert!(matches!(
            server.next_event().await.event,
            Event::Unlinked { .. }
        ));
    });
}

#[test]
fn invalid_utf8_closes_with_1007_and_unlinks() {
    smol::block_on(async {
        let mut server = start(KrmxConfig::default()).await;
        let mut client = linked(&mut server, "simon").await;
        let frame = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
        client.ws.send(WsMessage::Frame(frame)).await.expect("send");
        assert_eq!(
            client.close_frame().await,
            (1007, "invalid utf-8".to_owned())
        );
        assert!(matches!(
            server.next_event().await.event,
            Event::Unlinked { .. }
        ));
    });
}

#[test]
fn a_client_that_does_not_read_is_closed_as_a_slow_consumer() {
    smol::block_on(async {
        let config = KrmxConfig::default().max_buffered_bytes(256 << 10);
        let mut server = start(config).await;
        let mut slow = linked(&mut server, "slow").await;
        let payload = "y".repeat(64 << 10);
        let mut unlinked = false;
        let mut sent = 0;
        while !unlinked {
            sent += 1;
            // The kernel's buffers take several megabytes on loopback before the queue grows.
            assert!(sent < 2_000, "never reported as a slow consumer");
            server
                .handle
                .send(
                    "slow",
                    Message::new("bulk/data").with_payload(json!(payload)),
                )
                .await
                .ok();
            while let Some(Some(event)) = smol::future::poll_once(server.events.next_event()).await
            {
                unlinked |= matches!(event.event, Event::Unlinked { .. });
            }
        }
        assert_eq!(slow.close_frame().await, (1008, "slow consumer".to_owned()));
    });
}

#[test]
fn a_stalled_handshake_is_dropped_after_the_handshake_timeout() {
    smol::block_on(async {
        let timeout = Duration::from_millis(200);
        let transport = TransportConfig::default().handshake_timeout(timeout);
        let server = start_with(KrmxConfig::default(), transport).await;
        // Timed from before connecting: the server's clock for this connection starts at its
        // accept, later, so even an exact timer cannot drop it before `timeout` has passed here.
        let started = Instant::now();
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        let mut rest = Vec::new();
        let _ = within("the drop", stream.read_to_end(&mut rest)).await;
        let elapsed = started.elapsed();
        assert!(rest.is_empty(), "a stalled handshake got an answer");
        assert!(
            elapsed >= timeout,
            "dropped after {elapsed:?}, before the {timeout:?} handshake timeout"
        );
        // Not much later either: a second covers a loaded machine's scheduling.
        assert!(
            elapsed < timeout + Duration::from_secs(1),
            "dropped only after {elapsed:?}, with a {timeout:?} handshake timeout"
        );
    });
}

#[test]
fn a_peer_that_stops_answering_pings_is_unlinked() {
    smol::block_on(async {
        let config = KrmxConfig::default().ping_interval(Duration::from_millis(300));
        let mut server = start(config).await;
        // A client that links and then never reads (so never answers a ping).
        let _silent = linked(&mut server, "silent").await;
        // One that reads (its pings are answered) stays linked.
        let mut alive = linked(&mut server, "alive").await;
        let reader = smol::spawn(async move {
            use smol::stream::StreamExt;
            while let Some(Ok(_)) = alive.ws.next().await {}
        });
        loop {
            if let Event::Unlinked { username, .. } = server.next_event().await.event {
                assert_eq!(username.as_str(), "silent");
                break;
            }
        }
        let users = server.handle.users().await.expect("users");
        assert!(
            users
                .iter()
                .any(|u| u.username.as_str() == "alive" && u.is_linked)
        );
        drop(reader);
    });
}

#[test]
fn a_peer_close_unlinks_and_the_server_answers_the_close() {
    smol::block_on(async {
        let mut server = start(KrmxConfig::default()).await;
        let mut client = linked(&mut server, "simon").await;
        client.ws.close(None).await.expect("close");
        assert!(matches!(
            server.next_event().await.event,
            Event::Unlinked { .. }
        ));
        // The client sees the server's close reply and then the end.
        loop {
            match client.next().await {
                support::Received::Close(_) => {}
                support::Received::Ended => break,
                support::Received::Json(_) => {}
            }
        }
    });
}
