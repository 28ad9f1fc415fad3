//! Floods: thousands of connections that never link, and thousands of pings.

use super::{
    assert_server_still_serves, eventually, finish_upgrade, open_fds, quiet, relay, rss_kib,
    rss_tolerance_kib, serial, server_sockets, start_upgrade, start_with_pair, upgraded,
    wait_event,
};
use crate::client::RawIncoming;
use crate::frames::{self, ServerFrame};
use crate::{Client, Incoming, RawConnection, ServerEvent, TIMEOUT, Transport};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many connections the flood opens.
const FLOOD: usize = 2000;

/// How many connections the flood opens before it reads their upgrade answers.
const WAVE: usize = 100;

/// The next frame of `conn`, panicking on the end of the connection or after `timeout`.
fn next_frame(conn: &mut RawConnection, timeout: Duration) -> ServerFrame {
    match conn.next_within(timeout) {
        Some(RawIncoming::Frame(frame)) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// The close frame's code and reason.
fn close_of(frame: &ServerFrame) -> (u16, String) {
    assert_eq!(frame.opcode, frames::CLOSE, "not a close frame: {frame:?}");
    let code = frame.close_code().expect("a close code");
    let reason = String::from_utf8_lossy(frame.payload.get(2..).unwrap_or_default()).into_owned();
    (code, reason)
}

/// A connection that upgrades and never links, watched on a thread of its own so that the
/// close is seen when it comes: returns how long after it started connecting (before the
/// server could start any timer for it) the `unlinked timeout` close came.
fn unlinked_probe(addr: SocketAddr, timeout: Duration) -> JoinHandle<Duration> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut conn = RawConnection::new(upgraded(addr));
        let frame = next_frame(&mut conn, timeout + TIMEOUT);
        let after = started.elapsed();
        assert_eq!(close_of(&frame), (1008, "unlinked timeout".to_owned()));
        conn.send(&frames::close(1008));
        conn.expect_end(TIMEOUT);
        after
    })
}

