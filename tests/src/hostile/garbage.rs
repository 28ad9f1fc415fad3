//! Bytes that are no WebSocket upgrade: garbage, plain HTTP, a request that never ends, one
//! that never starts.

use super::{
    assert_server_still_serves, eventually, open_fds, quiet, read_to_end_within, relay, serial,
    server_sockets, start_with_pair,
};
use crate::{ServerEvent, Transport};
use std::io::Write;
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the server may take to drop a connection it cannot upgrade, far below the
/// handshake timeout these scenarios configure.
const PROMPTLY: Duration = Duration::from_secs(2);

/// Garbage bytes, a TLS hello, plain HTTP requests and a request with a broken header are
/// dropped at once (no event, nothing but perhaps an HTTP error answer), and the pair chats on.
pub fn non_http_bytes_are_dropped_and_the_server_keeps_serving(transport: Transport) {
    let _serial = serial();
    let setup = relay(quiet()).handshake_timeout(Duration::from_secs(60));
    let (mut server, mut pair) = start_with_pair(transport, setup);
    let (fds, sockets) = (open_fds(), server_sockets(server.addr().port()));

    let mut noise: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while noise.len() < 64 << 10 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        noise.extend_from_slice(&state.to_le_bytes());
    }
    let attempts: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", noise),
        (
            "a TLS client hello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
        ("NUL bytes then a newline", b"\0\0\0\0\r\n\r\n".to_vec()),
        (
            "plain HTTP",
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        ),
        (
            "a POST",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        ),
        (
            "HTTP/1.0 upgrade",
            b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec(),
        ),
        (
            "a bad WebSocket version",
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n\r\n"
                .to_vec(),
        ),
        (
            "a header line without a colon",
            b"GET / HTTP/1.1\r\nthis is no header\r\n\r\n".to_vec(),
        ),
    ];
    pair.chatter_during(|| {
        for (what, bytes) in &attempts {
            let started = Instant::now();
            let mut stream = TcpStream::connect(server.addr()).expect("connecting");
            // The server may drop the connection before everything is written.
            let _ = stream.write_all(bytes);
            let answer = read_to_end_within(&mut stream, PROMPTLY);
            assert!(
                answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
                "{what}: answered {}",
                String::from_utf8_lossy(&answer)
            );
            assert!(started.elapsed() < PROMPTLY, "{what}: dropped too late");
        }
    });
    let port = server.addr().port();
    eventually(
        PROMPTLY,
        "the dropped connections' descriptors closed",
        || open_fds() <= fds && server_sockets(port) <= sockets,
    );
    pair.exchange(2);
    let events = pair.events_until_marker(&mut server);
    assert!(
        events
            .iter()
            .all(|event| matches!(event, ServerEvent::Message(..))),
        "garbage produced an event: {events:?}"
    );
    assert_server_still_serves(&mut server, &mut pair);
}

/// Reads `stream` on a thread of its own until the server drops it, so that the drop is seen
/// when it comes; returns what came and how long after `started` the drop was seen.
fn watch_drop(
    mut stream: TcpStream,
    started: Instant,
    timeout: Duration,
) -> JoinHandle<(Vec<u8>, Duration)> {
    std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            let answer = read_to_end_within(&mut stream, timeout);
            (answer, started.elapsed())
        })
        .expect("spawning a watcher")
}

/// A client that connects and sends nothing, part of a request, or a request one byte at a
/// time, is dropped once the handshake timeout passes (not before: each is timed from before it
/// connects, and watched on a thread of its own so that its drop is seen when it comes); 200 of
/// them at once are no trouble.
pub fn handshake_that_never_finishes_is_dropped_at_the_timeout(transport: Transport) {
    let _serial = serial();
    let timeout = Duration::from_millis(400);
    let (mut server, mut pair) =
        start_with_pair(transport, relay(quiet()).handshake_timeout(timeout));
    let addr = server.addr();
    let (fds, sockets) = (open_fds(), server_sockets(addr.port()));
    let within = timeout * 4 + PROMPTLY;

    let drops = pair.chatter_during(|| {
        let mut watchers: Vec<JoinHandle<(Vec<u8>, Duration)>> = (0..200)
            .map(|i| {
                let started = Instant::now();
                let mut stream = TcpStream::connect(addr).expect("connecting");
                if i % 2 == 1 {
                    stream
                        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web")
                        .expect("writing part of a request");
                }
                watch_drop(stream, started, within)
            })
            .collect();
        // One byte every 20 ms: slower than the timeout allows.
        let started = Instant::now();
        let mut slow = TcpStream::connect(addr).expect("connecting");
        watchers.push(watch_drop(
            slow.try_clone().expect("cloning the stream"),
            started,
            within,
        ));
        let request = super::upgrade_request(addr);
        for byte in request.as_bytes() {
            if slow.write_all(&[*byte]).is_err() || started.elapsed() > timeout * 4 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        watchers
            .into_iter()
            .map(|watcher| {
                watcher
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Vec<_>>()
    });
    for (i, (answer, after)) in drops.iter().enumerate() {
        assert!(
            answer.is_empty(),
            "connection {i}: a half upgrade got an answer"
        );
        assert!(
            *after >= timeout,
            "connection {i} dropped {after:?} after connecting, before the {timeout:?} timeout"
        );
        assert!(
            *after < timeout + PROMPTLY,
            "connection {i} dropped only {after:?} after connecting, with a {timeout:?} timeout"
        );
    }
    eventually(
        PROMPTLY,
        "the dropped connections' descriptors closed",
        || open_fds() <= fds && server_sockets(addr.port()) <= sockets,
    );
    pair.exchange(2);
    assert_server_still_serves(&mut server, &mut pair);
}

/// A request head past 64 KiB (tungstenite's bound) is dropped at once, not read forever.
pub fn oversized_http_request_is_dropped(transport: Transport) {
    let _serial = serial();
    let setup = relay(quiet()).handshake_timeout(Duration::from_secs(60));
    let (mut server, mut pair) = start_with_pair(transport, setup);
    let addr = server.addr();
    pair.chatter_during(|| {
        for header in [true, false] {
            let started = Instant::now();
            let mut stream = TcpStream::connect(addr).expect("connecting");
            let mut head = super::upgrade_request(addr).into_bytes();
            head.truncate(head.len() - 2);
            if header {
                // One endless header value.
                head.extend_from_slice(b"X-Long: ");
            }
            let line = if header {
                &b"a"[..]
            } else {
                &b"X-Many: a\r\n"[..]
            };
            let mut written = head.len();
            let _ = stream.write_all(&head);
            while written < 1 << 20 && stream.write_all(&line.repeat(1024)).is_ok() {
                written += 1024 * line.len();
            }
            let _ = read_to_end_within(&mut stream, PROMPTLY);
            assert!(started.elapsed() < PROMPTLY * 2, "dropped too late");
        }
    });
    pair.exchange(2);
    let events = pair.events_until_marker(&mut server);
    assert!(
        events
            .iter()
            .all(|event| matches!(event, ServerEvent::Message(..))),
        "an oversized request produced an event: {events:?}"
    );
    assert_server_still_serves(&mut server, &mut pair);
}
