//! The repository's own randomized world: a relay application, chaotic clients, every timer.
//!
//! A deterministic simulation: many [`KrmxClient`](krmx_core::KrmxClient)s and one
//! [`Krmx`](krmx_core::Krmx) server in one process, a seeded scheduler, a virtual clock, and
//! no sockets.
//!
//! # The world
//!
//! - Each connection is a pair of FIFO queues (client to server, server to client). The
//!   scheduler delivers one item at a time on a random connection in a random direction, so
//!   deliveries are reordered across connections while each connection keeps its own order, as
//!   TCP does. A client's WebSocket library answers pings by itself (in some seeds one client's
//!   does not).
//! - Well-behaved clients (`c0`, `c1`, ...) connect, link their user (`user0`, `user1`, ...; in
//!   some seeds two clients share one user, so their links race), send custom messages
//!   (`sim/msg` with `{from: label, seq}`), and sometimes unlink, leave or disconnect; a rejected
//!   link is tried again later.
//!   Chaotic raw connections send random frames (some too large), link to anyone's name, send
//!   bursts of messages right behind a link, and may ignore pings. Relinkers link their own user
//!   as they connect, then unlink and link again back to back, sometimes with messages right
//!   behind the link (kept while it is pending).
//! - The server application relays every message to every linked user (as
//!   `krmx serve --relay`), and now and then broadcasts or sends its own messages, kicks,
//!   unlinks and joins users. With [`AuthMode::Application`](krmx_core::AuthMode) it decides
//!   each link at once, later (possibly after the timeout: a late decision), or never (the
//!   timeout rejects); in some seeds it refuses, at once, links of connections that were linked
//!   before.
//! - One seed in five turns every timer and limit on (pings, inactivity kicks, the unlinked
//!   timeout close to the auth timeout, the unlinked cap, small bounds on kept messages, pending
//!   authentications and message size), one in seven turns every timer off, the others pick
//!   each at random.
//! - The network drops connections at random moments, preferring links in flight and links
//!   waiting for their decision: the client end learns at once; the server at once, or after
//!   what was still on its way up; and sometimes between two outputs the server is draining
//!   (mid-broadcast).
//! - The clock advances by small steps or jumps to [`Krmx::poll_timeout`](krmx_core::Krmx) (or
//!   a decision the application scheduled), firing auth timeouts, ping rounds, inactivity
//!   kicks and unlinked timeouts.
//!
//! # What is checked
//!
//! After every server input, the [`ServerChecker`](crate::check::ServerChecker) invariants (links one to one, no
//! output to a closed or unknown connection, every linked connection's presence view equals
//! `users()`, events agree with `users()`), and the timers and limits judged against a reference
//! of their deadlines ([`Deadlines`](crate::deadlines::Deadlines), per connection, per user and per authentication,
//! as `PROTOCOL.md` and `KrmxConfig` define them): every close (code and reason), kick, rejection
//! and ping is justified when it happens, everything due by now has happened after every input,
//! and every connection's messages (those kept during a pending link included) are handled in
//! the order they arrived. When the network has settled, every client agrees
//! with the server (status, link, user list). After the server's close, every client is closed.
//!
//! And the delivery guarantee. A delivery of message M to connection C is **owed** when the
//! server application broadcast (or sent) M while C was linked to a well-behaved client's user
//! (and that user was not skipped). An owed delivery must happen exactly once, with M's exact
//! text, and for each sender in the order the sender sent, unless one of these excuses it:
//! - the network dropped C before M was delivered (the delivery did not complete);
//! - the client itself unlinked, left or disconnected before M arrived (a client passes custom
//!   messages on only while linked).
//!
//! And the other way: a message a well-behaved client sent while linked must reach the server
//! application exactly once, as a message of that client's user, unless the connection dropped
//! or was closed by the server before it arrived, or the application unlinked or kicked the user
//! first. A message nobody owed must never arrive.
//!
//! # Replaying
//!
//! The repository's test that runs the seeds (`cargo test -p krmx-tests --test simulation`)
//! reports a failing seed with a one-line replay command; there `KRMX_SIM_SEED=N` runs exactly
//! that seed and `KRMX_SIM_TRACE=1` prints its whole trace ([`run_seed_traced`]).

mod world;

pub use world::{Failure, Params, Stats, World};

/// The outcome of one seed: its stats and a digest of its whole trace (equal seeds, equal
/// digests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What happened.
    pub stats: Stats,
    /// FNV-1a of every trace line.
    pub digest: u64,
}

/// Runs one seed.
///
/// # Errors
/// The first broken invariant or delivery guarantee, with the parameters and the trace's tail.
pub fn run_seed(seed: u64) -> Result<Outcome, Failure> {
    World::new(seed, false)
        .run()
        .map(|(stats, digest)| Outcome { stats, digest })
}

/// Runs one seed keeping its whole trace, for replays.
///
/// # Errors
/// As [`run_seed`]; the trace is returned either way.
pub fn run_seed_traced(seed: u64) -> (Result<Outcome, Failure>, Vec<String>) {
    let (result, trace) = World::new(seed, true).run_traced();
    let outcome = result.map(|(stats, digest)| Outcome { stats, digest });
    (outcome, trace)
}
