//! [`Message`]: one Krmx message, a JSON object with a string `type`.

use crate::Text;
use serde_json::{Map, Value};
use std::fmt;

/// One Krmx message: a JSON object with a string `type`, an optional `payload`, and any other
/// top-level fields (which are kept, as the reference forwards the whole object).
///
/// A message parsed from a client keeps its original text, so relaying it unchanged costs no
/// serialisation.
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
#[derive(Clone, PartialEq)]
pub struct Message {
    fields: Map<String, Value>,
    /// The exact text this message was parsed from, while it is unchanged.
    raw: Option<Text>,
}

/// Why a frame is not a Krmx message: not JSON, not an object, or no string `type`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid message")]
pub struct InvalidMessage;

impl Message {
    /// A message with this `type` and nothing else.
    pub fn new(kind: impl Into<String>) -> Self {
        let mut fields = Map::new();
        fields.insert("type".to_owned(), Value::String(kind.into()));
        Self { fields, raw: None }
    }

    /// Sets the payload.
    #[must_use]
    pub fn with_payload(mut self, payload: Value) -> Self {
        self.raw = None;
        self.fields.insert("payload".to_owned(), payload);
        self
    }

    /// Parses the text of a WebSocket message.
    ///
    /// # Errors
    /// [`InvalidMessage`] when the text is not a JSON object with a string `type`.
    pub fn parse(text: &str) -> Result<Self, InvalidMessage> {
        let value: Value = serde_json::from_str(text).map_err(|_| InvalidMessage)?;
        let mut message = Self::from_value(value)?;
        message.raw = Some(Text::from(text));
        Ok(message)
    }

    /// A message from a JSON value.
    ///
    /// # Errors
    /// [`InvalidMessage`] when the value is not an object with a string `type`.
    pub fn from_value(value: Value) -> Result<Self, InvalidMessage> {
        match value {
            Value::Object(fields) if matches!(fields.get("type"), Some(Value::String(_))) => {
                Ok(Self { fields, raw: None })
            }
            _ => Err(InvalidMessage),
        }
    }

    /// The `type` field.
    #[must_use]
    pub fn kind(&self) -> &str {
        match self.fields.get("type") {
            Some(Value::String(kind)) => kind,
            // Every constructor guarantees a string type; an empty kind is never reserved.
            _ => "",
        }
    }

    /// The `payload` field, if any.
    #[must_use]
    pub fn payload(&self) -> Option<&Value> {
        self.fields.get("payload")
    }

    /// Any top-level field.
    #[must_use]
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// All top-level fields, `type` included.
    #[must_use]
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// The message as a JSON value.
    #[must_use]
    pub fn into_value(self) -> Value {
        Value::Object(self.fields)
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
            None => Text::from(Value::Object(self.fields.clone()).to_string()),
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message({})", Value::Object(self.fields.clone()))
    }
}

impl serde::Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields.serialize(serializer)
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
    fn reserved_prefix_is_detected() {
        assert!(Message::new("krmx/whatever").is_reserved());
        assert!(!Message::new("krmxx/whatever").is_reserved());
    }
}
