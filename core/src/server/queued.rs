//! [`Queued`]: an [`Output`] as the server queues it until the transport polls it. Events are
//! boxed, so an entry takes 32 bytes instead of the 136 of the largest event: the queue of a
//! burst (a link storm sends four messages per linked user, a broadcast one per recipient)
//! takes a quarter of the memory, and that memory stays with the queue.

use crate::{CloseCode, ConnectionId, Event, Output, Text};

/// An output waiting in the server's queue.
#[derive(Debug)]
pub(super) enum Queued {
    Send {
        to: ConnectionId,
        text: Text,
    },
    Ping {
        to: ConnectionId,
    },
    Close {
        to: ConnectionId,
        code: CloseCode,
        reason: &'static str,
    },
    Event(Box<Event>),
}

impl From<Queued> for Output {
    fn from(queued: Queued) -> Self {
        match queued {
            Queued::Send { to, text } => Self::Send { to, text },
            Queued::Ping { to } => Self::Ping { to },
            Queued::Close { to, code, reason } => Self::Close { to, code, reason },
            Queued::Event(event) => Self::Event(*event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_a_quarter_of_an_output() {
        assert!(std::mem::size_of::<Queued>() <= 32);
        assert!(std::mem::size_of::<Output>() >= 4 * std::mem::size_of::<Queued>());
    }
}
