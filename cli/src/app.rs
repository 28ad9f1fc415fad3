//! What `krmx serve` does, whatever the transport: prints events as JSON lines, answers stdin
//! commands, and applies `--manual-auth`, `--reject`, `--relay` and `--echo`.

use crate::command::Command;
use crate::json;
use crate::trim::Trimmer;
use krmx_core::{AuthDecision, Event, Input, Status};
use krmx_driver::Commands;
use std::collections::HashMap;
use std::io::{self, Write};

/// What to do with every custom message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reaction {
    /// Only print it.
    None,
    /// Broadcast it to every linked user, sender included.
    Relay,
    /// Send it back to its sender.
    Echo,
}

/// The behaviour chosen on the command line.
#[derive(Debug, Clone)]
pub(crate) struct Behaviour {
    pub(crate) manual_auth: bool,
    pub(crate) rejects: HashMap<String, String>,
    pub(crate) reaction: Reaction,
    pub(crate) quiet: bool,
    /// Rooms are on: user commands address a room.
    pub(crate) rooms: bool,
    /// Print the server's own `listen` and `close` lines (a worker of several leaves them to
    /// the process).
    pub(crate) lifecycle: bool,
}

/// Whether the server keeps running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Exit,
}

/// The application: owns stdout.
pub(crate) struct App<W: Write> {
    behaviour: Behaviour,
    out: W,
    trimmer: Option<Trimmer>,
}

impl<W: Write> App<W> {
    pub(crate) fn new(behaviour: Behaviour, out: W) -> Self {
        Self {
            behaviour,
            out,
            trimmer: None,
        }
    }

    /// Gives freed heap back to the system after bursts (see [`Trimmer`]).
    pub(crate) fn trim_after_bursts(&mut self) {
        self.trimmer = Some(Trimmer::start());
    }

    /// Handles every event the server has queued, printing each and reacting to it; then
    /// flushes stdout.
    pub(crate) fn drain(&mut self, server: &mut dyn Commands) -> io::Result<Flow> {
        if let Some(trimmer) = &self.trimmer {
            trimmer.touch();
        }
        while let Some((room, event)) = server.poll_room_event() {
            self.on_event(server, room.as_deref(), event)?;
        }
        self.out.flush()?;
        Ok(if server.status() == Status::Closed {
            Flow::Exit
        } else {
            Flow::Continue
        })
    }

    fn on_event(
        &mut self,
        server: &mut dyn Commands,
        room: Option<&str>,
        event: Event,
    ) -> io::Result<()> {
        let quiet = (self.behaviour.quiet && matches!(event, Event::Message { .. }))
            || (!self.behaviour.lifecycle
                && room.is_none()
                && matches!(event, Event::Listening { .. } | Event::Closed));
        if !quiet {
            if let Some(line) = json::event_line(&event, self.behaviour.manual_auth, room) {
                writeln!(self.out, "{line}")?;
            }
        }
        let reaction = match event {
            Event::AuthRequested { id, username, .. } if !self.behaviour.manual_auth => {
                let decision = match self.behaviour.rejects.get(username.as_str()) {
                    Some(reason) => AuthDecision::reject(reason.clone()),
                    None => AuthDecision::Accept,
                };
                Some(Input::AuthDecided { id, decision })
            }
            Event::Message { username, message } => match self.behaviour.reaction {
                Reaction::None => None,
                Reaction::Relay => Some(Input::Broadcast {
                    message,
                    skip: None,
                }),
                Reaction::Echo => Some(Input::Send {
                    username: username.as_str().to_owned(),
                    message,
                }),
            },
            _ => None,
        };
        if let Some(input) = reaction {
            let result = match room {
                Some(room) => server
                    .input_in(room, input)
                    .map_err(|error| error.to_string()),
                None => server.input(input).map_err(|error| error.to_string()),
            };
            if let Err(error) = result {
                tracing::warn!(%error, "automatic reaction failed");
            }
        }
        Ok(())
    }

    /// Executes one stdin line: events it causes are printed first, then its one reply line.
    pub(crate) fn on_line(&mut self, server: &mut dyn Commands, line: &str) -> io::Result<Flow> {
        let reply = match Command::parse(line) {
            Ok(None) => return Ok(Flow::Continue),
            Ok(Some(command)) => self.execute(server, command, None),
            Err(message) => json::error_reply(&message),
        };
        let flow = self.drain(server)?;
        writeln!(self.out, "{reply}")?;
        self.out.flush()?;
        Ok(flow)
    }

    /// A signal asked for a graceful close: like the `close` command, without a reply.
    pub(crate) fn on_signal(&mut self, server: &mut dyn Commands) -> io::Result<Flow> {
        if let Err(error) = server.input(Input::Close) {
            tracing::warn!(%error, "close on signal");
        }
        self.drain(server)
    }

    fn execute(
        &mut self,
        server: &mut dyn Commands,
        command: Command,
        room: Option<&str>,
    ) -> String {
        let name = command.name();
        let addresses_users = !matches!(
            command,
            Command::Status | Command::Close | Command::Rooms | Command::In(..)
        );
        if self.behaviour.rooms && room.is_none() && addresses_users {
            return json::error_reply(&format!("rooms are on: address a room, in ROOM {name} ..."));
        }
        if let Some(room) = room {
            if server.room(room).is_none() {
                return json::error_reply(&format!("no room {room}"));
            }
        }
        let pending = |server: &dyn Commands, id| match room {
            Some(room) => server
                .room(room)
                .is_some_and(|krmx| krmx.is_auth_pending(id)),
            None => server.krmx().is_auth_pending(id),
        };
        let input = match command {
            Command::In(room, inner) => {
                if !self.behaviour.rooms {
                    return json::error_reply("rooms are off (krmx serve --rooms PREFIX)");
                }
                return self.execute(server, *inner, Some(&room));
            }
            Command::Rooms => return json::rooms_reply(&server.rooms()),
            Command::Users => {
                let users = match room {
                    Some(room) => server
                        .room(room)
                        .map(|krmx| krmx.users().collect())
                        .unwrap_or_default(),
                    None => server.users(),
                };
                return json::users_reply(&users);
            }
            Command::Status => return json::status_reply(server.status()),
            Command::Join(username) => Input::Join { username },
            Command::Kick(username) => Input::Kick { username },
            Command::Unlink(username) => Input::Unlink { username },
            Command::Send(username, message) => Input::Send { username, message },
            Command::Broadcast(message) => Input::Broadcast {
                message,
                skip: None,
            },
            Command::BroadcastExcept(skip, message) => Input::Broadcast {
                message,
                skip: Some(skip),
            },
            Command::Accept(id) | Command::Reject(id, _) if !pending(server, id) => {
                return json::error_reply(&format!("no pending authentication with id {id}"));
            }
            Command::Accept(id) => Input::AuthDecided {
                id,
                decision: AuthDecision::Accept,
            },
            Command::Reject(id, reason) => Input::AuthDecided {
                id,
                decision: AuthDecision::Reject(reason),
            },
            Command::Close => Input::Close,
        };
        let result = match room {
            Some(room) => server
                .input_in(room, input)
                .map_err(|error| error.to_string()),
            None => server.input(input).map_err(|error| error.to_string()),
        };
        match result {
            Ok(()) => json::ok_reply(name),
            Err(error) => json::error_reply(&error),
        }
    }
}
