//! [`Watch`]: the one task of a connection, which waits for its socket to be readable each time
//! the driver asks ([`Arm`]) and reports it. Hand-written, so an idle connection costs the task's
//! few words and no channel.

use krmx_driver::ConnKey;
use smol::Async;
use smol::channel::Sender;
use std::future::Future;
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// What the watcher tasks report to the server.
#[derive(Debug)]
pub(crate) enum Report {
    /// The connection is readable (or hung up, or broke).
    Readable(ConnKey),
    /// The connection takes bytes again.
    Writable(ConnKey),
}

/// The driver's request to wait for readability once more, shared by the server and the task.
#[derive(Debug, Default)]
pub(crate) struct Arm {
    armed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Arm {
    /// Asks the task to wait for readability and report it once.
    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::Release);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether a wait was asked for; otherwise `cx` is woken by the next [`arm`](Self::arm).
    fn poll_armed(&self, cx: &mut Context<'_>) -> bool {
        if self.armed.load(Ordering::Acquire) {
            return true;
        }
        let mut waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            other => *other = Some(cx.waker().clone()),
        }
        drop(waker);
        // Armed between the first look and storing the waker: its wake found no waker.
        self.armed.load(Ordering::Acquire)
    }
}

/// Waits for readability each time the connection is armed, and reports it. Ends when the
/// server is gone.
pub(crate) struct Watch {
    pub(crate) socket: Arc<Async<TcpStream>>,
    pub(crate) key: ConnKey,
    pub(crate) arm: Arc<Arm>,
    /// Unbounded: a connection has at most one readability report outstanding.
    pub(crate) reports: Sender<Report>,
}

impl Future for Watch {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if !this.arm.poll_armed(cx) {
                return Poll::Pending;
            }
            // An error shows on the driver's next read.
            if this.socket.poll_readable(cx).is_pending() {
                return Poll::Pending;
            }
            this.arm.armed.store(false, Ordering::Release);
            if this.reports.try_send(Report::Readable(this.key)).is_err() {
                return Poll::Ready(());
            }
        }
    }
}
