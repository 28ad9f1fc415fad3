//! What the Krmx transports (mio and smol) share, so neither repeats the other: the socket-level
//! settings, the handshake check, the WebSocket configuration and the mapping of what
//! tungstenite reads to core inputs. Protocol decisions stay in [`krmx_core`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod handshake;
mod ids;
mod outbox;
mod read_ahead;
mod reading;

pub use config::{
    DEFAULT_CLOSE_LINGER, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_READ_BUFFER_BYTES, TransportConfig,
};
pub use handshake::{RequestCheck, TargetSlot, not_found};
pub use ids::{IdHasher, IdMap};
pub use outbox::Outbox;
pub use read_ahead::{ReadAhead, SCRATCH_BYTES};
pub use reading::{Step, step};

use krmx_core::KrmxConfig;
use tungstenite::protocol::WebSocketConfig;

/// tungstenite's settings for a Krmx connection: a small read buffer, no write buffering in
/// tungstenite (the transports queue frames themselves), and the core's message-size limit for
/// both messages and frames.
#[must_use]
pub fn websocket_config(config: &KrmxConfig, transport: &TransportConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(transport.read_buffer_bytes_value())
        .write_buffer_size(0)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(config.max_message_bytes_value()))
        .max_frame_size(Some(config.max_message_bytes_value()))
}
