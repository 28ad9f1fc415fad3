//! [`run`]: the turnkey loop.

use crate::Server;
use krmx_core::{Application, Event};
use mio::{Events, Poll, Token};
use std::io;

/// Runs `server` on a poll of its own until it is closed (by a handler through
/// [`Server::commands`], or a [`Handle`]) and every connection is gone. `handler` sees every event with the server,
/// so it can react at once (answer an authentication, send, broadcast, kick, close).
///
/// ```no_run
/// use krmx_core::{Event, KrmxConfig};
/// use krmx_transport_mio::{run, Server, TransportConfig};
///
/// let server = Server::bind("127.0.0.1:8082".parse().unwrap(), KrmxConfig::default(), TransportConfig::default())?;
/// run(server, |server, event| {
///     if let Event::Message { message, .. } = event {
///         let _ = server.commands().broadcast(message, None); // a relay
///     }
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`Handle`]: crate::Handle
///
/// # Errors
/// Creating or polling the poll failed, or registering the server did.
pub fn run(mut server: Server, mut handler: impl FnMut(&mut Server, Event)) -> io::Result<()> {
    let mut poll = Poll::new()?;
    server.register(poll.registry(), Token(0))?;
    let mut events = Events::with_capacity(1024);
    loop {
        while let Some(event) = server.poll_event() {
            handler(&mut server, event);
        }
        if server.is_finished() {
            return Ok(());
        }
        server.turn(&mut poll, &mut events)?;
    }
}

/// Runs `server` with `app` handling every event, as [`run`] does: the same
/// [`Application`] runs on the smol transport (`Server::run_app` there) and in the
/// `krmx-testkit` simulation.
///
/// ```no_run
/// use krmx_core::{Control, Event, KrmxConfig};
/// use krmx_transport_mio::{run_app, Server, TransportConfig};
///
/// let server = Server::bind("127.0.0.1:8082".parse().unwrap(), KrmxConfig::default(), TransportConfig::default())?;
/// run_app(server, |server: &mut dyn Control, event: Event| {
///     if let Event::Message { message, .. } = event {
///         let _ = server.broadcast(message, None); // a relay
///     }
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// As [`run`].
pub fn run_app(server: Server, mut app: impl Application) -> io::Result<()> {
    run(server, |server, event| {
        app.on_event(server.control(), event)
    })
}
