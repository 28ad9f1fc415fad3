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
/// handshake timeout passes, not before and not much later; a proper client is unaffected.
pub fn silent_tcp_client_is_dropped_after_the_handshake_timeout(transport: Transport) {
    let timeout = Duration::from_millis(200);
    let mut server = transport.start_with(Setup::new(quiet_config()).handshake_timeout(timeout));
    let addr = server.addr();
    // Each is timed from before it connects, on a thread of its own so that its drop is seen
    // when it comes: the server's clock for it starts at its accept, later, so even an exact
    // timer cannot drop it before `timeout` has passed here.
    let watch = |partial: Option<&'static [u8]>| {
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut stream = TcpStream::connect(addr).expect("connecting");
            if let Some(bytes) = partial {
                stream.write_all(bytes).expect("writing part of a request");
            }
            stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            let mut byte = [0_u8; 1];
            match stream.read(&mut byte) {
                Ok(0) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                other => panic!("expected the server to drop the connection, got {other:?}"),
            }
            started.elapsed()
        })
    };
    let silent = watch(None);
    let partial = watch(Some(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    let mut proper = Client::connect(server.addr());

    for (what, watcher) in [("silent", silent), ("partial", partial)] {
        let elapsed = watcher
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        assert!(
            elapsed >= timeout,
            "{what}: dropped after {elapsed:?}, before the {timeout:?} timeout"
        );
        // Not much later either: a second covers a loaded machine's scheduling.
        assert!(
            elapsed < timeout + Duration::from_secs(1),
            "{what}: dropped only after {elapsed:?}, with a {timeout:?} timeout"
        );
    }

    // The handshake timeout does not touch an open WebSocket, linked or not.
    std::thread::sleep(timeout);
    proper.link("alice");
    proper.expect_linked(&[("alice", true)]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);
}
