//! [`ServerChecker`]: the server's invariants, checked from the outside on every output it
//! produces and on its public state after every step.
//!
//! It depends on `krmx-core`, `serde_json`, `std` and its sibling [`deadlines`](crate::deadlines)
//! only; the simulation ([`soak`](crate::soak)) and the repository's fuzz targets share it.
//!
//! Checked on every output ([`ServerChecker::observe`]):
//! - no output addresses a connection the transport never opened or that is closed (the
//!   transport reported it closed, or the core asked to close it with an earlier
//!   [`Output::Close`]);
//! - every text sent is a JSON object with a string `type`;
//! - an application message (a `type` outside `krmx/`) goes only to a connection linked to a
//!   user (as the events tell);
//! - events tell a consistent story: a user joins once, links only while unlinked, unlinks from
//!   the connection it was linked to, leaves only while unlinked; messages come from linked users;
//!   authentication is requested only for open connections.
//!
//! Checked on the state ([`ServerChecker::check`], after the outputs are drained):
//! - the core's open connections are the transport's;
//! - users and connections are linked one to one (`users`, `linked_connection`, `linked_user`);
//! - the users and links rebuilt from the events equal `users()`;
//! - every linked connection's view of the users, rebuilt only from the presence messages it was
//!   sent since its last `krmx/accepted`, equals `users()`;
//! - `poll_timeout` lies after the time of the last input (due timers have fired).
//!
//! Built with [`ServerChecker::judging`] and told every input ([`ServerChecker::input`]), it also
//! judges the timers and limits against a reference of their deadlines ([`Deadlines`]): every
//! close, kick, rejection and ping is justified when it happens, and everything due has
//! happened at every `check`.

use crate::deadlines::{Deadlines, Judged};
use krmx_core::{ClientStatus, ConnectionId, Event, Input, Krmx, KrmxClient, KrmxConfig, Output};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

/// What one connection knows of the users, from the presence messages it was sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct View {
    /// Users in join order, with whether they are linked.
    pub users: Vec<(String, bool)>,
    /// The first presence message that made no sense for this view (for example `linked` of a
    /// user it was never told joined).
    pub anomaly: Option<String>,
}

impl View {
    /// Applies one presence message (`krmx/joined`, `krmx/linked`, `krmx/unlinked`, `krmx/left`).
    pub fn apply(&mut self, kind: &str, username: &str) {
        let position = self.users.iter().position(|(name, _)| name == username);
        let ok = match (kind, position) {
            ("krmx/joined", None) => {
                self.users.push((username.to_owned(), false));
                true
            }
            ("krmx/linked", Some(i)) => match self.users.get_mut(i) {
                Some((_, linked)) if !*linked => {
                    *linked = true;
                    true
                }
                _ => false,
            },
            ("krmx/unlinked", Some(i)) => match self.users.get_mut(i) {
                Some((_, linked)) if *linked => {
                    *linked = false;
                    true
                }
                _ => false,
            },
            ("krmx/left", Some(i)) if self.users.get(i).is_some_and(|(_, linked)| !*linked) => {
                self.users.remove(i);
                true
            }
            _ => false,
        };
        if !ok && self.anomaly.is_none() {
            self.anomaly = Some(format!("{kind} {username} with view {:?}", self.users));
        }
    }
}

/// Checks the server's outputs and state against what the transport and the application saw.
///
/// Tell it every connection the transport opens ([`opened`](Self::opened)) and every close it
/// reports ([`peer_closed`](Self::peer_closed)) before feeding the core, pass every output to
/// [`observe`](Self::observe), and call [`check`](Self::check) once the outputs are drained.
#[derive(Debug, Default)]
pub struct ServerChecker {
    /// Every connection the transport reported open.
    opened: BTreeSet<ConnectionId>,
    /// Opened, and neither reported closed nor closed by an `Output::Close`.
    open: BTreeSet<ConnectionId>,
    /// Reported closed or closed by an `Output::Close`.
    closed: BTreeSet<ConnectionId>,
    /// Reported closed while outputs queued earlier may still be drained: outputs to these are
    /// tolerated until [`drained`](Self::drained).
    closing: BTreeSet<ConnectionId>,
    views: BTreeMap<ConnectionId, View>,
    /// Users and their links as the events tell them, in join order.
    event_users: Vec<(String, Option<ConnectionId>)>,
    /// How many outputs were observed.
    outputs: u64,
    /// The timer reference, when judging timers.
    deadlines: Option<Deadlines>,
}

