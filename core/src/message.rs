//! [`Message`]: one Krmx message, a JSON object with a string `type`.

use crate::Text;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::OnceLock;

/// One Krmx message: a JSON object with a string `type`, an optional `payload`, and any other
/// top-level fields (which are kept, as the reference forwards the whole object).
///
/// A message parsed from a client keeps its original text, and its fields are only built into
/// a JSON tree when first asked for: handling or relaying a message costs one validating pass
/// over its text, no tree and no serialisation.
///
/// ```
/// use krmx_core::Message;
/// use serde_json::json;
///
/// let message = Message::new("chat/say").with_payload(json!("hi"));
/// assert_eq!(message.kind(), "chat/say");
/// assert_eq!(message.to_text().as_str(), r#"{"type":"chat/say","payload":"hi"}"#);
///
/// let parsed = Message::parse(r#"{"type":"move","payload":{"x":1},"seq":3}"#).unwrap();
/// assert_eq!(parsed.payload(), Some(&json!({"x": 1})));
/// assert_eq!(parsed.get("seq"), Some(&json!(3)));
/// assert!(Message::parse("{}").is_err());
/// ```
#[derive(Clone)]
pub struct Message {
    kind: String,
    /// The exact text this message was parsed from, while it is unchanged.
    raw: Option<Text>,
    /// The fields; built from `raw` on first use when the message was parsed.
    fields: OnceLock<Map<String, Value>>,
}

/// Why a frame is not a Krmx message: not JSON, not an object, or no string `type`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid message")]
pub struct InvalidMessage;

impl Message {
    /// A message with this `type` and nothing else.
    pub fn new(kind: impl Into<String>) -> Self {
        let kind = kind.into();
        let mut fields = Map::new();
        fields.insert("type".to_owned(), Value::String(kind.clone()));
        Self {
            kind,
            raw: None,
            fields: OnceLock::from(fields),
        }
    }

    /// Sets the payload.
    #[must_use]
    pub fn with_payload(mut self, payload: Value) -> Self {
        let mut fields = self.fields.take().unwrap_or_else(|| self.parse_fields());
        fields.insert("payload".to_owned(), payload);
        self.raw = None;
        self.fields = OnceLock::from(fields);
        self
    }

    /// Parses the text of a WebSocket message: one validating pass that finds the `type`; the
    /// other fields are read when first asked for.
    ///
    /// # Errors
    /// [`InvalidMessage`] when the text is not a JSON object with a string `type`.
    pub fn parse(text: &str) -> Result<Self, InvalidMessage> {
        let TypeOnly(kind) = serde_json::from_str(text).map_err(|_| InvalidMessage)?;
        Ok(Self {
            kind: kind.ok_or(InvalidMessage)?,
            raw: Some(Text::from(text)),
            fields: OnceLock::new(),
        })
    }

    /// A message from a JSON value.
    ///
    /// # Errors
    /// [`InvalidMessage`] when the value is not an object with a string `type`.
    pub fn from_value(value: Value) -> Result<Self, InvalidMessage> {
        match value {
            Value::Object(fields) => {
                let Some(Value::String(kind)) = fields.get("type") else {
                    return Err(InvalidMessage);
                };
                Ok(Self {
                    kind: kind.clone(),
                    raw: None,
                    fields: OnceLock::from(fields),
                })
            }
            _ => Err(InvalidMessage),
        }
    }

    /// The `type` field.
    #[must_use]
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The `payload` field, if any.
    #[must_use]
    pub fn payload(&self) -> Option<&Value> {
        self.fields().get("payload")
    }

    /// Any top-level field.
    #[must_use]
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields().get(field)
    }

    /// All top-level fields, `type` included.
    #[must_use]
    pub fn fields(&self) -> &Map<String, Value> {
        self.fields.get_or_init(|| self.parse_fields())
    }

    /// The message as a JSON value.
    #[must_use]
    pub fn into_value(mut self) -> Value {
        let fields = self.fields.take().unwrap_or_else(|| self.parse_fields());
        Value::Object(fields)
    }

    /// Whether the type is in the reserved `krmx/` namespace.
    #[must_use]
    pub fn is_reserved(&self) -> bool {
        self.kind().starts_with("krmx/")
    }

    /// The wire text: the original text when parsed and unchanged, else serialised now.
    #[must_use]
    pub fn to_text(&self) -> Text {
        match &self.raw {
            Some(raw) => raw.clone(),
            None => Text::from(Value::Object(self.fields().clone()).to_string()),
        }
    }

    /// The fields of the original text (validated when parsed, so this cannot fail; an empty
    /// map is the unreachable fallback).
    fn parse_fields(&self) -> Map<String, Value> {
        self.raw
            .as_ref()
            .and_then(|raw| serde_json::from_str(raw.as_str()).ok())
            .unwrap_or_default()
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.fields() == other.fields()
    }
}

