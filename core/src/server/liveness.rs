//! Time-driven rules: auth timeouts, inactivity kicks, the unlinked timeout and liveness ping
//! rounds.

use super::Krmx;
use super::connection::{LinkState, PingState};
use super::queued::Queued;
use crate::config::UNLINKED_TIMEOUT_REASON;
use crate::timers::Timer;
use crate::{CloseCode, ConnectionId, Status};
use std::time::Instant;

impl Krmx {
    /// Fires every timer due at `now`, earliest first, then the ping round if due.
    pub(super) fn fire_due_timers(&mut self, now: Instant) {
        if !matches!(self.status, Status::Starting | Status::Listening) {
            // Timers armed while the users leave at close never fire.
            return;
        }
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
                self.ping_round(now, every);
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

    /// Every connection that answered the last ping is pinged again; one whose ping went out
    /// a whole interval ago unanswered is terminated, which unlinks its user. A ping still
    /// waiting in the transport's buffer is not awaited yet, and one that went out less than an
    /// interval ago is given until the next round.
    fn ping_round(&mut self, now: Instant, every: std::time::Duration) {
        let conns: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for conn in conns {
            let Some(connection) = self.connections.get_mut(&conn) else {
                continue;
            };
            match connection.ping {
                PingState::Idle => {
                    connection.ping = PingState::Queued;
                    self.outputs.push_back(Queued::Ping { to: conn });
                }
                PingState::Queued => {}
                PingState::Sent(at) if at + every <= now => {
                    tracing::info!(
                        %conn,
                        waited_ms = now.saturating_duration_since(at).as_millis(),
                        "no pong a round after the ping went out, terminating"
                    );
                    self.close_connection(now, conn, CloseCode::GOING_AWAY, "ping timeout");
                }
                PingState::Sent(_) => {}
            }
        }
    }

    /// The transport reports that the ping of `conn` left its buffer: awaited from `now` on.
    pub(super) fn ping_sent(&mut self, now: Instant, conn: ConnectionId) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            if connection.ping == PingState::Queued {
                connection.ping = PingState::Sent(now);
            }
        }
    }

    /// A pong arrived: nothing is awaited from `conn` any more.
    pub(super) fn pong(&mut self, conn: ConnectionId) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.ping = PingState::Idle;
        }
    }
}
