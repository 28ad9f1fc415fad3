//! Deterministic testing for Krmx applications, on the [`krmx_core`] state machines alone: no
//! sockets, no threads, no wall clock, so that a run depends only on its script and replays
//! exactly.
//!
//! Write the application once against [`krmx_core::Application`]; the mio and smol transports
//! run it on real sockets, and this crate runs it in a [`Sim`]: one server, any number of
//! clients ([`krmx_core::KrmxClient`]), a virtual network and a virtual clock, driven by a
//! [`Script`] of [`Op`]s. [`run`] checks your property after every step; [`strategy`] makes
//! random scripts with proptest that shrink to a short failing one, printed as the
//! `Script::replay(...)` that runs it again.
//!
//! ```
//! use krmx_core::{Control, Event, KrmxConfig, Message};
//! use krmx_testkit::SimConfig;
//! use krmx_testkit::strategy::{Scripts, scripts};
//! use proptest::prelude::*;
//! use proptest::test_runner::TestRunner;
//!
//! fn relay(server: &mut dyn Control, event: Event) {
//!     if let Event::Message { message, .. } = event {
//!         let _ = server.broadcast(message, None);
//!     }
//! }
//!
//! // In a test: `proptest! { #[test] fn relays(script in strategy) { ... } }`.
//! let chat = any::<u8>().prop_map(|n| Message::new("chat/say").with_payload(n.into())).boxed();
//! let strategy = scripts(&Scripts::new(3, &["alice", "bob"]), chat);
//! TestRunner::default().run(&strategy, |script| {
//!     krmx_testkit::run(&SimConfig::new(KrmxConfig::default(), 3), relay, &script, |sim| {
//!         match sim.krmx().users().count() {
//!             0..=2 => Ok(()),
//!             _ => Err("a third user".to_owned()),
//!         }
//!     })?;
//!     Ok(())
//! }).unwrap();
//! ```
//!
//! The checks are also usable on their own:
//! - [`check`]: [`ServerChecker`](check::ServerChecker), the server's invariants checked from
//!   the outside on every output and on its state after every step, and
//!   [`client_disagreement`](check::client_disagreement) between a client and the server;
//! - [`ledger`]: [`Ledger`](ledger::Ledger), every owed message passed on exactly once, in order;
//! - [`deadlines`]: [`Deadlines`](deadlines::Deadlines), a reference of when each timer and
//!   limit must act, and the judgement of what the server did against it;
//! - [`rng`]: [`SplitMix64`](rng::SplitMix64), a small seeded generator;
//! - [`soak`]: the Krmx repository's own randomized world (a relay application, chaotic
//!   clients, every timer), run seed by seed by its tests and fuzz targets.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod check;
pub mod deadlines;
pub mod ledger;
pub mod rng;
mod run;
mod script;
mod sim;
pub mod soak;
pub mod strategy;

pub use run::{Failure, run};
pub use script::{AuthTiming, Op, ParseError, Script};
pub use sim::{Sim, SimConfig};
