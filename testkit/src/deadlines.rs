//! [`Deadlines`]: a reference of when each of the server's timers and limits must act, kept
//! from the outside (the inputs fed and the outputs drained, never the core's internals), and
//! the judgement of what the core did against it.
//!
//! Like [`check`](crate::check) it depends on `krmx-core`, `serde_json` and `std` only: the
//! repository's fuzz targets share it, and [`ServerChecker`](crate::check::ServerChecker) owns
//! one when built with [`ServerChecker::judging`](crate::check::ServerChecker::judging).
//!
//! # The reference (as `PROTOCOL.md` and `KrmxConfig` define it)
//!
//! - **Unlinked timeout**, per connection: the clock starts when the connection opens and again
//!   each time it is unlinked, stops when it links; a rejected link does not restart it. Once it
//!   has run out, a connection that is neither linked nor waiting for an auth decision is closed
//!   `1008 unlinked timeout`; one whose link is pending is left to the decision (accepted: it
//!   stays; rejected or timed out: closed right after its `krmx/rejected`).
//! - **Unlinked cap**: a connection opened while that many are open and not linked (a pending
//!   link counts as not linked) is closed at once `1013 too many unlinked connections`; before
//!   that, a server that does not listen closes it `1001 server is not listening`, and one that
//!   fails the path or query rule `1008 invalid path` / `1008 invalid query parameters`.
//! - **Pings**: rounds every interval from the listen (a round that comes late is followed by
//!   the next one an interval after it); each round terminates (`1001 ping timeout`) every
//!   connection whose ping left the transport's buffer (`Input::PingSent`) a whole interval
//!   ago or more and that has not ponged since, leaves one whose ping is not out or out for
//!   less, and pings every other.
//! - **Auth timeout**, per attempt: rejected `authentication timeout` once the timeout has
//!   passed without a decision; a decision made in time is final (no timeout later), one made
//!   too late is ignored.
//! - **Inactivity**, per user: kicked (it leaves) once it has been unlinked for the timeout,
//!   counting from its join or its last unlink; a link stops the clock.
//! - **Queue bound**: frames arriving while a link is pending are kept; one more than the bound
//!   closes the connection `1008 too many messages during authentication`. The kept messages are
//!   handled after the decision, in arrival order (checked for every connection: the `message`
//!   events of a connection's user come in the order the frames arrived on it).
//! - **Message size**: a frame larger than the bound closes `1009 message too large`;
//!   violations close with their own codes.
//! - **Pending bound**: no authentication is requested while that many are pending; a link
//!   beyond it is rejected `too many pending authentications`.
//!
//! A timer fires at the first input at or after its deadline: before a command, a decision or a
//! tick is handled, after a network fact (which was already waiting in its socket). Within one
//! input the order of firing is the core's business; the judgement is about outcomes:
//!
//! - on every output, a close, a kick (`leave` event), a rejection, a ping is **justified** by
//!   the reference at that moment (nobody is closed or kicked before their deadline, with the
//!   wrong code, or for a reason they did not give);
//! - at every [`check`](Deadlines::check) (the outputs of an input drained) everything **due**
//!   by now has happened: nobody is still open, pending or present whose deadline has passed.
//!
//! Where the reference cannot know exactly, it accepts either outcome rather than demand one:
//! how many kept frames are left when a replayed link makes the connection pending again (the
//! next frame may or may not pass the bound), and outputs still queued for a connection whose
//! peer closed while the outputs of the same input were being drained (not judged).

use krmx_core::{AuthDecision, AuthId, ConnectionId, Event, Frame, Input, KrmxConfig, Message};
use krmx_core::{RequestRejection, Violation};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Close reason of the unlinked timeout (code 1008).
pub const UNLINKED_TIMEOUT: &str = "unlinked timeout";
/// Close reason of the unlinked cap (code 1013).
pub const TOO_MANY_UNLINKED: &str = "too many unlinked connections";
/// Close reason of a connection that did not answer a ping (code 1001).
pub const PING_TIMEOUT: &str = "ping timeout";
/// Rejection reason of the auth timeout.
pub const AUTH_TIMEOUT: &str = "authentication timeout";
/// Rejection reason of the pending bound.
pub const TOO_MANY_PENDING: &str = "too many pending authentications";
/// Close reason of the queue bound (code 1008).
pub const QUEUE_OVERFLOW: &str = "too many messages during authentication";

