//! The testkit on a relay application: random scripts with every fault keep every invariant,
//! authentication timing behaves as documented, and a broken property shrinks to a short
//! script that replays.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use krmx_core::{AuthDecision, AuthMode, Control, Event, KrmxConfig, Message};
use krmx_testkit::strategy::{Scripts, scripts};
use krmx_testkit::{Failure, Script, Sim, SimConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use std::time::Duration;

/// Relays every message to every linked user; accepts every link but `mallory`'s.
fn relay(server: &mut dyn Control, event: Event) {
    match event {
        Event::Message { message, .. } => {
            let _ = server.broadcast(message, None);
        }
        Event::AuthRequested { id, username, .. } => {
            let decision = if username.as_str() == "mallory" {
                AuthDecision::reject("not you")
            } else {
                AuthDecision::Accept
            };
            let _ = server.decide_auth(id, decision);
        }
        _ => {}
    }
}

fn chat() -> BoxedStrategy<Message> {
    (0..1000u32)
        .prop_map(|n| Message::new("chat/say").with_payload(n.into()))
        .boxed()
}

fn config(auth: AuthMode) -> SimConfig {
    let krmx = KrmxConfig::default()
        .auth(auth)
        .auth_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(5));
    SimConfig::new(krmx, 4)
}

/// The relay as a plain function pointer, so a `Sim` of it has a type to name.
type Relay = fn(&mut dyn Control, Event);

/// Runs `script` (with the relay, under `auth`) to its end, with no property of its own.
fn outcome(auth: AuthMode, script: &str) -> Result<Sim<Relay>, Failure> {
    krmx_testkit::run(
        &config(auth),
        relay as Relay,
        &Script::replay(script),
        |_| Ok(()),
    )
}

/// Client `i`'s view of the users, sorted: its own user comes first, so its order is not the
/// server's.
fn users_seen_by(sim: &Sim<Relay>, i: usize) -> Vec<(String, bool)> {
    let mut seen: Vec<(String, bool)> = sim
        .client(i)
        .users()
        .map(|u| (u.username.clone(), u.is_linked))
        .collect();
    seen.sort();
    seen
}

/// The server's timers and limits, one of four ways: the defaults but for short pings and
/// authentication timeout; pings every 100 ms with quick inactivity kicks; an unlinked timeout
/// with a cap on unlinked connections; one pending authentication and nothing queued behind it.
fn timers(variant: u8, auth: AuthMode) -> SimConfig {
    let ms = Duration::from_millis;
    let krmx = match variant {
        0 => config(auth).krmx,
        1 => KrmxConfig::default()
            .auth(auth)
            .ping_interval(ms(100))
            .inactivity_timeout(Some(ms(300))),
        2 => KrmxConfig::default()
            .auth(auth)
            .unlinked_timeout(Some(ms(500)))
            .max_unlinked_connections(Some(1)),
        _ => KrmxConfig::default()
            .auth(auth)
            .auth_timeout(ms(50))
            .max_pending_auths(1)
            .max_queued_during_auth(0),
    };
    SimConfig::new(krmx, 4)
}

proptest! {
    #![proptest_config(Config { cases: 300, ..Config::default() })]

    /// Whatever the clients, the network, the timers and the authentication timing do, the
    /// server keeps its invariants, every client agrees with it once settled, and owed messages
    /// arrive exactly once in order.
    #[test]
    fn random_scripts_keep_every_invariant(
        script in scripts(&Scripts::new(4, &["alice", "bob", "mallory"]), chat()),
        application_auth in any::<bool>(),
        variant in 0..4u8,
    ) {
        let auth = if application_auth { AuthMode::Application } else { AuthMode::None };
        krmx_testkit::run(&timers(variant, auth), relay, &script, |_| Ok(()))?;
    }
}

#[test]
fn a_script_prints_as_text_and_parses_back() {
    let text = "seed 9\nc0 connect\nc1 link bob \"tok en\"\nc2 send {\"type\":\"a/b\",\"payload\":[1,2]}\n\
                deliver 3\nsettle\nadvance 250\nauth now\nauth later 40\nauth after-timeout\n\
                auth never\nc0 unlink\nc0 leave\nc0 close\nc0 reset";
    let script: Script = text.parse().expect("parses");
    assert_eq!(script.seed, 9);
    assert_eq!(script.ops.len(), 14);
    assert_eq!(script.to_string(), text);
    let debug = format!("{script:?}");
    assert!(debug.starts_with("Script::replay(r#\""), "{debug}");
    assert_eq!(
        "c0 fly".parse::<Script>().err().map(|e| e.to_string()),
        Some("script line 1: unknown client action \"fly\"".to_owned())
    );
}

fn link_outcome(script: &str) -> (String, Vec<String>) {
    let sim = outcome(AuthMode::Application, script).expect("no invariant breaks");
    let status = sim.client(0).status().to_string();
    let users = users_seen_by(&sim, 0)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    (status, users)
}

