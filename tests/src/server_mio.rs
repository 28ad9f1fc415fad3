//! [`Transport::Mio`](crate::Transport::Mio): the mio `Server` on a thread of its own, run by
//! the turnkey `run`, commanded through its `Handle`.

use crate::TIMEOUT;
use crate::server::{RunningServer, ServerEvent, Setup, apply_hook};
use krmx_transport_mio::{Server, run};
use std::net::SocketAddr;
use std::sync::mpsc;

pub(crate) fn start(setup: Setup) -> RunningServer {
    let transport = setup.transport();
    let Setup {
        config, mut hook, ..
    } = setup;
    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let server = Server::bind(any_port, config, transport).expect("binding the mio server");
    let addr = server
        .local_addr()
        .expect("the listener's address")
        .expect("a listener");
    let (events, events_received) = mpsc::channel();
    let (handle_sender, handle_received) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name(format!("krmx-mio-{}", addr.port()))
        .spawn(move || {
            let mut handle_sender = Some(handle_sender);
            run(server, move |server, event| {
                // The first event (listen) comes right after registration: the handle exists.
                if let Some(sender) = handle_sender.take() {
                    drop(sender.send(server.handle()));
                }
                let event = ServerEvent::from(event);
                let commands = hook.as_mut().map(|hook| hook(&event)).unwrap_or_default();
                drop(events.send(event));
                apply_hook(commands, |input| server.commands().input(input), &events);
            })
        })
        .expect("spawning the server thread");
    let handle = handle_received
        .recv_timeout(TIMEOUT)
        .expect("the server did not start")
        .expect("the server has a handle once registered");
    RunningServer::new(addr, handle, events_received, thread)
}
