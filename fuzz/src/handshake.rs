//! `handshake`: request targets (path and query) into [`KrmxConfig::check_request`] under
//! configured path and query rules.
//!
//! Input: a path mode byte (none, a path of URL path characters, or any string) and the path;
//! a rule count and each rule (name, requirement, value); a raw target; a choice byte.
//!
//! Checked: nothing panics; the server opening a connection with a target refuses it exactly
//! when `check_request` does; and, when the path is made of URL path characters and the rule
//! names differ, a target equal to the configured path with every requirement met is accepted
//! (also in absolute form and with a fragment), a different path is refused with
//! [`RequestRejection::Path`], and breaking exactly one requirement is refused with
//! [`RequestRejection::Query`].

use crate::{Seed, byte, lossy, raw};
use arbitrary::Unstructured;
use krmx_core::{
    ConnectionId, Input, Krmx, KrmxConfig, Output, QueryRequirement, RequestRejection,
};
use std::collections::BTreeSet;
use std::time::Instant;

/// Characters of an RFC 3986 path: `pchar` and `/` (with `%` on its own, as a client may send).
const PATH_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/%";

#[derive(Debug, Clone)]
enum Requirement {
    Present,
    Absent,
    Equals(String),
    /// Passes when the value starts with `k`.
    StartsWithK,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    requirement: Requirement,
    /// The value used when meeting `Present` (or the tail after `k` for the predicate).
    value: String,
}

/// Percent-encodes every byte but the unreserved ones, so the query decodes back exactly.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pair(name: &str, value: &str) -> String {
    format!("{}={}", encode(name), encode(value))
}

impl Rule {
    /// The query pair meeting this rule, if it needs one.
    fn meeting(&self) -> Option<String> {
        match &self.requirement {
            Requirement::Present => Some(pair(&self.name, &self.value)),
            Requirement::Absent => None,
            Requirement::Equals(v) => Some(pair(&self.name, v)),
            Requirement::StartsWithK => Some(pair(&self.name, &format!("k{}", self.value))),
        }
    }

    /// The query pair breaking this rule, if it needs one.
    fn breaking(&self) -> Option<String> {
        match &self.requirement {
            Requirement::Present => None,
            Requirement::Absent => Some(pair(&self.name, &self.value)),
            Requirement::Equals(v) => Some(pair(&self.name, &format!("{v}x"))),
            Requirement::StartsWithK => Some(pair(&self.name, &format!("z{}", self.value))),
        }
    }

    fn to_core(&self) -> QueryRequirement {
        match &self.requirement {
            Requirement::Present => QueryRequirement::Present,
            Requirement::Absent => QueryRequirement::Absent,
            Requirement::Equals(v) => QueryRequirement::Equals(v.clone()),
            Requirement::StartsWithK => QueryRequirement::matches(|v| v.starts_with('k')),
        }
    }
}

/// Whether the server refuses a connection opened with `target` (closing it at once).
fn server_refuses(config: &KrmxConfig, target: &str) -> bool {
    let mut krmx = Krmx::new(config.clone());
    let now = Instant::now();
    assert_eq!(krmx.handle_input(now, Input::Listen { port: 8082 }), Ok(()));
    while krmx.poll_output().is_some() {}
    let conn = ConnectionId::new(1);
    let opened = Input::ConnectionOpened {
        conn,
        target: target.to_owned(),
    };
    assert_eq!(krmx.handle_input(now, opened), Ok(()));
    let refused = matches!(krmx.poll_output(), Some(Output::Close { to, .. }) if to == conn);
    assert!(krmx.poll_output().is_none());
    assert_eq!(refused, !krmx.connections().any(|c| c == conn));
    refused
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mode = byte(&mut u) % 3;
    let path_bytes = raw(&mut u);
    let path = match mode {
        0 => None,
        1 => Some(
            path_bytes
                .iter()
                .map(|b| char::from(PATH_CHARS[usize::from(*b) % PATH_CHARS.len()]))
                .collect::<String>(),
        ),
        _ => Some(String::from_utf8_lossy(path_bytes).into_owned()),
    };
    let mut rules = Vec::new();
    for _ in 0..byte(&mut u) % 5 {
        let name = lossy(&mut u);
        let requirement = match byte(&mut u) % 4 {
            0 => Requirement::Present,
            1 => Requirement::Absent,
            2 => Requirement::Equals(lossy(&mut u)),
            _ => Requirement::StartsWithK,
        };
        let value = lossy(&mut u);
        rules.push(Rule {
            name,
            requirement,
            value,
        });
    }
    let target = lossy(&mut u);
    let choice = usize::from(byte(&mut u));

    let mut config = KrmxConfig::default();
    if let Some(path) = &path {
        config = config.path(path);
    }
    for rule in &rules {
        config = config.query(rule.name.clone(), rule.to_core());
    }

    // Any target: no panic, and the server agrees with the handshake check.
    let result = config.check_request(&target);
    assert_eq!(
        server_refuses(&config, &target),
        result.is_err(),
        "{target:?}"
    );

    let well_formed = mode != 2;
    let names: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    if !well_formed || names.len() != rules.len() {
        return;
    }
    let configured = config.path_rule().map_or_else(
        || {
            path_bytes
                .iter()
                .map(|b| char::from(PATH_CHARS[usize::from(*b) % PATH_CHARS.len()]))
                .collect::<String>()
        },
        str::to_owned,
    );
    let meeting: Vec<String> = rules.iter().filter_map(Rule::meeting).collect();
    let query = meeting.join("&");
    let good = format!("{configured}?{query}");
    assert_eq!(
        config.check_request(&good),
        Ok(()),
        "{good:?} under {config:?}"
    );
    assert!(!server_refuses(&config, &good), "{good:?}");
    let fragment = format!("{good}#{}", encode(&target));
    assert_eq!(config.check_request(&fragment), Ok(()), "{fragment:?}");
    if configured.starts_with('/') {
        let absolute = format!("ws://example.invalid:8082{good}");
        assert_eq!(config.check_request(&absolute), Ok(()), "{absolute:?}");
    }
    if config.path_rule().is_some() {
        let other = format!("{configured}x?{query}");
        assert_eq!(
            config.check_request(&other),
            Err(RequestRejection::Path),
            "{other:?}"
        );
    }
    if !rules.is_empty() {
        let broken = choice % rules.len();
        let pairs: Vec<String> = rules
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| {
                if i == broken {
                    rule.breaking()
                } else {
                    rule.meeting()
                }
            })
            .collect();
        let bad = format!("{configured}?{}", pairs.join("&"));
        assert_eq!(
            config.check_request(&bad),
            Err(RequestRejection::Query),
            "{bad:?} breaks {:?}",
            rules[broken]
        );
    }
}

