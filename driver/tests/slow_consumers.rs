//! Slow consumers judged by progress, and the budget across connections, on a virtual clock:
//! the kernel's room for each connection is set by hand, so reading speed is exact.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Control, Event, KrmxConfig, Message};
use krmx_driver::{ConnKey, Readiness, TransportConfig};
use std::time::Duration;
use support::{Fake, World};

const MS: Duration = Duration::from_millis(1);

/// A message whose frame takes exactly 1000 bytes (4 header bytes).
fn kilobyte(seq: usize) -> Message {
    let head = format!(r#"{{"type":"bulk","payload":{{"seq":"{seq:04}","fill":""#);
    let fill = "x".repeat(996 - head.len() - 3);
    Message::parse(&format!("{head}{fill}\"}}}}")).unwrap()
}

fn seqs(texts: &[String]) -> Vec<usize> {
    texts
        .iter()
        .filter_map(|text| {
            let at = text.find(r#""seq":""#)? + 7;
            text.get(at..at + 4)?.parse().ok()
        })
        .collect()
}

fn unlinked(events: &[Event], name: &str) -> bool {
    events
        .iter()
        .any(|event| matches!(event, Event::Unlinked { username, .. } if username.as_str() == name))
}

/// Hard 100 kB, soft 10 kB for 100 ms, stall 300 ms.
fn limits() -> KrmxConfig {
    KrmxConfig::default()
        .ping_interval(Duration::ZERO)
        .max_buffered_bytes(100_000)
        .soft_buffered_bytes(10_000, 100 * MS)
        .write_stall_timeout(300 * MS)
}

struct Reader {
    key: ConnKey,
    fake: Fake,
}

impl Reader {
    /// The kernel takes `bytes` more.
    fn read(&self, world: &mut World, bytes: usize) {
        *self.fake.0.borrow_mut().room.get_or_insert(0) += bytes;
        world.driver.writable(world.now, self.key);
    }
}

fn world_with(config: KrmxConfig, readiness: Readiness) -> World {
    World::with(config, TransportConfig::default(), readiness)
}

/// Moves the clock on by `step`, fires what is due and drains the events.
fn advance(world: &mut World, step: Duration) -> Vec<Event> {
    world.now += step;
    world.driver.tick(world.now);
    world.events()
}

#[test]
fn a_steady_reader_slower_than_a_burst_is_never_closed_below_the_hard_limit() {
    for readiness in [Readiness::Edge, Readiness::OnRequest] {
        let mut world = world_with(limits(), readiness);
        let (key, fake) = world.link("reader");
        fake.0.borrow_mut().room = Some(0);
        let reader = Reader { key, fake };
        // A burst of 90 kB (nine times the soft limit) in one turn.
        for seq in 0..90 {
            world.driver.send("reader", kilobyte(seq)).unwrap();
        }
        assert!(world.events().is_empty());
        assert_eq!(world.driver.buffered_bytes(), 90_000);
        // It reads 500 bytes every 10 ms: 1.8 s to catch up, far past the soft period and the
        // stall timeout, yet it keeps draining.
        for _ in 0..180 {
            reader.read(&mut world, 500);
            let events = advance(&mut world, 10 * MS);
            assert!(events.is_empty(), "{readiness:?}: {events:?}");
        }
        let received = reader.fake.texts();
        assert_eq!(
            seqs(&received),
            (0..90).collect::<Vec<_>>(),
            "{readiness:?}"
        );
        assert_eq!(world.driver.buffered_bytes(), 0);
    }
}

#[test]
fn a_reader_that_stops_is_closed_at_the_stall_timeout_and_the_others_get_everything() {
    let mut world = world_with(limits(), Readiness::Edge);
    let (_, alice) = world.link("alice");
    let (key, fake) = world.link("sleeper");
    alice.texts();
    let sleeper = Reader { key, fake };
    sleeper.fake.0.borrow_mut().room = Some(2_500);
    for seq in 0..5 {
        world.driver.broadcast(kilobyte(seq), None).unwrap();
    }
    assert!(world.events().is_empty());
    // 2.5 kB taken, then nothing: closed once 300 ms passed without progress, not before.
    assert!(advance(&mut world, 299 * MS).is_empty());
    let events = advance(&mut world, MS);
    assert!(unlinked(&events, "sleeper"), "{events:?}");
    let texts = alice.texts();
    assert_eq!(seqs(&texts), (0..5).collect::<Vec<_>>());
    assert!(
        texts
            .last()
            .unwrap()
            .contains(r#""krmx/unlinked","payload":{"username":"sleeper""#)
    );
    // What it holds once closed is at most the run of frames it was receiving (16 KiB), its
    // unlink and the close.
    assert!(
        world.driver.buffered_bytes() <= (16 << 10) + 100,
        "{}",
        world.driver.buffered_bytes()
    );
    sleeper.read(&mut world, usize::MAX / 2);
    let texts = sleeper.fake.texts();
    let got = seqs(&texts);
    assert_eq!(
        got,
        (0..got.len()).collect::<Vec<_>>(),
        "a prefix: {texts:?}"
    );
    assert!(texts[texts.len() - 2].contains("krmx/unlinked"));
    assert!(texts.last().unwrap().starts_with("<opcode 8"), "{texts:?}");
}

#[test]
fn a_reader_that_cannot_keep_up_is_closed_after_the_soft_period() {
    let config = limits().write_stall_timeout(Duration::from_secs(60));
    let mut world = world_with(config, Readiness::Edge);
    let (key, fake) = world.link("slow");
    fake.0.borrow_mut().room = Some(0);
    let slow = Reader { key, fake };
    // 2 kB produced and 1 kB read every 10 ms: the backlog grows by 1 kB each step and passes
    // the soft limit (10 kB) after 100 ms; 100 ms later it is no smaller: closed, well before
    // the hard limit (100 kB).
    let mut seq = 0;
    let mut closed_at = None;
    for step in 1..=50 {
        for _ in 0..2 {
            world.driver.send("slow", kilobyte(seq)).unwrap();
            seq += 1;
        }
        slow.read(&mut world, 1_000);
        let events = advance(&mut world, 10 * MS);
        if unlinked(&events, "slow") {
            closed_at = Some(step);
            break;
        }
    }
    let step = closed_at.expect("closed by the soft limit");
    assert!((19..=22).contains(&step), "closed at step {step}");
}

#[test]
fn past_the_hard_limit_a_reader_is_closed_however_fast_it_reads() {
    let mut world = world_with(limits(), Readiness::Edge);
    let (_, fake) = world.link("reader");
    fake.0.borrow_mut().room = Some(0);
    for seq in 0..100 {
        world.driver.send("reader", kilobyte(seq)).unwrap();
    }
    assert!(world.events().is_empty(), "exactly the hard limit is kept");
    world.driver.send("reader", kilobyte(100)).unwrap();
    let events = world.events();
    assert!(unlinked(&events, "reader"), "{events:?}");
}

#[test]
fn past_the_budget_the_largest_holders_are_closed_until_the_total_is_under_it() {
    let config = limits()
        .max_buffered_bytes(1 << 30)
        .soft_buffered_bytes(1 << 30, Duration::from_secs(60))
        .write_stall_timeout(Duration::from_secs(60))
        .buffered_budget(20_000);
    let mut world = world_with(config, Readiness::Edge);
    let (_, reader) = world.link("reader");
    // Sleepers that read nothing, each linked after the one before: the first holds the most.
    let sleepers: Vec<Fake> = (0..5)
        .map(|i| {
            let (_, fake) = world.link(&format!("sleeper{i}"));
            fake.0.borrow_mut().room = Some(0);
            fake
        })
        .collect();
    reader.texts();
    let mut closed = Vec::new();
    for seq in 0..40 {
        world.driver.broadcast(kilobyte(seq), None).unwrap();
        for event in world.events() {
            if let Event::Unlinked { username, .. } = event {
                closed.push(username.to_string());
            }
        }
        assert!(
            world.driver.buffered_bytes() <= 20_000,
            "{} after broadcast {seq}",
            world.driver.buffered_bytes()
        );
    }
    assert_eq!(
        closed,
        ["sleeper0", "sleeper1", "sleeper2", "sleeper3", "sleeper4"]
    );
    assert_eq!(seqs(&reader.texts()), (0..40).collect::<Vec<_>>());
    drop(sleepers);
}

#[test]
fn past_the_budget_closing_connections_are_dropped_before_a_reader_is_closed() {
    let config = limits()
        .max_buffered_bytes(1 << 30)
        .soft_buffered_bytes(1 << 30, Duration::from_secs(60))
        .write_stall_timeout(Duration::from_secs(60))
        .buffered_budget(50_000);
    let mut world = world_with(config, Readiness::Edge);
    let (reader_key, reader) = world.link("reader");
    // Nine peers take the first 100 bytes of a 4 kB message and nothing more, then close:
    // closing, each still holds the rest of that message and its close reply (35 kB in all).
    let stuck: Vec<(ConnKey, Fake)> = (0..9)
        .map(|i| {
            let (key, fake) = world.link(&format!("stuck{i}"));
            fake.0.borrow_mut().room = Some(100);
            (key, fake)
        })
        .collect();
    let big = Message::parse(&format!(
        r#"{{"type":"big","payload":"{}"}}"#,
        "x".repeat(3_970)
    ))
    .unwrap();
    world.driver.broadcast(big, None).unwrap();
    for (key, fake) in &stuck {
        fake.send(&[0x88, 0x80, 1, 2, 3, 4]);
        world.driver.readable(world.now, *key);
    }
    world.events();
    let held = world.driver.buffered_bytes();
    assert!(
        (35_000..50_000).contains(&held),
        "{held} held by the closing peers"
    );
    // The reader falls 20 kB behind: its backlog and what the closing peers hold pass the
    // budget, and the closing peers are dropped, not the reader.
    reader.texts();
    reader.0.borrow_mut().room = Some(0);
    let mut events = Vec::new();
    for seq in 0..20 {
        world.driver.broadcast(kilobyte(seq), None).unwrap();
        events.extend(world.events());
        assert!(world.driver.buffered_bytes() <= 50_000);
    }
    assert!(!unlinked(&events, "reader"), "{events:?}");
    let reader = Reader {
        key: reader_key,
        fake: reader,
    };
    reader.read(&mut world, 1 << 20);
    world.events();
    assert_eq!(seqs(&reader.fake.texts()), (0..20).collect::<Vec<_>>());
    drop(stuck);
}

#[test]
fn past_the_budget_a_draining_reader_is_closed_after_the_peers_that_take_nothing() {
    let config = limits()
        .max_buffered_bytes(1 << 30)
        .soft_buffered_bytes(1 << 30, Duration::from_secs(60))
        .write_stall_timeout(Duration::from_secs(60))
        .buffered_budget(20_000);
    let mut world = world_with(config, Readiness::Edge);
    let (reader_key, fake) = world.link("reader");
    let reader = Reader {
        key: reader_key,
        fake,
    };
    reader.fake.0.borrow_mut().room = Some(0);
    for seq in 0..5 {
        world.driver.broadcast(kilobyte(seq), None).unwrap();
    }
    let sleepers: Vec<Fake> = (0..3)
        .map(|i| {
            let (_, fake) = world.link(&format!("sleeper{i}"));
            fake.0.borrow_mut().room = Some(0);
            fake
        })
        .collect();
    for seq in 5..8 {
        world.driver.broadcast(kilobyte(seq), None).unwrap();
    }
    let mut events = world.events();
    // The sleepers take nothing for two seconds; the reader, holding the most, drains a little.
    events.extend(advance(&mut world, Duration::from_secs(2)));
    reader.read(&mut world, 1_000);
    for seq in 8..10 {
        world.driver.broadcast(kilobyte(seq), None).unwrap();
        events.extend(world.events());
        assert!(world.driver.buffered_bytes() <= 20_000);
    }
    assert!(
        unlinked(&events, "sleeper0") || unlinked(&events, "sleeper2"),
        "{events:?}"
    );
    assert!(!unlinked(&events, "reader"), "{events:?}");
    reader.read(&mut world, 1 << 20);
    world.events();
    assert_eq!(seqs(&reader.fake.texts()), (0..10).collect::<Vec<_>>());
    drop(sleepers);
}
