//! The Krmx server on a [mio] event loop, with [tungstenite] framing.
//!
//! One thread, non-blocking sockets. The protocol lives in [`krmx_core`]; this crate only moves
//! bytes and time: it accepts TCP connections, runs the HTTP upgrade (refusing a wrong path with
//! 404), turns complete WebSocket messages into core inputs and core outputs into frames, and
//! reports facts (message too large, invalid UTF-8, a slow consumer, a missing pong) for the
//! core to decide on.
//!
//! Three ways to use it:
//! - turnkey: [`run`] with a handler for events;
//! - embedded: [`Server::register`] on your own [`mio::Poll`], alongside your other sockets;
//! - from other threads: a [`Handle`] sends, broadcasts, kicks and answers authentications.
//!
//! An application that already serves HTTP on its port hands accepted connections over with
//! [`Server::adopt`].
//!
//! Per connection the server keeps a 4 KiB read buffer and an outbox of shared frames (a
//! broadcast's payload is one allocation for all recipients); the outbox is bounded by
//! [`KrmxConfig::max_buffered_bytes`](krmx_core::KrmxConfig::max_buffered_bytes), past which the
//! connection is closed as a slow consumer.
//!
//! The Rust clients are in the `krmx-client` crate.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod connection;
mod handle;
mod run;
mod server;
mod socket;

pub use handle::Handle;
pub use krmx_transport_shared::{
    DEFAULT_CLOSE_LINGER, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_READ_BUFFER_BYTES, TransportConfig,
};
pub use run::run;
pub use server::Server;
