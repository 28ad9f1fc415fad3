//! The Krmx server on [smol], with [async-tungstenite](async_tungstenite) framing.
//!
//! The protocol lives in [`krmx_core`]; this crate only moves messages and time. One driver owns
//! the core. Each connection has a reader task (the HTTP upgrade, refusing a wrong path with
//! 404, then every complete message) that reports to the driver through a channel, and a writer
//! task draining the connection's outbound queue. Each turn of the driver carries out the
//! core's outputs, takes what the tasks and handles reported, and re-arms one timer at the
//! core's next deadline. Facts (message too large, invalid UTF-8, a slow consumer, a missing
//! pong) are reported to the core, which decides the close; the wire behaviour is the mio
//! transport's.
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
//! use krmx_core::{AuthMode, KrmxConfig};
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
//!     while let Some(event) = events.next_event().await {
//!         match event {
//!             // Answer now or later, from any task: here after a (simulated) database call.
//!             Event::AuthRequested { auth, responder, .. } => {
//!                 smol::spawn(async move {
//!                     smol::Timer::after(Duration::from_millis(20)).await;
//!                     match auth.as_deref() {
//!                         Some("let-me-in") => responder.accept(),
//!                         _ => responder.reject("invalid token"),
//!                     }
//!                 })
//!                 .detach();
//!             }
//!             Event::Message { message, .. } => {
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

mod connection;
mod event;
mod handle;
mod reading;
mod server;
mod stream;

pub use event::{AuthResponder, Event, Events};
pub use handle::Handle;
pub use krmx_transport_shared::{
    DEFAULT_CLOSE_LINGER, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_READ_BUFFER_BYTES, TransportConfig,
};
pub use server::Server;
