//! [`Handle`]: commands from other threads, carried out on the server's thread.

use crate::Server;
use krmx_core::{AuthDecision, AuthId, Message};
use mio::Waker;
use std::sync::{Arc, mpsc};

/// Work for the server thread.
pub(crate) type Job = Box<dyn FnOnce(&mut Server) + Send>;

/// A cloneable, thread-safe handle to a running [`Server`]: each call queues the command and
/// wakes the server's poll; the command runs on the server's thread.
///
/// ```no_run
/// # fn demo(handle: krmx_transport_mio::Handle) {
/// use krmx_core::Message;
/// let handle2 = handle.clone();
/// std::thread::spawn(move || {
///     handle2.broadcast(Message::new("game/tick"), None);
/// });
/// let users = handle.call(|server| server.users()); // blocks until the server answered
/// # }
/// ```
#[derive(Clone)]
pub struct Handle {
    jobs: mpsc::Sender<Job>,
    waker: Arc<Waker>,
}

impl Handle {
    pub(crate) fn new(jobs: mpsc::Sender<Job>, waker: Arc<Waker>) -> Self {
        Self { jobs, waker }
    }

    /// Runs `job` on the server's thread. Returns `false` when the server is gone.
    pub fn execute(&self, job: impl FnOnce(&mut Server) + Send + 'static) -> bool {
        self.jobs.send(Box::new(job)).is_ok() && self.waker.wake().is_ok()
    }

    /// Wakes the poll the server is registered with, so the loop around it turns once. mio
    /// allows one waker per poll and the server owns it: an embedding application wakes its
    /// loop with this instead of a waker of its own.
    pub fn wake(&self) -> bool {
        self.execute(|_| {})
    }

    /// Runs `job` on the server's thread and waits for its result; `None` when the server is
    /// gone. Do not call it from the server's own thread (it would wait forever).
    pub fn call<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Server) -> R + Send + 'static,
    ) -> Option<R> {
        let (reply, answer) = mpsc::sync_channel(1);
        let sent = self.execute(move |server| {
            let _ = reply.send(job(server));
        });
        if sent { answer.recv().ok() } else { None }
    }

    /// Sends a message to one linked user (errors are logged).
    pub fn send(&self, username: &str, message: Message) -> bool {
        let username = username.to_owned();
        self.execute(move |server| log_error(server.send(&username, message)))
    }

    /// Sends a message to every linked user but `skip` (errors are logged).
    pub fn broadcast(&self, message: Message, skip: Option<&str>) -> bool {
        let skip = skip.map(str::to_owned);
        self.execute(move |server| log_error(server.broadcast(message, skip.as_deref())))
    }

    /// The user leaves (errors are logged).
    pub fn kick(&self, username: &str) -> bool {
        let username = username.to_owned();
        self.execute(move |server| log_error(server.kick(&username)))
    }

    /// Answers a pending authentication.
    pub fn decide_auth(&self, id: AuthId, decision: AuthDecision) -> bool {
        self.execute(move |server| server.decide_auth(id, decision))
    }

    /// Closes the server gracefully (errors are logged).
    pub fn close(&self) -> bool {
        self.execute(|server| log_error(server.close()))
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

fn log_error(result: Result<(), krmx_core::Error>) {
    if let Err(error) = result {
        tracing::warn!(%error, "command from a handle failed");
    }
}
