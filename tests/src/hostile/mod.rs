//! Hostile input over real sockets: every scenario attacks a server on one transport and then
//! checks that it keeps serving, with a well-behaved linked pair ([`Pair`]) whose relayed chat
//! must arrive whole, exactly once and in order, before, during and after the attack.
//!
//! A transport's test file runs them all with [`hostile_tests!`](crate::hostile_tests):
//!
//! ```text
//! krmx_tests::hostile_tests!(krmx_tests::Transport::Mio);
//! ```
//!
//! The scenarios of one test binary run one at a time ([`serial`]): several of them read the
//! process's resident memory and open file descriptors (the server runs in the test process),
//! which a concurrent test would disturb, and a flood of thousands of connections is no
//! neighbour for timing-sensitive tests on a small machine.

pub mod floods;
pub mod frames;
pub mod garbage;
pub mod readers;
pub mod resets;

use crate::server::{Command, Setup, to_message};
use crate::{Client, Incoming, RunningServer, ServerEvent, TIMEOUT, Transport};
use krmx_core::KrmxConfig;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// One `#[test]` per hostile scenario, running it on the given transport.
#[macro_export]
macro_rules! hostile_tests {
    ($transport:expr) => {
        $crate::hostile_tests!(@each $transport;
            garbage::non_http_bytes_are_dropped_and_the_server_keeps_serving,
            garbage::handshake_that_never_finishes_is_dropped_at_the_timeout,
            garbage::oversized_http_request_is_dropped,
            floods::thousands_of_connections_that_never_link_are_closed_by_the_unlinked_timeout,
            floods::connections_beyond_the_unlinked_cap_are_refused_with_1013,
            floods::ping_flood_from_a_reading_client_is_answered_and_bounded,
            floods::ping_flood_from_a_client_that_never_reads_stays_bounded,
            frames::oversized_messages_close_with_1009_and_the_server_keeps_serving,
            frames::invalid_utf8_closes_with_1007_and_the_server_keeps_serving,
            frames::protocol_violations_in_frames_drop_only_their_connection,
            frames::a_close_from_the_client_is_answered_then_the_connection_ends,
            resets::reset_mid_handshake_and_right_after_the_upgrade,
            resets::reset_mid_link_leaves_the_user_unlinked_or_absent,
            resets::reset_during_a_pending_authentication_forgets_it,
            resets::reset_mid_broadcast_unlinks_only_that_user,
            readers::client_that_stops_reading_is_closed_while_readers_get_everything,
        );
    };
    (@each $transport:expr; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::hostile::$module::$name($transport);
            }
        )*
    };
}

/// Holds the lock that runs the hostile scenarios of one process one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The default configuration without liveness pings.
#[must_use]
pub fn quiet() -> KrmxConfig {
    crate::scenarios::quiet_config()
}

/// A server that relays every `chat` message to every linked user, sender included (as
/// `krmx serve --relay`), with `config`.
#[must_use]
pub fn relay(config: KrmxConfig) -> Setup {
    Setup::new(config).on_event(relay_hook())
}

/// The relay as a hook, for setups that need more.
pub fn relay_hook() -> impl FnMut(&ServerEvent) -> Vec<Command> + Send + 'static {
    |event| match event {
        ServerEvent::Message(_, message) if message["type"] == "chat" => {
            vec![Command::Broadcast(to_message(message), None)]
        }
        _ => Vec::new(),
    }
}

/// Waits for an event that `wanted` accepts, skipping the others; panics after `timeout`.
pub fn wait_event(
    server: &mut RunningServer,
    timeout: Duration,
    mut wanted: impl FnMut(&ServerEvent) -> bool,
) -> ServerEvent {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match server.next_event_within(left) {
            Some(event) if wanted(&event) => return event,
            Some(_) => {}
            None => panic!("the awaited event did not come within {timeout:?}"),
        }
    }
}

/// Takes every event already emitted; returns them.
pub fn drain_events(server: &mut RunningServer) -> Vec<ServerEvent> {
    std::iter::from_fn(|| server.next_event_within(Duration::ZERO)).collect()
}

