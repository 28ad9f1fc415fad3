//! The testkit on a relay application: random scripts with every fault keep every invariant,
//! authentication timing behaves as documented, and a broken property shrinks to a short
//! script that replays.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use krmx_core::{AuthDecision, AuthMode, Control, Event, KrmxConfig, Message};
use krmx_testkit::strategy::{Scripts, scripts};
use krmx_testkit::{Script, SimConfig};
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

proptest! {
    #![proptest_config(Config { cases: 200, ..Config::default() })]

    /// Whatever the clients, the network and the authentication timing do, the server keeps
    /// its invariants, every client agrees with it once settled, and owed messages arrive
    /// exactly once in order.
    #[test]
    fn random_scripts_keep_every_invariant(
        script in scripts(&Scripts::new(4, &["alice", "bob", "mallory"]), chat()),
        application_auth in any::<bool>(),
    ) {
        let auth = if application_auth { AuthMode::Application } else { AuthMode::None };
        let sim = krmx_testkit::run(&config(auth), relay, &script, |_| Ok(()))?;
        if std::env::var_os("KRMX_TESTKIT_STATS").is_some() {
            let received: usize = (0..4).map(|i| sim.received(i).len()).sum();
            eprintln!("steps {} users {} received {received} trace {}", script.ops.len(), sim.krmx().users().count(), sim.trace().len());
        }
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

fn linked_messages(script: &str) -> (String, Vec<String>) {
    let sim = krmx_testkit::run(
        &config(AuthMode::Application),
        relay,
        &Script::replay(script),
        |_| Ok(()),
    )
    .expect("no invariant breaks");
    let status = sim.client(0).status().to_string();
    let users = sim.client(0).users().map(|u| u.username.clone()).collect();
    (status, users)
}

#[test]
fn decisions_arrive_now_later_after_the_timeout_or_never() {
    let base = "seed 1\nc0 connect\nsettle\n";
    let now = linked_messages(&format!("{base}auth now\nc0 link alice\nsettle"));
    assert_eq!(now, ("linked".to_owned(), vec!["alice".to_owned()]));
    let later = linked_messages(&format!("{base}auth later 1500\nc0 link alice\nsettle"));
    assert_eq!(later, ("linked".to_owned(), vec!["alice".to_owned()]));
    // After the timeout the link was already rejected; the late decision changes nothing.
    let late = linked_messages(&format!("{base}auth after-timeout\nc0 link alice\nsettle"));
    assert_eq!(late, ("connected".to_owned(), vec![]));
    let never = linked_messages(&format!("{base}auth never\nc0 link alice\nsettle"));
    assert_eq!(never, ("connected".to_owned(), vec![]));
}

#[test]
fn a_reset_connection_unlinks_its_user_for_the_others() {
    let script = "seed 5\nc0 connect\nc1 connect\nsettle\nc0 link alice\nc1 link bob\nsettle\n\
                  c0 reset\nsettle";
    let sim = krmx_testkit::run(
        &config(AuthMode::None),
        relay,
        &Script::replay(script),
        |_| Ok(()),
    )
    .expect("no invariant breaks");
    let mut seen: Vec<(String, bool)> = sim
        .client(1)
        .users()
        .map(|u| (u.username.clone(), u.is_linked))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![("alice".to_owned(), false), ("bob".to_owned(), true)]
    );
}

/// A property that does not hold fails with a shrunk, short script whose replay fails the same
/// way.
#[test]
fn a_failing_property_shrinks_to_a_replayable_script() {
    let at_most_one_user = |sim: &krmx_testkit::Sim<fn(&mut dyn Control, Event)>| {
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
            relay as fn(&mut dyn Control, Event),
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
    assert!(minimal.ops.len() <= 12, "not shrunk: {minimal}");
    let replayed = krmx_testkit::run(
        &config(AuthMode::None),
        relay as fn(&mut dyn Control, Event),
        &Script::replay(&minimal.to_string()),
        at_most_one_user,
    );
    assert!(replayed.is_err_and(|f| f.message == "two users joined"));
}
