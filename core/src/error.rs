//! [`Error`]: a caller's mistake. A misbehaving peer is never an error: it becomes outputs.

use crate::{ConnectionId, Status};

/// Why a server command or an input was refused. `Display` is the reference's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command is not possible in the current status, for example
    /// `cannot kick a user when the server is initializing`.
    #[error("cannot {action} when the server is {status}")]
    WrongStatus {
        /// What was attempted, as the reference words it (`kick a user`).
        action: &'static str,
        /// The status at the time.
        status: Status,
    },
    /// `join` of a user that exists.
    #[error("cannot join a user that already exist")]
    JoinExistingUser,
    /// `join` with a name that breaks the username rule.
    #[error("cannot join a user with an invalid username")]
    JoinInvalidUsername,
    /// `kick` of an unknown user.
    #[error("cannot kick a user that does not exist")]
    KickUnknownUser,
    /// `unlink` of an unknown user.
    #[error("cannot unlink a connection from a user that does not exist")]
    UnlinkUnknownUser,
    /// `unlink` of a user that is not linked.
    #[error("cannot unlink a connection from a user that is not linked")]
    UnlinkNotLinked,
    /// `send` to an unknown user.
    #[error("cannot send a message to a user that does not exist")]
    SendUnknownUser,
    /// `send` to a user that is not linked.
    #[error("cannot send a message to a user that is not linked to a connection")]
    SendNotLinked,
    /// The transport opened a connection id it used before.
    #[error("connection {0} is already open")]
    DuplicateConnection(ConnectionId),
    /// The transport reported something for a connection the core does not know (never opened,
    /// or closed by an earlier [`Output::Close`](crate::Output::Close)).
    #[error("connection {0} is not open")]
    UnknownConnection(ConnectionId),
}
