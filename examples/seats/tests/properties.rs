//! The game's properties, checked with krmx-testkit on random scripts of players sitting,
//! moving, restarting, unlinking, leaving, closing and losing their connections:
//!
//! - no player holds two seats, and every seated player is a user of the server;
//! - a seated player keeps the seat until they leave (unlinked, reconnecting or relinking
//!   included);
//! - only the player on turn moves: the moves of a game alternate between the seats, seat 0
//!   first, each made by that seat's player;
//! - once settled, every linked player's last `seats/state` is the table.
//!
//! And the demonstration: each [`Bug`] put into the rules is caught, and shrinks to a short
//! script (printed, with its replay) that fails the same way when replayed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use krmx_core::{Event, KrmxConfig, Message};
use krmx_example_seats::{Bug, Seats};
use krmx_testkit::strategy::{Scripts, scripts};
use krmx_testkit::{Failure, Script, Sim, SimConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use serde_json::json;

const PLAYERS: [&str; 3] = ["alice", "bob", "carol"];

/// What players send: sit in seat 0, 1 or 2 (no such seat), mark a cell 0..=9 (9: no such
/// cell), restart.
fn requests() -> BoxedStrategy<Message> {
    prop_oneof![
        2 => (0..3u64).prop_map(|seat| Message::new("seats/sit").with_payload(json!({ "seat": seat }))),
        5 => (0..10u64).prop_map(|cell| Message::new("seats/move").with_payload(json!({ "cell": cell }))),
        1 => Just(Message::new("seats/restart")),
    ]
    .boxed()
}

fn strategy() -> BoxedStrategy<Script> {
    scripts(&Scripts::new(3, &PLAYERS), requests())
}

fn config() -> SimConfig {
    SimConfig::new(KrmxConfig::default(), 3)
}

/// What the properties remember from the step before.
#[derive(Default)]
struct Before {
    seats: Vec<Option<String>>,
    events: usize,
}

/// The properties, after every step.
fn properties(before: &mut Before, sim: &Sim<Seats>) -> Result<(), String> {
    let table = sim.app().table();
    let users: Vec<String> = sim.krmx().users().map(|u| u.username.to_string()).collect();
    let now = table.seats().to_vec();
    // No player holds two seats; every seated player is a user.
    for (seat, player) in now.iter().enumerate() {
        let Some(player) = player else { continue };
        if now.iter().filter(|p| p.as_deref() == Some(player)).count() > 1 {
            return Err(format!("{player} holds two seats: {now:?}"));
        }
        if !users.contains(player) {
            return Err(format!("{player} sits in seat {seat} but is no user"));
        }
    }
    // A seated player keeps the seat until they leave.
    let events = sim.events().get(before.events..).unwrap_or_default();
    let left = |player: &str| {
        events
            .iter()
            .any(|e| matches!(e, Event::Left { username } if username.as_str() == player))
    };
    for (seat, held) in before.seats.iter().enumerate() {
        if let Some(player) = held {
            if !left(player) && now.get(seat) != Some(&Some(player.clone())) {
                return Err(format!(
                    "{player} lost seat {seat} without leaving (seats now {now:?})"
                ));
            }
        }
    }
    before.seats = now.clone();
    before.events = sim.events().len();
    // Only the player on turn moves.
    for (k, played) in table.moves().iter().enumerate() {
        if played.seat != k % 2 {
            return Err(format!(
                "move {k} was made from seat {} by {}, but seat {} was on turn: {:?}",
                played.seat,
                played.player,
                k % 2,
                table.moves()
            ));
        }
        if now.get(played.seat) != Some(&Some(played.player.clone())) {
            return Err(format!(
                "move {k} by {} who does not sit in seat {}",
                played.player, played.seat
            ));
        }
    }
    Ok(())
}

fn run(app: Seats, script: &Script) -> Result<Sim<Seats>, Failure> {
    let mut before = Before::default();
    let sim = krmx_testkit::run(&config(), app, script, |sim| properties(&mut before, sim))?;
    // Once settled, what every linked player last saw is the table.
    for i in 0..sim.clients() {
        if sim.client(i).status() != krmx_core::ClientStatus::Linked {
            continue;
        }
        let seen = sim
            .received(i)
            .iter()
            .rev()
            .find(|m| m.kind() == "seats/state");
        let table = sim.app().table().state();
        if seen.and_then(Message::payload) != Some(&table) {
            return Err(Failure {
                script: script.clone(),
                step: None,
                message: format!("c{i} last saw {seen:?}, the table is {table}"),
                trace: Vec::new(),
            });
        }
    }
    Ok(sim)
}

proptest! {
    #![proptest_config(Config { cases: 400, ..Config::default() })]

    #[test]
    fn the_game_keeps_its_properties(script in strategy()) {
        run(Seats::new(), &script)?;
    }
}

/// Runs the properties against the game with `bug` until one fails, and returns the shrunk
/// script and the failure it printed.
fn catch(bug: Bug) -> (Script, String) {
    // A fixed generator: the demonstration finds and shrinks the same script every run.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 2000,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let result = runner.run(&strategy(), |script| {
        run(Seats::with_bug(bug), &script)?;
        Ok(())
    });
    match result {
        Err(TestError::Fail(reason, minimal)) => {
            println!(
                "{bug:?} caught; shrunk to {} steps:\n{reason}\n",
                minimal.ops.len()
            );
            (minimal, reason.message().to_owned())
        }
        other => panic!("{bug:?} was not caught: {other:?}"),
    }
}