/// The connection an output goes to, if any.
#[must_use]
pub fn addressee(output: &Output) -> Option<ConnectionId> {
    match output {
        Output::Send { to, .. } | Output::Ping { to } | Output::Close { to, .. } => Some(*to),
        Output::Broadcast { .. } | Output::Event(_) => None,
    }
}

impl ServerChecker {
    /// A checker that knows no connection.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A checker that also judges the timers and limits of a server built with `config`: tell
    /// it every input ([`input`](Self::input)).
    #[must_use]
    pub fn judging(config: &KrmxConfig) -> Self {
        Self {
            deadlines: Some(Deadlines::new(config)),
            ..Self::default()
        }
    }

    /// `input` is about to be fed to the core at `now` (every input, nested ones included).
    pub fn input(&mut self, now: Instant, input: &Input) {
        if let Some(deadlines) = &mut self.deadlines {
            deadlines.input(now, input);
        }
    }

    /// The timer and limit outcomes judged so far (all zero when not judging).
    #[must_use]
    pub fn judged(&self) -> Judged {
        self.deadlines
            .as_ref()
            .map_or_else(Judged::default, Deadlines::judged)
    }

    /// The transport is about to report `conn` open.
    pub fn opened(&mut self, conn: ConnectionId) {
        self.opened.insert(conn);
        self.open.insert(conn);
    }

    /// The transport is about to report `conn` closed; every output queued from now on must not
    /// address it.
    pub fn peer_closed(&mut self, conn: ConnectionId) {
        if self.open.remove(&conn) {
            self.closed.insert(conn);
        }
    }

    /// As [`peer_closed`](Self::peer_closed), for a close reported while outputs produced
    /// earlier are still being drained: outputs to `conn` are tolerated until
    /// [`drained`](Self::drained).
    pub fn peer_closed_mid_drain(&mut self, conn: ConnectionId) {
        if self.open.remove(&conn) {
            self.closing.insert(conn);
        }
    }

    /// Every output produced so far has been observed.
    pub fn drained(&mut self) {
        let closing = std::mem::take(&mut self.closing);
        self.closed.extend(closing);
    }

    /// Whether the transport considers `conn` open.
    #[must_use]
    pub fn is_open(&self, conn: ConnectionId) -> bool {
        self.open.contains(&conn)
    }

    /// The connections the transport considers open.
    #[must_use]
    pub fn open_connections(&self) -> &BTreeSet<ConnectionId> {
        &self.open
    }

    /// What `conn` was told about the users since its last `krmx/accepted`.
    #[must_use]
    pub fn view(&self, conn: ConnectionId) -> Option<&View> {
        self.views.get(&conn)
    }

    /// How many outputs were observed.
    #[must_use]
    pub fn outputs_observed(&self) -> u64 {
        self.outputs
    }

    /// Checks one output as it is drained.
    ///
    /// # Errors
    /// The invariant it breaks.
    pub fn observe(&mut self, output: &Output) -> Result<(), String> {
        if let Output::Broadcast { to, text } = output {
            // Judged as the sends it stands for, recipient by recipient.
            for &to in to {
                let text = text.clone();
                self.observe(&Output::Send { to, text })?;
            }
            return Ok(());
        }
        self.outputs += 1;
        if let Some(to) = addressee(output) {
            if !self.opened.contains(&to) {
                return Err(format!("{output:?} addresses a connection never opened"));
            }
            if self.closed.contains(&to) {
                return Err(format!("{output:?} addresses a closed connection"));
            }
        }
        match output {
            Output::Send { to, text } => {
                let value: Value = serde_json::from_str(text)
                    .map_err(|e| format!("sent invalid JSON {text:?} to {to}: {e}"))?;
                let Some(kind) = value.get("type").and_then(Value::as_str) else {
                    return Err(format!("sent a text without a string type to {to}: {text}"));
                };
                if !value.is_object() {
                    return Err(format!("sent a non-object to {to}: {text}"));
                }
                if !kind.starts_with("krmx/")
                    && !self.event_users.iter().any(|(_, conn)| *conn == Some(*to))
                {
                    return Err(format!(
                        "an application message {text} went to {to}, which no user is linked to"
                    ));
                }
                if kind == "krmx/rejected" {
                    if let Some(deadlines) = &mut self.deadlines {
                        let reason = value
                            .get("payload")
                            .and_then(|p| p.get("reason"))
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        deadlines
                            .rejected(*to, reason)
                            .map_err(|e| format!("reference: {e}"))?;
                    }
                } else if kind == "krmx/accepted" {
                    self.views.insert(*to, View::default());
                } else if matches!(
                    kind,
                    "krmx/joined" | "krmx/linked" | "krmx/unlinked" | "krmx/left"
                ) {
                    let Some(username) = value
                        .get("payload")
                        .and_then(|p| p.get("username"))
                        .and_then(Value::as_str)
                    else {
                        return Err(format!("presence message without a username: {text}"));
                    };
                    if let Some(view) = self.views.get_mut(to) {
                        view.apply(kind, username);
                    }
                }
            }
            Output::Ping { to } => {
                if let Some(deadlines) = &mut self.deadlines {
                    deadlines
                        .pinged(*to)
                        .map_err(|e| format!("reference: {e}"))?;
                }
            }
            Output::Close { to, code, reason } => {
                if let Some(deadlines) = &mut self.deadlines {
                    deadlines
                        .closed(*to, code.0, reason)
                        .map_err(|e| format!("reference: {e}"))?;
                }
                self.open.remove(to);
                self.closing.remove(to);
                self.closed.insert(*to);
            }
            Output::Event(event) => {
                self.observe_event(event)?;
                if let Some(deadlines) = &mut self.deadlines {
                    deadlines
                        .event(event)
                        .map_err(|e| format!("reference: {e}"))?;
                }
            }
            other => return Err(format!("unknown output {other:?}")),
        }
        Ok(())
    }

