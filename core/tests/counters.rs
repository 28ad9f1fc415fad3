//! [`Krmx::counters`]: connections and links accepted, and every `krmx/rejected` counted under
//! its fixed [`Rejection`], whatever text the client was sent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{AuthDecision, AuthMode, KrmxConfig, Rejection};
use std::time::Duration;
use support::*;

#[test]
fn counts_accepted_connections_and_links_and_every_rejection_by_its_kind() {
    let config = KrmxConfig::default()
        .auth(AuthMode::Application)
        .auth_timeout(Duration::from_secs(1))
        .max_pending_auths(2)
        .ping_interval(Duration::ZERO)
        .path("/");
    let mut server = Server::listening(config);
    for conn in 1..=8 {
        assert_eq!(server.open(conn), []);
    }
    // Refused by its path: not taken in.
    assert_eq!(server.open_at(9, "/elsewhere?x").len(), 1);
    server.text(1, r#"{"type":"krmx/link","payload":{}}"#);
    server.text(1, &link_frame("alice", "9.9.0", None));
    server.text(1, &link_frame("not valid!", "0.6.0", None));
    server.text(1, r#"{"type":"chat/say"}"#);
    server.text(1, "not json");
    // alice is accepted, bob rejected by the application with a reason of its own.
    server.link(2, "alice");
    server.decide(1, AuthDecision::Accept);
    server.link(3, "bob");
    server.decide(2, AuthDecision::reject("bob is banned until 2031"));
    server.link(3, "alice");
    server.decide(3, AuthDecision::Accept); // already linked when accepted
    // Two pending, a third is one too many; one fails, one times out.
    server.link(4, "carol");
    server.link(5, "dave");
    server.link(6, "erin");
    server.decide(4, AuthDecision::Failed);
    server.tick_at(2_000);
    let counters = server.krmx.counters();
    assert_eq!(counters.connections_accepted, 8);
    assert_eq!(counters.links_accepted, 1);
    let expected = [
        (Rejection::InvalidLinkRequest, 1),
        (Rejection::VersionMismatch, 1),
        (Rejection::InvalidUsername, 1),
        (Rejection::NotAcceptingNewUsers, 0),
        (Rejection::AlreadyLinked, 1),
        (Rejection::TooManyPendingAuths, 1),
        (Rejection::AuthenticationFailed, 1),
        (Rejection::AuthenticationTimeout, 1),
        (Rejection::Application, 1),
        (Rejection::UnlinkedConnection, 1),
        (Rejection::InvalidMessage, 1),
    ];
    assert_eq!(counters.rejections.iter().collect::<Vec<_>>(), expected);
    assert_eq!(counters.rejections.total(), 10);
    assert_eq!(
        Rejection::Application.label(),
        "rejected by the application"
    );
}

#[test]
fn counts_new_users_refused() {
    let mut server = Server::listening(KrmxConfig::default().accept_new_users(false));
    server.connect(1, "alice");
    let counters = server.krmx.counters();
    assert_eq!(counters.rejections.get(Rejection::NotAcceptingNewUsers), 1);
    assert_eq!(counters.links_accepted, 0);
    assert_eq!(counters.connections_accepted, 1);
}
