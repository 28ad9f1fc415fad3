//! [`Driver::metrics`](krmx_driver::Driver::metrics) against what the in-memory clients saw,
//! and the metrics endpoint on plain HTTP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Control, KrmxConfig, Message, Rejection};
use krmx_driver::{CloseCount, Closer, Readiness, TransportConfig};
use std::time::Duration;
use support::{Fake, World};

fn world() -> World {
    World::with(
        KrmxConfig::default(),
        TransportConfig::default()
            .metrics_path("/metrics")
            .health_path("/health"),
        Readiness::Edge,
    )
}

/// A masked close frame from the client with `code`.
fn close_frame(code: u16) -> Vec<u8> {
    let mask = [9, 8, 7, 6];
    let mut frame = vec![0x88, 0x82];
    frame.extend_from_slice(&mask);
    frame.extend(
        code.to_be_bytes()
            .iter()
            .zip(mask.iter())
            .map(|(b, m)| b ^ m),
    );
    frame
}

/// The plain HTTP response to `request`.
fn plain(world: &mut World, request: &str) -> String {
    let fake = Fake::default();
    fake.send(request.as_bytes());
    let key = world.driver.accept(world.now, fake.clone()).unwrap();
    world.driver.readable(world.now, key);
    world.events();
    String::from_utf8(std::mem::take(&mut fake.0.borrow_mut().outbound)).unwrap()
}

#[test]
fn counts_match_what_the_clients_sent_and_received() {
    let mut world = world();
    let (alice_key, alice) = world.link("alice");
    let (bob_key, bob) = world.link("bob");
    let (stranger_key, stranger) = world.connect();
    // The link messages were taken by `link`: count what was sent from here on, and before
    // from the protocol (alice: accepted, joined and linked alice; bob: accepted, joined and
    // linked alice and bob; alice: joined and linked bob).
    let links = [
        r#"{"type":"krmx/link","payload":{"username":"alice","version":"0.6.0"}}"#,
        r#"{"type":"krmx/link","payload":{"username":"bob","version":"0.6.0"}}"#,
    ];
    let mut received = links.len() as u64;
    let mut received_bytes: u64 = links.iter().map(|text| text.len() as u64).sum();
    let first = world.driver.metrics();
    assert_eq!(first.messages_sent, 3 + 5 + 2);
    alice.texts();
    let (mut sent, mut sent_bytes) = (first.messages_sent, first.messages_sent_bytes);

    let wrong = r#"{"type":"krmx/link","payload":{"username":"carol","version":"9.9.0"}}"#;
    stranger.send_text(wrong);
    world.driver.readable(world.now, stranger_key);
    received += 1;
    received_bytes += wrong.len() as u64;
    for i in 0..5 {
        let say = format!(r#"{{"type":"chat/say","payload":{i}}}"#);
        alice.send_text(&say);
        received += 1;
        received_bytes += say.len() as u64;
    }
    world.driver.readable(world.now, alice_key);
    world.events();
    world
        .driver
        .broadcast(Message::parse(r#"{"type":"chat/news"}"#).unwrap(), None)
        .unwrap();
    world.events();
    bob.send(&close_frame(1000));
    world.driver.readable(world.now, bob_key);
    world.events();
    world.driver.kick("alice").unwrap();
    world.events();
    for fake in [&alice, &bob, &stranger] {
        for text in fake.texts() {
            if !text.starts_with("<opcode") {
                sent += 1;
                sent_bytes += text.len() as u64;
            }
        }
    }
    let metrics = world.driver.metrics();
    assert_eq!(metrics.messages_received, received);
    assert_eq!(metrics.messages_received_bytes, received_bytes);
    assert_eq!(metrics.messages_sent, sent);
    assert_eq!(metrics.messages_sent_bytes, sent_bytes);
    assert_eq!(metrics.streams_accepted, 3);
    assert_eq!(metrics.connections_accepted, 3);
    assert_eq!(metrics.connections_open, 2, "bob closed, alice was kicked");
    assert_eq!((metrics.users, metrics.linked_users), (1, 0));
    assert_eq!(metrics.links_accepted, 2);
    assert_eq!(metrics.rejections.get(Rejection::VersionMismatch), 1);
    assert_eq!(metrics.rejections.total(), 1);
    assert_eq!(
        metrics.closes,
        [CloseCount {
            by: Closer::Client,
            code: Some(1000),
            count: 1
        }]
    );
    assert_eq!(metrics.pending_auths, 0);
    assert!(metrics.http_requests.is_empty());
}

#[test]
fn the_endpoint_answers_openmetrics_and_other_methods_405() {
    let mut world = world();
    world.link("alice");
    let response = plain(&mut world, "GET /metrics HTTP/1.1\r\nHost: krmx\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains(
            "Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
        ),
        "{response}"
    );
    let body = response.split_once("\r\n\r\n").unwrap().1;
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("\nkrmx_linked_users 1\n"), "{body}");
    assert!(body.contains("\nkrmx_links_accepted_total 1\n"), "{body}");
    assert!(
        body.contains("\nkrmx_links_rejected_total{reason=\"rejected by the application\"} 0\n"),
        "{body}"
    );
    let head = plain(&mut world, "HEAD /metrics HTTP/1.1\r\nHost: krmx\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"));
    let post = plain(
        &mut world,
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    let other = plain(&mut world, "GET /metricz HTTP/1.1\r\n\r\n");
    assert!(other.starts_with("HTTP/1.1 404 "), "{other}");
    let metrics = world.driver.metrics();
    assert_eq!(metrics.http_requests, [(200, 2), (404, 1), (405, 1)]);
    assert_eq!(metrics.streams_accepted, 5);
    assert_eq!(metrics.connections_accepted, 1);
}

#[test]
fn metrics_are_off_by_default() {
    let mut world = World::new(Readiness::Edge);
    let response = plain(&mut world, "GET /metrics HTTP/1.1\r\nHost: krmx\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");
}

#[test]
fn a_turn_is_timed_from_its_first_now_to_end_turn() {
    let mut world = world();
    let start = world.now;
    world.driver.tick(start + Duration::from_millis(1));
    world.driver.tick(start + Duration::from_millis(2));
    world.driver.end_turn(start + Duration::from_millis(4));
    world.driver.end_turn(start + Duration::from_millis(9));
    let turns = world.driver.metrics().turns;
    // The turn the driver was created in has no end: only the one ended counts.
    assert_eq!(turns.count, 1);
    assert!((turns.sum_seconds - 0.003).abs() < 1e-9, "{turns:?}");
    let bucket = turns.buckets.iter().find(|(_, count)| *count == 1).unwrap();
    assert!((bucket.0 - 0.005).abs() < 1e-12, "{turns:?}");
}
