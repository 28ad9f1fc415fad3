//! The reference server of the model test: the protocol written out a second time, plainly and
//! without the core's data structures, so that the core's outputs can be predicted exactly.
//!
//! The rules come from `PROTOCOL.md` (cited as "spec") and, for the options the reference
//! server does not have (unlinked timeout, unlinked-connection cap, queue bounds, inactivity
//! timeout), from the documentation of `KrmxConfig` and `Krmx::handle_input` (cited as "docs").
//!
//! Deadlines are not kept in a timer table: each is a field of the thing it belongs to (a
//! pending authentication, an unlinked user, a connection that is not linked), so "what is due"
//! is read from the state itself, and a deadline that the core forgot to arm or to disarm shows
//! up as a difference.

use krmx_core::{AuthDecision, ConnectionId, Error, Frame, Input, Status, Violation};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// One output as the test compares it: the connection it goes to (`None` for an event) and its
/// JSON (events, pings and closes are written as JSON too).
pub(crate) type Expected = (Option<ConnectionId>, Value);

/// The configuration, with the spec's floors applied.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) application_auth: bool,
    pub(crate) accept_new_users: bool,
    /// Spec: "default 10 s, minimum 1 ms".
    pub(crate) auth_timeout: Duration,
    /// Spec: "0 disables; 1..99 mean 100".
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) inactivity_timeout: Option<Duration>,
    /// Docs: "Below 1 ms means 1 ms".
    pub(crate) unlinked_timeout: Option<Duration>,
    pub(crate) max_unlinked_connections: Option<usize>,
    pub(crate) max_queued_during_auth: usize,
    pub(crate) max_pending_auths: usize,
    pub(crate) max_message_bytes: usize,
    pub(crate) valid_username: fn(&str) -> bool,
    pub(crate) version_accepted: fn(&str) -> bool,
}

impl Rules {
    /// The spec's floors on the raw durations a test configures.
    pub(crate) fn auth_timeout_floor(timeout: Duration) -> Duration {
        timeout.max(Duration::from_millis(1))
    }

    pub(crate) fn ping_interval_rule(interval: Duration) -> Option<Duration> {
        (!interval.is_zero()).then(|| interval.max(Duration::from_millis(100)))
    }

    pub(crate) fn unlinked_timeout_floor(timeout: Option<Duration>) -> Option<Duration> {
        timeout.map(|timeout| timeout.max(Duration::from_millis(1)))
    }
}

/// Where a connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Link {
    Unlinked,
    /// Waiting for the decision on this (reference) authentication id.
    Pending(u64),
    Linked(String),
}

#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) link: Link,
    /// Frames received while a link was pending, to be handled after the decision.
    pub(crate) queued: VecDeque<Frame>,
    /// Pinged, and no pong since.
    pub(crate) awaiting_pong: bool,
    /// When that ping left the transport's buffer (`Input::PingSent`), if it did.
    pub(crate) ping_sent_at: Option<Instant>,
    /// When the unlinked timeout closes it; `None` while linked, when the option is off, or
    /// once it ran out during a pending link.
    pub(crate) unlinked_deadline: Option<Instant>,
    /// When this connection opened or was last unlinked (for messages).
    pub(crate) unlinked_since: Instant,
    /// The unlinked timeout ran out while a link was pending: the decision settles it.
    pub(crate) overdue: bool,
    /// It was linked after such an overdue decision (statistics only).
    pub(crate) linked_after_overdue: bool,
}

#[derive(Debug)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) conn: Option<ConnectionId>,
    /// When it joined or was last unlinked (meaningful while unlinked).
    pub(crate) unlinked_since: Instant,
    /// When the inactivity timeout kicks this unlinked user.
    pub(crate) inactivity_deadline: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct PendingAuth {
    pub(crate) conn: ConnectionId,
    pub(crate) username: String,
    pub(crate) deadline: Instant,
}

/// A deadline, in the order the core documents for ties (`timers.rs`: earliest first, then a
/// fixed order: authentications, inactivity, unlinked connections, each by id or name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Deadline {
    Auth(u64),
    Inactivity(String),
    Unlinked(ConnectionId),
}