/// Reads a JSON object, keeping only its `type` when that is a string (the last `type` wins,
/// as when the object is read into a map) and validating the rest without building it.
struct TypeOnly(Option<String>);

impl<'de> serde::Deserialize<'de> for TypeOnly {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TypeOnlyVisitor)
    }
}

struct TypeOnlyVisitor;

impl<'de> serde::de::Visitor<'de> for TypeOnlyVisitor {
    type Value = TypeOnly;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TypeOnly, A::Error> {
        let mut kind = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "type" {
                kind = match map.next_value::<Value>()? {
                    Value::String(kind) => Some(kind),
                    _ => None,
                };
            } else {
                map.next_value::<Valid>()?;
            }
        }
        Ok(TypeOnly(kind))
    }
}

/// Validates one JSON value exactly as reading it into a [`Value`] does, without building it:
/// `IgnoredAny` would skip string escapes, number ranges and the nesting limit unchecked, and
/// accept texts (`"\ud800"`, `1e999`, 200 nested arrays) whose fields then cannot be built.
struct Valid;

impl<'de> serde::Deserialize<'de> for Valid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValidVisitor)
    }
}

struct ValidVisitor;

impl<'de> serde::de::Visitor<'de> for ValidVisitor {
    type Value = Valid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
        while seq.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
        while map.next_key::<Valid>()?.is_some() {
            map.next_value::<Valid>()?;
        }
        Ok(Valid)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message({})", Value::Object(self.fields().clone()))
    }
}

impl serde::Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(serializer)
    }
}

impl TryFrom<Value> for Message {
    type Error = InvalidMessage;
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Self::from_value(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_messages_are_rejected() {
        for text in [
            "",
            "not json",
            "[]",
            "\"s\"",
            "3",
            "true",
            "null",
            "{}",
            "{\"type\":3}",
            "{\"type\":null}",
            "{\"payload\":1}",
            "[{\"type\":\"a\"}]",
        ] {
            assert_eq!(Message::parse(text), Err(InvalidMessage), "{text}");
        }
    }

    #[test]
    fn extra_fields_and_original_text_are_kept() {
        let text = r#"{ "payload": 1, "type": "a/b", "extra": [true] }"#;
        let message = Message::parse(text).unwrap();
        assert_eq!(message.kind(), "a/b");
        assert_eq!(message.get("extra"), Some(&serde_json::json!([true])));
        assert_eq!(message.to_text().as_str(), text);
    }

    #[test]
    fn the_last_type_wins_as_in_a_map() {
        assert_eq!(
            Message::parse(r#"{"type":"a","type":3}"#),
            Err(InvalidMessage)
        );
        assert_eq!(
            Message::parse(r#"{"type":3,"type":"b"}"#).unwrap().kind(),
            "b"
        );
        assert_eq!(
            Message::parse(r#"{"type":"a","x":{"type":1}}"#)
                .unwrap()
                .kind(),
            "a"
        );
    }

    #[test]
    fn keys_with_escapes_are_read() {
        assert_eq!(
            Message::parse(r#"{"ty\u0070e":"esc"}"#).unwrap().kind(),
            "esc"
        );
        assert_eq!(Message::parse("{\"type\":\"a\"} x"), Err(InvalidMessage));
    }

    /// Found by the `frames` fuzz target: texts that the validating pass skipped unchecked were
    /// accepted, and the message then had no fields at all (`payload()` none, `fields()` `{}`).
    #[test]
    fn parse_accepts_exactly_what_the_fields_can_be_built_from() {
        let deep = format!(
            r#"{{"type":"a","p":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        for text in [
            r#"{"type":"chat","payload":"\ud800"}"#,
            r#"{"type":"chat","payload":"\udc00\ud800"}"#,
            r#"{"type":"chat","payload":{"\ud800":1}}"#,
            r#"{"type":"chat","payload":1e999}"#,
            r#"{"type":"chat","payload":[-1e400]}"#,
            deep.as_str(),
        ] {
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
            assert_eq!(Message::parse(text), Err(InvalidMessage), "{text}");
        }
        let deep_enough = format!(
            r#"{{"type":"a","p":{}{}}}"#,
            "[".repeat(120),
            "]".repeat(120)
        );
        for text in [
            r#"{"type":"chat","payload":"\ud83d\ude00 \u00e9 \n"}"#,
            r#"{"type":"chat","payload":[1e308,-0.0,18446744073709551615,-9223372036854775808]}"#,
            deep_enough.as_str(),
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let message = Message::parse(text).unwrap();
            assert_eq!(message.into_value(), value, "{text}");
        }
    }

    #[test]
    fn reserved_prefix_is_detected() {
        assert!(Message::new("krmx/whatever").is_reserved());
        assert!(!Message::new("krmxx/whatever").is_reserved());
    }
}
