//! Linking a connection to a user: the checks, authentication, and the decision.

use super::connection::LinkState;
use super::{Krmx, PendingAuth};
use crate::timers::Timer;
use crate::wire::{self, LinkRequest};
use crate::{AuthDecision, AuthId, AuthMode, ConnectionId, Event, Message, Rejection, Username};
use std::time::Instant;

/// Rejection reason: the application's error had no message.
const AUTHENTICATION_FAILED: &str = "authentication failed";
/// Rejection reason: the application did not decide within the auth timeout.
const AUTHENTICATION_TIMEOUT: &str = "authentication timeout";
/// Rejection reason: the server-wide bound on pending authentications is reached.
const TOO_MANY_PENDING: &str = "too many pending authentications";

impl Krmx {
    /// `krmx/link` from an unlinked connection: the checks in the protocol's order, then
    /// authentication or the link itself.
    pub(super) fn request_link(&mut self, now: Instant, conn: ConnectionId, message: &Message) {
        let Some(request) = LinkRequest::from_message(message) else {
            return self.reject(conn, Rejection::InvalidLinkRequest, "invalid link request");
        };
        if !self.config.version.accepts(&request.version) {
            let reason = self.config.version.mismatch_reason(&request.version);
            return self.reject(conn, Rejection::VersionMismatch, &reason);
        }
        if !self.config.username_rule.accepts(&request.username) {
            return self.reject(conn, Rejection::InvalidUsername, "invalid username");
        }
        let username = match self.users.get_key_value(request.username.as_str()) {
            Some((existing, _)) => existing.clone(),
            None => Username::new_unchecked(&request.username),
        };
        if let Err((kind, reason)) = self.may_link(&username) {
            return self.reject(conn, kind, &reason);
        }
        match self.config.auth_mode {
            AuthMode::None => self.accept_link(now, conn, username),
            AuthMode::Application => self.await_decision(now, conn, username, request.auth),
        }
    }

    /// Checks 4 and 5, against the state at this moment (they are re-run when a late decision
    /// arrives).
    fn may_link(&self, username: &Username) -> Result<(), (Rejection, String)> {
        match self.users.get(username) {
            None if !self.config.accept_new_users => Err((
                Rejection::NotAcceptingNewUsers,
                "server is not accepting new users".to_owned(),
            )),
            Some(user) if user.conn.is_some() => Err((
                Rejection::AlreadyLinked,
                format!("user {username} is already linked to a connection"),
            )),
            _ => Ok(()),
        }
    }

    fn await_decision(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        username: Username,
        auth: Option<String>,
    ) {
        if self.pending.len() >= self.config.max_pending_auths {
            return self.reject(conn, Rejection::TooManyPendingAuths, TOO_MANY_PENDING);
        }
        let id = AuthId::new(self.next_auth_id);
        self.next_auth_id += 1;
        let deadline = now + self.config.auth_timeout;
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.link = LinkState::Pending(id);
        }
        self.timers.arm(deadline, Timer::Auth(id));
        let is_new_user = !self.users.contains_key(&username);
        self.pending.insert(
            id,
            PendingAuth {
                conn,
                username: username.clone(),
                deadline,
            },
        );
        self.emit(Event::AuthRequested {
            id,
            conn,
            username,
            is_new_user,
            auth,
        });
    }

    /// The application decided (or the timeout did). Unknown ids are ignored: the attempt timed
    /// out, was decided already, or its connection closed.
    pub(super) fn decide_auth(&mut self, now: Instant, id: AuthId, decision: AuthDecision) {
        let rejection = match decision {
            AuthDecision::Accept => None,
            AuthDecision::Reject(reason) => Some((Rejection::Application, reason)),
            AuthDecision::Failed => Some((
                Rejection::AuthenticationFailed,
                AUTHENTICATION_FAILED.to_owned(),
            )),
        };
        self.settle_auth(now, id, rejection);
    }

    /// The auth timer fired.
    pub(super) fn auth_timed_out(&mut self, now: Instant, id: AuthId) {
        let rejection = (
            Rejection::AuthenticationTimeout,
            AUTHENTICATION_TIMEOUT.to_owned(),
        );
        self.settle_auth(now, id, Some(rejection));
    }

    /// Carries out a decision: `None` accepts (the checks run again first), else the rejection
    /// with its kind and reason.
    fn settle_auth(&mut self, now: Instant, id: AuthId, rejection: Option<(Rejection, String)>) {
        let Some(pending) = self.pending.remove(&id) else {
            tracing::debug!(%id, "decision for an unknown or finished authentication ignored");
            return;
        };
        self.timers.disarm(pending.deadline, Timer::Auth(id));
        let conn = pending.conn;
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.link = LinkState::Unlinked;
        }
        let rejection = match rejection {
            None => self.may_link(&pending.username).err(),
            rejected => rejected,
        };
        match rejection {
            Some((kind, reason)) => {
                self.reject(conn, kind, &reason);
                if self.close_if_overdue(now, conn) {
                    return;
                }
            }
            None => self.accept_link(now, conn, pending.username),
        }
        self.drain_queued(now, conn);
    }

    /// Forgets a pending decision whose connection closed.
    pub(super) fn drop_pending(&mut self, id: AuthId) {
        if let Some(pending) = self.pending.remove(&id) {
            self.timers.disarm(pending.deadline, Timer::Auth(id));
        }
    }

    /// Every check passed: `krmx/accepted`, join if new, link.
    fn accept_link(&mut self, now: Instant, conn: ConnectionId, username: Username) {
        tracing::debug!(%conn, %username, "accepted");
        self.counters.links_accepted += 1;
        self.send(conn, wire::accepted());
        if !self.users.contains_key(&username) {
            self.join(now, username.clone());
        }
        self.link(conn, &username);
    }
}
