//! The bare server on smol, built the way the Krmx smol transport is, minus Krmx: every task
//! on one thread (a `LocalExecutor`); a reader task per connection (async-tungstenite, reading
//! through the thread's scratch buffer) that relays or echoes what it reads into the
//! recipients' [`Outbox`]es; one flusher task that writes every outbox with bytes queued
//! straight to its socket once the readers have run, and a waiter task for a socket that is
//! full. What tungstenite writes (the upgrade response, pongs) goes through the outbox too.

use crate::Mode;
use krmx_core::Text;
use krmx_driver::DEFAULT_READ_BUFFER_BYTES;
use krmx_driver::plumbing::{Outbox, ReadAhead};
use smol::io::{AsyncRead, AsyncWrite};
use smol::net::{TcpListener, TcpStream};
use smol::stream::StreamExt;
use smol::{Async, LocalExecutor, Task};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tungstenite::Message;
use tungstenite::protocol::WebSocketConfig;

/// One connection's outbound side.
struct Peer {
    socket: Arc<Async<std::net::TcpStream>>,
    outbox: Outbox,
    dirty: bool,
    /// Waits for the socket to take bytes again.
    waiter: Option<Task<()>>,
}

/// Every connection's outbound side, and the flusher's wake-up.
struct Hub {
    peers: HashMap<u64, Peer>,
    dirty: Vec<u64>,
    flusher: Option<Waker>,
    max_buffered: usize,
    executor: Rc<LocalExecutor<'static>>,
    hub: Option<std::rc::Weak<RefCell<Hub>>>,
}

type Shared = Rc<RefCell<Hub>>;

impl Hub {
    /// Queues bytes (tungstenite's writes, or a text frame) for `id`.
    fn queue(&mut self, id: u64, push: impl FnOnce(&mut Outbox)) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        push(&mut peer.outbox);
        if !peer.dirty {
            peer.dirty = true;
            self.dirty.push(id);
        }
        if peer.outbox.is_batch_full() || peer.outbox.buffered() > self.max_buffered {
            self.write_or_drop(id);
        }
        self.wake_flusher();
    }

    /// Queues a text frame for every connection.
    fn queue_all(&mut self, payload: &Text) {
        let mut full = Vec::new();
        for (&id, peer) in &mut self.peers {
            peer.outbox.push_text_frame(payload);
            if !peer.dirty {
                peer.dirty = true;
                self.dirty.push(id);
            }
            if peer.outbox.is_batch_full() || peer.outbox.buffered() > self.max_buffered {
                full.push(id);
            }
        }
        for id in full {
            self.write_or_drop(id);
        }
        self.wake_flusher();
    }

    fn wake_flusher(&mut self) {
        if let Some(waker) = self.flusher.take() {
            waker.wake();
        }
    }

    /// Writes now; drops the connection if it still holds more than the bound.
    fn write_or_drop(&mut self, id: u64) {
        self.write(id);
        if let Some(peer) = self.peers.get(&id) {
            if peer.outbox.buffered() > self.max_buffered {
                eprintln!("krmx-bare: dropping a slow consumer");
                let _ = peer.socket.get_ref().shutdown(Shutdown::Both);
                self.peers.remove(&id);
            }
        }
    }

    /// Writes what the socket of `id` takes; a full socket gets a waiter.
    fn write(&mut self, id: u64) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.waiter.is_some() {
            return;
        }
        match peer.outbox.write_to(&mut peer.socket.get_ref()) {
            Ok(true) => {}
            Ok(false) => {
                let socket = Arc::clone(&peer.socket);
                let hub = self.hub.clone();
                peer.waiter = Some(self.executor.spawn(async move {
                    let _ = socket.writable().await;
                    if let Some(hub) = hub.and_then(|hub| hub.upgrade()) {
                        let mut hub = hub.borrow_mut();
                        if let Some(peer) = hub.peers.get_mut(&id) {
                            peer.waiter = None;
                        }
                        hub.write(id);
                    }
                }));
            }
            Err(_) => {
                self.peers.remove(&id);
            }
        }
    }

    /// Writes every dirty connection.
    fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.dirty = false;
            }
            self.write(id);
        }
        let mut dirty = dirty;
        dirty.clear();
        self.dirty = dirty;
    }
}

/// Runs until killed.
pub(crate) fn serve(addr: SocketAddr, mode: Mode, max_buffered: usize) -> io::Result<()> {
    let executor: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
    let hub: Shared = Rc::new(RefCell::new(Hub {
        peers: HashMap::new(),
        dirty: Vec::new(),
        flusher: None,
        max_buffered,
        executor: Rc::clone(&executor),
        hub: None,
    }));
    hub.borrow_mut().hub = Some(Rc::downgrade(&hub));
    let spawner = Rc::clone(&executor);
    smol::block_on(executor.run(async move {
        let listener = TcpListener::bind(addr).await?;
        crate::announce(listener.local_addr()?.port())?;
        spawner.spawn(flusher(Rc::clone(&hub))).detach();
        let config = WebSocketConfig::default()
            .read_buffer_size(DEFAULT_READ_BUFFER_BYTES)
            .write_buffer_size(0)
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
            let id = next_id;
            hub.borrow_mut().peers.insert(
                id,
                Peer {
                    socket: Arc::<Async<std::net::TcpStream>>::from(stream.clone()),
                    outbox: Outbox::default(),
                    dirty: false,
                    waiter: None,
                },
            );
            let socket = BareSocket {
                stream,
                ahead: ReadAhead::default(),
                hub: Rc::clone(&hub),
                id,
            };
            spawner
                .spawn(read(id, socket, Rc::clone(&hub), mode, config))
                .detach();
        }
    }))
}

/// The flusher: whenever woken, writes every dirty connection.
async fn flusher(hub: Shared) {
    poll_fn(|cx| {
        let mut hub = hub.borrow_mut();
        hub.flush();
        hub.flusher = Some(cx.waker().clone());
        Poll::<()>::Pending
    })
    .await;
}

/// A connection's reader: relays or echoes every text message.
async fn read(id: u64, socket: BareSocket, hub: Shared, mode: Mode, config: WebSocketConfig) {
    if let Ok(mut ws) = async_tungstenite::accept_async_with_config(socket, Some(config)).await {
        while let Some(read) = ws.next().await {
            match read {
                Ok(Message::Text(text)) => {
                    let payload = Text::from(text.as_str());
                    let mut hub = hub.borrow_mut();
                    match mode {
                        Mode::Echo => hub.queue(id, |outbox| outbox.push_text_frame(&payload)),
                        Mode::Relay => hub.queue_all(&payload),
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    hub.borrow_mut().peers.remove(&id);
}

/// The stream tungstenite reads from (through the thread's scratch buffer) and writes to
/// (the connection's outbox).
struct BareSocket {
    stream: TcpStream,
    ahead: ReadAhead,
    hub: Shared,
    id: u64,
}

impl AsyncRead for BareSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let stream = &mut this.stream;
        this.ahead
            .read_with(buf, |scratch| Pin::new(stream).poll_read(cx, scratch))
    }
}

impl AsyncWrite for BareSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.hub
            .borrow_mut()
            .queue(self.id, |outbox| outbox.push_bytes(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