    fn event_user(&mut self, name: &str) -> Option<&mut (String, Option<ConnectionId>)> {
        self.event_users.iter_mut().find(|(n, _)| n == name)
    }

    fn observe_event(&mut self, event: &Event) -> Result<(), String> {
        match event {
            Event::AuthRequested { conn, .. } => {
                if !self.open.contains(conn) && !self.closing.contains(conn) {
                    return Err(format!("{event:?} for a connection that is not open"));
                }
            }
            Event::Joined { username } => {
                if self.event_user(username.as_str()).is_some() {
                    return Err(format!("{username} joined twice"));
                }
                self.event_users.push((username.to_string(), None));
            }
            Event::Linked { username, conn } => {
                let user = self
                    .event_user(username.as_str())
                    .ok_or_else(|| format!("{username} linked before it joined"))?;
                if user.1.is_some() {
                    return Err(format!("{username} linked twice"));
                }
                user.1 = Some(*conn);
                let linked_elsewhere = self
                    .event_users
                    .iter()
                    .filter(|(_, c)| *c == Some(*conn))
                    .count();
                if linked_elsewhere != 1 {
                    return Err(format!("{conn} linked to two users"));
                }
            }
            Event::Unlinked { username, conn } => {
                let user = self
                    .event_user(username.as_str())
                    .ok_or_else(|| format!("{username} unlinked but unknown"))?;
                if user.1 != Some(*conn) {
                    return Err(format!(
                        "{username} unlinked from {conn}, but was linked to {:?}",
                        user.1
                    ));
                }
                user.1 = None;
            }
            Event::Left { username } => {
                let position = self
                    .event_users
                    .iter()
                    .position(|(n, _)| n == username.as_str())
                    .ok_or_else(|| format!("{username} left but unknown"))?;
                if self
                    .event_users
                    .get(position)
                    .is_some_and(|(_, c)| c.is_some())
                {
                    return Err(format!("{username} left while linked"));
                }
                self.event_users.remove(position);
            }
            Event::Message { username, .. } => {
                if !self
                    .event_users
                    .iter()
                    .any(|(n, c)| n == username.as_str() && c.is_some())
                {
                    return Err(format!("message from {username}, who is not linked"));
                }
            }
            Event::Listening { .. } | Event::Closed => {}
        }
        Ok(())
    }

