//! Authentication decided by the application, later, from the test thread.

use super::quiet_config;
use crate::msg::{joined, linked, rejected};
use crate::{Client, ServerEvent, Transport};
use krmx_core::{AuthDecision, AuthMode, KrmxConfig};
use serde_json::json;
use std::time::{Duration, Instant};

fn application_auth() -> KrmxConfig {
    quiet_config().auth(AuthMode::Application)
}

/// The link waits for the decision (nothing is sent meanwhile); an accept links as usual. A
/// later link of the same user is authenticated as an existing user.
pub fn application_accepts_a_link_later(transport: Transport) {
    let mut server = transport.start(application_auth());
    let mut alice = Client::connect(server.addr());
    alice.link_with("alice", "0.6.3", Some("token-1"));
    let (id, is_new, auth) = server.expect_authenticate("alice");
    assert!(is_new);
    assert_eq!(auth.as_deref(), Some("token-1"));
    alice.expect_nothing_for(Duration::from_millis(100));
    server.decide_auth(id, AuthDecision::Accept);
    alice.expect_linked(&[("alice", true)]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);

    // A decision for an id already decided changes nothing.
    server.decide_auth(id, AuthDecision::reject("too late"));
    alice.expect_nothing_for(Duration::from_millis(50));

    alice.send_json(&json!({"type": "krmx/unlink"}));
    alice.expect_json(&crate::msg::unlinked("alice"));
    server.expect_event(&ServerEvent::unlinked("alice"));
    alice.link("alice");
    let (id, is_new, auth) = server.expect_authenticate("alice");
    assert!(!is_new);
    assert_eq!(auth, None);
    server.decide_auth(id, AuthDecision::Accept);
    alice.expect_linked(&[("alice", true)]);
    server.expect_event(&ServerEvent::linked("alice"));
}

/// A rejection answers `krmx/rejected` with the application's reason; nothing is joined or
/// linked and the connection stays open.
pub fn application_rejects_a_link_with_its_reason(transport: Transport) {
    let mut server = transport.start(application_auth());
    let mut client = Client::connect(server.addr());
    client.link_with("mallory", "0.6.0", Some("forged"));
    let (id, ..) = server.expect_authenticate("mallory");
    server.decide_auth(id, AuthDecision::reject("bad token"));
    client.expect_json(&rejected("bad token"));
    server.expect_no_event_for(Duration::from_millis(50));
    assert_eq!(server.users(), []);

    client.link_with("alice", "0.6.0", Some("good"));
    let (id, ..) = server.expect_authenticate("alice");
    server.decide_auth(id, AuthDecision::Accept);
    client.expect_linked(&[("alice", true)]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);
}

/// An application failure without a reason rejects with `authentication failed`.
pub fn application_failure_rejects_with_authentication_failed(transport: Transport) {
    let mut server = transport.start(application_auth());
    let mut client = Client::connect(server.addr());
    client.link("alice");
    let (id, ..) = server.expect_authenticate("alice");
    server.decide_auth(id, AuthDecision::Failed);
    client.expect_json(&rejected("authentication failed"));
    server.expect_no_event_for(Duration::from_millis(30));
}

/// A pending decision that takes longer than the auth timeout is rejected with
/// `authentication timeout`; the late decision does nothing.
pub fn pending_authentication_times_out(transport: Transport) {
    let timeout = Duration::from_millis(200);
    let mut server = transport.start(application_auth().auth_timeout(timeout));
    let mut client = Client::connect(server.addr());
    let started = Instant::now();
    client.link("alice");
    let (id, ..) = server.expect_authenticate("alice");
    client.expect_json(&rejected("authentication timeout"));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout - Duration::from_millis(20),
        "timed out after {elapsed:?}"
    );
    server.decide_auth(id, AuthDecision::Accept);
    client.expect_nothing_for(Duration::from_millis(50));
    server.expect_no_event_for(Duration::from_millis(10));
    assert_eq!(server.users(), []);
}

