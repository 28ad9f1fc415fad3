//! `krmx serve --rooms PREFIX --workers N` (mio): a front thread routes each connection to the
//! worker that owns its room ([`Front`]); every worker is a [`Server`] on a thread of its own
//! with its own [`App`] (authentication, relay, echo stay in the room's thread), all printing
//! to one stdout. The main thread reads stdin and signals and routes each command: `in ROOM ...`
//! to the room's worker, `rooms` to every worker (the replies merged), `close` to every worker.

use crate::app::{App, Behaviour, Flow};
use crate::command::Command;
use crate::controls::{self, Control};
use crate::json;
use crate::shared_out::{SharedOut, print_line};
use krmx_core::{Event, Input, KrmxConfig};
use krmx_transport_mio::{Front, RoomInfo, RoomsConfig, Server, TransportConfig};
use mio::{Events, Poll, Token, Waker};
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the main thread asks of a worker.
enum Ask {
    /// A stdin line for this worker's app; answered once its reply is printed.
    Line(String, Sender<()>),
    /// Its rooms.
    Rooms(Sender<Vec<RoomInfo>>),
    /// Close (the `close` command or a signal).
    Close,
}

/// A worker as the main thread sees it.
struct Worker {
    thread: JoinHandle<io::Result<()>>,
    asks: Sender<Ask>,
    waker: Arc<Waker>,
}

impl Worker {
    fn ask(&self, ask: Ask) {
        if self.asks.send(ask).is_ok() {
            if let Err(error) = self.waker.wake() {
                tracing::warn!(%error, "could not wake a worker");
            }
        }
    }
}

/// Runs until every worker closed.
pub(crate) fn serve(
    addr: SocketAddr,
    config: &KrmxConfig,
    transport: &TransportConfig,
    behaviour: &Behaviour,
    count: usize,
) -> io::Result<()> {
    let rooms = transport
        .rooms_value()
        .cloned()
        .ok_or_else(|| io::Error::other("--workers needs --rooms"))?;
    if transport.tls_value().is_some() {
        return Err(io::Error::other(
            "--workers routes by the request path, which TLS hides: terminate TLS in front \
             (a load balancer) or run one worker",
        ));
    }
    let out = Arc::new(Mutex::new(io::stdout()));
    let mut workers = Vec::with_capacity(count);
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let (ready, started) = mpsc::channel();
        let (asks, asked) = mpsc::channel();
        let (config, transport) = (config.clone(), transport.clone());
        let behaviour = Behaviour {
            lifecycle: false,
            ..behaviour.clone()
        };
        let out = Arc::clone(&out);
        let thread = std::thread::Builder::new()
            .name(format!("krmx-worker-{index}"))
            .spawn(move || work(config, transport, behaviour, out, asked, ready))?;
        let (handle, waker) = started
            .recv()
            .map_err(|_| io::Error::other("a worker did not start"))??;
        handles.push(handle);
        workers.push(Worker {
            thread,
            asks,
            waker,
        });
    }
    let front = Front::bind(addr, rooms.clone(), handles)?
        .handshake_timeout(transport.handshake_timeout_value())
        .figures(transport.clone());
    let port = front.local_addr()?.port();
    if let Some(line) = json::event_line(&Event::Listening { port }, false, None) {
        print_line(&out, &line)?;
    }
    let stopper = front.stopper();
    let front_thread = std::thread::Builder::new()
        .name("krmx-front".into())
        .spawn(move || front.run())?;
    // The main thread blocks on the controls themselves: nothing to wake.
    let controls = controls::spawn(|| {})?;
    loop {
        let Ok(control) = controls.recv_blocking() else {
            // stdin ended and no signal can come any more: serve until killed.
            std::thread::park();
            continue;
        };
        let line = match control {
            Control::Signal => None,
            Control::Line(line) => Some(line),
        };
        let flow = match line {
            None => Flow::Exit,
            Some(line) => route(&line, &workers, &rooms, &out)?,
        };
        if flow == Flow::Exit {
            break;
        }
    }
    for worker in &workers {
        worker.ask(Ask::Close);
    }
    for worker in workers {
        match worker.thread.join() {
            Ok(result) => result?,
            Err(_) => return Err(io::Error::other("a worker panicked")),
        }
    }
    stopper.stop();
    drop(front_thread.join());
    if let Some(line) = json::event_line(&Event::Closed, false, None) {
        print_line(&out, &line)?;
    }
    Ok(())
}

