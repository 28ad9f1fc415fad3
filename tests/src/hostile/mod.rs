//! Hostile input over real sockets: every scenario attacks a server on one transport and then
//! checks that it keeps serving, with a well-behaved linked pair ([`Pair`]) whose relayed chat
//! must arrive whole, exactly once and in order, before, during and after the attack, and with
//! a fresh client that connects, links and chats once the attack is over
//! ([`assert_server_still_serves`]): the pair alone would not notice a server that no longer
//! accepts or links anybody new.
//!
//! No sleep stands in for "the server has done it": a scenario waits for what shows it (an
//! event, the server's sockets released, a pong or a chat relayed after the fact:
//! [`Pair::events_until_marker`]). Resource checks measure the server (its own sockets,
//! [`server_sockets`]) and fail when they cannot measure.
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

pub mod backlogs;
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
            backlogs::steady_reader_slower_than_a_burst_is_not_closed,
            backlogs::client_that_stops_reading_is_closed_by_the_write_stall,
            backlogs::thousand_non_readers_in_a_broadcast_storm_stay_within_the_budget,
            backlogs::busy_reader_survives_several_ping_rounds,
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
    /// Users besides the pair whose chat the pair may receive ([`assert_server_still_serves`]).
    guests: Vec<String>,
    /// Per receiver: every presence message and chat about a guest, in order of arrival.
    about_guests: [Vec<Value>; 2],
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
        Self {
            clients: vec![alice, bob],
            ..Self::empty()
        }
    }

    /// A pair without clients (a placeholder while the pair chatters on a thread of its own).
    fn empty() -> Self {
        Self {
            clients: Vec::new(),
            sent: [0; 2],
            expected: [[0; 2]; 2],
            bulk: [0; 2],
            checked: 0,
            guests: Vec::new(),
            about_guests: [Vec::new(), Vec::new()],
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
        for receiver in 0..PAIR.len() {
            self.receive_until(receiver, |pair| {
                pair.expected[receiver] == pair.sent && pair.bulk[receiver] >= bulk
            });
        }
    }

    /// Has `receiver` read and check messages until `done` holds; panics when anything but a
    /// message comes, or nothing for twice [`TIMEOUT`].
    fn receive_until(&mut self, receiver: usize, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + TIMEOUT * 2;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            let incoming = self.clients[receiver].next_within(left);
            let Some(Incoming::Json(value)) = incoming else {
                panic!(
                    "{} expected chat up to {:?}, had {:?}, got {incoming:?}",
                    PAIR[receiver], self.sent, self.expected[receiver]
                );
            };
            self.take(receiver, &value);
        }
    }

    fn take(&mut self, receiver: usize, value: &Value) {
        let kind = value["type"].as_str().unwrap_or_default();
        let is_guest = |name: &str| self.guests.iter().any(|guest| guest == name);
        if kind == "chat" {
            let from = value["payload"]["from"].as_str().unwrap_or_default();
            let Some(sender) = PAIR.iter().position(|name| *name == from) else {
                assert!(is_guest(from), "chat from an unknown sender: {value}");
                self.about_guests[receiver].push(value.clone());
                return;
            };
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
            if is_guest(about) {
                self.about_guests[receiver].push(value.clone());
            }
        } else {
            panic!("{} got an unexpected message {value}", PAIR[receiver]);
        }
    }

    /// Keeps exchanging on a thread of its own while `attack` runs on this one, then checks
    /// that everything sent arrived; returns what `attack` returned. The pair exchanged at
    /// least once during the attack.
    pub fn chatter_during<T>(&mut self, attack: impl FnOnce() -> T) -> T {
        let stop = Arc::new(AtomicBool::new(false));
        let mut pair = std::mem::replace(self, Self::empty());
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

    /// A marker in the server's events: the pair exchanges once more, and every event the
    /// server emitted until it relayed that exchange is returned (the marker's own two
    /// `message` events left out). The server emits its events in the order it does things,
    /// so whatever it did before it read the marker (a decision carried out, a connection
    /// dropped, a request refused) is in the list: no sleep needs to guess how long that takes.
    pub fn events_until_marker(&mut self, server: &mut RunningServer) -> Vec<ServerEvent> {
        let mut markers: Vec<ServerEvent> = PAIR
            .iter()
            .zip(self.sent)
            .map(|(name, seq)| ServerEvent::message(name, chat(name, seq)))
            .collect();
        self.exchange(1);
        let mut before = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        while !markers.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = server.next_event_within(left).unwrap_or_else(|| {
                panic!("the server did not emit {markers:?} within {TIMEOUT:?}, only {before:?}")
            });
            match markers.iter().position(|marker| *marker == event) {
                Some(at) => {
                    markers.remove(at);
                }
                None => before.push(event),
            }
        }
        before
    }
}

/// The name of the fresh user [`assert_server_still_serves`] links.
pub const NEWCOMER: &str = "newcomer";

