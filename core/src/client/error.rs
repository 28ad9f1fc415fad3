//! [`ClientError`]: a caller's mistake. A misbehaving server is never an error.

use super::ClientStatus;

/// Why a client command or a transport fact was refused. For commands, `Display` is the
/// JavaScript client's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The command is not possible in the current status, for example
    /// `cannot link when the client is linked`.
    ///
    /// `action` is the JavaScript client's word for the command: `connect`, `link`, `leave`,
    /// `disconnect` and `send`. Unlink also says `send` (`cannot send when the client is
    /// connected`), exactly as the JavaScript client does.
    #[error("cannot {action} when the client is {status}")]
    WrongStatus {
        /// What was attempted, as the JavaScript client words it.
        action: &'static str,
        /// The status at the time.
        status: ClientStatus,
    },
    /// A custom message whose type starts with the reserved `krmx/` prefix.
    #[error("cannot send custom messages with type starting with the internal 'krmx/' prefix")]
    ReservedType,
    /// The transport reported something that cannot happen in this status: a connection opened
    /// that the client did not ask for, or a message on a connection the client does not have.
    #[error("the transport reported {fact} when the client is {status}")]
    UnexpectedTransport {
        /// What was reported.
        fact: &'static str,
        /// The status at the time.
        status: ClientStatus,
    },
}