/// Messages that arrive while a link is pending are kept and handled, in order, right after
/// the link; the other linked users hear of the newcomer as usual.
pub fn messages_during_a_pending_link_are_handled_after_it(transport: Transport) {
    let mut server = transport.start(application_auth());
    let mut bob = Client::connect(server.addr());
    bob.link("bob");
    let (id, ..) = server.expect_authenticate("bob");
    server.decide_auth(id, AuthDecision::Accept);
    bob.expect_linked(&[("bob", true)]);
    server.expect_events(&[ServerEvent::joined("bob"), ServerEvent::linked("bob")]);

    let mut alice = Client::connect(server.addr());
    alice.link("alice");
    alice.send_json(&json!({"type": "chat/say", "payload": 1}));
    alice.send_json(&json!({"type": "chat/say", "payload": 2}));
    let (id, ..) = server.expect_authenticate("alice");
    server.expect_no_event_for(Duration::from_millis(50));
    server.decide_auth(id, AuthDecision::Accept);
    alice.expect_linked(&[("bob", true), ("alice", true)]);
    bob.expect_jsons(&[joined("alice"), linked("alice")]);
    server.expect_events(&[
        ServerEvent::joined("alice"),
        ServerEvent::linked("alice"),
        ServerEvent::message("alice", json!({"type": "chat/say", "payload": 1})),
        ServerEvent::message("alice", json!({"type": "chat/say", "payload": 2})),
    ]);
}

/// A connection that closes while its decision is pending is forgotten: the late accept joins
/// and links nobody.
pub fn connection_closed_during_a_pending_link_is_forgotten(transport: Transport) {
    let mut server = transport.start(application_auth());
    let mut client = Client::connect(server.addr());
    client.link("alice");
    let (id, ..) = server.expect_authenticate("alice");
    client.close();
    // Let the server see the close before the decision.
    std::thread::sleep(Duration::from_millis(50));
    server.decide_auth(id, AuthDecision::Accept);
    server.expect_no_event_for(Duration::from_millis(50));
    assert_eq!(server.users(), []);
}

/// Two connections asking for the same new user: the first accepted links, the other's
/// accept is re-checked and rejected as already linked; the user is joined once.
pub fn concurrent_links_of_one_user_link_only_the_first_accepted(transport: Transport) {
    let mut server = transport.start(application_auth());
    let mut first = Client::connect(server.addr());
    let mut second = Client::connect(server.addr());
    first.link("alice");
    let (first_id, first_new, _) = server.expect_authenticate("alice");
    second.link("alice");
    let (second_id, second_new, _) = server.expect_authenticate("alice");
    assert!(first_new && second_new);

    server.decide_auth(second_id, AuthDecision::Accept);
    second.expect_linked(&[("alice", true)]);
    server.expect_events(&[ServerEvent::joined("alice"), ServerEvent::linked("alice")]);
    server.decide_auth(first_id, AuthDecision::Accept);
    first.expect_json(&rejected("user alice is already linked to a connection"));
    server.expect_no_event_for(Duration::from_millis(30));
    second.expect_nothing_for(Duration::from_millis(30));
    assert_eq!(server.users(), [("alice".to_owned(), true)]);
}

/// Past `max_queued_during_auth` messages during a pending link, the connection is closed
/// (1008) and the late decision does nothing.
pub fn too_many_messages_during_a_pending_link_close_with_1008(transport: Transport) {
    let mut server = transport.start(application_auth().max_queued_during_auth(2));
    let mut client = Client::connect(server.addr());
    client.link("alice");
    for n in 0..3 {
        client.send_json(&json!({"type": "chat/say", "payload": n}));
    }
    let (id, ..) = server.expect_authenticate("alice");
    client.expect_close(1008);
    server.decide_auth(id, AuthDecision::Accept);
    server.expect_no_event_for(Duration::from_millis(50));
    assert_eq!(server.users(), []);
}
