//! Slow consumers judged by progress: backlogs that drain are kept, backlogs that do not are
//! closed, the total is held to the budget, and a busy reader's pings wait for its backlog.

use super::{
    assert_server_still_serves, bulk, quiet, relay, rss_kib, rss_tolerance_kib, serial,
    start_with_pair, upgraded, wait_event,
};
use crate::frames;
use crate::{Client, Incoming, RawConnection, ServerEvent, TIMEOUT, Transport, VERSION, msg};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Reads the next `type` message of `client`, skipping presence; panics on a close or an end.
fn next_of_type(client: &mut Client, kind: &str) -> Value {
    loop {
        match client.next_incoming() {
            Incoming::Json(value) if value["type"] == kind => return value,
            Incoming::Json(value) if value["type"].as_str().is_some_and(is_presence) => {}
            other => panic!("expected a {kind} message, got {other:?}"),
        }
    }
}

fn is_presence(kind: &str) -> bool {
    kind.starts_with("krmx/")
}

/// One client sends 200 messages of 100 KB (20 MB) in a burst through the relay, while another
/// reads them steadily but more slowly. The backlog passes 4 MiB (the old single bound) but
/// keeps draining: nobody is closed, and both receive all 200 in order.
pub fn steady_reader_slower_than_a_burst_is_not_closed(transport: Transport) {
    let _serial = serial();
    const COUNT: u64 = 200;
    let setup = relay(
        quiet()
            .max_buffered_bytes(48 << 20)
            .soft_buffered_bytes(2 << 20, Duration::from_secs(60)),
    );
    let mut server = transport.start_with(setup);
    let mut reader = Client::connect(server.addr());
    reader.link_as("reader", &[("reader", true)]);
    let mut sender = Client::connect(server.addr());
    sender.link_as("sender", &[("reader", true), ("sender", true)]);
    let fill = "b".repeat(100_000);
    let burst = std::thread::spawn(move || {
        for seq in 0..COUNT {
            sender.send_json(&json!({"type": "chat", "payload": {"seq": seq, "fill": fill}}));
        }
        // The sender reads its own relays back only after the whole burst.
        for seq in 0..COUNT {
            let value = next_of_type(&mut sender, "chat");
            assert_eq!(value["payload"]["seq"], seq, "the sender's relays in order");
        }
        sender
    });
    for seq in 0..COUNT {
        let value = next_of_type(&mut reader, "chat");
        assert_eq!(
            value["payload"]["seq"], seq,
            "the reader's messages in order"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut sender = burst
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    sender.send_json(&json!({"type": "chat", "payload": {"seq": "last"}}));
    assert_eq!(next_of_type(&mut reader, "chat")["payload"]["seq"], "last");
    assert_eq!(
        server.users(),
        [("reader".to_owned(), true), ("sender".to_owned(), true)]
    );
    while let Some(event) = server.next_event_within(Duration::ZERO) {
        assert!(
            !matches!(event, ServerEvent::Unlinked(_)),
            "a steady reader was unlinked: {event:?}"
        );
    }
}

/// Links a raw client that never reads again.
fn sleeper(server: &mut crate::RunningServer, name: &str) -> RawConnection {
    let mut sleeper = RawConnection::new(upgraded(server.addr()));
    sleeper.send(&frames::text(
        msg::link(name, VERSION, None).to_string().as_bytes(),
    ));
    sleeper
}

/// A client stops reading altogether, far below every byte limit: the write-stall timeout
/// (300 ms here) closes it (1008, unlinked) while the pair receives every broadcast in order;
/// the sleeper, reading again, finds its backlog whole and in order, then its own unlink and
/// the close.
pub fn client_that_stops_reading_is_closed_by_the_write_stall(transport: Transport) {
    let _serial = serial();
    const FILL: usize = 16 << 10;
    const MOST: u64 = 5000;
    let mut setup = relay(
        quiet()
            .max_buffered_bytes(256 << 20)
            .soft_buffered_bytes(128 << 20, Duration::from_secs(60))
            .write_stall_timeout(Duration::from_millis(300)),
    );
    setup.close_linger = TIMEOUT * 2;
    let (mut server, mut pair) = start_with_pair(transport, setup);
    let mut sleeper = sleeper(&mut server, "sleeper");
    wait_event(&mut server, TIMEOUT, |event| {
        *event == ServerEvent::linked("sleeper")
    });
    let fill = "s".repeat(FILL);
    let started = Instant::now();
    let sent = pair.chatter_during(|| {
        let mut sent = 0;
        let mut disconnected = false;
        while sent < MOST && !disconnected {
            server.broadcast(&bulk(sent, &fill), None);
            sent += 1;
            std::thread::sleep(Duration::from_millis(1));
            while let Some(event) = server.next_event_within(Duration::ZERO) {
                if event == ServerEvent::unlinked("sleeper") {
                    disconnected = true;
                }
            }
        }
        sent
    });
    assert!(
        sent < MOST,
        "the sleeper was still linked after {sent} broadcasts ({:?})",
        started.elapsed()
    );
    pair.expect_bulk(sent);
    pair.exchange(4);
    let (_, texts) = sleeper.expect_close_raw(1008, TIMEOUT);
    let (last, backlog) = texts.split_last().expect("at least the unlink");
    assert_eq!(*last, msg::unlinked("sleeper"));
    let seqs: Vec<u64> = backlog
        .iter()
        .filter(|value| value["type"] == "bulk")
        .map(|value| value["payload"]["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert_server_still_serves(&mut server, &mut pair);
}

/// A thousand linked clients never read while the server broadcasts 16 KiB messages: the
/// budget for bytes buffered across all connections (8 MiB here) closes the largest holders,
/// the server's resident memory stays within the budget (with the usual tolerance) above
/// what it held once everybody had linked, and the pair receives every broadcast in order.
pub fn thousand_non_readers_in_a_broadcast_storm_stay_within_the_budget(transport: Transport) {
    let _serial = serial();
    const SLEEPERS: usize = 1000;
    const BUDGET: usize = 8 << 20;
    const FILL: usize = 16 << 10;
    const MOST: u64 = 3000;
    let setup = relay(quiet().buffered_budget(BUDGET));
    let (mut server, mut pair) = start_with_pair(transport, setup);
    let mut sleepers = Vec::new();
    for i in 0..SLEEPERS {
        sleepers.push(sleeper(&mut server, &format!("sleeper{i}")));
    }
    let mut linked = 0;
    wait_event(&mut server, TIMEOUT * 4, |event| {
        if matches!(event, ServerEvent::Linked(..)) {
            linked += 1;
        }
        linked == SLEEPERS
    });
    let rss = rss_kib();
    let fill = "n".repeat(FILL);
    let (sent, peak, unlinked) = pair.chatter_during(|| {
        let (mut sent, mut peak, mut unlinked) = (0, 0, 0);
        while sent < MOST && unlinked < SLEEPERS {
            server.broadcast(&bulk(sent, &fill), None);
            sent += 1;
            if sent % 20 == 0 {
                peak = peak.max(rss_kib());
                std::thread::sleep(Duration::from_millis(1));
            }
            while let Some(event) = server.next_event_within(Duration::ZERO) {
                if matches!(event, ServerEvent::Unlinked(_)) {
                    unlinked += 1;
                }
            }
        }
        (sent, peak.max(rss_kib()), unlinked)
    });
    eprintln!(
        "{unlinked} of {SLEEPERS} non-readers closed after {sent} broadcasts of {FILL} bytes; \
         RSS {rss} KiB once linked, {peak} KiB at the peak (budget {} KiB)",
        BUDGET >> 10
    );
    assert_eq!(unlinked, SLEEPERS, "every non-reader is closed");
    let tolerance = rss_tolerance_kib(BUDGET);
    assert!(
        peak <= rss + tolerance,
        "RSS grew from {rss} KiB to {peak} KiB, more than {tolerance} KiB"
    );
    pair.expect_bulk(sent);
    pair.exchange(4);
    drop(sleepers);
    assert_server_still_serves(&mut server, &mut pair);
}

/// A busy reader receives 800 broadcasts of 64 KiB (50 MiB) queued at once, reading steadily
/// (about 30 MB/s) while pings go every 500 ms: each ping waits behind the backlog, and is
/// awaited only once it left the server's buffer, so the reader survives every round (the
/// ping then only has the kernel's socket buffers to cross) and gets everything. Awaited from
/// when it was queued, as in the reference, the first ping would wait more than a round.
pub fn busy_reader_survives_several_ping_rounds(transport: Transport) {
    let _serial = serial();
    const COUNT: u64 = 800;
    const INTERVAL: Duration = Duration::from_millis(500);
    let config = quiet().ping_interval(INTERVAL);
    let mut server = transport.start(config);
    let mut reader = Client::connect(server.addr());
    reader.link_as("busy", &[("busy", true)]);
    wait_event(&mut server, TIMEOUT, |event| {
        *event == ServerEvent::linked("busy")
    });
    let fill = "p".repeat(64 << 10);
    // The reader reads (and so answers pings) from the start, more slowly than the
    // broadcasts are queued.
    let reading = std::thread::spawn(move || {
        let started = Instant::now();
        for seq in 0..COUNT {
            match reader.next_incoming() {
                Incoming::Json(value) if value["type"] == "bulk" => {
                    assert_eq!(value["payload"]["seq"], seq);
                }
                other => panic!(
                    "the busy reader got {other:?} instead of broadcast {seq} after {:?}",
                    started.elapsed()
                ),
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (reader, started.elapsed())
    });
    for seq in 0..COUNT {
        server.broadcast(&bulk(seq, &fill), None);
    }
    let joined = reading.join();
    let mut events = Vec::new();
    while let Some(event) = server.next_event_within(Duration::ZERO) {
        events.push(event);
    }
    let (mut reader, took) = joined.unwrap_or_else(|panic| {
        eprintln!("server events: {events:?}");
        std::panic::resume_unwind(panic)
    });
    assert!(
        took > INTERVAL * 2,
        "the backlog took {took:?}, less than two rounds: the test proves nothing"
    );
    eprintln!("the busy reader took {took:?} for its backlog, pinged every {INTERVAL:?}");
    // Three more rounds with the reader idle and answering.
    assert_eq!(reader.next_within(INTERVAL * 3), None);
    assert_eq!(server.users(), [("busy".to_owned(), true)]);
    while let Some(event) = server.next_event_within(Duration::ZERO) {
        events.push(event);
    }
    for event in events {
        assert!(
            !matches!(event, ServerEvent::Unlinked(_)),
            "the busy reader was unlinked after {took:?}: {event:?}"
        );
    }
}
