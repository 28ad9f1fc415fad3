//! [`Transport::Mio`](crate::Transport::Mio): the mio `Server` on a thread of its own, run by
//! the turnkey `run`, commanded through its `Handle`.

use crate::TIMEOUT;
use crate::server::{Backend, Command, RunningServer, ServerEvent, Setup, reply_channel};
use krmx_core::{Error, Status, UserInfo};
use krmx_transport_mio::{Handle, Server, TransportConfig, run};
use std::io;
use std::net::{SocketAddr, TcpStream};
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
    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let server = Server::bind(any_port, config, transport).expect("binding the mio server");
    let addr = server
        .local_addr()
        .expect("the listener's address")
        .expect("a listener");
    let (events, events_received) = mpsc::channel();
    let (handle_sender, handle_received) = reply_channel();
    let thread = std::thread::Builder::new()
        .name(format!("krmx-mio-{}", addr.port()))
        .spawn(move || {
            let mut handle_sender = Some(handle_sender);
            run(server, move |server, event| {
                // The first event (listen) comes right after registration: the handle exists.
                if let Some(sender) = handle_sender.take() {
                    let _ = sender.send(server.handle());
                }
                let event = ServerEvent::from(event);
                let commands = hook.as_mut().map(|hook| hook(&event)).unwrap_or_default();
                let _ = events.send(event);
                for command in commands {
                    let shown = format!("{command:?}");
                    if let Err(error) = apply(server, command) {
                        let _ = events
                            .send(ServerEvent::HookCommandFailed(format!("{shown}: {error}")));
                    }
                }
            })
        })
        .expect("spawning the server thread");
    let handle = handle_received
        .recv_timeout(TIMEOUT)
        .expect("the server did not start")
        .expect("the server has a handle once registered");
    RunningServer::new(
        addr,
        Box::new(MioBackend { handle }),
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

struct MioBackend {
    handle: Handle,
}

impl MioBackend {
    /// `Handle::call` with a timeout: `None` when the server is gone or does not answer.
    fn call<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Server) -> R + Send + 'static,
    ) -> Option<R> {
        let (reply, answer) = reply_channel();
        let sent = self.handle.execute(move |server| {
            let _ = reply.send(job(server));
        });
        if sent {
            answer.recv_timeout(TIMEOUT).ok()
        } else {
            None
        }
    }
}

impl Backend for MioBackend {
    fn try_command(&self, command: Command) -> Option<Result<(), Error>> {
        self.call(move |server| apply(server, command))
    }

    fn users(&self) -> Vec<UserInfo> {
        self.call(|server| server.users())
            .expect("the server did not answer users()")
    }

    fn status(&self) -> Status {
        self.call(|server| server.status())
            .expect("the server did not answer status()")
    }

    fn adopt(&self, stream: TcpStream, already_read: Vec<u8>) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        let stream = mio::net::TcpStream::from_std(stream);
        self.call(move |server| server.adopt(stream, already_read))
            .unwrap_or_else(|| Err(io::Error::other("the server did not answer adopt()")))
    }
}
