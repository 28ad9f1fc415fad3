//! The Krmx server protocol as a pure, deterministic state machine.
//!
//! Krmx decouples WebSocket connections from users: a connection links to a long-lived user,
//! users stay joined while unlinked, and every linked connection is told who joined, linked,
//! unlinked and left. This crate holds every rule of the protocol and none of the I/O: it never
//! touches a socket, never reads a clock, never draws a random number. Transports (the mio and
//! smol crates of this workspace, or your own event loop) feed it [`Input`]s with the current
//! time and carry out the [`Output`]s it queues.
//!
//! # Run loop
//!
//! 1. Something happens: a connection opened, a frame arrived, the application decided an
//!    authentication, or the deadline from [`Krmx::poll_timeout`] passed. Feed it with
//!    [`Krmx::handle_input`]`(now, input)`.
//! 2. Drain [`Krmx::poll_output`] until `None`: send texts, pings and closes to connections,
//!    and hand events to the application (which may feed more inputs, such as an
//!    [`Input::AuthDecided`] or an [`Input::Send`], at once). Report [`Input::PingSent`] once a
//!    ping left your own buffer for the socket: a ping is awaited from then on.
//! 3. Wait for the next socket event or until [`Krmx::poll_timeout`], whichever comes first.
//!
//! ```
//! use krmx_core::{AuthDecision, AuthMode, ConnectionId, Event, Frame, Input, Krmx, KrmxConfig, Output};
//! use std::time::{Duration, Instant};
//!
//! let config = KrmxConfig::default().auth(AuthMode::Application);
//! let mut krmx = Krmx::new(config);
//! let start = Instant::now();
//! krmx.handle_input(start, Input::Listen { port: 8082 })?;
//!
//! let conn = ConnectionId::new(1);
//! krmx.handle_input(start, Input::ConnectionOpened { conn, target: "/".into() })?;
//! let link = r#"{"type":"krmx/link","payload":{"username":"simon","version":"0.6.0","auth":"tok"}}"#;
//! krmx.handle_input(start, Input::Frame { conn, frame: Frame::Text(link.into()) })?;
//!
//! while let Some(output) = krmx.poll_output() {
//!     if let Output::Event(Event::AuthRequested { id, auth, .. }) = output {
//!         let decision = if auth.as_deref() == Some("tok") {
//!             AuthDecision::Accept
//!         } else {
//!             AuthDecision::reject("bad token")
//!         };
//!         krmx.handle_input(start + Duration::from_millis(5), Input::AuthDecided { id, decision })?;
//!     }
//! }
//! assert_eq!(krmx.linked_connection("simon"), Some(conn));
//! # Ok::<(), krmx_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod application;
mod client;
mod config;
mod counters;
mod error;
mod ids;
mod input;
mod message;
mod output;
mod request;
mod server;
mod status;
mod text;
mod timers;
mod username;
mod version;
mod wire;

pub use application::{Application, At, Control};
pub use client::{
    ClientConfig, ClientError, ClientEvent, ClientInput, ClientOutput, ClientStatus, ClientUser,
    DEFAULT_CLIENT_VERSION, KrmxClient,
};
pub use config::{
    AuthMode, DEFAULT_AUTH_TIMEOUT, DEFAULT_BUFFERED_BUDGET, DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_PENDING_AUTHS, DEFAULT_MAX_QUEUED_DURING_AUTH,
    DEFAULT_PING_INTERVAL, DEFAULT_SOFT_BUFFERED_BYTES, DEFAULT_SOFT_BUFFERED_PERIOD,
    DEFAULT_WRITE_STALL_TIMEOUT, KrmxConfig, TOO_MANY_UNLINKED_REASON, UNLINKED_TIMEOUT_REASON,
};
pub use counters::{Counters, Rejection, Rejections};
pub use error::Error;
pub use ids::{AuthId, ConnectionId};
pub use input::{AuthDecision, Frame, Input, Violation};
pub use message::{InvalidMessage, Message};
pub use output::{CloseCode, Event, Output};
pub use request::{QueryRequirement, RequestRejection};
pub use server::{Krmx, UserInfo};
pub use status::Status;
pub use text::Text;
pub use username::{Username, UsernameRule, is_valid_default_username};
pub use version::{InvalidVersion, ProtocolVersion};
