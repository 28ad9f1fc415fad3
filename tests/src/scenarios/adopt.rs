//! Connections handed over by an application that reads the HTTP request itself.

use super::start_default;
use crate::{Client, ServerEvent, TIMEOUT, Transport};
use std::io::Read;
use std::net::{TcpListener, TcpStream};

/// Reads from `stream` until the end of the HTTP request head (or `limit` bytes).
fn read_request_head(stream: &mut TcpStream, limit: usize) -> Vec<u8> {
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while head.len() < limit && !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("reading the request");
        assert_eq!(n, 1, "the client closed before its request ended");
        head.extend_from_slice(&byte);
    }
    head
}

/// An application serving HTTP on its own port reads the upgrade request (wholly or in part)
/// and hands the stream over with the bytes it read; the upgrade finishes on the Krmx server
/// and the connection links as usual.
pub fn adopted_connection_with_a_pre_read_request_links(transport: Transport) {
    let mut server = start_default(transport);
    let app = TcpListener::bind("127.0.0.1:0").expect("binding the app's listener");
    let app_addr = app.local_addr().expect("address");

    let mut clients: Vec<Client> = Vec::new();
    for (name, limit) in [("alice", usize::MAX), ("bob", 10), ("carol", 0)] {
        let connecting = std::thread::spawn(move || {
            let stream = TcpStream::connect(app_addr).expect("connecting to the app");
            Client::handshake(stream, &format!("ws://{app_addr}/krmx"))
                .expect("the handshake through the app")
        });
        let (mut stream, _) = app.accept().expect("accepting");
        let already_read = read_request_head(&mut stream, limit);
        if limit == usize::MAX {
            assert!(already_read.starts_with(b"GET /krmx HTTP/1.1\r\n"));
        }
        server.adopt(stream, already_read).expect("adopting");
        let mut client = connecting.join().expect("the client thread panicked");
        client.link(name);
        let roster: Vec<(&str, bool)> = [("alice", true), ("bob", true), ("carol", true)]
            .into_iter()
            .take_while(|(user, _)| *user != name)
            .chain([(name, true)])
            .collect();
        client.expect_linked(&roster);
        server.expect_events(&[ServerEvent::joined(name), ServerEvent::linked(name)]);
        for other in &mut clients {
            other.expect_jsons(&[crate::msg::joined(name), crate::msg::linked(name)]);
        }
        clients.push(client);
    }

    // Connections through the server's own listener still work alongside.
    let mut direct = Client::connect(server.addr());
    direct.link("dave");
    direct.expect_linked(&[
        ("alice", true),
        ("bob", true),
        ("carol", true),
        ("dave", true),
    ]);
    server.expect_events(&[ServerEvent::joined("dave"), ServerEvent::linked("dave")]);
}