/// Two well-behaved linked clients, `alice` and `bob`, on a relaying server ([`relay`]). Each
/// [`exchange`](Self::exchange) has both send numbered chat messages and read until each has
/// every message of both: per sender, every number exactly once and in order, across the whole
/// test. Presence messages about other users are skipped; anything about `alice` or `bob`
/// themselves, a close or the end of a connection fails the test.
#[derive(Debug)]
pub struct Pair {
    clients: Vec<Client>,
    /// Next number each sends.
    sent: [u64; 2],
    /// Per receiver, per sender: the next number expected.
    expected: [[u64; 2]; 2],
    /// Per receiver: the next server broadcast (`bulk`) number expected.
    bulk: [u64; 2],
    /// Messages relayed and checked so far.
    pub checked: u64,
}

/// The pair's names.
pub const PAIR: [&str; 2] = ["alice", "bob"];

impl Pair {
    /// Links `alice` and `bob` on a fresh server, checking every message each receives.
    #[must_use]
    pub fn link(server: &mut RunningServer) -> Self {
        let mut alice = Client::connect(server.addr());
        alice.link_as(PAIR[0], &[(PAIR[0], true)]);
        wait_event(server, TIMEOUT, |event| {
            *event == ServerEvent::linked(PAIR[0])
        });
        let mut bob = Client::connect(server.addr());
        bob.link_as(PAIR[1], &[(PAIR[0], true), (PAIR[1], true)]);
        wait_event(server, TIMEOUT, |event| {
            *event == ServerEvent::linked(PAIR[1])
        });
        alice.expect_jsons(&[crate::msg::joined(PAIR[1]), crate::msg::linked(PAIR[1])]);
        let clients = vec![alice, bob];
        Self {
            clients,
            sent: [0; 2],
            expected: [[0; 2]; 2],
            bulk: [0; 2],
            checked: 0,
        }
    }

    /// Both send `rounds` messages each, interleaved, then both read every message owed.
    pub fn exchange(&mut self, rounds: u64) {
        for _ in 0..rounds {
            for (i, client) in self.clients.iter_mut().enumerate() {
                let seq = self.sent[i];
                client.send_json(&chat(PAIR[i], seq));
                self.sent[i] += 1;
            }
        }
        self.receive_owed();
    }

    /// Reads until both have every server broadcast (`bulk`) numbered below `count`, besides
    /// every chat sent so far.
    pub fn expect_bulk(&mut self, count: u64) {
        self.receive(count);
    }

    /// Reads until both have every message sent so far.
    fn receive_owed(&mut self) {
        self.receive(0);
    }

    fn receive(&mut self, bulk: u64) {
        for (receiver, name) in PAIR.iter().enumerate() {
            let deadline = Instant::now() + TIMEOUT * 2;
            while self.expected[receiver] != self.sent || self.bulk[receiver] < bulk {
                let left = deadline.saturating_duration_since(Instant::now());
                let incoming = self.clients[receiver].next_within(left);
                let Some(Incoming::Json(value)) = incoming else {
                    panic!(
                        "{name} expected chat up to {:?}, had {:?}, got {incoming:?}",
                        self.sent, self.expected[receiver]
                    );
                };
                self.take(receiver, &value);
            }
        }
    }

    fn take(&mut self, receiver: usize, value: &Value) {
        let kind = value["type"].as_str().unwrap_or_default();
        if kind == "chat" {
            let from = value["payload"]["from"].as_str().unwrap_or_default();
            let sender = PAIR
                .iter()
                .position(|name| *name == from)
                .unwrap_or_else(|| panic!("chat from an unknown sender: {value}"));
            let seq = value["payload"]["seq"].as_u64().expect("a chat number");
            let expected = &mut self.expected[receiver][sender];
            assert_eq!(
                seq, *expected,
                "{} got chat {seq} of {from}, expected {expected} (lost, doubled or reordered)",
                PAIR[receiver]
            );
            *expected += 1;
            self.checked += 1;
        } else if kind == "bulk" {
            let seq = value["payload"]["seq"].as_u64().expect("a bulk number");
            assert_eq!(
                seq, self.bulk[receiver],
                "{} got broadcast {seq}, expected {} (lost, doubled or reordered)",
                PAIR[receiver], self.bulk[receiver]
            );
            self.bulk[receiver] += 1;
            self.checked += 1;
        } else if kind.starts_with("krmx/") {
            let about = value["payload"]["username"].as_str().unwrap_or_default();
            assert!(
                !PAIR.contains(&about),
                "{} got {value}: the pair must stay linked",
                PAIR[receiver]
            );
        } else {
            panic!("{} got an unexpected message {value}", PAIR[receiver]);
        }
    }

