//! [`Watch`]: the one task of a connection, which waits for its socket to be readable (or
//! writable) each time the driver asks ([`Arm`]) and reports it. Hand-written, so an idle
//! connection costs the task's few words and no channel.

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

/// The driver's requests to wait for readability or writability once more, shared by the server
/// and the task.
#[derive(Debug, Default)]
pub(crate) struct Arm {
    armed: AtomicBool,
    write_armed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Arm {
    /// Asks the task to wait for readability and report it once.
    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::Release);
        self.wake();
    }

    /// Asks the task to wait for writability and report it once.
    pub(crate) fn arm_write(&self) {
        self.write_armed.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire) || self.write_armed.load(Ordering::Acquire)
    }

    /// Whether a wait was asked for. Either way `cx` is woken by the next arming: a task
    /// waiting for readability must also learn that a write now waits for writability.
    fn poll_armed(&self, cx: &mut Context<'_>) -> bool {
        let mut waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            other => *other = Some(cx.waker().clone()),
        }
        drop(waker);
        self.is_armed()
    }
}

/// Whether bytes (or the end of the stream, or an error) wait to be read now. Asked after the
/// interest was registered: bytes that arrived after the driver's last read but before that
/// registration need no trip through the reactor, which only reports readiness that comes
/// after it.
fn has_input(socket: &Async<TcpStream>) -> bool {
    let mut byte = [0_u8; 1];
    !matches!(socket.get_ref().peek(&mut byte), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

/// Waits for readability (writability) each time the connection is armed for it, and reports
/// it. Ends when the server is gone.
pub(crate) struct Watch {
    pub(crate) socket: Arc<Async<TcpStream>>,
    pub(crate) key: ConnKey,
    pub(crate) arm: Arc<Arm>,
    /// Unbounded: a connection has at most one report of each kind outstanding.
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
            let mut pending = true;
            // An error shows on the driver's next read or write.
            if this.arm.write_armed.load(Ordering::Acquire)
                && this.socket.poll_writable(cx).is_ready()
            {
                this.arm.write_armed.store(false, Ordering::Release);
                if this.reports.try_send(Report::Writable(this.key)).is_err() {
                    return Poll::Ready(());
                }
                pending = false;
            }
            if this.arm.armed.load(Ordering::Acquire)
                && (this.socket.poll_readable(cx).is_ready() || has_input(&this.socket))
            {
                this.arm.armed.store(false, Ordering::Release);
                if this.reports.try_send(Report::Readable(this.key)).is_err() {
                    return Poll::Ready(());
                }
                pending = false;
            }
            if pending {
                return Poll::Pending;
            }
        }
    }
}
