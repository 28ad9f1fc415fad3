//! [`Monitor`]: a web page and a small JSON API on the WebSocket port, behind a token, to watch
//! a running server (users, connections, rates, recent events, limits) and steer it (kick,
//! unlink, broadcast) without linking as a user.

use crate::http::{PlainRequest, Response};
use krmx_core::{Event, KrmxConfig};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;

/// Recent events the monitor keeps (the oldest are dropped).
pub const MONITOR_EVENTS: usize = 200;

/// Shortest token accepted: guessing must not be practical.
pub const MIN_MONITOR_TOKEN_CHARS: usize = 16;

/// The monitor's page is built into the driver.
const PAGE: &str = include_str!("monitor_page.html");

/// Where the monitor answers and the token its API requires.
///
/// Under `path` (for example `/monitor`): `GET path` is the page (it holds no data; it asks for
/// the token and keeps it in the browser tab's session storage), `GET path/state` the server's
/// state as JSON, `POST path/kick`, `path/unlink` (body `{"username":"bob"}`) and
/// `path/broadcast` (body `{"message":{"type":"chat/say","payload":"hi"},"skip":"bob"}`) the
/// actions. Every API request needs `Authorization: Bearer TOKEN`; without it, or with another
/// token, it is answered `401` and changes nothing. No cross-origin headers are sent, so a page
/// of another origin cannot call the API with a user's browser.
///
/// ```
/// use krmx_driver::{Monitor, TransportConfig};
/// let monitor = Monitor::new("/monitor", "a-long-random-token-1234").unwrap();
/// let transport = TransportConfig::default().monitor(monitor);
/// assert!(Monitor::new("/monitor", "short").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Monitor {
    path: String,
    token: String,
}

/// Why a [`Monitor`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The token has fewer than [`MIN_MONITOR_TOKEN_CHARS`] characters.
    #[error("the monitor token must have at least {MIN_MONITOR_TOKEN_CHARS} characters")]
    ShortToken,
}

impl Monitor {
    /// The monitor at `path` (a missing leading `/` is added, a trailing one dropped) behind
    /// `token`.
    ///
    /// # Errors
    /// [`MonitorError::ShortToken`].
    pub fn new(path: &str, token: &str) -> Result<Self, MonitorError> {
        if token.chars().count() < MIN_MONITOR_TOKEN_CHARS {
            return Err(MonitorError::ShortToken);
        }
        let trimmed = path.trim_end_matches('/');
        let path = if trimmed.starts_with('/') {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
        Ok(Self {
            path,
            token: token.to_owned(),
        })
    }

    /// The monitor's path.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What a request under the monitor's path asks for; `None` for other paths.
    pub(crate) fn route(&self, request: &PlainRequest) -> Option<Route> {
        let rest = request.path.strip_prefix(&self.path)?;
        let route = match rest {
            "" | "/" => return Some(Route::Page),
            "/state" => Route::State,
            "/kick" => Route::Kick,
            "/unlink" => Route::Unlink,
            "/broadcast" => Route::Broadcast,
            _ if rest.starts_with('/') => return Some(Route::Unknown),
            // `/monitoring` is not under `/monitor`.
            _ => return None,
        };
        if !self.authorized(request.authorization.as_deref()) {
            return Some(Route::Unauthorized);
        }
        Some(route)
    }

    /// Whether the header carries the token (compared in constant time).
    fn authorized(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|value| value.strip_prefix("Bearer ")) else {
            return false;
        };
        let (given, token) = (given.trim().as_bytes(), self.token.as_bytes());
        let mut difference = given.len() ^ token.len();
        for (index, byte) in token.iter().enumerate() {
            difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(0));
        }
        difference == 0
    }
}

/// A request under the monitor's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Page,
    State,
    Kick,
    Unlink,
    Broadcast,
    Unauthorized,
    Unknown,
}

impl Route {
    /// The method the route takes.
    pub(crate) fn method(self) -> Option<&'static str> {
        match self {
            Self::Page | Self::State => Some("GET"),
            Self::Kick | Self::Unlink | Self::Broadcast => Some("POST"),
            Self::Unauthorized | Self::Unknown => None,
        }
    }
}

/// The page.
pub(crate) fn page() -> Response {
    Response::html(PAGE)
}

/// `401` for an API request without the token.
pub(crate) fn unauthorized() -> Response {
    Response::json_status(
        401,
        json!({"error": "the monitor needs Authorization: Bearer TOKEN"}).to_string(),
    )
}

/// `200 {"ok":true}`, or `400 {"error":...}`.
pub(crate) fn outcome(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => Response::json(json!({"ok": true}).to_string()),
        Err(error) => Response::json_status(400, json!({"error": error}).to_string()),
    }
}

/// The body of an action: a JSON object.
pub(crate) fn body_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("the body must be a JSON object".to_owned()),
        Err(error) => Err(format!("invalid JSON: {error}")),
    }
}

/// A string field of an action's body.
pub(crate) fn string_field(
    object: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<String, String> {
    object
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("the body needs a string field `{name}`"))
}

