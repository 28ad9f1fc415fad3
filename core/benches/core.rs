//! Benchmarks of the state machine alone (no sockets): how fast it turns inputs into outputs.
//!
//! `cargo bench -p krmx-core --bench core` (add `-- --quick` for a short run).
//!
//! - `custom_messages`: one linked user sends custom messages; each becomes a message event.
//! - `link_storm/1000`: a fresh server, 1000 connections open and link, every output drained.
//! - `broadcast/1000`: `Input::Broadcast` of one message to 1000 linked users, drained as the
//!   transports do: the broadcast whole, each recipient by reference.
//! - `relay/1000`: one custom message from a user, re-broadcast as it arrived (the message event
//!   fed back as `Input::Broadcast`, as `krmx serve --relay` does) to 1000 linked users.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use krmx_core::{ConnectionId, Event, Frame, Input, Krmx, KrmxConfig, Message, Output};
use serde_json::json;
use std::hint::black_box;
use std::time::Instant;

const USERS: u64 = 1000;
const MESSAGES_PER_ITERATION: u64 = 1000;

fn link_frame(name: &str) -> Frame {
    Frame::Text(format!(
        r#"{{"type":"krmx/link","payload":{{"username":"{name}","version":"0.6.0"}}}}"#
    ))
}

/// Drains every output, returning how many deliveries they were (a broadcast counts once per
/// recipient, each taken by reference as a transport would).
fn drain(krmx: &mut Krmx) -> usize {
    let mut count = 0;
    while let Some(output) = krmx.poll_output() {
        count += deliveries(output);
    }
    count
}

/// How many deliveries one output stands for.
fn deliveries(output: Output) -> usize {
    match output {
        Output::Broadcast { to, text } => {
            for conn in &to {
                black_box((conn, &text));
            }
            to.len()
        }
        other => {
            black_box(other);
            1
        }
    }
}

/// A listening server with `users` linked users on connections 1..=users.
fn server_with_linked_users(now: Instant, users: u64) -> Krmx {
    let mut krmx = Krmx::new(KrmxConfig::default());
    krmx.handle_input(now, Input::Listen { port: 8082 })
        .unwrap();
    for i in 1..=users {
        let conn = ConnectionId::new(i);
        krmx.handle_input(
            now,
            Input::ConnectionOpened {
                conn,
                target: "/".into(),
            },
        )
        .unwrap();
        krmx.handle_input(
            now,
            Input::Frame {
                conn,
                frame: link_frame(&format!("user{i}")),
            },
        )
        .unwrap();
        drain(&mut krmx);
    }
    assert_eq!(
        krmx.users().filter(|user| user.is_linked).count(),
        users as usize
    );
    krmx
}

fn custom_messages(c: &mut Criterion) {
    let now = Instant::now();
    let mut krmx = server_with_linked_users(now, 1);
    let conn = ConnectionId::new(1);
    let text = r#"{"type":"game/move","payload":{"x":3,"y":4}}"#.to_owned();
    let mut group = c.benchmark_group("custom_messages");
    group.throughput(Throughput::Elements(MESSAGES_PER_ITERATION));
    group.bench_function("one_user", |b| {
        b.iter(|| {
            for _ in 0..MESSAGES_PER_ITERATION {
                let frame = Frame::Text(text.clone());
                krmx.handle_input(now, Input::Frame { conn, frame })
                    .unwrap();
                while let Some(output) = krmx.poll_output() {
                    debug_assert!(matches!(output, Output::Event(Event::Message { .. })));
                    black_box(output);
                }
            }
        });
    });
    group.finish();
}

fn link_storm(c: &mut Criterion) {
    let now = Instant::now();
    let frames: Vec<Frame> = (1..=USERS)
        .map(|i| link_frame(&format!("user{i}")))
        .collect();
    let mut group = c.benchmark_group("link_storm");
    group.sample_size(10);
    group.throughput(Throughput::Elements(USERS));
    group.bench_function("1000", |b| {
        b.iter(|| {
            let mut krmx = Krmx::new(KrmxConfig::default());
            krmx.handle_input(now, Input::Listen { port: 8082 })
                .unwrap();
            let mut outputs = drain(&mut krmx);
            for (i, frame) in (1..=USERS).zip(&frames) {
                let conn = ConnectionId::new(i);
                krmx.handle_input(
                    now,
                    Input::ConnectionOpened {
                        conn,
                        target: "/".into(),
                    },
                )
                .unwrap();
                let frame = frame.clone();
                krmx.handle_input(now, Input::Frame { conn, frame })
                    .unwrap();
                outputs += drain(&mut krmx);
            }
            black_box(outputs)
        });
    });
    group.finish();
}

fn broadcast(c: &mut Criterion) {
    let now = Instant::now();
    let mut krmx = server_with_linked_users(now, USERS);
    let message = Message::new("chat/say").with_payload(json!({"text": "hello everyone"}));
    let mut group = c.benchmark_group("broadcast");
    group.throughput(Throughput::Elements(USERS));
    group.bench_function("1000", |b| {
        b.iter(|| {
            let input = Input::Broadcast {
                message: message.clone(),
                skip: None,
            };
            krmx.handle_input(now, input).unwrap();
            assert_eq!(drain(&mut krmx), USERS as usize);
        });
    });
    group.finish();
}

fn relay(c: &mut Criterion) {
    let now = Instant::now();
    let mut krmx = server_with_linked_users(now, USERS);
    let sender = ConnectionId::new(1);
    let text = r#"{"type":"chat/say","payload":{"text":"hello everyone"}}"#.to_owned();
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(USERS));
    group.bench_function("1000", |b| {
        b.iter(|| {
            let frame = Frame::Text(text.clone());
            krmx.handle_input(
                now,
                Input::Frame {
                    conn: sender,
                    frame,
                },
            )
            .unwrap();
            let mut delivered = 0;
            while let Some(output) = krmx.poll_output() {
                match output {
                    Output::Event(Event::Message { message, .. }) => {
                        let input = Input::Broadcast {
                            message,
                            skip: None,
                        };
                        krmx.handle_input(now, input).unwrap();
                    }
                    other => delivered += deliveries(other),
                }
            }
            assert_eq!(delivered, USERS as usize);
        });
    });
    group.finish();
}

criterion_group!(benches, custom_messages, link_storm, broadcast, relay);
criterion_main!(benches);
