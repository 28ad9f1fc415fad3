//! The Krmx server on a [mio] event loop, with [tungstenite] framing.
//!
//! One thread, non-blocking sockets. The protocol lives in [`krmx_core`], every connection rule
//! (upgrade, outboxes, slow consumers, close replies, deadlines) in [`krmx_driver`]; this crate
//! is the readiness pump between the driver and a mio [`Poll`](mio::Poll): it accepts TCP
//! connections, registers them and reports their readiness, the waker and the time.
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

mod front;
mod run;
mod server;
mod stream;

pub use front::{Front, Stopper};
pub use krmx_core::{Application, Control};
pub use krmx_driver::{
    AllowedOrigins, AuthResponder, CloseCount, Closer, CommandError, Commands,
    DEFAULT_CLOSE_LINGER, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_READ_BUFFER_BYTES, Handle, Metrics,
    Monitor, MonitorError, OPENMETRICS_CONTENT_TYPE, Reply, RoomError, RoomInfo, RoomsConfig,
    ServerTls, SlowConsumers, StaticFiles, StaticFilesError, TlsError, TransportConfig, TurnTimes,
    rustls,
};
pub use run::{run, run_app};
pub use server::Server;
