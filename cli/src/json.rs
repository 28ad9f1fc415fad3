//! The stdout lines of CLI.md: events and command replies, one JSON object each.

use krmx_core::{Event, Status, UserInfo};
use krmx_driver::RoomInfo;
use serde_json::{Map, Value, json};

/// The line for an event; `None` for events the contract does not print.
pub(crate) fn event_line(event: &Event, with_auth_id: bool, room: Option<&str>) -> Option<String> {
    let mut value = match event {
        Event::Listening { port } => json!({"event": "listen", "port": port}),
        Event::Closed => json!({"event": "close"}),
        Event::AuthRequested {
            id,
            username,
            is_new_user,
            auth,
            ..
        } => {
            let mut line = Map::new();
            line.insert("event".into(), json!("authenticate"));
            if with_auth_id {
                line.insert("id".into(), json!(id.get()));
            }
            line.insert("username".into(), json!(username.as_str()));
            line.insert("isNewUser".into(), json!(is_new_user));
            if let Some(auth) = auth {
                line.insert("auth".into(), json!(auth));
            }
            Value::Object(line)
        }
        Event::Joined { username } => json!({"event": "join", "username": username.as_str()}),
        Event::Linked { username, .. } => json!({"event": "link", "username": username.as_str()}),
        Event::Unlinked { username, .. } => {
            json!({"event": "unlink", "username": username.as_str()})
        }
        Event::Left { username } => json!({"event": "leave", "username": username.as_str()}),
        Event::Message { username, message } => {
            json!({"event": "message", "username": username.as_str(), "message": message})
        }
    };
    if let (Some(room), Value::Object(line)) = (room, &mut value) {
        line.insert("room".into(), json!(room));
    }
    Some(value.to_string())
}

pub(crate) fn ok_reply(command: &str) -> String {
    json!({ "ok": command }).to_string()
}

pub(crate) fn error_reply(message: &str) -> String {
    json!({ "error": message }).to_string()
}

pub(crate) fn users_reply(users: &[UserInfo]) -> String {
    let users: Vec<Value> = users
        .iter()
        .map(|user| json!({"username": user.username.as_str(), "isLinked": user.is_linked}))
        .collect();
    json!({ "users": users }).to_string()
}

pub(crate) fn rooms_reply(rooms: &[RoomInfo]) -> String {
    let rooms: Vec<Value> = rooms
        .iter()
        .map(|room| {
            json!({
                "room": room.name,
                "users": room.users,
                "linkedUsers": room.linked_users,
                "connections": room.connections,
            })
        })
        .collect();
    json!({ "rooms": rooms }).to_string()
}

pub(crate) fn status_reply(status: Status) -> String {
    json!({ "status": status.as_str() }).to_string()
}
