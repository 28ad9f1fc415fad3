//! `krmx serve --transport smol`: the same application on the smol transport. The server's
//! turns are raced against stdin lines and signals.

use crate::app::App;
use crate::controls::{self, Control};
use krmx_core::KrmxConfig;
use krmx_transport_smol::{Server, TransportConfig};
use smol::channel::Receiver;
use std::io::{self, Write};
use std::net::SocketAddr;

/// Runs until the server closed and its connections are gone.
pub(crate) fn serve<W: Write>(
    addr: SocketAddr,
    config: KrmxConfig,
    transport: TransportConfig,
    mut app: App<W>,
) -> io::Result<()> {
    smol::block_on(async {
        let mut server = Server::bind(addr, config, transport).await?;
        // The loop waits on the channel itself: nothing to wake.
        let controls = controls::spawn(|| {})?;
        loop {
            app.drain(server.commands())?;
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
                    app.on_line(server.commands(), &line)?;
                }
                Some(Control::Signal) => {
                    app.on_signal(server.commands())?;
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
