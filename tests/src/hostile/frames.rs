//! Frames a client library would not send: oversized messages (one frame, many fragments, an
//! announced length of exabytes), invalid UTF-8, and breaches of RFC 6455 framing.

use super::{
    assert_server_still_serves, eventually, quiet, relay, serial, start_with_pair, upgraded,
    wait_event,
};
use crate::client::RawIncoming;
use crate::frames::{self, masked};
use crate::{RawConnection, RunningServer, ServerEvent, TIMEOUT, Transport, VERSION, msg};

/// The maximum message size these scenarios configure.
const MAX: usize = 64 << 10;

/// A raw connection linked as `name` (its accepted sequence read and skipped).
fn linked_raw(server: &mut RunningServer, name: &str) -> RawConnection {
    let mut conn = RawConnection::new(upgraded(server.addr()));
    conn.send(&frames::text(
        msg::link(name, VERSION, None).to_string().as_bytes(),
    ));
    wait_event(server, TIMEOUT, |event| *event == ServerEvent::linked(name));
    conn
}

/// Expects `conn` to get a close frame with `code` (after any messages, pings answered by
/// nobody), then the end of the connection once it answers the close.
fn expect_closed(conn: &mut RawConnection, code: u16) {
    let _ = conn.expect_close_raw(code, TIMEOUT);
    conn.send(&frames::close(code));
    conn.expect_end(TIMEOUT);
}

/// Expects the server to unlink `name`.
fn expect_unlinked(server: &mut RunningServer, name: &str) {
    wait_event(server, TIMEOUT, |event| {
        *event == ServerEvent::unlinked(name)
    });
}

/// A chat message of exactly `len` bytes.
fn padded(len: usize) -> Vec<u8> {
    let shell = r#"{"type":"chat","payload":""}"#;
    format!(
        r#"{{"type":"chat","payload":"{}"}}"#,
        "a".repeat(len - shell.len())
    )
    .into_bytes()
}

/// Past `max_message_bytes` (64 KiB here): one 1 MiB frame, 1 MiB in 4 KiB fragments, an
/// endless run of 1-byte continuation frames, and a frame header announcing 2^62 bytes each
/// close their connection with 1009 and unlink their user; the pair chats on throughout.
pub fn oversized_messages_close_with_1009_and_the_server_keeps_serving(transport: Transport) {
    let _serial = serial();
    let config = quiet().max_message_bytes(MAX);
    let (mut server, mut pair) = start_with_pair(transport, relay(config));

    let mut one = linked_raw(&mut server, "one");
    let mut many = linked_raw(&mut server, "many");
    let mut endless = linked_raw(&mut server, "endless");
    let mut huge = linked_raw(&mut server, "huge");
    pair.chatter_during(|| {
        one.send(&frames::text(&padded(1 << 20)));
        expect_closed(&mut one, 1009);

        many.send(&frames::fragmented_text(&padded(1 << 20), 4 << 10));
        expect_closed(&mut many, 1009);

        let mut bytes = masked(false, frames::TEXT, b"{");
        for _ in 0..MAX + 16 {
            bytes.extend(masked(false, frames::CONTINUATION, b" "));
        }
        endless.send(&bytes);
        expect_closed(&mut endless, 1009);

        // Only the header: 127 = 64-bit length, then 2^62, then the mask.
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(1_u64 << 62).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        huge.send(&header);
        expect_closed(&mut huge, 1009);
    });
    for name in ["one", "many", "endless", "huge"] {
        expect_unlinked(&mut server, name);
    }
    pair.exchange(4);
    // A message of exactly the maximum still passes (in fragments: one message).
    let shell = r#"{"type":"fits","payload":""}"#;
    let fits = format!(
        r#"{{"type":"fits","payload":"{}"}}"#,
        "a".repeat(MAX - shell.len())
    );
    pair.clients()[0].send_raw(&frames::fragmented_text(fits.as_bytes(), 1000));
    wait_event(&mut server, TIMEOUT, |event| {
        matches!(event, ServerEvent::Message(name, message)
            if name == "alice" && message["payload"].as_str().map(str::len) == Some(MAX - shell.len()))
    });
    pair.exchange(2);
    assert_server_still_serves(&mut server, &mut pair);
}