fn caught_and_replayed(bug: Bug, expected: &str) {
    let (minimal, reason) = catch(bug);
    assert!(reason.contains(expected), "{bug:?}: {reason}");
    assert!(reason.contains("replay: Script::replay(r#\""), "{reason}");
    assert!(minimal.ops.len() <= 20, "{bug:?} not shrunk: {minimal}");
    // The printed replay fails the same way; the correct game passes it.
    let replayed = Script::replay(&minimal.to_string());
    let again = run(Seats::with_bug(bug), &replayed).expect_err("the replay fails again");
    assert!(again.message.contains(expected), "{again}");
    run(Seats::new(), &replayed).expect("the correct game passes the replay");
}

#[test]
fn a_move_out_of_turn_is_caught() {
    caught_and_replayed(Bug::TurnUnchecked, "was on turn");
}

#[test]
fn a_second_seat_is_caught() {
    caught_and_replayed(Bug::SeatTwice, "holds two seats");
}

#[test]
fn a_seat_freed_on_unlink_is_caught() {
    caught_and_replayed(Bug::FreeSeatOnUnlink, "without leaving");
}

/// A player whose connection drops, reconnects and relinks keeps the seat and the game goes on.
#[test]
fn a_relinked_player_keeps_the_seat() {
    let script = Script::replay(
        r#"
        seed 2
        c0 connect
        c1 connect
        settle
        c0 link alice
        c1 link bob
        settle
        c0 send {"type":"seats/sit","payload":{"seat":0}}
        c1 send {"type":"seats/sit","payload":{"seat":1}}
        settle
        c0 send {"type":"seats/move","payload":{"cell":4}}
        settle
        c0 reset
        settle
        c0 connect
        settle
        c0 link alice
        settle
        c1 send {"type":"seats/move","payload":{"cell":0}}
        settle
        "#,
    );
    let sim = run(Seats::new(), &script).unwrap();
    let table = sim.app().table();
    assert_eq!(table.seats()[0].as_deref(), Some("alice"));
    assert_eq!(table.moves().len(), 2);
    let state = sim.received(0).last().unwrap();
    assert_eq!(state.payload().unwrap()["seats"], json!(["alice", "bob"]));
    assert_eq!(
        state.payload().unwrap()["board"],
        json!([1, null, null, null, 0, null, null, null, null])
    );
}
