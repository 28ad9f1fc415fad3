//! [`Commands`]: the server as an application commands it, the same on every transport.

use crate::driver::{Driver, RoomError, RoomInfo};
use crate::metrics::Metrics;
use crate::stream::Stream;
use krmx_core::{AuthDecision, AuthId, Error, Event, Input, Krmx, Message, Status, UserInfo};
use std::sync::Arc;

/// The server's commands and queries, for application code that runs inside the server's own
/// loop (an event handler): written once against this trait, it runs on every transport.
/// Other threads and tasks use a [`Handle`](crate::Handle), which has the same commands.
///
/// ```
/// use krmx_driver::Commands;
///
/// /// Greets every user that links, on any transport.
/// fn greet(server: &mut dyn Commands, event: &krmx_core::Event) {
///     if let krmx_core::Event::Linked { username, .. } = event {
///         let hello = krmx_core::Message::parse(r#"{"type":"lobby/hello"}"#).unwrap();
///         if let Err(error) = server.send(username.as_str(), hello) {
///             eprintln!("could not greet {username}: {error}");
///         }
///     }
/// }
/// ```
pub trait Commands {
    /// Feeds any core input (server commands, auth decisions, close) at the time of the
    /// current turn, and carries out what follows.
    ///
    /// # Errors
    /// The core's error, for example `cannot kick a user that does not exist`.
    fn input(&mut self, input: Input) -> Result<(), Error>;

    /// The next event; see [`Driver::poll_event`].
    fn poll_event(&mut self) -> Option<Event>;

    /// The core, for queries.
    fn krmx(&self) -> &Krmx;

    /// The server's figures for monitoring; see [`Driver::metrics`].
    fn metrics(&self) -> Metrics;

    /// The next event with its room; see [`Driver::poll_room_event`].
    fn poll_room_event(&mut self) -> Option<(Option<Arc<str>>, Event)>;

    /// Feeds any core input to room `room` (rooms on).
    ///
    /// # Errors
    /// [`RoomError::NoRoom`], or the core's error.
    fn input_in(&mut self, room: &str, input: Input) -> Result<(), RoomError>;

    /// The core of room `room`, if it is open (rooms on).
    fn room(&self, room: &str) -> Option<&Krmx>;

    /// Every open room with its figures (rooms on).
    fn rooms(&self) -> Vec<RoomInfo>;

    /// Joins an unlinked user.
    ///
    /// # Errors
    /// As [`Input::Join`].
    fn join(&mut self, username: &str) -> Result<(), Error> {
        self.input(Input::Join {
            username: username.to_owned(),
        })
    }

    /// The user leaves (unlinked first if linked).
    ///
    /// # Errors
    /// As [`Input::Kick`].
    fn kick(&mut self, username: &str) -> Result<(), Error> {
        self.input(Input::Kick {
            username: username.to_owned(),
        })
    }

    /// Unlinks the user's connection.
    ///
    /// # Errors
    /// As [`Input::Unlink`].
    fn unlink(&mut self, username: &str) -> Result<(), Error> {
        self.input(Input::Unlink {
            username: username.to_owned(),
        })
    }

    /// Sends a message to one linked user.
    ///
    /// # Errors
    /// As [`Input::Send`].
    fn send(&mut self, username: &str, message: Message) -> Result<(), Error> {
        self.input(Input::Send {
            username: username.to_owned(),
            message,
        })
    }

    /// Sends a message to every linked user but `skip`.
    ///
    /// # Errors
    /// As [`Input::Broadcast`].
    fn broadcast(&mut self, message: Message, skip: Option<&str>) -> Result<(), Error> {
        self.input(Input::Broadcast {
            message,
            skip: skip.map(str::to_owned),
        })
    }

    /// Answers a pending authentication.
    ///
    /// # Errors
    /// As [`Input::AuthDecided`].
    fn decide_auth(&mut self, id: AuthId, decision: AuthDecision) -> Result<(), Error> {
        self.input(Input::AuthDecided { id, decision })
    }

    /// Closes gracefully: every user leaves, every connection gets a close frame, the `close`
    /// event is queued and the listener dropped. The pump runs on until every close frame is
    /// out.
    ///
    /// # Errors
    /// As [`Input::Close`] (not starting or listening).
    fn close(&mut self) -> Result<(), Error> {
        self.input(Input::Close)
    }

    /// Every user in join order.
    fn users(&self) -> Vec<UserInfo> {
        self.krmx().users().collect()
    }

    /// The server status.
    fn status(&self) -> Status {
        self.krmx().status()
    }
}

impl<S: Stream> Commands for Driver<S> {
    fn input(&mut self, input: Input) -> Result<(), Error> {
        let now = self.turn_time();
        Driver::input(self, now, input)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Driver::poll_event(self)
    }

    fn krmx(&self) -> &Krmx {
        Driver::krmx(self)
    }

    fn metrics(&self) -> Metrics {
        Driver::metrics(self)
    }

    fn poll_room_event(&mut self) -> Option<(Option<Arc<str>>, Event)> {
        Driver::poll_room_event(self)
    }

    fn input_in(&mut self, room: &str, input: Input) -> Result<(), RoomError> {
        let now = self.turn_time();
        Driver::input_in(self, now, room, input)
    }

    fn room(&self, room: &str) -> Option<&Krmx> {
        Driver::room(self, room)
    }

    fn rooms(&self) -> Vec<RoomInfo> {
        Driver::rooms(self)
    }
}