/// The limits in force, for the page.
pub(crate) fn limits(config: &KrmxConfig, handshake_timeout: Duration) -> Value {
    let seconds = |duration: Duration| duration.as_secs_f64();
    json!({
        "maxMessageBytes": config.max_message_bytes_value(),
        "maxBufferedBytes": config.max_buffered_bytes_value(),
        "softBufferedBytes": config.soft_buffered_bytes_value(),
        "softBufferedSeconds": seconds(config.soft_buffered_period_value()),
        "writeStallSeconds": seconds(config.write_stall_timeout_value()),
        "bufferedBudgetBytes": config.buffered_budget_value(),
        "authTimeoutSeconds": seconds(config.auth_timeout_value()),
        "maxPendingAuthentications": config.max_pending_auths_value(),
        "pingIntervalSeconds": config.ping_interval_value().map(seconds),
        "unlinkedTimeoutSeconds": config.unlinked_timeout_value().map(seconds),
        "maxUnlinkedConnections": config.max_unlinked_connections_value(),
        "handshakeTimeoutSeconds": seconds(handshake_timeout),
    })
}

/// The recent events, for the page.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    entries: VecDeque<Entry>,
    /// Events recorded since the start (the page tells new ones from those it has).
    recorded: u64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    at: Duration,
    event: &'static str,
    username: String,
    /// A message's type.
    detail: Option<String>,
}

impl EventLog {
    /// Records a presence change or a message (its type only) at `at` since the start.
    pub(crate) fn record(&mut self, at: Duration, event: &Event) {
        let (name, username, detail) = match event {
            Event::Joined { username } => ("join", username, None),
            Event::Linked { username, .. } => ("link", username, None),
            Event::Unlinked { username, .. } => ("unlink", username, None),
            Event::Left { username } => ("leave", username, None),
            Event::Message { username, message } => {
                ("message", username, Some(message.kind().to_owned()))
            }
            _ => return,
        };
        self.push(at, name, username.as_str(), detail);
    }

    fn push(&mut self, at: Duration, event: &'static str, username: &str, detail: Option<String>) {
        if self.entries.len() == MONITOR_EVENTS {
            self.entries.pop_front();
        }
        self.recorded += 1;
        self.entries.push_back(Entry {
            seq: self.recorded,
            at,
            event,
            username: username.to_owned(),
            detail,
        });
    }

    /// The events, oldest first.
    pub(crate) fn to_json(&self) -> Value {
        let events: Vec<Value> = self
            .entries
            .iter()
            .map(|entry| {
                let mut value = json!({
                    "seq": entry.seq,
                    "atSeconds": entry.at.as_secs_f64(),
                    "event": entry.event,
                    "username": entry.username,
                });
                if let (Some(detail), Value::Object(object)) = (&entry.detail, &mut value) {
                    object.insert("type".to_owned(), Value::String(detail.clone()));
                }
                value
            })
            .collect();
        Value::Array(events)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(path: &str, authorization: Option<&str>) -> PlainRequest {
        PlainRequest {
            method: "GET".to_owned(),
            path: path.to_owned(),
            head_only: false,
            content_length: 0,
            authorization: authorization.map(str::to_owned),
        }
    }

    #[test]
    fn the_api_needs_the_token_and_the_page_does_not() {
        let monitor = Monitor::new("monitor/", "0123456789abcdef").unwrap();
        assert_eq!(monitor.path(), "/monitor");
        let good = Some("Bearer 0123456789abcdef");
        assert_eq!(monitor.route(&request("/monitor", None)), Some(Route::Page));
        assert_eq!(
            monitor.route(&request("/monitor/", None)),
            Some(Route::Page)
        );
        assert_eq!(
            monitor.route(&request("/monitor/state", good)),
            Some(Route::State)
        );
        for bad in [
            None,
            Some("Bearer 0123456789abcdeF"),
            Some("Bearer 0123456789abcde"),
            Some("Bearer 0123456789abcdef0"),
            Some("Basic 0123456789abcdef"),
            Some(""),
        ] {
            for path in ["/monitor/state", "/monitor/kick", "/monitor/broadcast"] {
                assert_eq!(
                    monitor.route(&request(path, bad)),
                    Some(Route::Unauthorized),
                    "{path} {bad:?}"
                );
            }
        }
        assert_eq!(
            monitor.route(&request("/monitor/other", good)),
            Some(Route::Unknown)
        );
        assert_eq!(monitor.route(&request("/monitoring", good)), None);
        assert_eq!(monitor.route(&request("/", good)), None);
    }

    #[test]
    fn the_log_keeps_the_latest_events() {
        let mut log = EventLog::default();
        for n in 0..(MONITOR_EVENTS + 5) {
            log.push(Duration::from_millis(n as u64), "join", "alice", None);
        }
        let events = log.to_json();
        let events = events.as_array().unwrap();
        assert_eq!(events.len(), MONITOR_EVENTS);
        assert_eq!(events.first().unwrap()["seq"], 6);
        assert_eq!(events.last().unwrap()["event"], "join");
    }
}
