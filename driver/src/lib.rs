//! The connection driver of the Krmx transports: everything between the [`krmx_core`] state
//! machine and the sockets, written once and sans-IO, so that the mio and smol transports are
//! only readiness pumps around it.
//!
//! Three layers:
//! - [`krmx_core::Krmx`] decides the protocol: inputs in, outputs out, time passed in.
//! - [`Driver`] owns the connection table: each connection's WebSocket upgrade, phase, outbox
//!   and deadlines, and every per-connection rule (slow consumers by progress and the budget across connections,
//!   pong accounting, close replies, handshake timeouts, close lingers). It reads and writes non-blocking
//!   [`Stream`]s, takes `now` from its pump and answers what to wait for ([`Io`],
//!   [`Driver::poll_timeout`]).
//! - A runtime pump (`krmx-transport-mio`, `krmx-transport-smol`) registers streams, waits
//!   for readiness, commands and the deadline, and hands those facts to the driver.
//!
//! [`Handle`] and [`AuthResponder`] are the same on every runtime.
//!
//! Monitoring: [`Driver::metrics`] and [`Handle::metrics`] give a [`Metrics`] snapshot
//! (connections, users, messages and bytes, links and rejections, closes, slow consumers, turn
//! times), which [`Metrics::to_openmetrics`] renders for Prometheus; with
//! [`TransportConfig::metrics_path`] the server answers scrapes on its own port.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backlog;
mod commands;
mod config;
mod conn;
mod driver;
mod figures;
mod handle;
mod handshake;
mod http;
mod link;
mod metrics;
mod monitor;
mod openmetrics;
mod origins;
mod outbox;
mod read_ahead;
mod reading;
mod rooms;
mod server_tls;
mod socket;
mod static_files;
mod stream;
mod tally;
mod tls;

pub use commands::Commands;
pub use config::{
    DEFAULT_CLOSE_LINGER, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_READ_BUFFER_BYTES,
    DEFAULT_SHUTDOWN_GRACE, TransportConfig,
};
pub use driver::{ConnKey, Driver, Io, Readiness, Refusal, RoomError, RoomInfo};
pub use figures::{asks_for_figures, figures_response};
pub use handle::{AuthResponder, CommandError, Handle, Reply, Wake};
pub use metrics::{
    CloseCount, Closer, Metrics, OPENMETRICS_CONTENT_TYPE, SlowConsumers, TurnTimes,
};
pub use monitor::{MIN_MONITOR_TOKEN_CHARS, MONITOR_EVENTS, Monitor, MonitorError};
pub use origins::AllowedOrigins;
pub use rooms::{DEFAULT_MAX_ROOM_ID_CHARS, DEFAULT_MAX_ROOMS, DEFAULT_ROOM_IDLE, RoomsConfig};
pub use server_tls::{ServerTls, TlsError};
pub use static_files::{MAX_STATIC_BYTES, MAX_STATIC_FILES, StaticFiles, StaticFilesError};
pub use stream::Stream;

/// Plumbing of the driver that the benchmark's bare WebSocket peers (`krmx-load`) reuse, so
/// that they measure the same write and read paths. Not part of the API: no stability promise.
#[doc(hidden)]
pub mod plumbing {
    pub use crate::outbox::Outbox;
    pub use crate::read_ahead::{ReadAhead, SCRATCH_BYTES};
    pub use crate::tls::{TlsStream, tls_failure};
}

/// The rustls this crate serves TLS with, for applications that build their own
/// [`rustls::ServerConfig`] ([`ServerTls::from_config`]).
pub use rustls;

use krmx_core::KrmxConfig;
use tungstenite::protocol::WebSocketConfig;

/// tungstenite's settings for a Krmx connection: a small read buffer, no write buffering in
/// tungstenite (the driver queues frames itself), and the core's message-size limit for both
/// messages and frames.
pub(crate) fn websocket_config(
    config: &KrmxConfig,
    transport: &TransportConfig,
) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(transport.read_buffer_bytes_value())
        .write_buffer_size(0)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(config.max_message_bytes_value()))
        .max_frame_size(Some(config.max_message_bytes_value()))
}
