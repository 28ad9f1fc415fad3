//! Parsing the stdin command lines of CLI.md.

use krmx_core::{AuthId, Message};

/// One stdin command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Join(String),
    Kick(String),
    Unlink(String),
    Send(String, Message),
    Broadcast(Message),
    BroadcastExcept(String, Message),
    Users,
    Status,
    Accept(AuthId),
    Reject(AuthId, String),
    Close,
    /// The open rooms (rooms on).
    Rooms,
    /// A command for one room (rooms on): `in ROOM COMMAND`.
    In(String, Box<Command>),
}

impl Command {
    /// The command word, as echoed in `{"ok":"<command>"}`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Join(_) => "join",
            Self::Kick(_) => "kick",
            Self::Unlink(_) => "unlink",
            Self::Send(..) => "send",
            Self::Broadcast(_) => "broadcast",
            Self::BroadcastExcept(..) => "broadcast-except",
            Self::Users => "users",
            Self::Status => "status",
            Self::Accept(_) => "accept",
            Self::Reject(..) => "reject",
            Self::Close => "close",
            Self::Rooms => "rooms",
            Self::In(_, command) => command.name(),
        }
    }

    /// Parses one line. `Ok(None)` for a blank line (not a command, no reply).
    ///
    /// # Errors
    /// The message for the `{"error":...}` reply.
    pub(crate) fn parse(line: &str) -> Result<Option<Self>, String> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        let (word, rest) = split_word(line);
        let command = match word {
            "join" => Self::Join(one_name(word, rest)?),
            "kick" => Self::Kick(one_name(word, rest)?),
            "unlink" => Self::Unlink(one_name(word, rest)?),
            "send" => {
                let (name, json) = split_word(rest);
                Self::Send(name_arg(word, name)?, message(word, json)?)
            }
            "broadcast" => Self::Broadcast(message(word, rest)?),
            "broadcast-except" => {
                let (name, json) = split_word(rest);
                Self::BroadcastExcept(name_arg(word, name)?, message(word, json)?)
            }
            "users" => no_args(word, rest, Self::Users)?,
            "status" => no_args(word, rest, Self::Status)?,
            "accept" => Self::Accept(auth_id(word, rest)?),
            "reject" => {
                let (id, reason) = split_word(rest);
                Self::Reject(auth_id(word, id)?, reason.to_owned())
            }
            "close" => no_args(word, rest, Self::Close)?,
            "rooms" => no_args(word, rest, Self::Rooms)?,
            "in" => {
                let (room, command) = split_word(rest);
                if room.is_empty() {
                    return Err("usage: in ROOM COMMAND".to_owned());
                }
                match Self::parse(command)? {
                    Some(Self::Join(_) | Self::Kick(_) | Self::Unlink(_))
                    | Some(Self::Send(..))
                    | Some(Self::Broadcast(_) | Self::BroadcastExcept(..) | Self::Users)
                    | Some(Self::Accept(_) | Self::Reject(..) | Self::Close) => {}
                    _ => {
                        return Err("in ROOM takes join, kick, unlink, send, broadcast, \
                                    broadcast-except, users, accept, reject or close"
                            .to_owned());
                    }
                }
                match Self::parse(command)? {
                    Some(inner) => Self::In(room.to_owned(), Box::new(inner)),
                    None => return Err("usage: in ROOM COMMAND".to_owned()),
                }
            }
            other => return Err(format!("unknown command '{other}'")),
        };
        Ok(Some(command))
    }
}

/// Splits off the first whitespace-separated word; the rest is trimmed at its start.
fn split_word(s: &str) -> (&str, &str) {
    match s.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (s, ""),
    }
}

fn name_arg(command: &str, name: &str) -> Result<String, String> {
    if name.is_empty() {
        Err(format!("usage: {command} NAME"))
    } else {
        Ok(name.to_owned())
    }
}

fn one_name(command: &str, rest: &str) -> Result<String, String> {
    let (name, extra) = split_word(rest);
    if !extra.is_empty() {
        return Err(format!("usage: {command} NAME"));
    }
    name_arg(command, name)
}

fn no_args(command: &str, rest: &str, parsed: Command) -> Result<Command, String> {
    if rest.is_empty() {
        Ok(parsed)
    } else {
        Err(format!("usage: {command} (takes no arguments)"))
    }
}

fn message(command: &str, json: &str) -> Result<Message, String> {
    if json.is_empty() {
        return Err(format!("usage: {command} ... JSON"));
    }
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|error| format!("invalid JSON: {error}"))?;
    Message::from_value(value)
        .map_err(|_| "invalid message: expected a JSON object with a string type".to_owned())
}

fn auth_id(command: &str, id: &str) -> Result<AuthId, String> {
    id.parse::<u64>()
        .map(AuthId::from_number)
        .map_err(|_| format!("usage: {command} ID (a number from an authenticate event)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(line: &str) -> Command {
        Command::parse(line).unwrap().unwrap()
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(parse("join simon"), Command::Join("simon".into()));
        assert_eq!(parse("  kick   simon "), Command::Kick("simon".into()));
        assert_eq!(parse("unlink simon"), Command::Unlink("simon".into()));
        assert_eq!(
            parse(r#"send simon {"type":"a","payload":{"x": 1}}"#),
            Command::Send(
                "simon".into(),
                Message::new("a").with_payload(json!({"x": 1}))
            )
        );
        assert_eq!(
            parse(r#"broadcast {"type":"a"}"#),
            Command::Broadcast(Message::new("a"))
        );
        assert_eq!(
            parse(r#"broadcast-except bob {"type":"a"}"#),
            Command::BroadcastExcept("bob".into(), Message::new("a"))
        );
        assert_eq!(parse("users"), Command::Users);
        assert_eq!(parse("status"), Command::Status);
        assert_eq!(parse("accept 7"), Command::Accept(AuthId::from_number(7)));
        assert_eq!(
            parse("reject 7 not  today"),
            Command::Reject(AuthId::from_number(7), "not  today".into())
        );
        assert_eq!(parse("close"), Command::Close);
        assert_eq!(
            parse("broadcast-except bob {\"type\":\"a\"}").name(),
            "broadcast-except"
        );
    }

    #[test]
    fn blank_lines_are_not_commands() {
        assert_eq!(Command::parse("   "), Ok(None));
    }

    #[test]
    fn refuses_bad_lines_with_a_message() {
        for line in [
            "dance",
            "join",
            "join a b",
            "send simon",
            "send simon {",
            "broadcast [1]",
            "broadcast {\"type\":1}",
            "accept x",
            "users now",
        ] {
            assert!(Command::parse(line).is_err(), "{line}");
        }
        assert_eq!(
            Command::parse("dance"),
            Err("unknown command 'dance'".into())
        );
    }
}
