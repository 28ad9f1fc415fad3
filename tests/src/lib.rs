//! Loopback integration tests for the Krmx transports, the `krmx` command-line server and the
//! JavaScript interop, over real sockets on 127.0.0.1 (ephemeral ports only).
//!
//! - [`Transport`] starts a server on one transport and gives a [`RunningServer`]: its address,
//!   the server commands (join, kick, unlink, send, broadcast, close, auth decisions) and the
//!   events it emitted, every wait bounded by a timeout.
//! - [`Client`] is a blocking WebSocket test client (tungstenite over a std `TcpStream`) with
//!   exact-message assertions; [`frames`] hand-crafts raw frames (fragments, invalid UTF-8).
//! - [`scenarios`] holds every scenario as a plain function taking the transport, so each
//!   transport's test file runs all of them with one line per transport.
//! - [`cli`] drives the `krmx` binary through stdin and stdout.
//! - [`balancer`] runs HAProxy with the recipe `deploy/haproxy/krmx-rooms.cfg` in front of
//!   several of them.
//! - [`openmetrics`] parses a metrics scrape strictly.
//! - [`node`] runs a folder of JavaScript tests with node's test runner and checks its summary.
//! - [`rust_client`] runs the Rust client adapters (blocking and async) against `krmx serve`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod balancer;
pub mod cli;
pub mod client;
pub mod frames;
pub mod hostile;
pub mod msg;
pub mod node;
pub mod openmetrics;
pub mod promptness;
pub mod rust_client;
pub mod scenarios;
pub mod server;
mod server_mio;
mod server_smol;
pub mod tls;

pub use client::{Client, Incoming, RawConnection};
pub use server::{Command, Hook, RunningServer, ServerEvent, Setup, Transport};

use std::time::Duration;

/// How long any single wait in these tests may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The protocol version the servers under test serve by default, as clients send it.
pub const VERSION: &str = "0.6.0";
