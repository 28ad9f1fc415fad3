//! [`Event`]: a core event with, for an authentication request, the [`AuthResponder`] that
//! answers it; [`Events`]: the async stream of them.

use krmx_driver::AuthResponder;
use smol::channel::Receiver;
use smol::stream::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What happened, for the application: the core's [`event`](Self::event), and for
/// [`AuthRequested`](krmx_core::Event::AuthRequested) the [`responder`](Self::responder)
/// that answers it (now, or later from any task; dropping it rejects the link).
#[derive(Debug)]
pub struct Event {
    /// The core's event.
    pub event: krmx_core::Event,
    /// The answer owed to an authentication request; `None` for every other event.
    pub responder: Option<AuthResponder>,
}

/// The server's events as an async stream, from [`Server::events`](crate::Server::events).
/// It ends once the server finished.
#[derive(Debug)]
pub struct Events {
    receiver: Pin<Box<Receiver<Event>>>,
}

impl Events {
    pub(crate) fn new(receiver: Receiver<Event>) -> Self {
        Self {
            receiver: Box::pin(receiver),
        }
    }

    /// The next event; `None` once the server finished.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.receiver.recv().await.ok()
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.receiver.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.receiver.len(), None)
    }
}
