//! [`Transport::Smol`](crate::Transport::Smol): the smol `Server` on a thread of its own, run
//! with a synchronous handler, commanded through its `Handle`.

use crate::server::{RunningServer, ServerEvent, Setup, apply_hook};
use krmx_transport_smol::Server;
use std::sync::mpsc;

pub(crate) fn start(setup: Setup) -> RunningServer {
    let transport = setup.transport();
    let Setup {
        config, mut hook, ..
    } = setup;
    let server = smol::block_on(Server::bind("127.0.0.1:0", config, transport)).expect("bind");
    let addr = server.local_addr().expect("addr");
    let handle = server.handle();
    let (events, events_received) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        smol::block_on(server.run_with(move |server, event| {
            let event = ServerEvent::from(event);
            let commands = hook.as_mut().map(|hook| hook(&event)).unwrap_or_default();
            drop(events.send(event));
            apply_hook(commands, |input| server.commands().input(input), &events);
        }));
        Ok(())
    });
    RunningServer::new(addr, handle, events_received, thread)
}
