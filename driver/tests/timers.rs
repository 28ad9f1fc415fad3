//! The driver wakes its pump only for what is due: connections that come and go leave no
//! stale timers behind (the core's next timer is the driver's next deadline, once the
//! connections' own deadlines passed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use krmx_core::{AuthDecision, AuthMode, Event, Input, KrmxConfig};
use krmx_driver::{Readiness, TransportConfig};
use std::time::Duration;
use support::World;

/// Links `username`, the application accepting it: each link sets and clears an
/// authentication timer in the core.
fn link_accepted(world: &mut World, username: &str) -> (krmx_driver::ConnKey, support::Fake) {
    let (key, fake) = world.connect();
    fake.send_text(&format!(
        r#"{{"type":"krmx/link","payload":{{"username":"{username}","version":"0.6.0"}}}}"#
    ));
    world.driver.readable(world.now, key);
    let id = world
        .events()
        .into_iter()
        .find_map(|event| match event {
            Event::AuthRequested { id, .. } => Some(id),
            _ => None,
        })
        .expect("an authentication request");
    world.now += Duration::from_millis(3);
    world
        .driver
        .input(
            world.now,
            Input::AuthDecided {
                id,
                decision: AuthDecision::Accept,
            },
        )
        .unwrap();
    world.events();
    (key, fake)
}

#[test]
fn connections_that_come_and_go_leave_no_earlier_wakeups_than_the_core_needs() {
    let config = KrmxConfig::default().auth(AuthMode::Application);
    let mut world = World::with(config, TransportConfig::default(), Readiness::Edge);
    for round in 0..20 {
        let mut linked = Vec::new();
        for i in 0..10 {
            linked.push(link_accepted(&mut world, &format!("u{round}x{i}")));
        }
        world.now += Duration::from_millis(37);
        for (key, fake) in linked {
            fake.0.borrow_mut().eof = true;
            world.driver.readable(world.now, key);
        }
        world.events();
        world.now += Duration::from_millis(211);
        world.driver.tick(world.now);
        world.events();
    }
    // Past every handshake and linger deadline: only the core's timers are left.
    world.now += Duration::from_secs(3);
    world.driver.tick(world.now);
    world.events();
    let core = world.driver.krmx().poll_timeout();
    assert_eq!(world.driver.poll_timeout(), core);
    // And each wakeup from here on is one the core asked for.
    for _ in 0..5 {
        let Some(at) = world.driver.poll_timeout() else {
            break;
        };
        world.now = at;
        world.driver.tick(world.now);
        world.events();
        assert_eq!(
            world.driver.poll_timeout(),
            world.driver.krmx().poll_timeout()
        );
    }
}