/// 2000 connections upgrade and never link. The unlinked timeout (3 s here, longer than the
/// flood takes to connect, so the server holds all of them at once) closes each with 1008
/// `unlinked timeout`, no earlier; the server's descriptors and memory come back down; the pair
/// chats throughout, losing nothing.
pub fn thousands_of_connections_that_never_link_are_closed_by_the_unlinked_timeout(
    transport: Transport,
) {
    let _serial = serial();
    let timeout = Duration::from_secs(3);
    let config = quiet().unlinked_timeout(Some(timeout));
    let (mut server, mut pair) = start_with_pair(transport, relay(config));
    let addr = server.addr();
    let (fds, sockets, rss) = (open_fds(), server_sockets(addr.port()), rss_kib());

    let (peak_rss, peak_sockets, upgrading, probes) = pair.chatter_during(|| {
        // Watched closely: one connection before the flood, one after.
        let first = unlinked_probe(addr, timeout);
        let started = Instant::now();
        // In waves the listen backlog (128 by default) takes: past it the kernel drops
        // connection attempts, which then wait for a retransmission, a second or more.
        let mut streams: Vec<TcpStream> = Vec::with_capacity(FLOOD);
        while streams.len() < FLOOD {
            let wave = WAVE.min(FLOOD - streams.len());
            let mut started: Vec<TcpStream> = (0..wave).map(|_| start_upgrade(addr)).collect();
            for stream in &mut started {
                finish_upgrade(stream);
            }
            streams.append(&mut started);
        }
        let upgrading = started.elapsed();
        let (peak_rss, peak_sockets) = (rss_kib(), server_sockets(addr.port()));
        let last = unlinked_probe(addr, timeout);
        for stream in streams {
            let mut conn = RawConnection::new(stream);
            let frame = next_frame(&mut conn, timeout + TIMEOUT);
            assert_eq!(close_of(&frame), (1008, "unlinked timeout".to_owned()));
            // The close handshake: answer, then the server ends the connection.
            conn.send(&frames::close(1008));
            conn.expect_end(TIMEOUT);
        }
        let probes = [first, last].map(|probe| {
            probe
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (peak_rss, peak_sockets, upgrading, probes)
    });
    for after in probes {
        assert!(
            after >= timeout,
            "closed {after:?} after connecting, before the {timeout:?} timeout"
        );
        assert!(
            after < timeout + TIMEOUT,
            "closed only {after:?} after connecting, with a {timeout:?} timeout"
        );
    }
    eventually(TIMEOUT, "the descriptors of the flood closed", || {
        open_fds() <= fds && server_sockets(addr.port()) <= sockets
    });
    let after_rss = rss_kib();
    eprintln!(
        "{FLOOD} unlinked connections upgraded in {upgrading:?}: RSS {rss} KiB before, \
         {peak_rss} KiB at the peak, {after_rss} KiB after; the server's sockets {sockets} \
         before, {peak_sockets} at the peak; probes closed after {probes:?}"
    );
    assert!(
        upgrading < timeout,
        "the flood took {upgrading:?} to upgrade, not under the {timeout:?} timeout"
    );
    assert!(
        peak_sockets >= sockets + FLOOD,
        "the server held {peak_sockets} sockets at the peak, {sockets} before the flood of {FLOOD}"
    );
    // Freed memory need not go back to the system, but the server must not keep what the
    // flood cost: allow a generous 32 MiB above the baseline.
    assert!(
        after_rss <= rss + (32 << 10),
        "RSS {after_rss} KiB after the flood, {rss} KiB before"
    );
    pair.exchange(4);
    assert_server_still_serves(&mut server, &mut pair);
}

/// With `max_unlinked_connections` 100, connections beyond 100 unlinked ones are closed at
/// once with 1013; linked users are unaffected; once places free up, newcomers link again.
pub fn connections_beyond_the_unlinked_cap_are_refused_with_1013(transport: Transport) {
    let _serial = serial();
    const CAP: usize = 100;
    let config = quiet().max_unlinked_connections(Some(CAP));
    let (mut server, mut pair) = start_with_pair(transport, relay(config));
    let addr = server.addr();
    let mut held = pair.chatter_during(|| {
        // Each upgrade is done before the next starts, so the server opens them in order: the
        // first CAP stay, the others are refused.
        let streams: Vec<TcpStream> = (0..CAP * 3).map(|_| upgraded(addr)).collect();
        let mut held = Vec::new();
        for (i, stream) in streams.into_iter().enumerate() {
            let mut conn = RawConnection::new(stream);
            if i < CAP {
                held.push(conn);
            } else {
                let frame = next_frame(&mut conn, TIMEOUT);
                assert_eq!(
                    close_of(&frame),
                    (1013, "too many unlinked connections".to_owned()),
                    "connection {i}"
                );
            }
        }
        // Nothing came for those kept (no close): a ping from each is answered, and its pong
        // is the first thing it gets. The server answers in order, so a close sent before
        // would come first.
        for (i, conn) in held.iter_mut().enumerate() {
            let marker = format!("kept{i}").into_bytes();
            conn.send(&frames::masked(true, frames::PING, &marker));
            let frame = next_frame(conn, TIMEOUT);
            assert_eq!(
                (frame.opcode, &frame.payload),
                (frames::PONG, &marker),
                "connection {i} got {frame:?} before the pong"
            );
        }
        held
    });
    // Full: a newcomer is refused before it can link.
    let mut newcomer = Client::connect(addr);
    match newcomer.next_incoming() {
        Incoming::Close(Some((1013, _))) => {}
        other => panic!("expected a 1013 close, got {other:?}"),
    }
    // One held connection links: it no longer counts, so one newcomer fits.
    let mut linker = held.pop().expect("a held connection");
    linker.send(&frames::text(
        crate::msg::link("carol", crate::VERSION, None)
            .to_string()
            .as_bytes(),
    ));
    let accepted = next_frame(&mut linker, TIMEOUT);
    assert_eq!(accepted.payload, br#"{"type":"krmx/accepted"}"#);
    let mut dave = Client::connect(addr);
    dave.link("dave");
    assert_eq!(dave.next_json(), crate::msg::accepted());
    drop(held);
    pair.exchange(4);
    assert_server_still_serves(&mut server, &mut pair);
}

/// A client sends 20 000 pings while reading: every ping is answered (tungstenite may answer
/// only the latest of several waiting pings, RFC 6455 5.5.3) and the last one surely; the
/// server's memory stays flat and the pair chats on.
pub fn ping_flood_from_a_reading_client_is_answered_and_bounded(transport: Transport) {
    let _serial = serial();
    const PINGS: u32 = 20_000;
    let (mut server, mut pair) = start_with_pair(transport, relay(quiet()));
    let ping = |i: u32| frames::masked(true, frames::PING, format!("p{i}").as_bytes());
    // Every byte of the flood, pings and pongs (2 bytes of header less, unmasked): were the
    // server to keep all of it, it would still be under a MiB.
    let flood_bytes: usize = (0..PINGS).map(|i| ping(i).len() * 2 - 6).sum();
    let rss = rss_kib();
    let stream = upgraded(server.addr());
    let mut writer = stream.try_clone().expect("cloning the stream");
    let (pongs, peak_rss) = pair.chatter_during(|| {
        let flood = std::thread::spawn(move || {
            let mut batch = Vec::new();
            for i in 0..PINGS {
                batch.extend(ping(i));
                if batch.len() > 16 << 10 || i + 1 == PINGS {
                    writer.write_all(&batch).expect("writing pings");
                    batch.clear();
                }
            }
            writer
        });
        let mut conn = RawConnection::new(stream);
        let last = format!("p{}", PINGS - 1).into_bytes();
        let mut pongs = 0_u32;
        let mut peak_rss = 0;
        loop {
            let frame = next_frame(&mut conn, TIMEOUT);
            assert_eq!(frame.opcode, frames::PONG, "{frame:?}");
            pongs += 1;
            if pongs % 1000 == 0 {
                peak_rss = peak_rss.max(rss_kib());
            }
            if frame.payload == last {
                break;
            }
        }
        let _ = flood.join().expect("the flood thread panicked");
        (pongs, peak_rss.max(rss_kib()))
    });
    eprintln!(
        "{PINGS} pings answered by {pongs} pongs; RSS {rss} KiB before, {peak_rss} KiB at the peak"
    );
    assert!(pongs <= PINGS);
    // Memory may not grow with the number of pings: at most a few times the whole flood.
    let tolerance = rss_tolerance_kib(flood_bytes);
    assert!(
        peak_rss <= rss + tolerance,
        "RSS grew from {rss} KiB to {peak_rss} KiB, more than {tolerance} KiB"
    );
    pair.exchange(4);
    assert_server_still_serves(&mut server, &mut pair);
}

/// A linked client sends 200 000 pings with 125-byte payloads (26 MB of pongs owed) and never
/// reads: what the server keeps for it stays bounded by about `max_buffered_bytes` (256 KiB
/// here), the pongs do not pile up in memory, it is closed as a slow consumer as soon as the
/// pongs it owes pass that bound, and unlinked, and the pair chats on.
pub fn ping_flood_from_a_client_that_never_reads_stays_bounded(transport: Transport) {
    let _serial = serial();
    const PINGS: usize = 200_000;
    const BOUND: usize = 256 << 10;
    let config = quiet().max_buffered_bytes(BOUND);
    let (mut server, mut pair) = start_with_pair(transport, relay(config));
    let mut stream = upgraded(server.addr());
    stream
        .write_all(&frames::text(
            crate::msg::link("flooder", crate::VERSION, None)
                .to_string()
                .as_bytes(),
        ))
        .expect("linking");
    wait_event(&mut server, TIMEOUT, |event| {
        *event == ServerEvent::linked("flooder")
    });
    let rss = rss_kib();
    let (written, peak_rss) = pair.chatter_during(|| {
        let ping = frames::masked(true, frames::PING, &[b'x'; 125]);
        let batch = ping.repeat(128);
        let mut written = 0;
        let mut peak_rss = 0;
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        while written < PINGS {
            // The server may close the connection (a slow consumer): then writing fails.
            if stream.write_all(&batch).is_err() {
                break;
            }
            written += 128;
            if written % (128 * 64) == 0 {
                peak_rss = peak_rss.max(rss_kib());
            }
        }
        (written, peak_rss.max(rss_kib()))
    });
    eprintln!(
        "{written} pings from a client that does not read; RSS {rss} KiB before, \
         {peak_rss} KiB at the peak"
    );
    let tolerance = rss_tolerance_kib(BOUND);
    assert!(
        peak_rss <= rss + tolerance,
        "RSS grew from {rss} KiB to {peak_rss} KiB, more than {tolerance} KiB: pongs pile up"
    );
    // Closed for the pongs it owes, during the flood: no message for it was needed.
    wait_event(&mut server, TIMEOUT, |event| match event {
        ServerEvent::Unlinked(name) => name == "flooder",
        ServerEvent::Message(..) => false,
        other => panic!("expected the flooder unlinked, got {other:?}"),
    });
    pair.exchange(4);
    // Messages go on for everybody else.
    let fill = "f".repeat(16 << 10);
    for seq in 0..8 {
        server.broadcast(&super::bulk(seq, &fill), None);
    }
    pair.expect_bulk(8);
    pair.exchange(4);
    assert_server_still_serves(&mut server, &mut pair);
}