#[test]
fn usernames_that_are_no_plain_word_print_quoted_and_parse_back() {
    for username in ["alice smith", "", "\"quoted\"", "line\nbreak", "tok"] {
        let script = krmx_testkit::Script::new(
            0,
            vec![krmx_testkit::Op::Link {
                client: 0,
                username: username.to_owned(),
                auth: Some("tok en".to_owned()),
            }],
        );
        let text = script.to_string();
        let parsed: Script = text.parse().expect("parses back");
        assert_eq!(parsed.to_string(), text);
        let Some(krmx_testkit::Op::Link {
            username: got,
            auth,
            ..
        }) = parsed.ops.first()
        else {
            panic!("not a link: {text}");
        };
        assert_eq!((got.as_str(), auth.as_deref()), (username, Some("tok en")));
    }
}

#[test]
fn a_decision_after_the_timeout_is_not_waited_for_and_time_cannot_overflow() {
    // Settles at the authentication timeout, not when the late decision would arrive.
    let script = "seed 1\nc0 connect\nsettle\nauth later 100000000000\nc0 link alice\nsettle";
    let sim = outcome(AuthMode::Application, script).expect("settles");
    assert!(
        sim.elapsed() < Duration::from_secs(3),
        "{:?}",
        sim.elapsed()
    );
    let overflow = format!("seed 1\n{}", "advance 18446744073709551615\n".repeat(600));
    let failure = outcome(AuthMode::None, &overflow).expect_err("time cannot pass its end");
    assert!(
        failure.message.contains("past the end of time"),
        "{failure}"
    );
}

#[test]
fn a_linked_client_closes_cleanly_and_stays_joined_unlinked() {
    let script = "seed 2\nc0 connect\nc1 connect\nsettle\nc0 link alice\nc1 link bob\nsettle\nc0 close\nsettle";
    let sim = outcome(AuthMode::None, script).expect("no invariant breaks");
    assert_eq!(sim.client(0).status().to_string(), "closed");
    assert_eq!(
        users_seen_by(&sim, 1),
        vec![("alice".to_owned(), false), ("bob".to_owned(), true)]
    );
}

#[test]
fn decisions_arrive_now_later_after_the_timeout_or_never() {
    let base = "seed 1\nc0 connect\nsettle\n";
    let now = link_outcome(&format!("{base}auth now\nc0 link alice\nsettle"));
    assert_eq!(now, ("linked".to_owned(), vec!["alice".to_owned()]));
    let later = link_outcome(&format!("{base}auth later 1500\nc0 link alice\nsettle"));
    assert_eq!(later, ("linked".to_owned(), vec!["alice".to_owned()]));
    // After the timeout the link was already rejected; the late decision changes nothing.
    let late = link_outcome(&format!("{base}auth after-timeout\nc0 link alice\nsettle"));
    assert_eq!(late, ("connected".to_owned(), vec![]));
    let never = link_outcome(&format!("{base}auth never\nc0 link alice\nsettle"));
    assert_eq!(never, ("connected".to_owned(), vec![]));
}

#[test]
fn a_reset_connection_unlinks_its_user_for_the_others() {
    let script = "seed 5\nc0 connect\nc1 connect\nsettle\nc0 link alice\nc1 link bob\nsettle\n\
                  c0 reset\nsettle";
    let sim = outcome(AuthMode::None, script).expect("no invariant breaks");
    assert_eq!(
        users_seen_by(&sim, 1),
        vec![("alice".to_owned(), false), ("bob".to_owned(), true)]
    );
}

/// A property that does not hold fails with a shrunk, short script whose replay fails the same
/// way.
#[test]
fn a_failing_property_shrinks_to_a_replayable_script() {
    let at_most_one_user = |sim: &Sim<Relay>| {
        if sim.krmx().users().count() > 1 {
            Err("two users joined".to_owned())
        } else {
            Ok(())
        }
    };
    let strategy = scripts(&Scripts::new(3, &["alice", "bob"]), chat());
    // A fixed generator: the same case is found and shrunk every run.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 500,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let result = runner.run(&strategy, |script| {
        krmx_testkit::run(
            &config(AuthMode::None),
            relay as Relay,
            &script,
            at_most_one_user,
        )?;
        Ok(())
    });
    let Err(TestError::Fail(reason, minimal)) = result else {
        panic!("the property should fail: {result:?}");
    };
    assert!(reason.message().contains("two users joined"), "{reason}");
    assert!(
        reason.message().contains("replay: Script::replay"),
        "{reason}"
    );
    // Two connects, a delivery or settle, two links, and what delivers them: a short script.
    assert!(minimal.ops.len() <= 6, "not shrunk: {minimal}");
    let replayed = krmx_testkit::run(
        &config(AuthMode::None),
        relay as Relay,
        &Script::replay(&minimal.to_string()),
        at_most_one_user,
    );
    assert!(replayed.is_err_and(|f| f.message == "two users joined"));
}

#[test]
fn the_checker_refuses_an_application_message_to_an_unlinked_connection() {
    use krmx_core::{ConnectionId, Output};
    let mut checker = krmx_testkit::check::ServerChecker::new();
    let conn = ConnectionId::new(1);
    checker.opened(conn);
    let sent = Output::Send {
        to: conn,
        text: Message::new("chat/say").to_text(),
    };
    let refused = checker.observe(&sent).expect_err("nobody is linked to it");
    assert!(refused.contains("no user is linked to"), "{refused}");
}
