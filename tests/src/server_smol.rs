use crate::TIMEOUT;
use crate::server::{Backend, Command, RunningServer, ServerEvent, Setup, reply_channel};
use krmx_core::{Error, Input, Status, UserInfo};
use krmx_transport_smol::{Handle, Server, TransportConfig};
use std::io;
use std::net::TcpStream;
use std::sync::mpsc;

pub(crate) fn start(setup: Setup) -> RunningServer {
    let Setup {
        config,
        handshake_timeout,
        close_linger,
        mut hook,
    } = setup;
    let mut transport = TransportConfig::default().close_linger(close_linger);
    if let Some(timeout) = handshake_timeout {
        transport = transport.handshake_timeout(timeout);
    }
    let server = smol::block_on(Server::bind("127.0.0.1:0", config, transport)).expect("bind");
    let addr = server.local_addr().expect("addr");
    let handle = server.handle();
    let (events, events_received) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        smol::block_on(server.run_with(move |server, event| {
            let event = ServerEvent::from(event);
            let commands = hook.as_mut().map(|hook| hook(&event)).unwrap_or_default();
            let _ = events.send(event);
            for command in commands {
                let shown = format!("{command:?}");
                if let Err(error) = apply(server, command) {
                    let _ =
                        events.send(ServerEvent::HookCommandFailed(format!("{shown}: {error}")));
                }
            }
        }));
        Ok(())
    });
    RunningServer::new(
        addr,
        Box::new(SmolBackend { handle }),
        events_received,
        thread,
    )
}

fn apply(server: &mut Server, command: Command) -> Result<(), Error> {
    match command {
        Command::Join(username) => server.join(&username),
        Command::Kick(username) => server.kick(&username),
        Command::Unlink(username) => server.unlink(&username),
        Command::Send(username, message) => server.send(&username, message),
        Command::Broadcast(message, skip) => server.broadcast(message, skip.as_deref()),
        Command::DecideAuth(id, decision) => {
            server.decide_auth(id, decision);
            Ok(())
        }
        Command::Close => server.close(),
    }
}

struct SmolBackend {
    handle: Handle,
}

impl Backend for SmolBackend {
    fn try_command(&self, command: Command) -> Option<Result<(), Error>> {
        let input = match command {
            Command::Join(username) => Input::Join { username },
            Command::Kick(username) => Input::Kick { username },
            Command::Unlink(username) => Input::Unlink { username },
            Command::Send(username, message) => Input::Send { username, message },
            Command::Broadcast(message, skip) => Input::Broadcast { message, skip },
            Command::DecideAuth(id, decision) => Input::AuthDecided { id, decision },
            Command::Close => Input::Close,
        };
        let (reply, answer) = reply_channel();
        let handle = self.handle.clone();
        std::thread::spawn(move || {
            let _ = reply.send(smol::block_on(handle.input(input)));
        });
        answer.recv_timeout(TIMEOUT).ok()
    }
    fn users(&self) -> Vec<UserInfo> {
        smol::block_on(self.handle.users())
    }
    fn status(&self) -> Status {
        smol::block_on(self.handle.status())
    }
    fn adopt(&self, stream: TcpStream, already_read: Vec<u8>) -> io::Result<()> {
        self.handle.adopt(stream.try_into()?, already_read)
    }
}
