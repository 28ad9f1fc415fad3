//! Closing a server with many users, on a virtual clock: the leaves go out as the connections
//! take them, memory stays bounded, and the shutdown grace ends what does not drain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Event, Input, KrmxConfig, Status};
use krmx_driver::{ConnKey, Io, Readiness, TransportConfig};
use std::time::Duration;
use support::{Fake, World};

/// What the driver keeps queued in all while it closes, at most, plus one user's leave.
const PACE: usize = 4 << 20;

fn linked(world: &mut World, users: usize) -> Vec<(ConnKey, Fake)> {
    let clients: Vec<_> = (0..users)
        .map(|i| world.link(&format!("user{i:04}")))
        .collect();
    for (_, fake) in &clients {
        fake.texts();
    }
    clients
}

fn count_left(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|event| matches!(event, Event::Left { .. }))
        .count()
}

#[test]
fn the_leaves_go_out_as_the_connections_take_them() {
    let config = KrmxConfig::default().ping_interval(Duration::ZERO);
    let mut world = World::with(config, TransportConfig::default(), Readiness::Edge);
    let users = 400;
    let clients = linked(&mut world, users);
    // Every kernel buffer is full: nothing is taken until the clients read.
    for (_, fake) in &clients {
        fake.0.borrow_mut().room = Some(0);
    }
    world.driver.input(world.now, Input::Close).unwrap();
    let mut events = world.events();
    let first = count_left(&events);
    assert!(
        first > 0 && first < users,
        "{first} of {users} left at once"
    );
    assert_eq!(world.driver.status(), Status::Closing);
    let leave = users * 2 * 40;
    assert!(
        world.driver.buffered_bytes() <= PACE + leave,
        "{} queued",
        world.driver.buffered_bytes()
    );
    // The clients read: the rest follows, each client gets every leave, in join order.
    for _ in 0..100 {
        if world.driver.status() == Status::Closed {
            break;
        }
        for (key, fake) in &clients {
            fake.0.borrow_mut().room = None;
            world.driver.writable(world.now, *key);
        }
        world.driver.tick(world.now);
        events.extend(world.events());
        assert!(world.driver.buffered_bytes() <= PACE + leave);
    }
    assert_eq!(count_left(&events), users);
    assert_eq!(events.last(), Some(&Event::Closed));
    let last = &clients[users - 1].1.texts();
    let left: Vec<&String> = last
        .iter()
        .filter(|text| text.contains("krmx/left"))
        .collect();
    assert_eq!(
        left.len(),
        users,
        "the last user hears every leave, its own included"
    );
    assert!(
        left[0].contains("user0000") && left[users - 1].contains(&format!("user{:04}", users - 1))
    );
}

#[test]
fn the_shutdown_grace_drops_the_connections_that_do_not_read() {
    let config = KrmxConfig::default().ping_interval(Duration::ZERO);
    let transport = TransportConfig::default().shutdown_grace(Duration::from_secs(3));
    let mut world = World::with(config, transport, Readiness::Edge);
    let users = 400;
    let clients = linked(&mut world, users);
    for (_, fake) in &clients {
        fake.0.borrow_mut().room = Some(0);
    }
    world.driver.input(world.now, Input::Close).unwrap();
    let mut events = world.events();
    assert_eq!(world.driver.status(), Status::Closing);
    world.now += Duration::from_millis(2_999);
    world.driver.tick(world.now);
    events.extend(world.events());
    assert_eq!(
        world.driver.status(),
        Status::Closing,
        "not before the grace"
    );
    assert_eq!(
        world.driver.poll_timeout(),
        Some(world.now + Duration::from_millis(1))
    );
    world.now += Duration::from_millis(1);
    world.driver.tick(world.now);
    events.extend(world.events());
    assert_eq!(count_left(&events), users, "every user still leaves");
    assert_eq!(events.last(), Some(&Event::Closed));
    let released = world
        .io()
        .iter()
        .filter(|io| matches!(io, Io::Released(_)))
        .count();
    assert_eq!(released, users);
    assert!(world.driver.is_finished());
    assert_eq!(world.driver.buffered_bytes(), 0);
}

#[test]
fn a_close_into_sockets_that_take_everything_leaves_each_turn_to_the_pump() {
    let config = KrmxConfig::default().ping_interval(Duration::ZERO);
    let transport = TransportConfig::default().shutdown_grace(Duration::from_secs(3));
    let mut world = World::with(config, transport, Readiness::Edge);
    let users = 400;
    let clients = linked(&mut world, users);
    world.driver.input(world.now, Input::Close).unwrap();
    let mut events = world.events();
    let first = count_left(&events);
    assert!(
        first > 0 && first < users,
        "one turn produced {first} of {users} leaves"
    );
    assert!(
        world.driver.has_pending(),
        "the pump must come back at once"
    );
    // The next turn goes on with the leaves, and the grace still ends the close on time.
    world.driver.tick(world.now);
    events.extend(world.events());
    let second = count_left(&events);
    assert!(second > first, "{second} after the second turn");
    if second < users {
        world.now += Duration::from_secs(3);
        world.driver.tick(world.now);
        events.extend(world.events());
    }
    assert_eq!(count_left(&events), users);
    assert_eq!(events.last(), Some(&Event::Closed));
    assert!(world.driver.is_finished());
    // Every client that was still open heard every leave up to the grace, in join order.
    let texts = clients[users - 1].1.texts();
    let left: Vec<&String> = texts
        .iter()
        .filter(|text| text.contains("krmx/left"))
        .collect();
    assert!(left.len() >= first);
    assert!(left[0].contains("user0000"));
}
