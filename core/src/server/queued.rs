//! [`Queued`]: an [`Output`] as the server queues it until the transport polls it. Events are
//! boxed, so an entry takes 40 bytes instead of the 136 of the largest event, and a broadcast is
//! one entry with its recipients (eight bytes each) rather than one output per recipient: the
//! queue of a burst takes a fraction of the memory, and a transport takes a broadcast whole
//! ([`Output::Broadcast`]).

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
    /// `text` to each of `to` (never empty), from `to[next]` on.
    Broadcast {
        text: Text,
        to: Vec<ConnectionId>,
    },
}

impl Queued {
    /// The output this entry stands for; a broadcast stands for its first recipient's send.
    pub(super) fn into_output(self) -> Output {
        match self {
            Self::Send { to, text } => Output::Send { to, text },
            Self::Ping { to } => Output::Ping { to },
            Self::Close { to, code, reason } => Output::Close { to, code, reason },
            Self::Event(event) => Output::Event(*event),
            Self::Broadcast { text, to } => Output::Broadcast { to, text },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_far_smaller_than_an_output() {
        assert!(std::mem::size_of::<Queued>() <= 48);
        assert!(std::mem::size_of::<Output>() >= 2 * std::mem::size_of::<Queued>());
    }
}
