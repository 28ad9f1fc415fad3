//! Time-driven rules: auth timeouts, inactivity kicks and liveness ping rounds.

use super::Krmx;
use crate::timers::Timer;
use crate::{CloseCode, ConnectionId, Output};
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
                self.outputs.push_back(Output::Ping { to: conn });
            }
        }
    }
}
