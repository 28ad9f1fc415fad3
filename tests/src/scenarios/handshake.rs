//! The HTTP upgrade: path, query parameters and the handshake timeout.

use super::quiet_config;
use crate::server::Setup;
use crate::{Client, ServerEvent, TIMEOUT, Transport};
use krmx_core::QueryRequirement;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A configured path: any other path is refused at the handshake with HTTP 404.
pub fn wrong_path_is_refused_with_http_404(transport: Transport) {
    let mut server = transport.start(quiet_config().path("game"));
    for path in ["/", "/lobby", "/game/", "/gamex", "/lobby?x=/game"] {
        match Client::try_connect(server.addr(), path) {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 404, "{path}");
            }
            Err(other) => panic!("{path}: expected an HTTP 404, got {other}"),
            Ok(_) => panic!("{path}: the upgrade was accepted"),
        }
    }
    server.expect_no_event_for(Duration::from_millis(20));
    for path in ["/game", "/game?room=1"] {
        let mut client = Client::connect_path(server.addr(), path);
        client.link("alice");
        client.expect_linked(&[("alice", true)]);
        server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);
        client.send_json(&serde_json::json!({"type": "krmx/leave"}));
        server.expect_events(&[ServerEvent::unlinked("alice"), ServerEvent::left("alice")]);
    }
}

/// Query requirements: a connection that fails one is closed with 1008 before any Krmx
/// message, and no event is emitted; one that passes links as usual.
pub fn failed_query_check_closes_with_1008_before_any_message(transport: Transport) {
    let config = quiet_config()
        .query("room", QueryRequirement::Present)
        .query("debug", QueryRequirement::Absent)
        .query("v", QueryRequirement::Equals("2".into()))
        .query(
            "key",
            QueryRequirement::matches(|key| key.len() == 3 && key.starts_with('k')),
        );
    let mut server = transport.start(config);
    for path in [
        "/",
        "/?v=2&key=kab",
        "/?room=1&v=2&key=kab&debug",
        "/?room=1&v=3&key=kab",
        "/?room=1&key=kab",
        "/?room=1&v=2&key=abc",
        "/?room=1&v=2",
    ] {
        let mut client = Client::connect_path(server.addr(), path);
        client.expect_close(1008);
    }
    server.expect_no_event_for(Duration::from_millis(20));

    let mut client = Client::connect_path(server.addr(), "/?room=&v=2&key=k12");
    client.link("alice");
    client.expect_linked(&[("alice", true)]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);
}

/// A TCP client that sends nothing (or only part of its request) is dropped once the
/// handshake timeout passes; a proper client is unaffected.
pub fn silent_tcp_client_is_dropped_after_the_handshake_timeout(transport: Transport) {
    let timeout = Duration::from_millis(200);
    let mut server = transport.start_with(Setup::new(quiet_config()).handshake_timeout(timeout));
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr()).expect("connecting");
    let mut partial = TcpStream::connect(server.addr()).expect("connecting");
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("writing part of a request");
    let mut proper = Client::connect(server.addr());

    for stream in [&mut silent, &mut partial] {
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut byte = [0_u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the server to drop the connection, got {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout - Duration::from_millis(20),
        "dropped after {elapsed:?}, before the {timeout:?} timeout"
    );
    assert!(elapsed < TIMEOUT, "dropped only after {elapsed:?}");

    // The handshake timeout does not touch an open WebSocket, linked or not.
    std::thread::sleep(timeout);
    proper.link("alice");
    proper.expect_linked(&[("alice", true)]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);
}