const GOING_AWAY: u16 = 1001;
const INVALID_PAYLOAD: u16 = 1007;
const POLICY: u16 = 1008;
const TOO_BIG: u16 = 1009;
const TRY_AGAIN_LATER: u16 = 1013;

/// How many timer and limit outcomes were judged (and found right), for the tests to show that
/// their runs exercise them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Judged {
    /// Connections closed by the unlinked timeout.
    pub unlinked_timeouts: u64,
    /// ... of which after their pending link was rejected (the timeout ran out during it).
    pub overdue_rejections: u64,
    /// Pending links accepted after the unlinked timeout ran out during them (they stay).
    pub overdue_accepts: u64,
    /// Links rejected before the unlinked deadline on a connection that was accepted overdue
    /// before (it must stay open: the overdue link is forgotten).
    pub rejected_after_overdue_accept: u64,
    /// Connections refused by the unlinked cap.
    pub cap_refusals: u64,
    /// Connections terminated for not answering a ping.
    pub ping_timeouts: u64,
    /// Pings sent.
    pub pings: u64,
    /// Links rejected by the auth timeout.
    pub auth_timeouts: u64,
    /// Users kicked for inactivity.
    pub inactivity_kicks: u64,
    /// Connections closed by the queue bound.
    pub queue_overflows: u64,
    /// Messages handled after being kept during a pending link (order checked).
    pub replayed_messages: u64,
    /// Links rejected by the pending bound.
    pub pending_bound_rejections: u64,
}

impl Judged {
    /// Adds another run's numbers.
    pub fn add(&mut self, other: &Self) {
        self.unlinked_timeouts += other.unlinked_timeouts;
        self.overdue_rejections += other.overdue_rejections;
        self.overdue_accepts += other.overdue_accepts;
        self.rejected_after_overdue_accept += other.rejected_after_overdue_accept;
        self.cap_refusals += other.cap_refusals;
        self.ping_timeouts += other.ping_timeouts;
        self.pings += other.pings;
        self.auth_timeouts += other.auth_timeouts;
        self.inactivity_kicks += other.inactivity_kicks;
        self.queue_overflows += other.queue_overflows;
        self.replayed_messages += other.replayed_messages;
        self.pending_bound_rejections += other.pending_bound_rejections;
    }
}

/// One open connection as the reference sees it.
#[derive(Debug, Clone)]
struct Conn {
    /// The user it is linked to.
    linked: Option<String>,
    /// The attempt whose decision it waits for.
    pending: Option<AuthId>,
    /// When the unlinked timeout runs out (set while not linked, when that option is on).
    unlinked_deadline: Option<Instant>,
    /// Pinged by a round and not answered since.
    awaiting_pong: bool,
    /// When that ping left the transport's buffer (`Input::PingSent`), if it did.
    ping_sent_at: Option<Instant>,
    /// Frames the core keeps for it (during a pending link); `None` when not known exactly
    /// (a replay of kept frames made it pending again after an unknown number of them).
    queued: Option<usize>,
    /// Its pending link was decided during this input: `queued` as it was, while the kept
    /// frames are replayed.
    replay: Option<Option<usize>>,
    /// A link of it was accepted after its unlinked timeout ran out.
    accepted_overdue: bool,
}

/// A pending authentication.
#[derive(Debug, Clone, Copy)]
struct Auth {
    conn: ConnectionId,
    deadline: Instant,
}

/// A ping round that happened during the current input.
#[derive(Debug, Default)]
struct Round {
    /// Pinged before and not answered: must be terminated.
    doomed: BTreeSet<ConnectionId>,
    /// Must be pinged (unless closed first).
    pinged: BTreeSet<ConnectionId>,
}

