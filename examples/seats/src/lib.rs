//! A worked example of an application on Krmx: a two-seat, turn-based game (tic-tac-toe)
//! written once as a [`krmx_core::Application`], run for real on the mio or smol transport
//! (the `seats` binary), and property-tested in simulation with `krmx-testkit` (see
//! `tests/properties.rs`).
//!
//! ```
//! use krmx_example_seats::Seats;
//! use krmx_testkit::{Script, SimConfig};
//!
//! let script = Script::replay(r#"
//!     seed 1
//!     c0 connect
//!     c1 connect
//!     settle
//!     c0 link alice
//!     c1 link bob
//!     settle
//!     c0 send {"type":"seats/sit","payload":{"seat":0}}
//!     c1 send {"type":"seats/sit","payload":{"seat":1}}
//!     settle
//!     c0 send {"type":"seats/move","payload":{"cell":4}}
//! "#);
//! let config = SimConfig::new(krmx_core::KrmxConfig::default(), 2);
//! let sim = krmx_testkit::run(&config, Seats::new(), &script, |_| Ok(()))?;
//! assert_eq!(sim.app().table().moves().len(), 1);
//! # Ok::<(), krmx_testkit::Failure>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod app;
mod table;

pub use app::Seats;
pub use table::{Bug, CELLS, Move, Refusal, SEATS, Table};
