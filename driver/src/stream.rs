//! [`Stream`]: what the driver needs of a connection's socket.

use std::io::{Read, Write};

/// A non-blocking byte stream the [`Driver`](crate::Driver) reads and writes: reads and writes
/// return [`WouldBlock`](std::io::ErrorKind::WouldBlock) instead of waiting, and the runtime
/// pump reports readiness.
pub trait Stream: Read + Write {
    /// Shuts the stream down for writing (a TCP FIN), after the last byte was written. Errors
    /// are ignored: the peer may be gone already.
    fn shutdown_write(&mut self);
}
