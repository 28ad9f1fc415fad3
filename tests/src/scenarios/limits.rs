//! Limits beyond the reference: message size (1009), invalid UTF-8 (1007), slow consumers.

use super::{link_users, quiet_config};
use crate::msg::unlinked;
use crate::server::{Command, Setup, to_message};
use crate::{Client, Incoming, ServerEvent, TIMEOUT, Transport, frames};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const MAX: usize = 1024;

/// A message text of exactly `len` bytes.
fn message_of_len(len: usize) -> String {
    let shell = r#"{"type":"big","payload":""}"#;
    let fill = "a".repeat(len - shell.len());
    let text = format!(r#"{{"type":"big","payload":"{fill}"}}"#);
    assert_eq!(text.len(), len);
    text
}

/// Expects alice's connection to be closed with `code` after her own unlink, bob to see her
/// unlinked, and the server to emit the unlink.
fn expect_alice_closed(server: &mut crate::RunningServer, clients: &mut [Client], code: u16) {
    let [alice, bob] = clients else {
        panic!("two clients expected");
    };
    alice.expect_json(&unlinked("alice"));
    alice.expect_close(code);
    bob.expect_json(&unlinked("alice"));
    server.expect_event(&ServerEvent::unlinked("alice"));
    assert_eq!(
        server.users(),
        [("alice".to_owned(), false), ("bob".to_owned(), true)]
    );
}

/// A message over the maximum, as one frame, closes that connection with 1009 and unlinks
/// its user; the others see it unlinked.
pub fn oversized_message_closes_with_1009_and_unlinks(transport: Transport) {
    let mut server = transport.start(quiet_config().max_message_bytes(MAX));
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    clients[0].send_text(&message_of_len(2 * MAX));
    expect_alice_closed(&mut server, &mut clients, 1009);
    server.expect_no_event_for(Duration::from_millis(20));
}

/// The same for a message whose fragments together pass the maximum, each fragment small; a
/// fragmented message under the maximum is one message.
pub fn oversized_fragmented_message_closes_with_1009_and_unlinks(transport: Transport) {
    let mut server = transport.start(quiet_config().max_message_bytes(MAX));
    let mut clients = link_users(&mut server, &["alice", "bob"]);

    let fits = message_of_len(MAX);
    clients[0].send_raw(&frames::fragmented_text(fits.as_bytes(), 100));
    let expected: Value = serde_json::from_str(&fits).expect("JSON");
    server.expect_event(&ServerEvent::message("alice", expected));

    let too_big = message_of_len(MAX + 1);
    clients[0].send_raw(&frames::fragmented_text(too_big.as_bytes(), 64));
    expect_alice_closed(&mut server, &mut clients, 1009);
}

/// A message of exactly the maximum is accepted; one byte more is not.
pub fn message_of_exactly_the_maximum_size_is_accepted(transport: Transport) {
    let mut server = transport.start(quiet_config().max_message_bytes(MAX));
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    let fits = message_of_len(MAX);
    clients[0].send_text(&fits);
    server.expect_event(&ServerEvent::message(
        "alice",
        serde_json::from_str(&fits).expect("JSON"),
    ));
    clients[0].send_text(&message_of_len(MAX + 1));
    expect_alice_closed(&mut server, &mut clients, 1009);
}

/// A text frame that is not valid UTF-8 closes that connection alone with 1007 and unlinks
/// its user; the server and the others carry on.
pub fn invalid_utf8_text_closes_with_1007_and_unlinks(transport: Transport) {
    let mut server = transport.start(quiet_config());
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    clients[0].send_raw(&frames::text(b"{\"type\":\"a\",\"payload\":\"\xff\xfe\"}"));
    expect_alice_closed(&mut server, &mut clients, 1007);

    // Also when the bad byte sits in a later fragment.
    let mut carol = Client::connect(server.addr());
    carol.link("carol");
    carol.expect_linked(&[("alice", false), ("bob", true), ("carol", true)]);
    server.expect_events(&[ServerEvent::joined("carol"), ServerEvent::linked("carol")]);
    let mut bytes = frames::masked(false, frames::TEXT, b"{\"type\":\"a\",");
    bytes.extend(frames::masked(
        true,
        frames::CONTINUATION,
        b"\"payload\":\"\xc3\x28\"}",
    ));
    carol.send_raw(&bytes);
    carol.expect_json(&unlinked("carol"));
    carol.expect_close(1007);
    server.expect_event(&ServerEvent::unlinked("carol"));

    let bob = &mut clients[1];
    bob.expect_json(&crate::msg::joined("carol"));
    bob.expect_json(&crate::msg::linked("carol"));
    bob.expect_json(&unlinked("carol"));
    bob.send_json(&json!({"type": "still/here"}));
    server.expect_event(&ServerEvent::message("bob", json!({"type": "still/here"})));
}

/// A client that never reads while the server broadcasts a lot is disconnected (close 1008,
/// its user unlinked) once what the server buffers for it passes `max_buffered_bytes`; a
/// client that reads receives every broadcast, in order.
pub fn slow_consumer_is_disconnected_while_readers_get_every_broadcast(transport: Transport) {
    const BOUND: usize = 256 << 10;
    const FILL: usize = 16 << 10;
    const MOST: usize = 4000;
    let mut setup = Setup::new(quiet_config().max_buffered_bytes(BOUND));
    // The slow client reads its backlog only after the test: give it time to reach the close.
    setup.close_linger = TIMEOUT;
    let mut server = transport.start_with(setup);
    let mut clients = link_users(&mut server, &["reader", "sleeper"]);
    let mut sleeper = clients.pop().expect("sleeper");
    let mut reader = clients.pop().expect("reader");

    let reading = std::thread::spawn(move || {
        let mut seqs = Vec::new();
        let mut others = Vec::new();
        loop {
            match reader.next_incoming() {
                Incoming::Json(value) if value["type"] == "bulk" => {
                    seqs.push(value["payload"]["seq"].as_u64().expect("seq"));
                }
                Incoming::Json(value) if value["type"] == "end" => return (reader, seqs, others),
                Incoming::Json(value) => others.push(value),
                other => panic!("the reader got {other:?}"),
            }
        }
    });

    let fill = "x".repeat(FILL);
    let started = Instant::now();
    let mut sent = 0;
    let mut disconnected = false;
    while sent < MOST && !disconnected {
        server.broadcast(
            &json!({"type": "bulk", "payload": {"seq": sent, "fill": fill}}),
            None,
        );
        sent += 1;
        match server.next_event_within(Duration::ZERO) {
            Some(ServerEvent::Unlinked(name)) if name == "sleeper" => disconnected = true,
            Some(other) => panic!("unexpected event {other:?}"),
            None => {}
        }
    }
    assert!(
        disconnected,
        "the sleeper was still linked after {sent} broadcasts of {FILL} bytes"
    );
    server.broadcast(&json!({"type": "end"}), None);
    let (mut reader, seqs, others) = reading.join().expect("the reader panicked");
    assert_eq!(seqs, (0..sent as u64).collect::<Vec<_>>());
    assert_eq!(others, [unlinked("sleeper")]);
    assert!(started.elapsed() < TIMEOUT * 2);

    // What was buffered for the sleeper still reaches it, in order, then its own unlink and
    // the close. (The unlink event may reach this thread a broadcast or two late: those went
    // to the reader only.)
    let mut backlog = sleeper.expect_close_after_texts(1008);
    assert_eq!(backlog.pop(), Some(unlinked("sleeper")));
    let backlog: Vec<u64> = backlog
        .iter()
        .map(|value| value["payload"]["seq"].as_u64().expect("a bulk message"))
        .collect();
    assert_eq!(backlog, (0..backlog.len() as u64).collect::<Vec<_>>());
    assert!(
        backlog.len() <= sent && backlog.len() * FILL > BOUND,
        "the sleeper got {} of {sent} broadcasts",
        backlog.len()
    );
    assert_eq!(
        server.users(),
        [("reader".to_owned(), true), ("sleeper".to_owned(), false)]
    );
    server.expect_no_event_for(Duration::from_millis(10));
    reader.expect_nothing_for(Duration::from_millis(10));
}

/// A burst larger than `max_buffered_bytes` sent within one turn (here: one event handler)
/// does not disconnect a client that reads: only what the kernel does not take counts.
pub fn burst_within_one_turn_does_not_disconnect_readers(transport: Transport) {
    const BOUND: usize = 256 << 10;
    const FILL: usize = 16 << 10;
    const BURST: u64 = 40; // 640 KiB, 2.5 times the bound
    let fill = "x".repeat(FILL);
    let setup =
        Setup::new(quiet_config().max_buffered_bytes(BOUND)).on_event(move |event| match event {
            ServerEvent::Message(_, message) if message["type"] == "burst" => (0..BURST)
                .map(|seq| {
                    let bulk = json!({"type": "bulk", "payload": {"seq": seq, "fill": fill}});
                    Command::Broadcast(to_message(&bulk), None)
                })
                .collect(),
            _ => Vec::new(),
        });
    let mut server = transport.start_with(setup);
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    clients[0].send_json(&json!({"type": "burst"}));
    server.expect_event(&ServerEvent::message("alice", json!({"type": "burst"})));
    for client in &mut clients {
        for seq in 0..BURST {
            let value = client.next_json();
            assert_eq!(value["payload"]["seq"], seq, "{}", value["type"]);
        }
        client.expect_nothing_for(Duration::from_millis(20));
    }
    server.expect_no_event_for(Duration::from_millis(10));
}
