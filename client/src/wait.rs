//! The answers a client command waits for.

use crate::ClientFailure;
use krmx_core::{ClientEvent, ClientStatus, KrmxClient};
use std::collections::VecDeque;

/// The server's answer a client command waits for, judged from the client's state and the
/// events queued since the command.
#[derive(Debug, Clone)]
pub(crate) enum Wait {
    /// A link: accepted and listed up to the client's own place in join order
    /// ([`KrmxClient::is_listed`]), or rejected.
    Link {
        /// How many events were queued before the link was sent.
        first_event: usize,
    },
    /// An unlink: its own `krmx/unlinked`.
    Unlink,
    /// A leave: its own `krmx/unlinked` (the client is `connected` at once; its name goes with
    /// that unlink).
    Leave,
}

impl Wait {
    /// `None` while the answer is still to come; else the command's result. `ending` is how
    /// the connection ended, when the adapter knows (a close frame, a protocol error).
    ///
    /// # Errors
    /// [`ClientFailure::Rejected`] with the server's reason; `ending` (or
    /// [`ClientFailure::Closed`] without a code) when the connection closed first.
    pub(crate) fn outcome(
        &self,
        client: &KrmxClient,
        events: &VecDeque<ClientEvent>,
        ending: Option<&ClientFailure>,
    ) -> Option<Result<(), ClientFailure>> {
        let status = client.status();
        let closed = matches!(status, ClientStatus::Closing | ClientStatus::Closed)
            .then(|| Err(ending.cloned().unwrap_or_else(ClientFailure::dropped)));
        match self {
            Self::Link { first_event } => {
                if client.is_listed() {
                    return Some(Ok(()));
                }
                let rejected = events
                    .range((*first_event).min(events.len())..)
                    .find_map(|event| match event {
                        ClientEvent::Rejected { reason } => Some(reason.clone()),
                        _ => None,
                    });
                match rejected {
                    Some(reason) => Some(Err(ClientFailure::Rejected { reason })),
                    None => closed,
                }
            }
            _ if closed.is_some() => closed,
            Self::Unlink => (status != ClientStatus::Unlinking).then_some(Ok(())),
            Self::Leave => client.username().is_none().then_some(Ok(())),
        }
    }
}