/// Invalid UTF-8 in a text message, in one frame, in a later fragment, or cut short at the
/// end, closes that connection alone with 1007 and unlinks its user. A character split
/// between fragments is fine, and a binary frame that is not UTF-8 is an invalid message (it
/// unlinks, the connection stays). The pair chats on throughout.
pub fn invalid_utf8_closes_with_1007_and_the_server_keeps_serving(transport: Transport) {
    let _serial = serial();
    let (mut server, mut pair) = start_with_pair(transport, relay(quiet()));
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "single",
            frames::text(b"{\"type\":\"chat\",\"payload\":\"\xff\"}"),
        ),
        (
            "overlong",
            frames::text(b"{\"type\":\"chat\",\"payload\":\"\xc0\xaf\"}"),
        ),
        (
            "surrogate",
            frames::text(b"{\"type\":\"chat\",\"payload\":\"\xed\xa0\x80\"}"),
        ),
        ("cutshort", {
            let mut bytes = masked(false, frames::TEXT, b"{\"type\":\"chat\",\"payload\":\"");
            bytes.extend(masked(true, frames::CONTINUATION, b"\xe2\x82"));
            bytes
        }),
    ];
    let mut conns: Vec<(&str, RawConnection, Vec<u8>)> = cases
        .into_iter()
        .map(|(name, bytes)| (name, linked_raw(&mut server, name), bytes))
        .collect();
    pair.chatter_during(|| {
        for (_, conn, bytes) in &mut conns {
            conn.send(bytes);
            expect_closed(conn, 1007);
        }
    });
    for (name, ..) in &conns {
        expect_unlinked(&mut server, name);
    }

    // "é" split between two fragments is one valid message.
    let mut split = linked_raw(&mut server, "split");
    let mut bytes = masked(false, frames::TEXT, b"{\"type\":\"x\",\"payload\":\"\xc3");
    bytes.extend(masked(true, frames::CONTINUATION, b"\xa9\"}"));
    split.send(&bytes);
    wait_event(&mut server, TIMEOUT, |event| {
        *event == ServerEvent::message("split", serde_json::json!({"type": "x", "payload": "é"}))
    });
    // A binary frame that is not UTF-8: an invalid message, the user is unlinked, the
    // connection stays.
    split.send(&masked(true, frames::BINARY, b"\xff\xfe"));
    expect_unlinked(&mut server, "split");
    // Everything it got until the answer to a ping sent now: the server answers in order, so
    // whatever it sent for the binary frame comes before the pong.
    split.send(&masked(true, frames::PING, b"after"));
    let mut texts = Vec::new();
    loop {
        match split.next_within(TIMEOUT) {
            Some(RawIncoming::Frame(frame)) if frame.opcode == frames::TEXT => texts
                .push(serde_json::from_slice::<serde_json::Value>(&frame.payload).expect("JSON")),
            Some(RawIncoming::Frame(frame))
                if frame.opcode == frames::PONG && frame.payload == b"after" =>
            {
                break;
            }
            other => panic!("split expected its messages then the pong, got {other:?}"),
        }
    }
    // Its own unlink was the last thing it got, and the connection is still open.
    assert_eq!(texts.last(), Some(&msg::unlinked("split")));
    split.send(&frames::text(
        msg::link("split", VERSION, None).to_string().as_bytes(),
    ));
    wait_event(&mut server, TIMEOUT, |event| {
        *event == ServerEvent::linked("split")
    });
    pair.exchange(4);
    assert_server_still_serves(&mut server, &mut pair);
}

/// RFC 6455 framing breaches: an unmasked frame, a reserved opcode, RSV bits, a control frame
/// over 125 bytes, a fragmented control frame, a continuation with nothing to continue, a new
/// message in the middle of a fragmented one. Each ends its own connection and unlinks its
/// user, nothing else; the pair chats on.
pub fn protocol_violations_in_frames_drop_only_their_connection(transport: Transport) {
    let _serial = serial();
    let (mut server, mut pair) = start_with_pair(transport, relay(quiet()));
    let message = br#"{"type":"chat","payload":"x"}"#;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked", {
            let mut frame = vec![0x81, message.len() as u8];
            frame.extend_from_slice(message);
            frame
        }),
        ("opcode", masked(true, 0x3, message)),
        ("rsv", {
            let mut frame = masked(true, frames::TEXT, message);
            frame[0] |= 0x40;
            frame
        }),
        ("bigping", masked(true, frames::PING, &[0; 126])),
        ("fragping", masked(false, frames::PING, b"x")),
        ("orphan", masked(true, frames::CONTINUATION, message)),
        ("interleaved", {
            let mut bytes = masked(false, frames::TEXT, b"{");
            bytes.extend(masked(true, frames::TEXT, message));
            bytes
        }),
    ];
    let mut conns: Vec<(&str, RawConnection, Vec<u8>)> = cases
        .into_iter()
        .map(|(name, bytes)| (name, linked_raw(&mut server, name), bytes))
        .collect();
    pair.chatter_during(|| {
        for (name, conn, bytes) in &mut conns {
            conn.send(bytes);
            // A close frame (1002) may come first: the connection must end either way.
            let deadline = std::time::Instant::now() + TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match conn.next_within(left) {
                    Some(RawIncoming::Ended) => break,
                    Some(RawIncoming::Frame(_)) => {}
                    None => panic!("{name}: the connection is still open"),
                }
            }
        }
    });
    for (name, ..) in &conns {
        expect_unlinked(&mut server, name);
    }
    eventually(TIMEOUT, "the users unlinked", || {
        server.users().iter().filter(|(_, linked)| *linked).count() == 2
    });
    pair.exchange(4);
    assert_server_still_serves(&mut server, &mut pair);
}

/// A client that starts the close handshake gets the close frame back (its code echoed, as
/// RFC 6455 asks) and then the end of the connection; its user is unlinked.
pub fn a_close_from_the_client_is_answered_then_the_connection_ends(transport: Transport) {
    let _serial = serial();
    let (mut server, mut pair) = start_with_pair(transport, relay(quiet()));
    let mut conn = linked_raw(&mut server, "leaving");
    conn.send(&frames::close(4000));
    // The messages of its own link come first.
    let (_, texts) = conn.expect_close_raw(4000, TIMEOUT);
    assert_eq!(texts.len(), 7, "{texts:?}");
    conn.expect_end(TIMEOUT);
    expect_unlinked(&mut server, "leaving");
    pair.exchange(2);
    assert_server_still_serves(&mut server, &mut pair);
}
