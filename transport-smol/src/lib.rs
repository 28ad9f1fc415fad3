//! The Krmx server on [smol], with [async-tungstenite](async_tungstenite) framing.
//!
//! The protocol lives in [`krmx_core`], every connection rule (upgrade, outboxes, slow
//! consumers, close replies, deadlines) in [`krmx_driver`], the same driver the mio transport
//! pumps; this crate is its readiness pump on smol. Each connection has one small task that
//! waits for its socket to be readable when the driver asks (and one for writability while a
//! write would block); the server's loop hands those reports, the handles' commands and the
//! time to the driver, and re-arms one timer at its next deadline.
//!
//! The outbound queue of a connection is bounded in bytes by
//! [`KrmxConfig::max_buffered_bytes`](krmx_core::KrmxConfig::max_buffered_bytes): past it the
//! connection is closed as a slow consumer. A broadcast's payload is one allocation shared by
//! every recipient's frame.
//!
//! # Example
//!
//! A chat server whose application checks tokens asynchronously:
//!
//! ```no_run
//! use krmx_core::{AuthMode, Event as CoreEvent, KrmxConfig};
//! use krmx_transport_smol::{Event, Server, TransportConfig};
//! use std::time::Duration;
//!
//! smol::block_on(async {
//!     let config = KrmxConfig::default()
//!         .auth(AuthMode::Application)
//!         .inactivity_timeout(Some(Duration::from_secs(60)));
//!     let mut server = Server::bind("127.0.0.1:8082", config, TransportConfig::default()).await?;
//!     let mut events = server.events();
//!     let handle = server.handle();
//!     let driver = smol::spawn(server.run());
//!
//!     while let Some(Event { event, responder }) = events.next_event().await {
//!         match (event, responder) {
//!             // Answer now or later, from any task: here after a (simulated) database call.
//!             (CoreEvent::AuthRequested { auth, .. }, Some(responder)) => {
//!                 smol::spawn(async move {
//!                     smol::Timer::after(Duration::from_millis(20)).await;
//!                     match auth.as_deref() {
//!                         Some("let-me-in") => responder.accept(),
//!                         _ => responder.reject("invalid token"),
//!                     }
//!                 })
//!                 .detach();
//!             }
//!             (CoreEvent::Message { message, .. }, _) => {
//!                 let _ = handle.broadcast(message, None).await;
//!             }
//!             _ => {}
//!         }
//!     }
//!     driver.await;
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Ways to drive a [`Server`]:
//! - [`Server::run`] with the [`Events`] stream and a [`Handle`] (above);
//! - [`Server::run_with`], a synchronous handler called inside the driver with the server
//!   itself, for applications that react to every event at once;
//! - [`Server::turn`] in a loop of your own, racing it against your own futures.
//!
//! An application that serves HTTP on its own port hands upgraded requests over with
//! [`Server::adopt`] or [`Handle::adopt`] (with the bytes it already read).
//!
//! The Rust clients are in the `krmx-client` crate.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod event;
mod server;
mod stream;
mod watch;

pub use event::{Event, Events};
pub use krmx_core::{Application, Control};
pub use krmx_driver::{
    AllowedOrigins, AuthResponder, CloseCount, Closer, CommandError, Commands,
    DEFAULT_CLOSE_LINGER, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_READ_BUFFER_BYTES, Handle, Metrics,
    Monitor, MonitorError, OPENMETRICS_CONTENT_TYPE, Reply, RoomError, RoomInfo, RoomsConfig,
    ServerTls, SlowConsumers, StaticFiles, StaticFilesError, TlsError, TransportConfig, TurnTimes,
    rustls,
};
pub use server::Server;
