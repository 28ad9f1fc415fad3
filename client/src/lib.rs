//! Rust clients for Krmx servers: a blocking [`Client`] (tungstenite over a std `TcpStream`) and,
//! with the default feature `smol`, an [`AsyncClient`] (smol and async-tungstenite, no tokio).
//!
//! Both are thin adapters around the core's client state machine,
//! [`KrmxClient`](krmx_core::KrmxClient), which makes every protocol decision: what to send,
//! what an answer means, which events to report, and when a link is done. The adapters open the
//! socket it asks for, write the texts it queues, read the server's messages back into it, and
//! wait, always within [`ClientOptions::timeout`], for the answers a command expects. Events,
//! statuses and the user type are the core's: [`ClientEvent`](krmx_core::ClientEvent),
//! [`ClientStatus`](krmx_core::ClientStatus), [`ClientUser`](krmx_core::ClientUser).
//!
//! ```
//! use krmx_client::{Client, ClientFailure};
//! use krmx_core::{ClientEvent, Message};
//! use std::time::Duration;
//! # use krmx_core::{Event, KrmxConfig};
//! # use krmx_transport_mio::{Server, TransportConfig};
//! # let server = Server::bind("127.0.0.1:0".parse()?, KrmxConfig::default(), TransportConfig::default())?;
//! # let addr = server.local_addr()?.ok_or("no address")?;
//! # std::thread::spawn(move || krmx_transport_mio::run(server, |server, event| {
//! #     if let Event::Message { message, .. } = event { let _ = server.commands().broadcast(message, None); }
//! # }));
//!
//! // A server relaying every message to every linked user listens at `addr`.
//! let mut client = Client::connect(&format!("ws://{addr}"))?;
//! match client.link("-x", None) {
//!     Err(ClientFailure::Rejected { reason }) => assert_eq!(reason, "invalid username"),
//!     other => panic!("{other:?}"),
//! }
//! client.link("simon", None)?;
//! client.send(Message::parse(r#"{"type":"chat/say","payload":"hi"}"#)?)?;
//! while let Some(event) = client.next_event_timeout(Duration::from_secs(5)) {
//!     if let ClientEvent::Message { message } = event {
//!         assert_eq!(message.kind(), "chat/say");
//!         break;
//!     }
//! }
//! client.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What `link` promises
//!
//! After `krmx/accepted` the server lists every user in join order, the client's own user at
//! its place, and marks no end of that list. `link` returns at the client's own `krmx/linked`
//! ([`KrmxClient::is_listed`](krmx_core::KrmxClient::is_listed)): `users()` then holds the users
//! who joined before the client's user and that user itself, last. A user that the link joined
//! is new, so last in join order, and the list is then whole. A user that was on the server
//! already (relinking after an unlink or a dropped connection, or joined by the server) may be
//! followed by users who joined after it: they arrive as `Joined` and `Linked` events read by
//! later calls, exactly like users joining later.
//!
//! # Features
//!
//! - `smol` (default): the [`AsyncClient`]. Without it the crate needs neither smol nor
//!   async-tungstenite.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "smol")]
mod asynchronous;
mod blocking;
mod error;
mod options;
mod read;
mod target;
mod tls;
mod wait;

#[cfg(feature = "smol")]
pub use asynchronous::AsyncClient;
pub use blocking::Client;
pub use error::ClientFailure;
pub use options::{ClientOptions, DEFAULT_CLIENT_TIMEOUT};
pub use tls::ClientTls;
