//! In-memory streams and a virtual clock for driving a [`Driver`] by hand.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code,
    unreachable_pub
)]

use krmx_core::{Event, KrmxConfig};
use krmx_driver::{ConnKey, Driver, Io, Readiness, Stream, TransportConfig};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// One end of an in-memory connection, as the driver sees it.
#[derive(Default)]
pub struct Pipe {
    /// Bytes the client sent, not yet read by the driver.
    pub inbound: VecDeque<u8>,
    /// Bytes the driver wrote.
    pub outbound: Vec<u8>,
    /// The client closed its side: reads end.
    pub eof: bool,
    /// The connection was reset: every read and write fails.
    pub reset: bool,
    /// Bytes the kernel would still take; `None` for no limit.
    pub room: Option<usize>,
    pub shut: bool,
}

#[derive(Clone, Default)]
pub struct Fake(pub Rc<RefCell<Pipe>>);

impl Read for Fake {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut pipe = self.0.borrow_mut();
        if pipe.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if pipe.inbound.is_empty() {
            return if pipe.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(pipe.inbound.len());
        for (slot, byte) in buf.iter_mut().zip(pipe.inbound.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl Write for Fake {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pipe = self.0.borrow_mut();
        if pipe.reset {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = pipe.room.map_or(buf.len(), |room| room.min(buf.len()));
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if let Some(room) = &mut pipe.room {
            *room -= n;
        }
        pipe.outbound.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Fake {
    fn shutdown_write(&mut self) {
        self.0.borrow_mut().shut = true;
    }
}

impl Fake {
    pub fn send(&self, bytes: &[u8]) {
        self.0.borrow_mut().inbound.extend(bytes);
    }

    /// A masked text frame from the client.
    pub fn send_text(&self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        let mask = [1, 2, 3, 4];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.send(&frame);
    }

    /// Every text message the driver wrote after the upgrade response, taken.
    pub fn texts(&self) -> Vec<String> {
        let mut pipe = self.0.borrow_mut();
        let bytes = std::mem::take(&mut pipe.outbound);
        let mut at = match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) if bytes.starts_with(b"HTTP/1.1") => end + 4,
            _ => 0,
        };
        let mut texts = Vec::new();
        while at + 2 <= bytes.len() {
            let opcode = bytes[at] & 0x0f;
            let (len, header) = match bytes[at + 1] & 0x7f {
                126 => (
                    usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]])),
                    4,
                ),
                127 => panic!("no test sends that much"),
                n => (usize::from(n), 2),
            };
            let payload = &bytes[at + header..at + header + len];
            if opcode == 1 {
                texts.push(String::from_utf8(payload.to_vec()).unwrap());
            } else {
                texts.push(format!("<opcode {opcode}: {payload:?}>"));
            }
            at += header + len;
        }
        texts
    }
}

pub const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: krmx\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

pub struct World {
    pub driver: Driver<Fake>,
    pub now: Instant,
}

impl World {
    pub fn new(readiness: Readiness) -> Self {
        Self::with(KrmxConfig::default(), TransportConfig::default(), readiness)
    }

    pub fn with(config: KrmxConfig, transport: TransportConfig, readiness: Readiness) -> Self {
        let now = Instant::now();
        let mut world = Self {
            driver: Driver::new(now, 8082, config, transport, readiness),
            now,
        };
        assert_eq!(world.events(), [Event::Listening { port: 8082 }]);
        world
    }

    /// A world whose connections must finish their upgrade within `timeout`.
    pub fn with_handshake_timeout(timeout: Duration) -> Self {
        Self::with(
            KrmxConfig::default(),
            TransportConfig::default().handshake_timeout(timeout),
            Readiness::Edge,
        )
    }

    /// Every event up to `None`: the pump's drain.
    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.driver.poll_event()).collect()
    }

    pub fn io(&mut self) -> Vec<Io> {
        std::iter::from_fn(|| self.driver.poll_io()).collect()
    }

    /// A connection whose upgrade went through.
    pub fn connect(&mut self) -> (ConnKey, Fake) {
        let fake = Fake::default();
        fake.send(UPGRADE);
        let key = self.driver.accept(self.now, fake.clone()).unwrap();
        self.driver.readable(self.now, key);
        assert!(
            fake.0.borrow().outbound.starts_with(b"HTTP/1.1 101"),
            "the upgrade is answered at once"
        );
        (key, fake)
    }

    /// A connection linked as `username`, its link messages taken.
    pub fn link(&mut self, username: &str) -> (ConnKey, Fake) {
        let (key, fake) = self.connect();
        fake.send_text(&format!(
            r#"{{"type":"krmx/link","payload":{{"username":"{username}","version":"0.6.0"}}}}"#
        ));
        self.driver.readable(self.now, key);
        let events = self.events();
        assert!(
            events.iter().any(|event| matches!(event, Event::Linked { username: name, .. } if name.as_str() == username)),
            "{events:?}"
        );
        fake.texts();
        (key, fake)
    }
}
