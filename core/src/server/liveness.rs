//! Time-driven rules: auth timeouts, inactivity kicks, the unlinked timeout and liveness ping
//! rounds.

use super::Krmx;
use super::connection::LinkState;
use super::queued::Queued;
use crate::config::UNLINKED_TIMEOUT_REASON;
use crate::timers::Timer;
use crate::{CloseCode, ConnectionId};
use std::time::Instant;

impl Krmx {
    /// Fires every timer due at `now`, earliest first, then the ping round if due.
    pub(super) fn fire_due_timers(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Auth(id) => self.auth_timed_out(now, id),
                Timer::Inactivity(username) => {
                    let Some(user) = self.users.get_mut(&username) else {
                        continue;
                    };
                    user.inactive_since = None;
                    if user.conn.is_none() {
                        tracing::info!(%username, "kicked for inactivity");
                        self.leave(now, &username);
                    }
                }
                Timer::Unlinked(conn) => self.unlinked_timed_out(now, conn),
            }
        }
        if let (Some(round), Some(every)) = (self.timers.ping_round, self.config.ping_interval) {
            if round <= now {
                self.ping_round(now);
                let next = round + every;
                self.timers.ping_round = Some(if next > now { next } else { now + every });
            }
        }
    }

    /// Starts the unlinked timeout of `conn`, which just opened or was unlinked, if that option
    /// is on and it is not running already.
    pub(super) fn arm_unlinked_timeout(&mut self, now: Instant, conn: ConnectionId) {
        let Some(timeout) = self.config.unlinked_timeout else {
            return;
        };
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if connection.unlinked_deadline.is_none() {
            let at = now + timeout;
            connection.unlinked_deadline = Some(at);
            self.timers.arm(at, Timer::Unlinked(conn));
        }
    }

    /// Stops the unlinked timeout of `conn`, which just linked.
    pub(super) fn disarm_unlinked_timeout(&mut self, conn: ConnectionId) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.overdue = false;
            if let Some(at) = connection.unlinked_deadline.take() {
                self.timers.disarm(at, Timer::Unlinked(conn));
            }
        }
    }

    /// The unlinked timeout of `conn` passed: closed with 1008, unless a link is pending (then
    /// the decision settles it: see [`close_if_overdue`](Self::close_if_overdue)).
    fn unlinked_timed_out(&mut self, now: Instant, conn: ConnectionId) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        connection.unlinked_deadline = None;
        match connection.link {
            LinkState::Unlinked => {
                tracing::debug!(%conn, "not linked within the unlinked timeout, closing");
                self.close_connection(now, conn, CloseCode::POLICY, UNLINKED_TIMEOUT_REASON);
            }
            LinkState::Pending(_) => connection.overdue = true,
            LinkState::Linked(_) => {}
        }
    }

    /// Closes `conn` if its unlinked timeout passed during a link that was then rejected.
    /// Returns whether it did.
    pub(super) fn close_if_overdue(&mut self, now: Instant, conn: ConnectionId) -> bool {
        let overdue = self
            .connections
            .get(&conn)
            .is_some_and(|connection| connection.overdue && connection.link == LinkState::Unlinked);
        if overdue {
            tracing::debug!(%conn, "link rejected after the unlinked timeout, closing");
            self.close_connection(now, conn, CloseCode::POLICY, UNLINKED_TIMEOUT_REASON);
        }
        overdue
    }

    /// Every connection that answered the last ping is pinged again; one that did not is
    /// terminated, which unlinks its user.
    fn ping_round(&mut self, now: Instant) {
        let conns: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for conn in conns {
            let Some(connection) = self.connections.get_mut(&conn) else {
                continue;
            };
            if connection.awaiting_pong {
                tracing::debug!(%conn, "no pong since the last ping, terminating");
                self.close_connection(now, conn, CloseCode::GOING_AWAY, "ping timeout");
            } else {
                connection.awaiting_pong = true;
                self.outputs.push_back(Queued::Ping { to: conn });
            }
        }
    }
}