/// Routes one stdin line; `Exit` for `close`.
fn route(
    line: &str,
    workers: &[Worker],
    rooms: &RoomsConfig,
    out: &Arc<Mutex<io::Stdout>>,
) -> io::Result<Flow> {
    let worker = match Command::parse(line) {
        Ok(None) => return Ok(Flow::Continue),
        Ok(Some(Command::Close)) => {
            print_line(out, &json::ok_reply("close"))?;
            return Ok(Flow::Exit);
        }
        Ok(Some(Command::Rooms)) => {
            let mut all = Vec::new();
            for worker in workers {
                let (reply, replied) = mpsc::channel();
                worker.ask(Ask::Rooms(reply));
                all.extend(replied.recv().unwrap_or_default());
            }
            print_line(out, &json::rooms_reply(&all))?;
            return Ok(Flow::Continue);
        }
        Ok(Some(Command::In(room, _))) if rooms.is_valid_id(&room) => {
            RoomsConfig::worker_of(&room, workers.len())
        }
        // Everything else (errors included) is answered by worker 0's app.
        _ => 0,
    };
    if let Some(worker) = workers.get(worker) {
        let (done, replied) = mpsc::channel();
        worker.ask(Ask::Line(line.to_owned(), done));
        // The reply is printed before the next line is read.
        replied.recv().ok();
    }
    Ok(Flow::Continue)
}

/// A worker's thread: its server, its app, and what the main thread asks.
fn work(
    config: KrmxConfig,
    transport: TransportConfig,
    behaviour: Behaviour,
    out: Arc<Mutex<io::Stdout>>,
    asks: Receiver<Ask>,
    ready: Sender<io::Result<(krmx_transport_mio::Handle, Arc<Waker>)>>,
) -> io::Result<()> {
    let started: io::Result<_> = (|| {
        let mut server = Server::without_listener(config, transport);
        let poll = Poll::new()?;
        server.register(poll.registry(), Token(0))?;
        let handle = server
            .handle()
            .ok_or_else(|| io::Error::other("the worker has no handle"))?;
        let waker = server
            .waker()
            .ok_or_else(|| io::Error::other("the worker has no waker"))?;
        Ok((server, poll, handle, waker))
    })();
    let (mut server, mut poll) = match started {
        Ok((server, poll, handle, waker)) => {
            drop(ready.send(Ok((handle, waker))));
            (server, poll)
        }
        Err(error) => {
            let message = error.to_string();
            drop(ready.send(Err(error)));
            return Err(io::Error::other(message));
        }
    };
    let mut app = App::new(behaviour, SharedOut::new(out));
    // Each worker gives freed memory back after its bursts, as the one-loop server does.
    app.trim_after_bursts();
    let mut events = Events::with_capacity(1024);
    loop {
        app.drain(server.commands())?;
        if server.is_finished() {
            return Ok(());
        }
        server.turn(&mut poll, &mut events)?;
        while let Ok(ask) = asks.try_recv() {
            match ask {
                Ask::Line(line, done) => {
                    app.on_line(server.commands(), &line)?;
                    done.send(()).ok();
                }
                Ask::Rooms(reply) => drop(reply.send(server.commands().rooms())),
                Ask::Close => {
                    if let Err(error) = server.commands().input(Input::Close) {
                        tracing::debug!(%error, "a worker's close");
                    }
                }
            }
        }
    }
}