/// What the inputs since the last [`Deadlines::check`] allow and demand.
#[derive(Debug, Default)]
struct Window {
    /// A `Close` command was fed.
    close: bool,
    /// Users kicked by the application.
    kicks: BTreeSet<String>,
    /// A frame or a decision was fed: a linked user may leave by its own `krmx/leave`.
    frame_or_decision: bool,
    /// Users unlinked during this input.
    unlinked_users: BTreeSet<String>,
    /// Decisions for attempts pending and in time: they must not be pending afterwards.
    decided: Vec<AuthId>,
    /// Rejection reasons the application gave, per attempt.
    reasons: Vec<(AuthId, String)>,
    /// Closes the inputs call for (or may call for), per connection, with code and reason.
    allowed: BTreeMap<ConnectionId, Vec<(u16, &'static str)>>,
    /// Connections that must be closed by the end of the input, and why.
    must_close: BTreeMap<ConnectionId, String>,
    round: Option<Round>,
    /// Pings sent per connection.
    pings: BTreeMap<ConnectionId, u32>,
    /// Connections whose peer closed during this input (outputs queued earlier may still
    /// address them; they are not judged).
    gone: BTreeSet<ConnectionId>,
    /// Pending attempts forgotten because their connection's peer closed during this input.
    dropped_pending: usize,
}

/// The timer reference: see the [module documentation](self).
#[derive(Debug)]
pub struct Deadlines {
    ping: Option<Duration>,
    auth_timeout: Duration,
    inactivity: Option<Duration>,
    unlinked_timeout: Option<Duration>,
    max_unlinked: Option<usize>,
    max_queued: usize,
    max_pending: usize,
    max_message_bytes: usize,
    config: KrmxConfig,
    /// The first time seen: times are reported from it.
    start: Option<Instant>,
    now: Option<Instant>,
    listening: bool,
    next_round: Option<Instant>,
    conns: BTreeMap<ConnectionId, Conn>,
    /// Users in no particular order, with their inactivity deadline.
    users: BTreeMap<String, Option<Instant>>,
    /// The connection each linked user is linked to, from the events.
    links: BTreeMap<String, ConnectionId>,
    auths: BTreeMap<AuthId, Auth>,
    /// Custom messages that arrived per connection and were not handled yet, in arrival order,
    /// with whether they arrived while kept (pending link).
    arrived: BTreeMap<ConnectionId, VecDeque<(Message, bool)>>,
    /// Messages passed over (not handled as messages) per connection, with the message whose
    /// handling passed over them: for reports.
    passed_over: BTreeMap<ConnectionId, VecDeque<(Message, Message)>>,
    window: Window,
    judged: Judged,
}

fn parse_frame(frame: &Frame) -> Option<Message> {
    let text = match frame {
        Frame::Text(text) => text.as_str(),
        Frame::Binary(bytes) => std::str::from_utf8(bytes).ok()?,
    };
    Message::parse(text).ok().filter(|m| !m.is_reserved())
}

impl Deadlines {
    /// A reference for a server built with `config`, before any input.
    #[must_use]
    pub fn new(config: &KrmxConfig) -> Self {
        Self {
            ping: config.ping_interval_value(),
            auth_timeout: config.auth_timeout_value(),
            inactivity: config.inactivity_timeout_value(),
            unlinked_timeout: config.unlinked_timeout_value(),
            max_unlinked: config.max_unlinked_connections_value(),
            max_queued: config.max_queued_during_auth_value(),
            max_pending: config.max_pending_auths_value(),
            max_message_bytes: config.max_message_bytes_value(),
            config: config.clone(),
            start: None,
            now: None,
            listening: false,
            next_round: None,
            conns: BTreeMap::new(),
            users: BTreeMap::new(),
            links: BTreeMap::new(),
            auths: BTreeMap::new(),
            arrived: BTreeMap::new(),
            passed_over: BTreeMap::new(),
            window: Window::default(),
            judged: Judged::default(),
        }
    }

    /// What was judged so far.
    #[must_use]
    pub fn judged(&self) -> Judged {
        self.judged
    }

