//! The messages the relay and echo workloads send: a sender id, a sequence number and a send
//! timestamp, as a Krmx custom message (also sent as is to the bare servers).
//!
//! `{"type":"load/probe","payload":{"s":3,"q":17,"t":123456789}}` with an optional padding
//! field `"p"`. Servers may re-serialise the message (key order and spacing aside, the fields
//! come back), so parsing looks the fields up instead of assuming one layout.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The sender (0..S), not the client index.
    pub(crate) sender: u32,
    /// Per-sender sequence number, from 0.
    pub(crate) seq: u64,
    /// When it was sent, in nanoseconds since [`epoch`].
    pub(crate) sent_ns: u64,
}

/// The instant send timestamps count from (the first call).
pub(crate) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds from [`epoch`] to `at`.
pub(crate) fn stamp(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// How long ago (at `now`) a probe stamped `sent_ns` was sent.
pub(crate) fn age(sent_ns: u64, now: Instant) -> Duration {
    Duration::from_nanos(stamp(now).saturating_sub(sent_ns))
}

/// The probe's text; `pad` is sent as a string field to make messages larger.
pub(crate) fn encode(probe: Probe, pad: &str) -> Vec<u8> {
    let Probe {
        sender,
        seq,
        sent_ns,
    } = probe;
    let text = if pad.is_empty() {
        format!(r#"{{"type":"load/probe","payload":{{"s":{sender},"q":{seq},"t":{sent_ns}}}}}"#)
    } else {
        format!(
            r#"{{"type":"load/probe","payload":{{"s":{sender},"q":{seq},"t":{sent_ns},"p":"{pad}"}}}}"#
        )
    };
    text.into_bytes()
}

/// The probe in `text`, or `None` if it is not one.
pub(crate) fn parse(text: &[u8]) -> Option<Probe> {
    parse_as_sent(text).or_else(|| parse_any_layout(text))
}

/// The fast path: the layout [`encode`] writes (servers that forward the text, or re-serialise
/// it compactly in the same key order, the usual case), read in one pass.
fn parse_as_sent(text: &[u8]) -> Option<Probe> {
    let rest = text.strip_prefix(br#"{"type":"load/probe","payload":{"s":"#)?;
    let (sender, rest) = number(rest)?;
    let (seq, rest) = number(rest.strip_prefix(br#","q":"#)?)?;
    let (sent_ns, _) = number(rest.strip_prefix(br#","t":"#)?)?;
    Some(Probe {
        sender: u32::try_from(sender).ok()?,
        seq,
        sent_ns,
    })
}

/// Any key order and spacing.
fn parse_any_layout(text: &[u8]) -> Option<Probe> {
    if !crate::wire::contains(text, b"\"load/probe\"") {
        return None;
    }
    Some(Probe {
        sender: u32::try_from(field(text, b"\"s\"")?).ok()?,
        seq: field(text, b"\"q\"")?,
        sent_ns: field(text, b"\"t\"")?,
    })
}

/// The unsigned integer at the start of `text` and what follows it.
fn number(text: &[u8]) -> Option<(u64, &[u8])> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = text
        .get(..digits)?
        .iter()
        .fold(0_u64, |value, digit| value * 10 + u64::from(digit - b'0'));
    Some((value, text.get(digits..)?))
}

/// The unsigned integer after `"key"` and a colon.
fn field(text: &[u8], key: &[u8]) -> Option<u64> {
    let start = text.windows(key.len()).position(|w| w == key)? + key.len();
    let mut rest = text.get(start..)?;
    rest = trim_start(rest);
    rest = trim_start(rest.strip_prefix(b":")?);
    number(rest).map(|(value, _)| value)
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let spaces = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    bytes.get(spaces..).unwrap_or_default()
}

/// A `krmx/link` message.
pub(crate) fn link(username: &str, version: &str) -> Vec<u8> {
    serde_json::json!({"type": "krmx/link", "payload": {"username": username, "version": version}})
        .to_string()
        .into_bytes()
}

/// Whether `text` is a message of type `kind` (a fast path for the usual layout, where `type`
/// comes first, then a search).
pub(crate) fn is_type(text: &[u8], kind: &[u8]) -> bool {
    const PREFIX: &[u8] = br#"{"type":""#;
    if let Some(rest) = text.strip_prefix(PREFIX) {
        return rest
            .strip_prefix(kind)
            .is_some_and(|r| r.first() == Some(&b'"'));
    }
    let mut quoted = Vec::with_capacity(kind.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(kind);
    quoted.push(b'"');
    crate::wire::contains(text, &quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_round_trip() {
        let probe = Probe {
            sender: 3,
            seq: 17,
            sent_ns: 123_456_789,
        };
        assert_eq!(parse(&encode(probe, "")), Some(probe));
        assert_eq!(parse(&encode(probe, "xxxx")), Some(probe));
    }

    #[test]
    fn the_fast_path_takes_what_encode_writes() {
        let probe = Probe {
            sender: 7,
            seq: 0,
            sent_ns: u64::MAX / 2,
        };
        assert_eq!(parse_as_sent(&encode(probe, "")), Some(probe));
        assert_eq!(parse_as_sent(&encode(probe, "pad")), Some(probe));
        assert_eq!(
            parse_as_sent(br#"{"type":"load/probe","payload":{"q":1}}"#),
            None
        );
    }

    #[test]
    fn reserialised_probes_parse() {
        let text = br#"{ "payload": { "t": 5, "q" : 2, "s": 1 }, "type": "load/probe" }"#;
        assert_eq!(
            parse(text),
            Some(Probe {
                sender: 1,
                seq: 2,
                sent_ns: 5
            })
        );
        assert_eq!(
            parse(br#"{"type":"krmx/linked","payload":{"username":"s"}}"#),
            None
        );
    }

    #[test]
    fn message_types() {
        let linked = br#"{"type":"krmx/linked","payload":{"username":"u1"}}"#;
        assert!(is_type(linked, b"krmx/linked"));
        assert!(!is_type(linked, b"krmx/link"));
        assert!(is_type(
            br#"{"payload":{},"type":"krmx/linked"}"#,
            b"krmx/linked"
        ));
    }
}