/// How often each timer rule fired and each limit took effect over a run: the statistics test
/// asserts that the generated runs reach every one of them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) unlinked_timeout_closes: usize,
    /// A link pending when the unlinked timeout ran out, then accepted: the connection stays.
    pub(crate) overdue_links_accepted: usize,
    /// ... then rejected or timed out: closed right after the `krmx/rejected`.
    pub(crate) overdue_links_rejected: usize,
    /// A later link of a connection accepted overdue was rejected in time: it must stay open.
    pub(crate) rejections_after_overdue_link: usize,
    pub(crate) unlinked_cap_refusals: usize,
    pub(crate) pings: usize,
    pub(crate) ping_timeout_closes: usize,
    pub(crate) ping_timeout_unlinks: usize,
    pub(crate) inactivity_kicks: usize,
    pub(crate) auth_timeouts: usize,
    /// Decisions for an authentication that had timed out already (ignored).
    pub(crate) decisions_after_timeout: usize,
    /// Pending authentications never decided: their connection closed first.
    pub(crate) pending_auths_dropped: usize,
    pub(crate) queue_overflow_closes: usize,
    /// Decisions followed by the replay of two or more kept frames.
    pub(crate) replays_of_several_frames: usize,
    pub(crate) too_many_pending: usize,
    pub(crate) too_large_closes: usize,
    /// Network facts that arrived while timers were due (handled before those timers).
    pub(crate) late_network_facts: usize,
    /// Pongs that arrived while the ping round that would close their connection was due.
    pub(crate) late_pongs_in_time: usize,
}

impl Tally {
    pub(crate) fn add(&mut self, other: &Self) {
        let Self {
            unlinked_timeout_closes,
            overdue_links_accepted,
            overdue_links_rejected,
            rejections_after_overdue_link,
            unlinked_cap_refusals,
            pings,
            ping_timeout_closes,
            ping_timeout_unlinks,
            inactivity_kicks,
            auth_timeouts,
            decisions_after_timeout,
            pending_auths_dropped,
            queue_overflow_closes,
            replays_of_several_frames,
            too_many_pending,
            too_large_closes,
            late_network_facts,
            late_pongs_in_time,
        } = other;
        self.unlinked_timeout_closes += unlinked_timeout_closes;
        self.overdue_links_accepted += overdue_links_accepted;
        self.overdue_links_rejected += overdue_links_rejected;
        self.rejections_after_overdue_link += rejections_after_overdue_link;
        self.unlinked_cap_refusals += unlinked_cap_refusals;
        self.pings += pings;
        self.ping_timeout_closes += ping_timeout_closes;
        self.ping_timeout_unlinks += ping_timeout_unlinks;
        self.inactivity_kicks += inactivity_kicks;
        self.auth_timeouts += auth_timeouts;
        self.decisions_after_timeout += decisions_after_timeout;
        self.pending_auths_dropped += pending_auths_dropped;
        self.queue_overflow_closes += queue_overflow_closes;
        self.replays_of_several_frames += replays_of_several_frames;
        self.too_many_pending += too_many_pending;
        self.too_large_closes += too_large_closes;
        self.late_network_facts += late_network_facts;
        self.late_pongs_in_time += late_pongs_in_time;
    }

    /// Every counter with its name.
    pub(crate) fn entries(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("unlinked timeout closes", self.unlinked_timeout_closes),
            ("overdue links accepted", self.overdue_links_accepted),
            ("overdue links rejected", self.overdue_links_rejected),
            (
                "rejections after an overdue link",
                self.rejections_after_overdue_link,
            ),
            ("unlinked cap refusals", self.unlinked_cap_refusals),
            ("pings", self.pings),
            ("ping timeout closes", self.ping_timeout_closes),
            ("ping timeout unlinks", self.ping_timeout_unlinks),
            ("inactivity kicks", self.inactivity_kicks),
            ("auth timeouts", self.auth_timeouts),
            ("decisions after a timeout", self.decisions_after_timeout),
            ("pending auths dropped", self.pending_auths_dropped),
            ("queue overflow closes", self.queue_overflow_closes),
            ("replays of several frames", self.replays_of_several_frames),
            ("too many pending", self.too_many_pending),
            ("too large closes", self.too_large_closes),
            ("late network facts", self.late_network_facts),
            ("late pongs in time", self.late_pongs_in_time),
        ]
    }
}