/// Path mode bytes.
const NO_PATH: u8 = 0;
const URL_PATH: u8 = 1;
const ANY_PATH: u8 = 2;

/// The bytes that map to `path` in [`PATH_CHARS`].
fn path_seed(path: &str) -> Vec<u8> {
    path.bytes()
        .filter_map(|c| PATH_CHARS.iter().position(|p| *p == c))
        .filter_map(|i| u8::try_from(i).ok())
        .collect()
}

/// The committed seeds.
#[must_use]
pub fn seeds() -> crate::Seeds {
    let room_present = Seed::new()
        .b(&[URL_PATH])
        .raw(&path_seed("game"))
        .b(&[1])
        .raw(b"room")
        .b(&[0])
        .raw(b"1")
        .raw(b"/game?room=1")
        .b(&[0]);
    let every_requirement = Seed::new()
        .b(&[URL_PATH])
        .raw(&path_seed("/a/b:c@d"))
        .b(&[4])
        .raw(b"key")
        .b(&[0])
        .raw(b"")
        .raw(b"debug")
        .b(&[1])
        .raw(b"on")
        .raw(b"room")
        .b(&[2])
        .raw(b"a b&c=d")
        .raw(b"")
        .raw(b"n")
        .b(&[3])
        .raw(b"7")
        .raw(b"/a/b:c@d?key&room=a+b%26c%3Dd&n=k7")
        .b(&[2]);
    let no_path = Seed::new()
        .b(&[NO_PATH])
        .raw(&path_seed("/anything/at/all"))
        .b(&[1])
        .raw(b"")
        .b(&[0])
        .raw(b"")
        .raw(b"/?=&&=x")
        .b(&[0]);
    let escapes = Seed::new()
        .b(&[ANY_PATH])
        .raw("/caf\u{e9} ?#".as_bytes())
        .b(&[2])
        .raw("\u{20ac}".as_bytes())
        .b(&[2])
        .raw(b"%zz%")
        .raw(b"")
        .raw(b"+")
        .b(&[0])
        .raw(b"")
        .raw(b"/caf%C3%A9?%E2%82%AC=%zz%25&%2B&%ff%4")
        .b(&[0]);
    let absolute = Seed::new()
        .b(&[URL_PATH])
        .raw(&path_seed("/ws"))
        .b(&[0])
        .raw(b"wss://host:1/ws?x#y")
        .b(&[0]);
    // Found by this target: a path holding `://` was read as an absolute-form target.
    let origin_form_scheme = Seed::new()
        .b(&[URL_PATH])
        .raw(&path_seed("/proxy/http://x"))
        .b(&[1])
        .raw(b"room")
        .b(&[0])
        .raw(b"")
        .raw(b"/proxy/http://x?room")
        .b(&[0]);
    vec![
        ("origin_form_scheme", origin_form_scheme.0),
        ("room_present", room_present.0),
        ("every_requirement", every_requirement.0),
        ("no_path", no_path.0),
        ("escapes", escapes.0),
        ("absolute", absolute.0),
    ]
}