    fn now(&self) -> Instant {
        self.now.unwrap_or_else(Instant::now)
    }

    /// `at` as milliseconds since the first input, for reports.
    fn ms(&self, at: Instant) -> String {
        match self.start {
            Some(start) => format!("{}ms", at.saturating_duration_since(start).as_millis()),
            None => "?".to_owned(),
        }
    }

    fn describe(&self, conn: ConnectionId) -> String {
        match self.conns.get(&conn) {
            None => format!("{conn} (not open)"),
            Some(c) => format!(
                "{conn} (linked {:?}, pending {:?}, unlinked deadline {}, awaiting pong {})",
                c.linked,
                c.pending.map(|id| id.to_string()),
                c.unlinked_deadline
                    .map_or("none".to_owned(), |at| self.ms(at)),
                c.awaiting_pong
            ),
        }
    }

    fn allow(&mut self, conn: ConnectionId, code: u16, reason: &'static str, must: bool) {
        self.window
            .allowed
            .entry(conn)
            .or_default()
            .push((code, reason));
        if must {
            self.window
                .must_close
                .insert(conn, format!("{code} {reason}"));
        }
    }

    /// An input is about to be fed to the core at `now` (nested ones too: a decision or a
    /// close fed while the outputs of another input are drained).
    pub fn input(&mut self, now: Instant, input: &Input) {
        let now = self.now.map_or(now, |seen| seen.max(now));
        self.now = Some(now);
        self.start.get_or_insert(now);
        let fact = input.is_network_fact();
        if !fact {
            self.maybe_round(now);
        }
        match input {
            Input::ConnectionOpened { conn, target } => self.open(now, *conn, target),
            Input::Frame { conn, frame } => self.frame(*conn, frame),
            Input::Pong { conn } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.awaiting_pong = false;
                    c.ping_sent_at = None;
                }
            }
            Input::PingSent { conn } => {
                if let Some(c) = self.conns.get_mut(conn) {
                    if c.awaiting_pong && c.ping_sent_at.is_none() {
                        c.ping_sent_at = Some(now);
                    }
                }
            }
            Input::Violation { conn, violation } if self.conns.contains_key(conn) => {
                let (code, reason) = match violation {
                    Violation::MessageTooLarge => (TOO_BIG, "message too large"),
                    Violation::InvalidUtf8 => (INVALID_PAYLOAD, "invalid utf-8"),
                    _ => (POLICY, "slow consumer"),
                };
                self.allow(*conn, code, reason, true);
            }
            Input::ConnectionClosed { conn } => {
                if let Some(c) = self.conns.remove(conn) {
                    self.window.gone.insert(*conn);
                    if let Some(id) = c.pending {
                        self.auths.remove(&id);
                        self.window.dropped_pending += 1;
                    }
                }
            }
            Input::AuthDecided { id, decision } => {
                self.window.frame_or_decision = true;
                if self.auths.get(id).is_some_and(|auth| auth.deadline > now) {
                    self.window.decided.push(*id);
                }
                if let AuthDecision::Reject(reason) = decision {
                    self.window.reasons.push((*id, reason.clone()));
                }
            }
            Input::Kick { username } => {
                self.window.kicks.insert(username.clone());
            }
            Input::Close => self.window.close = true,
            _ => {}
        }
        if fact {
            self.maybe_round(now);
        }
    }

    fn open(&mut self, now: Instant, conn: ConnectionId, target: &str) {
        if self.conns.contains_key(&conn) {
            return; // A duplicate: refused, nothing happens.
        }
        let unlinked = self.conns.values().filter(|c| c.linked.is_none()).count();
        let refusal = if !self.listening {
            Some((GOING_AWAY, "server is not listening"))
        } else if let Err(rejection) = self.config.check_request(target) {
            Some(match rejection {
                RequestRejection::Path => (POLICY, "invalid path"),
                _ => (POLICY, "invalid query parameters"),
            })
        } else if self.max_unlinked.is_some_and(|most| unlinked >= most) {
            self.judged.cap_refusals += 1;
            Some((TRY_AGAIN_LATER, TOO_MANY_UNLINKED))
        } else {
            None
        };
        match refusal {
            Some((code, reason)) => self.allow(conn, code, reason, true),
            None => {
                self.conns.insert(
                    conn,
                    Conn {
                        linked: None,
                        pending: None,
                        unlinked_deadline: self.unlinked_timeout.map(|t| now + t),
                        awaiting_pong: false,
                        ping_sent_at: None,
                        queued: Some(0),
                        replay: None,
                        accepted_overdue: false,
                    },
                );
            }
        }
    }

    fn frame(&mut self, conn: ConnectionId, frame: &Frame) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        self.window.frame_or_decision = true;
        if frame.len() > self.max_message_bytes {
            self.allow(conn, TOO_BIG, "message too large", true);
            return;
        }
        let max_queued = self.max_queued;
        let mut kept = false;
        let mut overflow = None;
        if let Some(c) = self.conns.get_mut(&conn) {
            kept = c.pending.is_some() || c.queued != Some(0);
            if kept {
                match c.queued {
                    Some(k) if k >= max_queued => overflow = Some(true),
                    Some(k) => c.queued = Some(k + 1),
                    None => overflow = Some(false),
                }
            }
        }
        if overflow != Some(true) {
            if let Some(message) = parse_frame(frame) {
                self.arrived
                    .entry(conn)
                    .or_default()
                    .push_back((message, kept));
            }
        }
        if let Some(must) = overflow {
            self.allow(conn, POLICY, QUEUE_OVERFLOW, must);
        }
    }

    /// The ping round, if due at `now`.
    fn maybe_round(&mut self, now: Instant) {
        let (Some(round), Some(every)) = (self.next_round, self.ping) else {
            return;
        };
        if round > now {
            return;
        }
        let current = self.window.round.get_or_insert_with(Round::default);
        for (conn, c) in &mut self.conns {
            if c.awaiting_pong {
                // Awaited from when it left the transport's buffer, for a whole interval.
                if c.ping_sent_at.is_some_and(|sent| sent + every <= now) {
                    current.doomed.insert(*conn);
                }
            } else {
                c.awaiting_pong = true;
                current.pinged.insert(*conn);
            }
        }
        let next = round + every;
        self.next_round = Some(if next > now { next } else { now + every });
    }

    /// A `krmx/rejected` with `reason` was sent to `conn`.
    ///
    /// # Errors
    /// The rejection the reference does not justify.
    pub fn rejected(&mut self, conn: ConnectionId, reason: &str) -> Result<(), String> {
        if self.window.gone.contains(&conn) {
            return Ok(());
        }
        let now = self.now();
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        let Some(id) = c.pending.take() else {
            if reason == TOO_MANY_PENDING {
                self.judged.pending_bound_rejections += 1;
                let pending = self.auths.len() + self.window.dropped_pending;
                if pending < self.max_pending {
                    return Err(format!(
                        "{conn} rejected `{reason}` with {pending} pending of at most {}",
                        self.max_pending
                    ));
                }
            }
            return Ok(());
        };
        c.replay = Some(c.queued);
        let overdue = c.unlinked_deadline.is_some_and(|at| at <= now);
        if c.accepted_overdue && !overdue {
            self.judged.rejected_after_overdue_accept += 1;
        }
        let Some(auth) = self.auths.remove(&id) else {
            return Ok(());
        };
        let late = now >= auth.deadline;
        let given = self
            .window
            .reasons
            .iter()
            .any(|(decided, given)| *decided == id && given == reason);
        if reason == AUTH_TIMEOUT {
            self.judged.auth_timeouts += 1;
        }
        if overdue {
            self.judged.overdue_rejections += 1;
        }
        if late && reason != AUTH_TIMEOUT {
            return Err(format!(
                "{id} of {conn} rejected `{reason}` at {}, but its auth deadline {} had passed: \
                 it must be rejected `{AUTH_TIMEOUT}`",
                self.ms(now),
                self.ms(auth.deadline)
            ));
        }
        if !late && reason == AUTH_TIMEOUT && !given {
            return Err(format!(
                "{id} of {conn} rejected `{AUTH_TIMEOUT}` at {}, before its deadline {}",
                self.ms(now),
                self.ms(auth.deadline)
            ));
        }
        Ok(())
    }

    /// A ping was sent to `conn`.
    ///
    /// # Errors
    /// A ping outside a round, twice in one, or to a connection that had to be terminated.
    pub fn pinged(&mut self, conn: ConnectionId) -> Result<(), String> {
        self.judged.pings += 1;
        if self.window.gone.contains(&conn) {
            return Ok(());
        }
        let in_round = self
            .window
            .round
            .as_ref()
            .is_some_and(|round| round.pinged.contains(&conn));
        let doomed = self
            .window
            .round
            .as_ref()
            .is_some_and(|round| round.doomed.contains(&conn));
        let count = self.window.pings.entry(conn).or_insert(0);
        *count += 1;
        let count = *count;
        if doomed {
            let now = self.now();
            return Err(format!(
                "{conn} pinged again by the round at {}, though it did not answer the last ping: \
                 it must be closed `{GOING_AWAY} {PING_TIMEOUT}`",
                self.ms(now)
            ));
        }
        if !in_round || count > 1 {
            let now = self.now();
            return Err(format!(
                "{conn} pinged at {} (ping number {} of this input), but no round pings it now \
                 (next round {}): {}",
                self.ms(now),
                count,
                self.next_round.map_or("none".to_owned(), |at| self.ms(at)),
                self.describe(conn)
            ));
        }
        Ok(())
    }

    /// The core closed `conn` with `code` and `reason`.
    ///
    /// # Errors
    /// A close the reference does not justify: too early, the wrong code, no reason at all.
    pub fn closed(&mut self, conn: ConnectionId, code: u16, reason: &str) -> Result<(), String> {
        if self.window.gone.contains(&conn) {
            return Ok(());
        }
        let now = self.now();
        let allowed = self
            .window
            .allowed
            .get(&conn)
            .is_some_and(|allowed| allowed.iter().any(|&(c, r)| c == code && r == reason));
        let justified = allowed
            || match reason {
                UNLINKED_TIMEOUT => {
                    code == POLICY
                        && self.conns.get(&conn).is_some_and(|c| {
                            c.linked.is_none()
                                && c.pending.is_none()
                                && c.unlinked_deadline.is_some_and(|at| at <= now)
                        })
                }
                PING_TIMEOUT => {
                    code == GOING_AWAY
                        && self
                            .window
                            .round
                            .as_ref()
                            .is_some_and(|round| round.doomed.contains(&conn))
                }
                "server closing" => code == GOING_AWAY && self.window.close,
                _ => false,
            };
        if !justified {
            let error = format!(
                "{conn} closed `{code} {reason}` at {}, which the reference does not justify \
                 (allowed now: {:?}; round: {:?}): {}",
                self.ms(now),
                self.window.allowed.get(&conn),
                self.window.round,
                self.describe(conn)
            );
            self.forget(conn);
            return Err(error);
        }
        match reason {
            UNLINKED_TIMEOUT => self.judged.unlinked_timeouts += 1,
            PING_TIMEOUT => self.judged.ping_timeouts += 1,
            QUEUE_OVERFLOW => self.judged.queue_overflows += 1,
            _ => {}
        }
        self.forget(conn);
        Ok(())
    }

    fn forget(&mut self, conn: ConnectionId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(id) = c.pending {
                self.auths.remove(&id);
            }
        }
    }

    /// The core emitted `event`.
    ///
    /// # Errors
    /// An event the reference does not justify (a kick before its time, a link accepted after
    /// its auth deadline, an authentication past the pending bound, a message out of arrival
    /// order).
    pub fn event(&mut self, event: &Event) -> Result<(), String> {
        let now = self.now();
        match event {
            Event::Listening { .. } => {
                self.listening = true;
                self.next_round = self.ping.map(|every| now + every);
            }
            Event::Closed => {
                self.listening = false;
                self.next_round = None;
                self.auths.clear();
                for c in self.conns.values_mut() {
                    c.pending = None;
                }
            }
            Event::AuthRequested { id, conn, .. } => {
                if self.window.gone.contains(conn) {
                    return Ok(());
                }
                let Some(c) = self.conns.get_mut(conn) else {
                    return Ok(());
                };
                if let Some(queued) = c.replay.take() {
                    // Made pending again by a kept link: the rest stays kept.
                    c.queued = match queued {
                        Some(0 | 1) => Some(0),
                        _ => None,
                    };
                }
                c.pending = Some(*id);
                if self.auths.len() >= self.max_pending {
                    return Err(format!(
                        "{id} requested for {conn} with {} pending already, of at most {}",
                        self.auths.len(),
                        self.max_pending
                    ));
                }
                self.auths.insert(
                    *id,
                    Auth {
                        conn: *conn,
                        deadline: now + self.auth_timeout,
                    },
                );
            }
            Event::Joined { username } => {
                self.users
                    .insert(username.to_string(), self.inactivity.map(|t| now + t));
            }
            Event::Linked { username, conn } => {
                let name = username.to_string();
                self.users.insert(name.clone(), None);
                self.links.insert(name.clone(), *conn);
                if self.window.gone.contains(conn) {
                    return Ok(());
                }
                if let Some(c) = self.conns.get_mut(conn) {
                    let overdue = c.unlinked_deadline.is_some_and(|at| at <= now);
                    c.linked = Some(name);
                    c.unlinked_deadline = None;
                    if let Some(id) = c.pending.take() {
                        c.replay = Some(c.queued);
                        if overdue {
                            self.judged.overdue_accepts += 1;
                            c.accepted_overdue = true;
                        }
                        if let Some(auth) = self.auths.remove(&id) {
                            if now >= auth.deadline {
                                return Err(format!(
                                    "{id} of {conn} accepted at {}, but its auth deadline {} had \
                                     passed: it must have been rejected `{AUTH_TIMEOUT}`",
                                    self.ms(now),
                                    self.ms(auth.deadline)
                                ));
                            }
                        }
                    }
                }
            }
            Event::Unlinked { username, conn } => {
                let name = username.to_string();
                if let Some(deadline) = self.users.get_mut(&name) {
                    *deadline = self.inactivity.map(|t| now + t);
                }
                self.links.remove(&name);
                self.window.unlinked_users.insert(name);
                if !self.window.gone.contains(conn) {
                    let timeout = self.unlinked_timeout;
                    if let Some(c) = self.conns.get_mut(conn) {
                        c.linked = None;
                        c.unlinked_deadline = timeout.map(|t| now + t);
                    }
                }
            }
            Event::Left { username } => {
                let name = username.as_str();
                let deadline = self.users.remove(name).flatten();
                let due = deadline.is_some_and(|at| at <= now);
                let explained = self.window.close
                    || self.window.kicks.contains(name)
                    || (self.window.frame_or_decision && self.window.unlinked_users.contains(name));
                if due && !explained {
                    self.judged.inactivity_kicks += 1;
                }
                if !due && !explained {
                    return Err(format!(
                        "{name} left at {} though no kick, close or krmx/leave explains it, and \
                         its inactivity deadline is {}",
                        self.ms(now),
                        deadline.map_or("none".to_owned(), |at| self.ms(at))
                    ));
                }
            }
            Event::Message { username, message } => {
                let Some(conn) = self.links.get(username.as_str()).copied() else {
                    return Ok(());
                };
                let arrived = self.arrived.entry(conn).or_default();
                let Some(position) = arrived.iter().position(|(m, _)| m == message) else {
                    let text = message.to_text();
                    let passed_over = self.passed_over.get(&conn).and_then(|passed| {
                        passed
                            .iter()
                            .find(|(m, _)| m == message)
                            .map(|(_, by)| by.to_text())
                    });
                    return Err(match passed_over {
                        Some(later) => format!(
                            "message {} of {username} on {conn} was handled after {}, which \
                             arrived after it: messages must be handled in arrival order",
                            text.as_str(),
                            later.as_str()
                        ),
                        None => format!(
                            "message {} of {username} on {conn} never arrived on it",
                            text.as_str()
                        ),
                    });
                };
                let was_kept = arrived.get(position).is_some_and(|(_, kept)| *kept);
                let passed = self.passed_over.entry(conn).or_default();
                for (skipped, _) in arrived.drain(..position) {
                    passed.push_back((skipped, message.clone()));
                    if passed.len() > 16 {
                        passed.pop_front();
                    }
                }
                arrived.pop_front();
                if was_kept {
                    self.judged.replayed_messages += 1;
                }
            }
        }
        Ok(())
    }

    /// Every output of the inputs fed so far was drained: everything due by now must have
    /// happened. `open` is what the transport considers open. Starts a new window.
    ///
    /// # Errors
    /// Everything due that did not happen, one per line.
    pub fn check(&mut self, open: &BTreeSet<ConnectionId>) -> Result<(), String> {
        let now = self.now();
        let mut errors = String::new();
        let window = std::mem::take(&mut self.window);
        for (conn, c) in &self.conns {
            if let Some(at) = c.unlinked_deadline.filter(|at| *at <= now) {
                if c.linked.is_none() && c.pending.is_none() {
                    let _ = writeln!(
                        errors,
                        "{conn} is still open at {}, unlinked since its unlinked deadline {}: it \
                         must have been closed `{POLICY} {UNLINKED_TIMEOUT}`",
                        self.ms(now),
                        self.ms(at)
                    );
                }
            }
        }
        for (conn, why) in &window.must_close {
            if self.conns.contains_key(conn) {
                let _ = writeln!(errors, "{conn} must have been closed `{why}` by now");
            }
        }
        if let Some(round) = &window.round {
            for conn in &round.doomed {
                if self.conns.contains_key(conn) {
                    let _ = writeln!(
                        errors,
                        "{conn} did not answer its ping before the round at {}, but is still \
                         open: it must have been closed `{GOING_AWAY} {PING_TIMEOUT}`",
                        self.ms(now)
                    );
                }
            }
            for conn in &round.pinged {
                let pings = window.pings.get(conn).copied().unwrap_or(0);
                if self.conns.contains_key(conn) && pings != 1 {
                    let _ = writeln!(
                        errors,
                        "{conn} was sent {pings} pings by the round at {}, not one",
                        self.ms(now)
                    );
                }
            }
        }
        for (id, auth) in &self.auths {
            if auth.deadline <= now {
                let _ = writeln!(
                    errors,
                    "{id} of {} still pending at {}, past its auth deadline {}: it must have \
                     been rejected `{AUTH_TIMEOUT}`",
                    auth.conn,
                    self.ms(now),
                    self.ms(auth.deadline)
                );
            }
        }
        for id in &window.decided {
            if self.auths.contains_key(id) {
                let _ = writeln!(errors, "{id} was decided in time but is still pending");
            }
        }
        for (name, deadline) in &self.users {
            if let Some(at) = deadline.filter(|at| *at <= now) {
                let _ = writeln!(
                    errors,
                    "{name} is still there at {}, unlinked since its inactivity deadline {}: it \
                     must have been kicked",
                    self.ms(now),
                    self.ms(at)
                );
            }
        }
        for (conn, c) in &mut self.conns {
            if c.pending.is_none() {
                // Nothing is kept: every frame that arrived was handled.
                c.queued = Some(0);
                c.replay = None;
                self.arrived.remove(conn);
            }
        }
        let conns = &self.conns;
        self.arrived.retain(|conn, _| conns.contains_key(conn));
        self.passed_over.retain(|conn, _| conns.contains_key(conn));
        let mine: BTreeSet<ConnectionId> = self.conns.keys().copied().collect();
        if &mine != open {
            let _ = writeln!(
                errors,
                "the reference's open connections {mine:?} differ from the transport's {open:?}"
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
