//! The bare server on smol: async-tungstenite, every task on one thread (a `LocalExecutor`).
//! Each connection has a reader task (which relays or echoes what it reads) and a writer task
//! that takes everything queued for it, hands it to tungstenite and flushes once per burst.
//! Relayed payloads are shared (`Utf8Bytes` clones), never copied per recipient.

use crate::Mode;
use async_tungstenite::WebSocketSender;
use futures_sink::Sink;
use smol::net::{TcpListener, TcpStream};
use smol::stream::StreamExt;
use smol::{LocalExecutor, channel};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, Utf8Bytes};

/// One connection's outbound queue.
struct Peer {
    queue: channel::Sender<Utf8Bytes>,
    /// Bytes queued and not yet handed to tungstenite.
    buffered: Rc<Cell<usize>>,
}

type Peers = Rc<RefCell<HashMap<u64, Peer>>>;

/// Runs until killed.
pub(crate) fn serve(addr: SocketAddr, mode: Mode, max_buffered: usize) -> io::Result<()> {
    let executor: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
    let spawner = Rc::clone(&executor);
    smol::block_on(executor.run(async move {
        let listener = TcpListener::bind(addr).await?;
        crate::announce(listener.local_addr()?.port())?;
        let peers: Peers = Rc::default();
        let config = WebSocketConfig::default()
            .read_buffer_size(4 << 10)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        let mut next_id = 0_u64;
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let _ = stream.set_nodelay(true);
            next_id += 1;
            let connection = Connection {
                id: next_id,
                peers: Rc::clone(&peers),
                mode,
                max_buffered,
                config,
                spawner: Rc::clone(&spawner),
            };
            spawner.spawn(connection.run(stream)).detach();
        }
    }))
}

struct Connection {
    id: u64,
    peers: Peers,
    mode: Mode,
    max_buffered: usize,
    config: WebSocketConfig,
    spawner: Rc<LocalExecutor<'static>>,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let Ok(ws) = async_tungstenite::accept_async_with_config(stream, Some(self.config)).await
        else {
            return;
        };
        let (sender, mut receiver) = ws.split();
        let (queue, queued) = channel::unbounded();
        let buffered = Rc::new(Cell::new(0));
        let writer = self
            .spawner
            .spawn(write(sender, queued, Rc::clone(&buffered)));
        self.peers
            .borrow_mut()
            .insert(self.id, Peer { queue, buffered });
        while let Some(read) = receiver.next().await {
            match read {
                Ok(Message::Text(text)) => self.deliver(&text),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.peers.borrow_mut().remove(&self.id);
        drop(writer);
    }

    fn deliver(&self, text: &Utf8Bytes) {
        let mut peers = self.peers.borrow_mut();
        let mut slow = Vec::new();
        let mut push = |id: u64, peer: &Peer| {
            if peer.buffered.get() > self.max_buffered {
                slow.push(id);
            } else if peer.queue.try_send(text.clone()).is_ok() {
                peer.buffered.set(peer.buffered.get() + text.len());
            }
        };
        match self.mode {
            Mode::Echo => {
                if let Some(peer) = peers.get(&self.id) {
                    push(self.id, peer);
                }
            }
            Mode::Relay => {
                for (&id, peer) in peers.iter() {
                    push(id, peer);
                }
            }
        }
        for id in slow {
            eprintln!("krmx-bare: dropping a slow consumer");
            // Dropping the queue ends the writer, which drops the socket's write half.
            peers.remove(&id);
        }
    }
}

/// Writes everything queued, flushing once per burst.
async fn write(
    mut sender: WebSocketSender<TcpStream>,
    queued: channel::Receiver<Utf8Bytes>,
    buffered: Rc<Cell<usize>>,
) -> Result<(), tungstenite::Error> {
    while let Ok(first) = queued.recv().await {
        let mut next = Some(first);
        while let Some(text) = next.take() {
            buffered.set(buffered.get().saturating_sub(text.len()));
            poll_fn(|cx| Pin::new(&mut sender).poll_ready(cx)).await?;
            Pin::new(&mut sender).start_send(Message::Text(text))?;
            next = queued.try_recv().ok();
        }
        poll_fn(|cx| Pin::new(&mut sender).poll_flush(cx)).await?;
    }
    Ok(())
}
