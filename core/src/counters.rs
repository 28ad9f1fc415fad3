//! [`Counters`]: running totals the server keeps for monitoring, and [`Rejection`], the bounded
//! set of reasons a `krmx/rejected` is counted under.

/// Why the server answered `krmx/rejected`, as a fixed set: the texts sent to the client may
/// hold a username, a client version or an application's own reason, but a rejection is
/// counted under one of these, so a monitoring label never grows with what clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// `invalid link request`: a `krmx/link` without a valid payload.
    InvalidLinkRequest,
    /// `krmx server version mismatch (...)`: the client speaks another protocol version.
    VersionMismatch,
    /// `invalid username`.
    InvalidUsername,
    /// `server is not accepting new users`.
    NotAcceptingNewUsers,
    /// `user NAME is already linked to a connection`.
    AlreadyLinked,
    /// `too many pending authentications`.
    TooManyPendingAuths,
    /// `authentication failed`: the application gave no answer (or an error without a message).
    AuthenticationFailed,
    /// `authentication timeout`: the application did not decide in time.
    AuthenticationTimeout,
    /// The application rejected the link with a reason of its own.
    Application,
    /// `unlinked connection`: a message other than `krmx/link` from an unlinked connection.
    UnlinkedConnection,
    /// `invalid message`: an unparsable message from an unlinked connection.
    InvalidMessage,
}

impl Rejection {
    /// Every rejection, in declaration order.
    pub const ALL: [Self; 11] = [
        Self::InvalidLinkRequest,
        Self::VersionMismatch,
        Self::InvalidUsername,
        Self::NotAcceptingNewUsers,
        Self::AlreadyLinked,
        Self::TooManyPendingAuths,
        Self::AuthenticationFailed,
        Self::AuthenticationTimeout,
        Self::Application,
        Self::UnlinkedConnection,
        Self::InvalidMessage,
    ];

    /// A short fixed text for labels: the reason sent where it is fixed, else a summary of it
    /// without the parts that vary (`krmx server version mismatch`, `user is already linked to
    /// a connection`, `rejected by the application`).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::InvalidLinkRequest => "invalid link request",
            Self::VersionMismatch => "krmx server version mismatch",
            Self::InvalidUsername => "invalid username",
            Self::NotAcceptingNewUsers => "server is not accepting new users",
            Self::AlreadyLinked => "user is already linked to a connection",
            Self::TooManyPendingAuths => "too many pending authentications",
            Self::AuthenticationFailed => "authentication failed",
            Self::AuthenticationTimeout => "authentication timeout",
            Self::Application => "rejected by the application",
            Self::UnlinkedConnection => "unlinked connection",
            Self::InvalidMessage => "invalid message",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// How many `krmx/rejected` were sent, per [`Rejection`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    invalid_link_request: u64,
    version_mismatch: u64,
    invalid_username: u64,
    not_accepting_new_users: u64,
    already_linked: u64,
    too_many_pending_auths: u64,
    authentication_failed: u64,
    authentication_timeout: u64,
    application: u64,
    unlinked_connection: u64,
    invalid_message: u64,
}

impl Rejections {
    /// How many were sent for `reason`.
    #[must_use]
    pub fn get(&self, reason: Rejection) -> u64 {
        match reason {
            Rejection::InvalidLinkRequest => self.invalid_link_request,
            Rejection::VersionMismatch => self.version_mismatch,
            Rejection::InvalidUsername => self.invalid_username,
            Rejection::NotAcceptingNewUsers => self.not_accepting_new_users,
            Rejection::AlreadyLinked => self.already_linked,
            Rejection::TooManyPendingAuths => self.too_many_pending_auths,
            Rejection::AuthenticationFailed => self.authentication_failed,
            Rejection::AuthenticationTimeout => self.authentication_timeout,
            Rejection::Application => self.application,
            Rejection::UnlinkedConnection => self.unlinked_connection,
            Rejection::InvalidMessage => self.invalid_message,
        }
    }

    /// Every reason with its count, in [`Rejection::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Rejection, u64)> + '_ {
        Rejection::ALL
            .into_iter()
            .map(|reason| (reason, self.get(reason)))
    }

    /// The sum over every reason.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.iter().map(|(_, count)| count).sum()
    }

    /// Adds every count of `other` (the rejections of several cores, as a server with rooms
    /// reports them).
    pub fn merge(&mut self, other: &Rejections) {
        for (reason, count) in other.iter() {
            self.add_many(reason, count);
        }
    }

    fn add_many(&mut self, reason: Rejection, count: u64) {
        let slot = match reason {
            Rejection::InvalidLinkRequest => &mut self.invalid_link_request,
            Rejection::VersionMismatch => &mut self.version_mismatch,
            Rejection::InvalidUsername => &mut self.invalid_username,
            Rejection::NotAcceptingNewUsers => &mut self.not_accepting_new_users,
            Rejection::AlreadyLinked => &mut self.already_linked,
            Rejection::TooManyPendingAuths => &mut self.too_many_pending_auths,
            Rejection::AuthenticationFailed => &mut self.authentication_failed,
            Rejection::AuthenticationTimeout => &mut self.authentication_timeout,
            Rejection::Application => &mut self.application,
            Rejection::UnlinkedConnection => &mut self.unlinked_connection,
            Rejection::InvalidMessage => &mut self.invalid_message,
        };
        *slot += count;
    }

    fn add(&mut self, reason: Rejection) {
        self.add_many(reason, 1);
    }
}

/// Running totals since the server was created, read with
/// [`Krmx::counters`](crate::Krmx::counters). Plain numbers the server adds to as it decides;
/// they change no decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Connections taken in ([`Input::ConnectionOpened`](crate::Input::ConnectionOpened) not
    /// refused for its path, its query, the unlinked limit or the server's status).
    pub connections_accepted: u64,
    /// Links accepted (`krmx/accepted` sent).
    pub links_accepted: u64,
    /// `krmx/rejected` sent, by reason.
    pub rejections: Rejections,
}

impl Counters {
    pub(crate) fn rejected(&mut self, reason: Rejection) {
        self.rejections.add(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_is_counted_under_its_own_label() {
        let mut counters = Counters::default();
        for (n, reason) in Rejection::ALL.into_iter().enumerate() {
            for _ in 0..=n {
                counters.rejected(reason);
            }
        }
        for (n, (reason, count)) in counters.rejections.iter().enumerate() {
            assert_eq!(count, n as u64 + 1, "{reason}");
        }
        let labels: std::collections::BTreeSet<_> =
            Rejection::ALL.into_iter().map(Rejection::label).collect();
        assert_eq!(labels.len(), Rejection::ALL.len());
        assert_eq!(counters.rejections.total(), 66);
    }
}
