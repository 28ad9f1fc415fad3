//! [`Application`] and [`Control`]: application code written once, run by every runner.
//!
//! An application reacts to the server's [`Event`]s (an authentication to decide, a user
//! joined, linked, sent a message, unlinked or left) and answers with commands through
//! [`Control`]. The mio and smol transports run it on real sockets
//! (`krmx_transport_mio::run_app`, `krmx_transport_smol::Server::run_app`), the
//! `krmx-testkit` crate runs it in a deterministic simulation, and [`At`] runs it against a
//! bare [`Krmx`] core in an event loop of your own.

use crate::{AuthDecision, AuthId, Error, Event, Input, Krmx, Message, Status, UserInfo};
use std::time::Instant;

/// The server as an application commands it: the same on every transport and in simulation.
///
/// Implementors give [`input`](Self::input) and [`krmx`](Self::krmx); every other command is
/// built on them.
pub trait Control {
    /// Feeds any core input (a server command, an authentication decision, the close) at the
    /// current time, and carries out what follows.
    ///
    /// # Errors
    /// The core's error, for example `cannot kick a user that does not exist`.
    fn input(&mut self, input: Input) -> Result<(), Error>;

    /// The core, for queries.
    fn krmx(&self) -> &Krmx;

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

    /// Closes gracefully: every user leaves, every connection gets a close frame.
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

/// A Krmx application: reacts to every event of the server it runs on, in order, with
/// commands. Written once against this trait, it runs unchanged on the mio and smol
/// transports and in the `krmx-testkit` simulation.
///
/// Any `FnMut(&mut dyn Control, Event)` is an application.
///
/// ```
/// use krmx_core::{Application, Control, Event};
///
/// /// Relays every message to every linked user, sender included.
/// struct Relay;
///
/// impl Application for Relay {
///     fn on_event(&mut self, server: &mut dyn Control, event: Event) {
///         if let Event::Message { message, .. } = event {
///             if let Err(error) = server.broadcast(message, None) {
///                 eprintln!("relay: {error}");
///             }
///         }
///     }
/// }
/// ```
pub trait Application {
    /// Handles one event. Commands given through `server` take effect at once: their own
    /// events come after this one.
    fn on_event(&mut self, server: &mut dyn Control, event: Event);
}

impl<F: FnMut(&mut dyn Control, Event)> Application for F {
    fn on_event(&mut self, server: &mut dyn Control, event: Event) {
        self(server, event);
    }
}

/// A bare [`Krmx`] core at a moment: [`Control`] for an event loop of your own (the time of
/// the inputs is `now`).
///
/// ```
/// use krmx_core::{At, Control, Input, Krmx, KrmxConfig};
/// use std::time::Instant;
///
/// let mut krmx = Krmx::new(KrmxConfig::default());
/// let now = Instant::now();
/// krmx.handle_input(now, Input::Listen { port: 8082 })?;
/// At::new(&mut krmx, now).join("simon")?;
/// assert_eq!(krmx.users().count(), 1);
/// # Ok::<(), krmx_core::Error>(())
/// ```
#[derive(Debug)]
pub struct At<'a> {
    krmx: &'a mut Krmx,
    now: Instant,
}

impl<'a> At<'a> {
    /// `krmx` commanded at `now`.
    pub fn new(krmx: &'a mut Krmx, now: Instant) -> Self {
        Self { krmx, now }
    }
}

impl Control for At<'_> {
    fn input(&mut self, input: Input) -> Result<(), Error> {
        self.krmx.handle_input(self.now, input)
    }

    fn krmx(&self) -> &Krmx {
        self.krmx
    }
}
