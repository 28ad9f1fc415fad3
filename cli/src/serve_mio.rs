//! `krmx serve` on the mio transport: one poll for the server, stdin lines and signals.

use crate::app::{self, App, Flow};
use krmx_core::{AuthId, Error, Event, Input, Status, UserInfo};
use krmx_transport_mio::Handle;
use krmx_transport_mio::{Server, TransportConfig};
use mio::{Events, Poll, Token};
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::sync::mpsc;

/// The server's tokens (the CLI has no sockets of its own).
const SERVER_TOKENS: Token = Token(0);

/// What the helper threads report.
enum Control {
    Line(String),
    Signal,
}

impl app::Server for Server {
    fn input(&mut self, input: Input) -> Result<(), Error> {
        Server::input(self, input)
    }
    fn poll_event(&mut self) -> Option<Event> {
        Server::poll_event(self)
    }
    fn users(&self) -> Vec<UserInfo> {
        Server::users(self)
    }
    fn status(&self) -> Status {
        Server::status(self)
    }
    fn is_auth_pending(&self, id: AuthId) -> bool {
        self.krmx().is_auth_pending(id)
    }
}

/// Runs until the server closed and its connections are gone.
pub(crate) fn serve<W: Write>(
    addr: SocketAddr,
    config: krmx_core::KrmxConfig,
    mut app: App<W>,
) -> io::Result<()> {
    let mut server = Server::bind(addr, config, TransportConfig::default())?;
    let mut poll = Poll::new()?;
    server.register(poll.registry(), SERVER_TOKENS)?;
    let handle = server
        .handle()
        .ok_or_else(|| io::Error::other("the server has no handle"))?;
    let (control, controls) = mpsc::channel();
    spawn_stdin_reader(control.clone(), handle.clone());
    spawn_signal_watcher(control, handle)?;

    let mut events = Events::with_capacity(1024);
    loop {
        app.drain(&mut server)?;
        let timeout = server.before_poll();
        if server.is_finished() {
            return Ok(());
        }
        if let Err(error) = poll.poll(&mut events, timeout) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        for event in &events {
            server.handle_event(event);
        }
        server.handle_timeout();
        // Lines and signals arrive with a wake of the server's handle.
        while let Ok(control) = controls.try_recv() {
            let flow = match control {
                Control::Line(line) => app.on_line(&mut server, &line)?,
                Control::Signal => app.on_signal(&mut server)?,
            };
            if flow == Flow::Exit {
                break;
            }
        }
    }
}

fn spawn_stdin_reader(control: mpsc::Sender<Control>, waker: Handle) {
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if control.send(Control::Line(line)).is_err() || !waker.wake() {
                break;
            }
        }
        // End of stdin is not a command: the server keeps running.
    });
}

fn spawn_signal_watcher(control: mpsc::Sender<Control>, waker: Handle) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if control.send(Control::Signal).is_err() || !waker.wake() {
                break;
            }
        }
    });
    Ok(())
}
