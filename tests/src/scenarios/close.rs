//! Closing the server gracefully.

use super::{link_users, start_default};
use crate::msg::{joined, left, unlinked};
use crate::{Client, ServerEvent, Transport};
use krmx_core::Status;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Close: every user leaves in join order (linked users are unlinked first), every connection
/// then gets a close frame 1001, the close event is emitted and the server's thread returns.
pub fn server_close_unlinks_and_leaves_everyone_then_closes_with_1001(transport: Transport) {
    let mut server = start_default(transport);
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    server.join("carol");
    for client in &mut clients {
        client.expect_json(&joined("carol"));
    }
    server.expect_event(&ServerEvent::joined("carol"));
    let mut stranger = Client::connect(server.addr());
    assert_eq!(server.status(), Status::Listening);

    server.close();
    clients[0].expect_jsons(&[unlinked("alice"), left("alice")]);
    clients[0].expect_close(1001);
    clients[1].expect_jsons(&[
        unlinked("alice"),
        left("alice"),
        unlinked("bob"),
        left("bob"),
    ]);
    clients[1].expect_close(1001);
    stranger.expect_close(1001);
    server.expect_events(&[
        ServerEvent::unlinked("alice"),
        ServerEvent::left("alice"),
        ServerEvent::unlinked("bob"),
        ServerEvent::left("bob"),
        ServerEvent::left("carol"),
        ServerEvent::Closed,
    ]);
    server.expect_finished();
    // The listener is gone with it.
    assert!(Client::try_connect(server.addr(), "/").is_err());
}

/// Connections still in their HTTP upgrade when the server closes are dropped at once: they
/// do not keep the server from finishing until their handshake timeout.
pub fn server_close_drops_connections_still_in_their_handshake(transport: Transport) {
    let mut server = start_default(transport);
    let mut silent = TcpStream::connect(server.addr()).expect("connecting");
    let mut partial = TcpStream::connect(server.addr()).expect("connecting");
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("writing part of a request");
    let mut client = Client::connect(server.addr());
    // Let the server accept both before it closes.
    client.link("alice");
    client.expect_linked(&[("alice", true)]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);

    let started = Instant::now();
    server.close();
    client.expect_jsons(&[unlinked("alice"), left("alice")]);
    client.expect_close(1001);
    server.expect_events(&[
        ServerEvent::unlinked("alice"),
        ServerEvent::left("alice"),
        ServerEvent::Closed,
    ]);
    server.expect_finished();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "the server finished only after {elapsed:?}"
    );
    for stream in [&mut silent, &mut partial] {
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let mut byte = [0_u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection to be dropped, got {other:?}"),
        }
    }
}