    /// Keeps exchanging on a thread of its own while `attack` runs on this one, then checks
    /// that everything sent arrived; returns what `attack` returned. The pair exchanged at
    /// least once during the attack.
    pub fn chatter_during<T>(&mut self, attack: impl FnOnce() -> T) -> T {
        let stop = Arc::new(AtomicBool::new(false));
        let mut pair = std::mem::replace(
            self,
            Self {
                clients: Vec::new(),
                sent: [0; 2],
                expected: [[0; 2]; 2],
                bulk: [0; 2],
                checked: 0,
            },
        );
        let stopping = Arc::clone(&stop);
        let chatter = std::thread::spawn(move || {
            let started = Instant::now();
            let mut exchanges = 0_u32;
            while exchanges == 0 || !stopping.load(Ordering::Relaxed) {
                pair.exchange(4);
                exchanges += 1;
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "the attack lasted too long"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            pair
        });
        let result = attack();
        stop.store(true, Ordering::Relaxed);
        *self = chatter.join().unwrap_or_else(|panic| {
            std::panic::resume_unwind(panic);
        });
        result
    }

    /// The pair's clients, alice first.
    pub fn clients(&mut self) -> &mut [Client] {
        &mut self.clients
    }
}

/// The server broadcast `seq`, carrying `fill`.
#[must_use]
pub fn bulk(seq: u64, fill: &str) -> Value {
    json!({"type": "bulk", "payload": {"seq": seq, "fill": fill}})
}

/// The relayed chat message `seq` of `from`.
#[must_use]
pub fn chat(from: &str, seq: u64) -> Value {
    json!({"type": "chat", "payload": {"from": from, "seq": seq}})
}

/// The resident memory of this process (the server runs in it), in KiB.
#[must_use]
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// How many file descriptors this process has open.
#[must_use]
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Waits until `condition` holds, checking every 10 ms; panics after `timeout` with `what`.
pub fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Drops a TCP connection with a reset (SO_LINGER 0): the peer sees ECONNRESET, not a FIN.
pub fn reset(stream: TcpStream) {
    rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO))
        .expect("setting SO_LINGER 0");
    drop(stream);
}

/// The HTTP upgrade request for `ws://addr/`.
#[must_use]
pub fn upgrade_request(addr: SocketAddr) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Opens a TCP connection and writes the upgrade request, without waiting for the answer.
#[must_use]
pub fn start_upgrade(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connecting");
    stream
        .write_all(upgrade_request(addr).as_bytes())
        .expect("writing the upgrade request");
    stream
}

/// Reads the answer to an upgrade request up to its blank line and asserts it is a `101`.
pub fn finish_upgrade(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "the upgrade answer ended early ({other:?}): {}",
                String::from_utf8_lossy(&head)
            ),
        }
        assert!(head.len() < 4096, "an endless upgrade answer");
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "not an upgrade: {}",
        String::from_utf8_lossy(&head)
    );
}

/// A raw WebSocket connection past its upgrade (the answer read).
#[must_use]
pub fn upgraded(addr: SocketAddr) -> TcpStream {
    let mut stream = start_upgrade(addr);
    finish_upgrade(&mut stream);
    stream
}

/// Reads until the peer ends the connection (EOF or reset) and returns what came; panics if it
/// is still open after `timeout`.
pub fn read_to_end_within(stream: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut all = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the server kept the connection open past {timeout:?}"
        );
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut chunk) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return all,
        }
    }
}

/// Starts `transport` as `setup` says (its hook should relay: see [`relay`]), links the pair
/// and has it exchange once.
#[must_use]
pub fn start_with_pair(transport: Transport, setup: Setup) -> (RunningServer, Pair) {
    let mut server = transport.start_with(setup);
    let mut pair = Pair::link(&mut server);
    pair.exchange(3);
    (server, pair)
}