    /// Checks the server's state; call once every output is drained. When judging timers, also
    /// checks that everything due by now has happened, and starts the reference's next window
    /// (what the inputs fed from now on allow and demand).
    ///
    /// # Errors
    /// Every invariant that does not hold, one per line.
    pub fn check(&mut self, krmx: &Krmx, now: Instant) -> Result<(), String> {
        let mut errors = String::new();
        let core_open: BTreeSet<ConnectionId> = krmx.connections().collect();
        if core_open != self.open {
            let _ = writeln!(
                errors,
                "open connections differ: core {core_open:?}, transport {:?}",
                self.open
            );
        }

        let users: Vec<(String, bool)> = krmx
            .users()
            .map(|user| (user.username.to_string(), user.is_linked))
            .collect();
        let mut linked_conns = BTreeSet::new();
        for (name, is_linked) in &users {
            let conn = krmx.linked_connection(name);
            if conn.is_some() != *is_linked {
                let _ = writeln!(errors, "{name}: is_linked disagrees with linked_connection");
            }
            if let Some(conn) = conn {
                if !linked_conns.insert(conn) {
                    let _ = writeln!(errors, "{conn} linked to two users");
                }
                if krmx.linked_user(conn).map(|u| u.as_str()) != Some(name.as_str()) {
                    let _ = writeln!(errors, "{name} linked to {conn}, but not the other way");
                }
                if !self.open.contains(&conn) {
                    let _ = writeln!(errors, "{name} linked to {conn}, which is not open");
                }
            }
        }
        for conn in &core_open {
            if let Some(user) = krmx.linked_user(*conn) {
                if krmx.linked_connection(user.as_str()) != Some(*conn) {
                    let _ = writeln!(errors, "{conn} linked to {user}, but not the other way");
                }
            }
        }

        let from_core: Vec<(String, Option<ConnectionId>)> = users
            .iter()
            .map(|(name, _)| (name.clone(), krmx.linked_connection(name)))
            .collect();
        if from_core != self.event_users {
            let _ = writeln!(
                errors,
                "events tell {:?}, users() {from_core:?}",
                self.event_users
            );
        }

        for conn in &linked_conns {
            match self.views.get(conn) {
                None => {
                    let _ = writeln!(errors, "{conn} is linked but was never sent krmx/accepted");
                }
                Some(view) => {
                    if let Some(anomaly) = &view.anomaly {
                        let _ = writeln!(errors, "{conn}: inconsistent presence: {anomaly}");
                    }
                    if view.users != users {
                        let _ = writeln!(
                            errors,
                            "{conn}'s view {:?} differs from users() {users:?}",
                            view.users
                        );
                    }
                }
            }
        }

        if let Some(at) = krmx.poll_timeout() {
            if at <= now {
                let _ = writeln!(errors, "poll_timeout is not after the last input's time");
            }
        }
        if let Some(deadlines) = &mut self.deadlines {
            if let Err(error) = deadlines.check(&self.open) {
                for line in error.lines() {
                    let _ = writeln!(errors, "reference: {line}");
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// What is wrong, on a settled network, with client `label`'s view of `server` (nothing when
/// it agrees): a linked client's connection is linked to its user and it lists the server's
/// users; a connected client's connection is open on the server (`open_on_server`) and
/// unlinked, and it lists nobody; a closed client lists nobody; any other status is still on
/// its way.
#[must_use]
pub fn client_disagreement(
    label: &str,
    client: &KrmxClient,
    conn: Option<ConnectionId>,
    server: &Krmx,
    open_on_server: bool,
) -> Vec<String> {
    let users: Vec<(String, bool)> = client
        .users()
        .map(|u| (u.username.clone(), u.is_linked))
        .collect();
    let mut problems = Vec::new();
    match client.status() {
        ClientStatus::Linked => {
            let on_server = conn.and_then(|conn| server.linked_user(conn));
            if on_server.is_none() || on_server.map(|u| u.as_str()) != client.username() {
                problems.push(format!(
                    "{label} is linked as {:?} but the server links its connection to \
                     {on_server:?}",
                    client.username()
                ));
            }
            let server_users: Vec<(String, bool)> = server
                .users()
                .map(|u| (u.username.to_string(), u.is_linked))
                .collect();
            if users != server_users {
                problems.push(format!(
                    "{label} lists {users:?}, the server {server_users:?}"
                ));
            }
        }
        ClientStatus::Connected => {
            let linked = conn.and_then(|conn| server.linked_user(conn));
            if !open_on_server || linked.is_some() || !users.is_empty() {
                problems.push(format!(
                    "{label} is connected: open on the server {open_on_server}, linked \
                     {linked:?}, users {users:?}"
                ));
            }
        }
        ClientStatus::Initializing | ClientStatus::Closed => {
            if !users.is_empty() || client.username().is_some() {
                problems.push(format!("{label} is closed but lists {users:?}"));
            }
        }
        status => problems.push(format!("{label} is {status} on a settled network")),
    }
    problems
}
