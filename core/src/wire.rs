//! The protocol's own messages: the `krmx/` texts the server sends and the link request it reads.

use crate::{Message, Text};
use serde_json::Value;

/// Client to server: link this connection to a user.
pub(crate) const LINK: &str = "krmx/link";
/// Client to server: unlink this connection.
pub(crate) const UNLINK: &str = "krmx/unlink";
/// Client to server: the linked user leaves.
pub(crate) const LEAVE: &str = "krmx/leave";

/// The payload of a `krmx/link` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkRequest {
    pub(crate) username: String,
    pub(crate) version: String,
    pub(crate) auth: Option<String>,
}

impl LinkRequest {
    /// Reads the payload: an object with string `username` and `version`, and `auth` absent or a
    /// string. `None` is an `invalid link request`.
    pub(crate) fn from_message(message: &Message) -> Option<Self> {
        let Some(Value::Object(payload)) = message.payload() else {
            return None;
        };
        let Some(Value::String(username)) = payload.get("username") else {
            return None;
        };
        let Some(Value::String(version)) = payload.get("version") else {
            return None;
        };
        let auth = match payload.get("auth") {
            None => None,
            Some(Value::String(auth)) => Some(auth.clone()),
            Some(_) => return None,
        };
        Some(Self {
            username: username.clone(),
            version: version.clone(),
            auth,
        })
    }
}

/// A JSON string literal for `s`, quotes included.
fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// `{"type":"krmx/<kind>","payload":{"username":"<name>"}}`
pub(crate) fn presence(kind: &str, username: &str) -> Text {
    Text::from(format!(
        r#"{{"type":"krmx/{kind}","payload":{{"username":{}}}}}"#,
        json_string(username)
    ))
}

/// `{"type":"krmx/accepted"}`
pub(crate) fn accepted() -> Text {
    Text::from(r#"{"type":"krmx/accepted"}"#)
}

/// `{"type":"krmx/rejected","payload":{"reason":"<reason>"}}`
pub(crate) fn rejected(reason: &str) -> Text {
    Text::from(format!(
        r#"{{"type":"krmx/rejected","payload":{{"reason":{}}}}}"#,
        json_string(reason)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link(payload: Value) -> Option<LinkRequest> {
        let message = Message::new(LINK).with_payload(payload);
        LinkRequest::from_message(&message)
    }

    #[test]
    fn reads_valid_link_requests() {
        assert_eq!(
            link(json!({"username": "simon", "version": "0.6.0"})),
            Some(LinkRequest {
                username: "simon".into(),
                version: "0.6.0".into(),
                auth: None
            })
        );
        assert_eq!(
            link(json!({"username": "s", "version": "x", "auth": "tok"})).map(|l| l.auth),
            Some(Some("tok".into()))
        );
    }

    #[test]
    fn refuses_malformed_link_requests() {
        for payload in [
            json!(null),
            json!("simon"),
            json!([]),
            json!({"version": "0.6.0"}),
            json!({"username": "simon"}),
            json!({"username": 1, "version": "0.6.0"}),
            json!({"username": "simon", "version": 0.6}),
            json!({"username": "simon", "version": "0.6.0", "auth": null}),
            json!({"username": "simon", "version": "0.6.0", "auth": 5}),
        ] {
            assert_eq!(link(payload.clone()), None, "{payload}");
        }
        assert_eq!(LinkRequest::from_message(&Message::new(LINK)), None);
    }

    #[test]
    fn server_messages_are_exact_json() {
        assert_eq!(
            presence("joined", "simon").as_str(),
            r#"{"type":"krmx/joined","payload":{"username":"simon"}}"#
        );
        assert_eq!(
            rejected("say \"no\"").as_str(),
            r#"{"type":"krmx/rejected","payload":{"reason":"say \"no\""}}"#
        );
        assert_eq!(accepted().as_str(), r#"{"type":"krmx/accepted"}"#);
    }
}
