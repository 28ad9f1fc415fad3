//! `krmx serve --transport smol`: the same application on the smol transport. The server's
//! turns are raced against stdin lines and signals, which helper threads forward.

use crate::app::{self, App};
use krmx_core::{AuthId, Error, Event, Input, KrmxConfig, Status, UserInfo};
use krmx_transport_smol::{Server, TransportConfig};
use smol::channel::{Receiver, Sender};
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;

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
    config: KrmxConfig,
    mut app: App<W>,
) -> io::Result<()> {
    smol::block_on(async {
        let mut server = Server::bind(addr, config, TransportConfig::default()).await?;
        let (control, controls) = smol::channel::unbounded();
        spawn_stdin_reader(control.clone());
        spawn_signal_watcher(control)?;
        loop {
            app.drain(&mut server)?;
            if server.is_finished() {
                return Ok(());
            }
            // Both are cancel-safe: whichever loses loses nothing.
            let next = smol::future::or(
                async {
                    server.turn().await;
                    None
                },
                next_control(&controls),
            )
            .await;
            // After a close the loop goes on until the close frames are out.
            match next {
                None => {}
                Some(Control::Line(line)) => {
                    app.on_line(&mut server, &line)?;
                }
                Some(Control::Signal) => {
                    app.on_signal(&mut server)?;
                }
            }
        }
    })
}

/// The next line or signal; pending for ever once both helpers are gone.
async fn next_control(controls: &Receiver<Control>) -> Option<Control> {
    match controls.recv().await {
        Ok(control) => Some(control),
        Err(_) => smol::future::pending().await,
    }
}

fn spawn_stdin_reader(control: Sender<Control>) {
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if control.send_blocking(Control::Line(line)).is_err() {
                break;
            }
        }
        // End of stdin is not a command: the server keeps running.
    });
}

fn spawn_signal_watcher(control: Sender<Control>) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if control.send_blocking(Control::Signal).is_err() {
                break;
            }
        }
    });
    Ok(())
}