pub(crate) struct Reference {
    rules: Rules,
    start: Instant,
    status: Status,
    /// The latest time seen (spec of `handle_input`: earlier times count as this one).
    pub(crate) now: Instant,
    /// In join order (spec: "Users keep join order").
    pub(crate) users: Vec<User>,
    pub(crate) connections: BTreeMap<ConnectionId, Connection>,
    pub(crate) pending: BTreeMap<u64, PendingAuth>,
    next_auth: u64,
    /// Authentication ids the core minted, mapped to the reference's.
    pub(crate) auth_ids: BTreeMap<krmx_core::AuthId, u64>,
    /// Authentications that timed out (for the statistics).
    timed_out_auths: BTreeSet<u64>,
    /// The next liveness ping round.
    pub(crate) ping_round: Option<Instant>,
    /// Why and when each connection the server closed was closed (for failure messages).
    pub(crate) closed: BTreeMap<ConnectionId, (Instant, &'static str)>,
    /// The outputs expected since the last `take_outputs`.
    pub(crate) out: Vec<Expected>,
    /// The reference id of every `AuthRequested` in `out`, in order.
    pub(crate) requested: Vec<u64>,
    pub(crate) tally: Tally,
}

fn presence(kind: &str, username: &str) -> Value {
    json!({"type": format!("krmx/{kind}"), "payload": {"username": username}})
}

pub(crate) fn rejected(reason: &str) -> Value {
    json!({"type": "krmx/rejected", "payload": {"reason": reason}})
}

pub(crate) fn close_value(code: u16, reason: &str) -> Value {
    json!({"close": code, "reason": reason})
}

/// Spec, wire format: a message is a JSON object with a string `type`; a binary frame whose
/// bytes are UTF-8 counts as text. Returns the text and the parsed object.
fn decode(frame: &Frame) -> Option<(String, Value)> {
    let text = match frame {
        Frame::Text(text) => text.clone(),
        Frame::Binary(bytes) => String::from_utf8(bytes.clone()).ok()?,
    };
    let value: Value = serde_json::from_str(&text).ok()?;
    value.get("type")?.as_str()?;
    value.is_object().then_some((text, value))
}

/// Spec, linking check 1: an object with string `username` and `version`, `auth` absent or a
/// string.
fn link_request(message: &Value) -> Option<(String, String, Option<String>)> {
    let payload = message.get("payload")?.as_object()?;
    let username = payload.get("username")?.as_str()?.to_owned();
    let version = payload.get("version")?.as_str()?.to_owned();
    let auth = match payload.get("auth") {
        None => None,
        Some(Value::String(auth)) => Some(auth.clone()),
        Some(_) => return None,
    };
    Some((username, version, auth))
}

impl Reference {
    /// A server that listens since `start`.
    pub(crate) fn listening(rules: Rules, start: Instant) -> Self {
        // Spec, connection options: a ping round every interval, the first one interval after
        // the server starts listening.
        let ping_round = rules.ping_interval.map(|every| start + every);
        Self {
            rules,
            start,
            status: Status::Listening,
            now: start,
            users: Vec::new(),
            connections: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_auth: 1,
            auth_ids: BTreeMap::new(),
            timed_out_auths: BTreeSet::new(),
            ping_round,
            closed: BTreeMap::new(),
            out: Vec::new(),
            requested: Vec::new(),
            tally: Tally::default(),
        }
    }

    /// Milliseconds since the start, for messages.
    pub(crate) fn at(&self, instant: Instant) -> String {
        let elapsed = instant.saturating_duration_since(self.start);
        format!("+{} ms", elapsed.as_secs_f64() * 1_000.0)
    }

    pub(crate) fn status(&self) -> Status {
        self.status
    }

    pub(crate) fn rules(&self) -> &Rules {
        &self.rules
    }

    pub(crate) fn linked_connections(&self) -> Vec<ConnectionId> {
        self.users.iter().filter_map(|user| user.conn).collect()
    }

    pub(crate) fn user_table(&self) -> Vec<(String, Option<ConnectionId>)> {
        self.users
            .iter()
            .map(|user| (user.name.clone(), user.conn))
            .collect()
    }

    fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|user| user.name == name)
    }

    fn user_mut(&mut self, name: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|user| user.name == name)
    }

    /// How many open connections are not linked (docs: a pending link counts as unlinked).
    pub(crate) fn unlinked_connections(&self) -> usize {
        self.connections
            .values()
            .filter(|connection| !matches!(connection.link, Link::Linked(_)))
            .count()
    }

    /// The earliest deadline of all: what `poll_timeout` must say.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines()
            .into_iter()
            .map(|(at, _)| at)
            .chain(self.ping_round)
            .min()
    }

    fn deadlines(&self) -> Vec<(Instant, Deadline)> {
        let auths = self
            .pending
            .iter()
            .map(|(id, pending)| (pending.deadline, Deadline::Auth(*id)));
        let inactivity = self.users.iter().filter_map(|user| {
            Some((
                user.inactivity_deadline?,
                Deadline::Inactivity(user.name.clone()),
            ))
        });
        let unlinked = self.connections.iter().filter_map(|(conn, connection)| {
            Some((connection.unlinked_deadline?, Deadline::Unlinked(*conn)))
        });
        auths.chain(inactivity).chain(unlinked).collect()
    }

    /// Feeds one input at `now`. Docs (`handle_input`): timers due at `now` fire before a
    /// command, a decision or a tick, and after a network fact (it was already waiting in its
    /// socket), and after every input.
    pub(crate) fn handle(&mut self, now: Instant, input: &Input) -> Result<(), Error> {
        // Docs: network facts are what a peer did (opened, sent, answered, broke a rule,
        // closed); decisions, commands and ticks are not.
        let network_fact = matches!(
            input,
            Input::ConnectionOpened { .. }
                | Input::Frame { .. }
                | Input::Pong { .. }
                | Input::Violation { .. }
                | Input::ConnectionClosed { .. }
        );
        self.around_timers(now, network_fact, |reference| reference.apply(input))
    }

    /// An authentication decision by the reference's own id (the harness decides at once).
    pub(crate) fn decide_now(&mut self, now: Instant, id: u64, decision: &AuthDecision) {
        let result = self.around_timers(now, false, |reference| {
            reference.decide(id, decision);
            Ok(())
        });
        assert_eq!(result, Ok(()));
    }

    fn around_timers(
        &mut self,
        now: Instant,
        network_fact: bool,
        apply: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.now = self.now.max(now);
        if network_fact && self.next_deadline().is_some_and(|at| at <= self.now) {
            self.tally.late_network_facts += 1;
        }
        if !network_fact {
            self.fire_due_timers();
        }
        let result = apply(self);
        self.fire_due_timers();
        result
    }

    fn known(&self, conn: ConnectionId) -> Result<(), Error> {
        if self.connections.contains_key(&conn) {
            Ok(())
        } else {
            Err(Error::UnknownConnection(conn))
        }
    }

    fn status_allows(&self, action: &'static str, allowed: &[Status]) -> Result<(), Error> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(Error::WrongStatus {
                action,
                status: self.status,
            })
        }
    }

    fn apply(&mut self, input: &Input) -> Result<(), Error> {
        const LISTENING: &[Status] = &[Status::Listening];
        const LISTENING_OR_CLOSING: &[Status] = &[Status::Listening, Status::Closing];
        match input {
            Input::ConnectionOpened { conn, .. } => self.open(*conn),
            Input::Frame { conn, frame } => {
                self.known(*conn)?;
                self.receive(*conn, frame.clone());
                Ok(())
            }
            Input::Pong { conn } => {
                self.known(*conn)?;
                let round_due = self.ping_round.is_some_and(|round| round <= self.now);
                if let Some(connection) = self.connections.get_mut(conn) {
                    if round_due && connection.awaiting_pong {
                        self.tally.late_pongs_in_time += 1;
                    }
                    connection.awaiting_pong = false;
                    connection.ping_sent_at = None;
                }
                Ok(())
            }
            Input::PingSent { conn } => {
                self.known(*conn)?;
                let now = self.now;
                if let Some(connection) = self.connections.get_mut(conn) {
                    if connection.awaiting_pong && connection.ping_sent_at.is_none() {
                        connection.ping_sent_at = Some(now);
                    }
                }
                Ok(())
            }
            Input::Violation { conn, violation } => {
                self.known(*conn)?;
                // Spec: 1009 for a message too large, 1007 for invalid UTF-8, 1008 `slow
                // consumer`.
                let (code, reason) = match violation {
                    Violation::MessageTooLarge => (1009, "message too large"),
                    Violation::InvalidUtf8 => (1007, "invalid utf-8"),
                    Violation::SlowConsumer => (1008, "slow consumer"),
                    other => panic!("unknown violation {other:?}"),
                };
                self.close(*conn, code, reason);
                Ok(())
            }
            Input::ConnectionClosed { conn } => {
                self.forget(*conn, true);
                Ok(())
            }
            Input::AuthDecided { id, decision } => {
                // Spec: a decision for an attempt that timed out, was decided or whose
                // connection closed does nothing.
                if let Some(id) = self.auth_ids.get(id).copied() {
                    self.decide(id, decision);
                }
                Ok(())
            }
            Input::Tick => Ok(()),
            Input::Join { username } => {
                self.status_allows("join a user", LISTENING)?;
                if self.user(username).is_some() {
                    return Err(Error::JoinExistingUser);
                }
                if !(self.rules.valid_username)(username) {
                    return Err(Error::JoinInvalidUsername);
                }
                self.join(username);
                Ok(())
            }
            Input::Kick { username } => {
                self.status_allows("kick a user", LISTENING)?;
                if self.user(username).is_none() {
                    return Err(Error::KickUnknownUser);
                }
                self.leave(username);
                Ok(())
            }
            Input::Unlink { username } => {
                self.status_allows("unlink a connection from a user", LISTENING_OR_CLOSING)?;
                match self.user(username) {
                    None => Err(Error::UnlinkUnknownUser),
                    Some(user) if user.conn.is_none() => Err(Error::UnlinkNotLinked),
                    Some(_) => {
                        self.unlink(username, false);
                        Ok(())
                    }
                }
            }
            Input::Send { username, message } => {
                self.status_allows("send a message", LISTENING_OR_CLOSING)?;
                let user = self.user(username).ok_or(Error::SendUnknownUser)?;
                let conn = user.conn.ok_or(Error::SendNotLinked)?;
                self.out.push((Some(conn), message.clone().into_value()));
                Ok(())
            }
            Input::Broadcast { message, skip } => {
                self.status_allows("broadcast a message", LISTENING_OR_CLOSING)?;
                let value = message.clone().into_value();
                self.broadcast(&value, skip.as_deref());
                Ok(())
            }
            Input::Close => {
                self.status_allows("close", &[Status::Starting, Status::Listening])?;
                self.close_server();
                Ok(())
            }
            other => panic!("the model does not generate {other:?}"),
        }
    }

    fn open(&mut self, conn: ConnectionId) -> Result<(), Error> {
        if self.connections.contains_key(&conn) {
            return Err(Error::DuplicateConnection(conn));
        }
        if self.status != Status::Listening {
            self.out
                .push((Some(conn), close_value(1001, "server is not listening")));
            return Ok(());
        }
        // Docs (`max_unlinked_connections`): a connection opened while that many are unlinked is
        // closed at once, 1013 `too many unlinked connections`, before any Krmx message.
        if self
            .rules
            .max_unlinked_connections
            .is_some_and(|most| self.unlinked_connections() >= most)
        {
            self.tally.unlinked_cap_refusals += 1;
            self.out.push((
                Some(conn),
                close_value(1013, "too many unlinked connections"),
            ));
            return Ok(());
        }
        // Docs (`unlinked_timeout`): the clock starts when the connection opens.
        let unlinked_deadline = self.rules.unlinked_timeout.map(|after| self.now + after);
        self.connections.insert(
            conn,
            Connection {
                link: Link::Unlinked,
                queued: VecDeque::new(),
                awaiting_pong: false,
                ping_sent_at: None,
                unlinked_deadline,
                unlinked_since: self.now,
                overdue: false,
                linked_after_overdue: false,
            },
        );
        Ok(())
    }

    fn receive(&mut self, conn: ConnectionId, frame: Frame) {
        // Spec: a message larger than the maximum closes its connection with 1009.
        if frame.len() > self.rules.max_message_bytes {
            self.tally.too_large_closes += 1;
            return self.close(conn, 1009, "message too large");
        }
        let bound = self.rules.max_queued_during_auth;
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        // Spec: messages that arrive while a link is pending are kept, in order, bounded (docs:
        // "one more closes that connection").
        if matches!(connection.link, Link::Pending(_)) {
            if connection.queued.len() >= bound {
                self.tally.queue_overflow_closes += 1;
                self.close(conn, 1008, "too many messages during authentication");
            } else {
                connection.queued.push_back(frame);
            }
            return;
        }
        self.handle_frame(conn, &frame);
    }

    fn handle_frame(&mut self, conn: ConnectionId, frame: &Frame) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        let message = decode(frame);
        match (connection.link.clone(), message) {
            // Spec, linked connections: an invalid message unlinks.
            (Link::Linked(username), None) => self.unlink(&username, false),
            (Link::Linked(username), Some((text, value))) => {
                match value["type"].as_str().unwrap_or_default() {
                    "krmx/link" | "krmx/unlink" => self.unlink(&username, false),
                    "krmx/leave" => self.leave(&username),
                    kind if kind.starts_with("krmx/") => self.unlink(&username, false),
                    _ => self.out.push((
                        None,
                        json!({"event": "message", "username": username, "text": text}),
                    )),
                }
            }
            // Spec: from an unlinked connection, anything but a link is rejected.
            (_, Some((_, value))) if value["type"] == "krmx/link" => {
                self.request_link(conn, &value);
            }
            (_, Some(_)) => self.reject(conn, "unlinked connection"),
            (_, None) => self.reject(conn, "invalid message"),
        }
    }

    fn reject(&mut self, conn: ConnectionId, reason: &str) {
        self.out.push((Some(conn), rejected(reason)));
    }

    /// Spec, linking checks 4 and 5 (run again when a pending decision arrives).
    fn may_link(&self, username: &str) -> Result<(), String> {
        match self.user(username) {
            None if !self.rules.accept_new_users => {
                Err("server is not accepting new users".to_owned())
            }
            Some(user) if user.conn.is_some() => {
                Err(format!("user {username} is already linked to a connection"))
            }
            _ => Ok(()),
        }
    }

    fn request_link(&mut self, conn: ConnectionId, message: &Value) {
        let Some((username, version, auth)) = link_request(message) else {
            return self.reject(conn, "invalid link request");
        };
        if !(self.rules.version_accepted)(&version) {
            return self.reject(
                conn,
                &format!("krmx server version mismatch (server=0.6.*,client={version})"),
            );
        }
        if !(self.rules.valid_username)(&username) {
            return self.reject(conn, "invalid username");
        }
        if let Err(reason) = self.may_link(&username) {
            return self.reject(conn, &reason);
        }
        if !self.rules.application_auth {
            return self.accept_link(conn, &username);
        }
        if self.pending.len() >= self.rules.max_pending_auths {
            self.tally.too_many_pending += 1;
            return self.reject(conn, "too many pending authentications");
        }
        // Spec, check 6: the decision may come later, at most the auth timeout.
        let id = self.next_auth;
        self.next_auth += 1;
        let is_new_user = self.user(&username).is_none();
        self.pending.insert(
            id,
            PendingAuth {
                conn,
                username: username.clone(),
                deadline: self.now + self.rules.auth_timeout,
            },
        );
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.link = Link::Pending(id);
        }
        self.requested.push(id);
        self.out.push((
            None,
            json!({
                "event": "auth",
                "conn": conn.get(),
                "username": username,
                "is_new_user": is_new_user,
                "auth": auth,
            }),
        ));
    }

    fn decide(&mut self, id: u64, decision: &AuthDecision) {
        let Some(pending) = self.pending.remove(&id) else {
            if self.timed_out_auths.contains(&id) {
                self.tally.decisions_after_timeout += 1;
            }
            return;
        };
        let conn = pending.conn;
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        connection.link = Link::Unlinked;
        // Spec: the checks run again when a pending decision arrives; an error without a
        // message is `authentication failed`.
        let rejection = match decision {
            AuthDecision::Accept => self.may_link(&pending.username).err(),
            AuthDecision::Reject(reason) => Some(reason.clone()),
            AuthDecision::Failed => Some("authentication failed".to_owned()),
            other => panic!("unknown decision {other:?}"),
        };
        let (overdue, linked_after_overdue) = self
            .connections
            .get(&conn)
            .map_or((false, false), |c| (c.overdue, c.linked_after_overdue));
        match rejection {
            Some(reason) => {
                self.reject(conn, &reason);
                // Docs (`unlinked_timeout`): a connection whose time ran out while its link
                // waited is closed right after the `krmx/rejected`; its kept frames are dropped.
                if overdue {
                    self.tally.overdue_links_rejected += 1;
                    return self.close(conn, 1008, "unlinked timeout");
                }
                if linked_after_overdue {
                    self.tally.rejections_after_overdue_link += 1;
                }
            }
            None => {
                // Docs: "accepted, it stays".
                if overdue {
                    self.tally.overdue_links_accepted += 1;
                    if let Some(connection) = self.connections.get_mut(&conn) {
                        connection.linked_after_overdue = true;
                    }
                }
                self.accept_link(conn, &pending.username);
            }
        }
        // Spec: the kept messages are handled after the decision, in order, until the connection
        // is pending again or gone.
        let mut replayed = 0;
        while let Some(frame) = self
            .connections
            .get_mut(&conn)
            .filter(|connection| !matches!(connection.link, Link::Pending(_)))
            .and_then(|connection| connection.queued.pop_front())
        {
            replayed += 1;
            self.handle_frame(conn, &frame);
        }
        if replayed >= 2 {
            self.tally.replays_of_several_frames += 1;
        }
    }

    /// Spec, on success: accepted; if new, joined to every linked connection, the user added
    /// and `join`; then the link.
    fn accept_link(&mut self, conn: ConnectionId, username: &str) {
        self.out
            .push((Some(conn), json!({"type": "krmx/accepted"})));
        if self.user(username).is_none() {
            self.join(username);
        }
        self.link(conn, username);
    }

    /// Sends `value` to every linked connection in join order, but `skip`'s.
    fn broadcast(&mut self, value: &Value, skip: Option<&str>) {
        let to: Vec<ConnectionId> = self
            .users
            .iter()
            .filter(|user| Some(user.name.as_str()) != skip)
            .filter_map(|user| user.conn)
            .collect();
        for conn in to {
            self.out.push((Some(conn), value.clone()));
        }
    }

    fn join(&mut self, username: &str) {
        self.broadcast(&presence("joined", username), None);
        // Docs (`inactivity_timeout`): users that stay unlinked for longer are kicked; a new user
        // is unlinked from the start.
        let inactivity_deadline = self.rules.inactivity_timeout.map(|after| self.now + after);
        self.users.push(User {
            name: username.to_owned(),
            conn: None,
            unlinked_since: self.now,
            inactivity_deadline,
        });
        self.out
            .push((None, json!({"event": "joined", "username": username})));
    }

    /// Spec: the new connection gets, for every user in join order, joined and (if linked)
    /// linked; every other linked connection gets linked; then `link`.
    fn link(&mut self, conn: ConnectionId, username: &str) {
        if let Some(user) = self.user_mut(username) {
            user.conn = Some(conn);
            user.inactivity_deadline = None;
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.link = Link::Linked(username.to_owned());
            // Docs (`unlinked_timeout`): the clock stops when it links.
            connection.unlinked_deadline = None;
            connection.overdue = false;
        }
        let mut to_new = Vec::new();
        for user in &self.users {
            to_new.push((Some(conn), presence("joined", &user.name)));
            if user.conn.is_some() {
                to_new.push((Some(conn), presence("linked", &user.name)));
            }
        }
        self.out.extend(to_new);
        self.broadcast(&presence("linked", username), Some(username));
        self.out.push((
            None,
            json!({"event": "linked", "username": username, "conn": conn.get()}),
        ));
    }

    /// Spec: unlinked to every linked connection (its own included unless its peer is gone),
    /// the link cleared, `unlink`.
    fn unlink(&mut self, username: &str, peer_gone: bool) {
        let Some(conn) = self.user(username).and_then(|user| user.conn) else {
            return;
        };
        let skip = peer_gone.then_some(username);
        self.broadcast(&presence("unlinked", username), skip);
        let now = self.now;
        let inactivity_deadline = self.rules.inactivity_timeout.map(|after| now + after);
        if let Some(user) = self.user_mut(username) {
            user.conn = None;
            // Docs (`inactivity_timeout`): the clock of an unlinked user starts now.
            user.inactivity_deadline = inactivity_deadline;
            user.unlinked_since = now;
        }
        let unlinked_deadline = self.rules.unlinked_timeout.map(|after| now + after);
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.link = Link::Unlinked;
            // Docs (`unlinked_timeout`): the clock starts again each time it is unlinked.
            connection.unlinked_deadline = unlinked_deadline;
            connection.unlinked_since = now;
        }
        self.out.push((
            None,
            json!({"event": "unlinked", "username": username, "conn": conn.get()}),
        ));
    }

    /// Spec: if linked, unlink, then `left` to the old connection; `left` to every linked
    /// connection; the user removed; `leave`.
    fn leave(&mut self, username: &str) {
        let Some(user) = self.user(username) else {
            return;
        };
        if let Some(conn) = user.conn {
            self.unlink(username, false);
            self.out.push((Some(conn), presence("left", username)));
        }
        self.broadcast(&presence("left", username), None);
        self.users.retain(|user| user.name != username);
        self.out
            .push((None, json!({"event": "left", "username": username})));
    }

    /// The server closes `conn`: its user is unlinked, then the close frame.
    fn close(&mut self, conn: ConnectionId, code: u16, reason: &'static str) {
        if self.connections.contains_key(&conn) {
            self.forget(conn, false);
            self.closed.insert(conn, (self.now, reason));
            self.out.push((Some(conn), close_value(code, reason)));
        }
    }

    /// Spec: a connection closed or dropped unlinks its user (a gone peer is not sent its own
    /// `krmx/unlinked`); a pending decision for it is forgotten.
    fn forget(&mut self, conn: ConnectionId, peer_gone: bool) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        match connection.link.clone() {
            Link::Linked(username) => self.unlink(&username, peer_gone),
            Link::Pending(id) => {
                self.pending.remove(&id);
                self.tally.pending_auths_dropped += 1;
            }
            Link::Unlinked => {}
        }
        self.connections.remove(&conn);
    }

    /// Spec, server API: every user leaves, every connection is closed, then `close`.
    fn close_server(&mut self) {
        self.status = Status::Closing;
        let names: Vec<String> = self.users.iter().map(|user| user.name.clone()).collect();
        for name in names {
            self.leave(&name);
        }
        let conns: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for conn in conns {
            self.closed.insert(conn, (self.now, "server closing"));
            self.out
                .push((Some(conn), close_value(1001, "server closing")));
        }
        self.connections.clear();
        self.tally.pending_auths_dropped += self.pending.len();
        self.pending.clear();
        self.ping_round = None;
        self.status = Status::Closed;
        self.out.push((None, json!({"event": "closed"})));
    }

    /// Fires every deadline due by now, earliest first (one armed meanwhile and due already
    /// fires too), then the ping round if due (docs: `fire_due_timers`).
    fn fire_due_timers(&mut self) {
        while let Some((_, deadline)) = self
            .deadlines()
            .into_iter()
            .filter(|(at, _)| *at <= self.now)
            .min()
        {
            match deadline {
                // Spec: a pending decision longer than the auth timeout is rejected with
                // `authentication timeout`.
                Deadline::Auth(id) => {
                    self.tally.auth_timeouts += 1;
                    self.timed_out_auths.insert(id);
                    self.decide(id, &AuthDecision::reject("authentication timeout"));
                }
                // Docs (`inactivity_timeout`): a user unlinked for longer is kicked.
                Deadline::Inactivity(username) => {
                    self.tally.inactivity_kicks += 1;
                    if let Some(user) = self.user_mut(&username) {
                        user.inactivity_deadline = None;
                    }
                    self.leave(&username);
                }
                // Docs (`unlinked_timeout`): closed with 1008 `unlinked timeout`, unless a link
                // is pending: then the decision settles it.
                Deadline::Unlinked(conn) => {
                    let Some(connection) = self.connections.get_mut(&conn) else {
                        continue;
                    };
                    connection.unlinked_deadline = None;
                    match connection.link {
                        Link::Pending(_) => connection.overdue = true,
                        Link::Unlinked => {
                            self.tally.unlinked_timeout_closes += 1;
                            self.close(conn, 1008, "unlinked timeout");
                        }
                        Link::Linked(_) => {
                            panic!("reference: unlinked deadline of a linked {conn}")
                        }
                    }
                }
            }
        }
        let (Some(round), Some(every)) = (self.ping_round, self.rules.ping_interval) else {
            return;
        };
        if round > self.now {
            return;
        }
        // Spec: every interval, each connection that answered the last ping is pinged again;
        // one whose ping left the server's buffer a whole interval ago unanswered is
        // terminated, which unlinks its user; a ping not out yet, or out for less, waits.
        let conns: Vec<ConnectionId> = self.connections.keys().copied().collect();
        let now = self.now;
        for conn in conns {
            let Some(connection) = self.connections.get_mut(&conn) else {
                continue;
            };
            if connection.awaiting_pong {
                if connection
                    .ping_sent_at
                    .is_none_or(|sent| sent + every > now)
                {
                    continue;
                }
                self.tally.ping_timeout_closes += 1;
                if matches!(connection.link, Link::Linked(_)) {
                    self.tally.ping_timeout_unlinks += 1;
                }
                self.close(conn, 1001, "ping timeout");
            } else {
                connection.awaiting_pong = true;
                self.tally.pings += 1;
                self.out.push((Some(conn), json!("ping")));
            }
        }
        // The rounds keep their rhythm; a caller that woke too late starts it again from now.
        let next = round + every;
        self.ping_round = Some(if next > self.now {
            next
        } else {
            self.now + every
        });
    }

    /// Checks the reference's own bookkeeping after an input: nothing it keeps is past due.
    pub(crate) fn assert_nothing_due(&self) {
        for (at, deadline) in self.deadlines() {
            assert!(
                at > self.now,
                "reference: {deadline:?} due at {} still armed at {}",
                self.at(at),
                self.at(self.now)
            );
        }
    }

    /// A description of what the reference knows of `conn`, for failure messages.
    pub(crate) fn explain(&self, conn: ConnectionId) -> String {
        if let Some((at, reason)) = self.closed.get(&conn) {
            return format!("closed by the server at {} ({reason})", self.at(*at));
        }
        match self.connections.get(&conn) {
            None => "not open".to_owned(),
            Some(connection) => format!(
                "open, {:?}, unlinked since {}, unlinked deadline {}, overdue {}, awaiting pong {}",
                connection.link,
                self.at(connection.unlinked_since),
                connection
                    .unlinked_deadline
                    .map_or("none".to_owned(), |at| self.at(at)),
                connection.overdue,
                connection.awaiting_pong,
            ),
        }
    }
}
