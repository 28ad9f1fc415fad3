//! `krmx serve` on the mio transport: one poll for the server, stdin lines and signals.

use crate::app::{App, Flow};
use crate::controls::{self, Control};
use krmx_transport_mio::{Server, TransportConfig};
use mio::{Events, Poll, Token};
use std::io::{self, Write};
use std::net::SocketAddr;

/// The server's tokens (the CLI has no sockets of its own).
const SERVER_TOKENS: Token = Token(0);

/// Runs until the server closed and its connections are gone.
pub(crate) fn serve<W: Write>(
    addr: SocketAddr,
    config: krmx_core::KrmxConfig,
    transport: TransportConfig,
    mut app: App<W>,
) -> io::Result<()> {
    let mut server = Server::bind(addr, config, transport)?;
    let mut poll = Poll::new()?;
    server.register(poll.registry(), SERVER_TOKENS)?;
    let waker = server
        .waker()
        .ok_or_else(|| io::Error::other("the server has no waker"))?;
    // Lines and signals arrive with a wake of the server's poll.
    let controls = controls::spawn(move || {
        if let Err(error) = waker.wake() {
            tracing::warn!(%error, "could not wake the server");
        }
    })?;

    let mut events = Events::with_capacity(1024);
    loop {
        app.drain(server.commands())?;
        if server.is_finished() {
            return Ok(());
        }
        server.turn(&mut poll, &mut events)?;
        while let Ok(control) = controls.try_recv() {
            let flow = match control {
                Control::Line(line) => app.on_line(server.commands(), &line)?,
                Control::Signal => app.on_signal(server.commands())?,
            };
            if flow == Flow::Exit {
                break;
            }
        }
    }
}