/// Every hostile scenario ends here: the attack may have broken what the pair, linked before
/// it, does not use any more (accepting, upgrading, linking). A fresh client connects and links
/// as [`NEWCOMER`], getting the accepted sequence for every user the server has (alice and bob
/// linked among them); alice and bob see it join and link; its chat is relayed to all three;
/// and it gets the pair's next chat.
pub fn assert_server_still_serves(server: &mut RunningServer, pair: &mut Pair) {
    let users = server.users();
    assert!(
        PAIR.iter()
            .all(|name| users.contains(&((*name).to_owned(), true))),
        "the pair is no longer linked: {users:?}"
    );
    assert!(
        users.iter().all(|(name, _)| name != NEWCOMER),
        "{NEWCOMER} exists already: {users:?}"
    );
    let mut roster: Vec<(&str, bool)> = users
        .iter()
        .map(|(name, linked)| (name.as_str(), *linked))
        .collect();
    roster.push((NEWCOMER, true));
    pair.guests.push(NEWCOMER.to_owned());

    let mut newcomer = Client::connect(server.addr());
    newcomer.link(NEWCOMER);
    // With application authentication the scenario's hook may leave the decision to us.
    loop {
        let event = wait_event(server, TIMEOUT, |event| match event {
            ServerEvent::Authenticate { username, .. } | ServerEvent::Linked(username) => {
                username == NEWCOMER
            }
            _ => false,
        });
        match event {
            ServerEvent::Authenticate { id, .. } => {
                server.decide_auth(id, krmx_core::AuthDecision::Accept);
            }
            _ => break,
        }
    }
    newcomer.expect_linked(&roster);

    let said = chat(NEWCOMER, 0);
    newcomer.send_json(&said);
    newcomer.expect_json(&said);
    let seen = [
        crate::msg::joined(NEWCOMER),
        crate::msg::linked(NEWCOMER),
        said.clone(),
    ];
    for (receiver, name) in PAIR.iter().enumerate() {
        pair.receive_until(receiver, |pair| pair.about_guests[receiver].contains(&said));
        assert_eq!(
            pair.about_guests[receiver], seen,
            "what {name} saw of {NEWCOMER}"
        );
    }

    // And the newcomer gets what the pair says.
    let mut owed: Vec<Value> = PAIR
        .iter()
        .zip(pair.sent)
        .map(|(name, seq)| chat(name, seq))
        .collect();
    pair.exchange(1);
    while !owed.is_empty() {
        let got = newcomer.next_json();
        let at = owed
            .iter()
            .position(|value| *value == got)
            .unwrap_or_else(|| panic!("{NEWCOMER} expected {owed:?}, got {got}"));
        owed.remove(at);
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

/// The resident memory of this process (the server runs in it), in KiB. Panics when it cannot
/// be measured: a memory bound checked against nothing would always hold.
#[must_use]
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_else(|error| panic!("cannot measure the memory: /proc/self/status: {error}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("cannot measure the memory: no VmRSS in /proc/self/status"))
}

/// What the process's resident memory may grow by beyond the bounded buffers a scenario
/// accounts for: the pair's chatter thread (its stack and its malloc arena), the attacking
/// clients' own buffers, and allocator slack (freed blocks not reused at once). Measured on the
/// memory scenarios, debug builds, both transports, before these bounds were tightened: the
/// growth was at most about 1 MiB all told (280 broadcasts of 16 KiB to a client that stops
/// reading, 256 KiB of which the server legitimately buffers), about 0.5 MiB for a flood of
/// 200 000 pings, 50 KiB for 20 000 pings answered. Twice the worst, so that a loaded machine
/// does not flake; a bound disabled costs tens of MiB and cannot hide under it.
pub const ALLOCATOR_NOISE_KIB: u64 = 2 << 10;

/// The memory growth a scenario allows, in KiB: four times `bounded` bytes (what the server
/// may keep by design: a connection's bounded outbox, plus what reading and writing around it
/// hold in flight) plus [`ALLOCATOR_NOISE_KIB`].
#[must_use]
pub fn rss_tolerance_kib(bounded: usize) -> u64 {
    4 * (bounded as u64).div_ceil(1024) + ALLOCATOR_NOISE_KIB
}

/// How many file descriptors this process has open (the server's and the test's own). Panics
/// when they cannot be counted.
#[must_use]
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap_or_else(|error| panic!("cannot count the descriptors: /proc/self/fd: {error}"))
        .count()
}

/// How many TCP sockets this process holds whose local port is `port`: the server's own (its
/// listener and every connection it accepted), not the test's clients, whose local ports are
/// ephemeral. Sockets are matched by inode between `/proc/self/fd` and `/proc/net/tcp{,6}`.
/// Panics when they cannot be counted.
#[must_use]
pub fn server_sockets(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(text) => text,
            // No IPv6 in this kernel: then there are no IPv6 sockets either.
            Err(error) if table.ends_with('6') && error.kind() == std::io::ErrorKind::NotFound => {
                continue;
            }
            Err(error) => panic!("cannot count the server's sockets: {table}: {error}"),
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|local| local.rsplit_once(':'))
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            let inode = fields.get(9).and_then(|inode| inode.parse::<u64>().ok());
            match (local_port, inode) {
                (Some(local), Some(inode)) if local == port && inode != 0 => {
                    inodes.insert(inode);
                }
                (Some(_), Some(_)) => {}
                _ => panic!("cannot count the server's sockets: {table} has a line {line:?}"),
            }
        }
    }
    let fds = std::fs::read_dir("/proc/self/fd").unwrap_or_else(|error| {
        panic!("cannot count the server's sockets: /proc/self/fd: {error}")
    });
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?;
            target.parse::<u64>().ok()
        })
        .filter(|inode| inodes.contains(inode))
        .count()
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
