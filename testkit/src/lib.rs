//! Deterministic testing for Krmx applications, on the [`krmx_core`] state machines alone: no
//! sockets, no threads, no wall clock, so that a run is a function of its seed and replays
//! exactly.
//!
//! - [`check`]: [`ServerChecker`](check::ServerChecker), the server's invariants checked from
//!   the outside on every output and on its state after every step;
//! - [`deadlines`]: [`Deadlines`](deadlines::Deadlines), a reference of when each timer and
//!   limit must act, and the judgement of what the server did against it;
//! - [`rng`]: [`SplitMix64`](rng::SplitMix64), a small seeded generator;
//! - [`soak`]: the repository's own randomized world (a relay application, chaotic clients,
//!   every timer), run seed by seed.
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
