//! A client that stops reading while the others receive heavy broadcasts.

use super::{
    assert_server_still_serves, bulk, quiet, relay, rss_kib, rss_tolerance_kib, serial,
    start_with_pair, upgraded, wait_event,
};
use crate::client::RawIncoming;
use crate::frames;
use crate::{RawConnection, ServerEvent, TIMEOUT, Transport, VERSION, msg};
use std::time::Duration;

/// The sleeper reads the first 20 broadcasts of 16 KiB and then stops reading. Once what the
/// server buffers for it passes `max_buffered_bytes` (256 KiB here) it is closed as a slow
/// consumer (1008, unlinked); the server's memory stays bounded meanwhile; the pair receives
/// every broadcast in order and chats on; the sleeper, reading again, finds its backlog whole
/// and in order, then its own unlink and the close.
pub fn client_that_stops_reading_is_closed_while_readers_get_everything(transport: Transport) {
    let _serial = serial();
    const BOUND: usize = 256 << 10;
    const FILL: usize = 16 << 10;
    const MOST: u64 = 4000;
    const READ_FIRST: u64 = 20;
    let mut setup = relay(quiet().max_buffered_bytes(BOUND));
    // The sleeper reads its backlog only at the end: give it time to reach the close frame.
    setup.close_linger = TIMEOUT * 2;
    let (mut server, mut pair) = start_with_pair(transport, setup);
    let mut sleeper = RawConnection::new(upgraded(server.addr()));
    sleeper.send(&frames::text(
        msg::link("sleeper", VERSION, None).to_string().as_bytes(),
    ));
    wait_event(&mut server, TIMEOUT, |event| {
        *event == ServerEvent::linked("sleeper")
    });
    let rss = rss_kib();
    let fill = "s".repeat(FILL);

    let (sent, peak_rss, first) = pair.chatter_during(|| {
        let mut first = Vec::new();
        let mut sent = 0;
        let mut peak_rss = 0;
        let mut disconnected = false;
        while sent < MOST && !disconnected {
            server.broadcast(&bulk(sent, &fill), None);
            sent += 1;
            if sent <= READ_FIRST {
                // The sleeper still reads: its accepted sequence, then each broadcast.
                loop {
                    match sleeper.next_within(TIMEOUT) {
                        Some(RawIncoming::Frame(frame)) if frame.opcode == frames::TEXT => {
                            let value: serde_json::Value =
                                serde_json::from_slice(&frame.payload).expect("JSON");
                            if value["type"] == "bulk" {
                                first.push(value["payload"]["seq"].as_u64().expect("seq"));
                                break;
                            }
                        }
                        other => panic!("the sleeper got {other:?}"),
                    }
                }
            }
            if sent % 50 == 0 {
                peak_rss = peak_rss.max(rss_kib());
            }
            while let Some(event) = server.next_event_within(Duration::ZERO) {
                if event == ServerEvent::unlinked("sleeper") {
                    disconnected = true;
                }
            }
        }
        (sent, peak_rss.max(rss_kib()), first)
    });
    assert_eq!(first, (0..READ_FIRST).collect::<Vec<_>>());
    assert!(
        sent < MOST,
        "the sleeper was still linked after {sent} broadcasts of {FILL} bytes"
    );
    eprintln!(
        "slow consumer closed after {sent} broadcasts of {FILL} bytes; RSS {rss} KiB before, \
         {peak_rss} KiB at the peak"
    );
    // The sleeper's backlog is bounded (one message may pass the bound), and so is what the
    // readers' outboxes hold while they read.
    let tolerance = rss_tolerance_kib(BOUND + FILL);
    assert!(
        peak_rss <= rss + tolerance,
        "RSS grew from {rss} KiB to {peak_rss} KiB, more than {tolerance} KiB"
    );
    pair.expect_bulk(sent);
    pair.exchange(4);

    // The backlog, in order, then the sleeper's own unlink, then the close.
    let (_, texts) = sleeper.expect_close_raw(1008, TIMEOUT);
    let (last, backlog) = texts.split_last().expect("at least the unlink");
    assert_eq!(*last, msg::unlinked("sleeper"));
    let seqs: Vec<u64> = backlog
        .iter()
        .filter(|value| value["type"] == "bulk")
        .map(|value| value["payload"]["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (READ_FIRST..READ_FIRST + seqs.len() as u64).collect::<Vec<_>>()
    );
    assert!(
        seqs.len() as u64 * FILL as u64 > BOUND as u64,
        "closed with only {} broadcasts pending",
        seqs.len()
    );
    assert_eq!(
        server.users(),
        [
            ("alice".to_owned(), true),
            ("bob".to_owned(), true),
            ("sleeper".to_owned(), false)
        ]
    );
    assert_server_still_serves(&mut server, &mut pair);
}
