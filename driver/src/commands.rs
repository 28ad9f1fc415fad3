//! [`Commands`]: the server as an application commands it, the same on every transport.

use crate::driver::{Driver, RoomError, RoomInfo};
use crate::metrics::Metrics;
use crate::stream::Stream;
use krmx_core::{Control, Error, Event, Input, Krmx};
use std::sync::Arc;

/// The server's commands and queries, for code that runs inside the server's own loop (an
/// event handler): every [`Control`] command (join, kick, unlink, send, broadcast, decide an
/// authentication, close, users, status) plus events, metrics and rooms. Written once against
/// this trait, it runs on every transport; an [`Application`](krmx_core::Application), which
/// sees only [`Control`], runs in simulation too. Other threads and tasks use a
/// [`Handle`](crate::Handle), which has the same commands.
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
pub trait Commands: Control {
    /// The next event; see [`Driver::poll_event`].
    fn poll_event(&mut self) -> Option<Event>;

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
}

impl<S: Stream> Control for Driver<S> {
    fn input(&mut self, input: Input) -> Result<(), Error> {
        let now = self.turn_time();
        Driver::input(self, now, input)
    }

    fn krmx(&self) -> &Krmx {
        Driver::krmx(self)
    }
}

impl<S: Stream> Commands for Driver<S> {
    fn poll_event(&mut self) -> Option<Event> {
        Driver::poll_event(self)
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
