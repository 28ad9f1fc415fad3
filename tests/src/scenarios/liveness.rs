//! Liveness pings.

use super::link_users;
use crate::msg::unlinked;
use crate::{ServerEvent, TIMEOUT, Transport};
use krmx_core::KrmxConfig;
use std::time::{Duration, Instant};

/// With a 100 ms ping interval, a client that answers pings stays linked for a second; one
/// that stops answering is terminated (close 1001) and the others see it unlinked.
pub fn ping_keeps_answering_clients_and_terminates_silent_ones(transport: Transport) {
    let mut server =
        transport.start(KrmxConfig::default().ping_interval(Duration::from_millis(1000)));
    let mut clients = link_users(&mut server, &["alice", "bob"]);
    let bob = clients.pop().expect("bob");
    let mut alice = clients.pop().expect("alice");

    // From now on bob reads frames itself and never answers a ping. alice answers pings only
    // while she reads, so she keeps reading from here on (a loaded machine must not make her
    // miss a round).
    let stopped = Instant::now();
    let mut bob = bob.into_raw();
    alice.expect_json(&unlinked("bob"));
    let after = stopped.elapsed();
    server.expect_event(&ServerEvent::unlinked("bob"));
    alice.expect_nothing_for(Duration::from_millis(2500));
    assert!(
        after < Duration::from_millis(5000),
        "terminated only after {after:?} with a 1 s ping interval"
    );
    // At most the one ping bob had not read yet before going raw, and the ping it ignored.
    // bob was still linked when its unlink went out, so it hears it too, then the close.
    let (pings, texts) = bob.expect_close_raw(1001, TIMEOUT);
    assert!(pings <= 2, "bob got {pings} pings without answering");
    assert_eq!(texts, [unlinked("bob")]);
    assert_eq!(
        server.users(),
        [("alice".to_owned(), true), ("bob".to_owned(), false)]
    );
    server.expect_no_event_for(Duration::from_millis(10));
}
