//! The scaling-out recipe (`deploy/haproxy/krmx-rooms.cfg`, README "Scaling out"): HAProxy
//! hashes the room path over three `krmx serve --rooms` processes. Every room's clients meet in
//! one process, the rooms spread over all three, and when one process crashes only its rooms
//! move: their clients relink through the balancer and meet again on one other process, while
//! every other room goes on untouched.
//!
//! Needs `haproxy` (Debian's package; `.ci/run` installs it): the test fails without it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use krmx_tests::balancer::{Haproxy, recipe_config};
use krmx_tests::cli::CliServer;
use krmx_tests::msg::{custom, joined, linked};
use krmx_tests::{Client, Incoming, TIMEOUT};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ROOMS: usize = 100;
/// The users of every room, in the order they link.
const USERS: [&str; 4] = ["ann", "ben", "cat", "dan"];
/// Rooms each server must hold at least, for the rooms to count as spread.
const MIN_ROOMS_PER_SERVER: usize = 10;

/// One room's clients through the balancer, in the order of [`USERS`].
struct Room {
    id: String,
    clients: Vec<Client>,
}

impl Room {
    fn path(id: &str) -> String {
        format!("/rooms/{id}")
    }
}

/// Connects every user of room `id` through the balancer. A connection the balancer refuses
/// (`503` while every retry met the stopped server) is tried again until `deadline`.
fn connect_room(balancer: SocketAddr, id: &str, deadline: Instant) -> Room {
    let clients = USERS
        .iter()
        .map(|_| {
            loop {
                match Client::try_connect(balancer, &Room::path(id)) {
                    Ok(client) => break client,
                    Err(error) => {
                        assert!(
                            Instant::now() < deadline,
                            "connecting to {id} through the balancer: {error}"
                        );
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        })
        .collect();
    Room {
        id: id.to_owned(),
        clients,
    }
}

/// Links the users of every room, one seat at a time across all rooms: each user sees every
/// user before it (all linked) and itself, and the users before it see it join and link.
fn link_rooms(rooms: &mut [Room]) {
    for (seat, username) in USERS.iter().enumerate() {
        for room in rooms.iter_mut() {
            room.clients[seat].link(username);
        }
        let roster: Vec<(&str, bool)> = USERS[..=seat].iter().map(|user| (*user, true)).collect();
        for room in rooms.iter_mut() {
            room.clients[seat].expect_linked(&roster);
            for earlier in &mut room.clients[..seat] {
                earlier.expect_jsons(&[joined(username), linked(username)]);
            }
        }
    }
}

/// The stdout lines of a room whose users all linked for the first time, in [`USERS`] order.
fn first_links(room: &str) -> Vec<Value> {
    USERS
        .iter()
        .flat_map(|username| {
            [
                json!({"event": "authenticate", "username": username, "isNewUser": true, "room": room}),
                json!({"event": "join", "username": username, "room": room}),
                json!({"event": "link", "username": username, "room": room}),
            ]
        })
        .collect()
}

/// The entry of a room whose four users are linked, as `rooms` replies it.
fn whole_room(room: &str) -> Value {
    json!({"room": room, "users": USERS.len(), "linkedUsers": USERS.len(), "connections": USERS.len()})
}

/// What a server holds: its `rooms` reply by room, and the event lines it printed since the
/// last survey, by room. Asks again until every room of `fresh` that it lists has all its
/// [`first_links`] lines out (the lines and the clients' messages race).
fn survey(
    server: &mut CliServer,
    fresh: &BTreeSet<String>,
) -> (BTreeMap<String, Value>, BTreeMap<String, Vec<Value>>) {
    let mut events: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        server.send_line("rooms");
        let reply = loop {
            let line = server.next_json();
            if line.get("rooms").is_some() {
                break line;
            }
            let room = line["room"]
                .as_str()
                .unwrap_or_else(|| panic!("an event line without its room: {line}"));
            events.entry(room.to_owned()).or_default().push(line);
        };
        let rooms: BTreeMap<String, Value> = reply["rooms"]
            .as_array()
            .unwrap_or_else(|| panic!("not a rooms reply: {reply}"))
            .iter()
            .map(|room| (room["room"].as_str().unwrap().to_owned(), room.clone()))
            .collect();
        let settled = rooms
            .keys()
            .filter(|room| fresh.contains(*room))
            .all(|room| {
                events.get(room).map_or(0, Vec::len) >= first_links(room).len()
                    && rooms[room] == whole_room(room)
            });
        if settled {
            return (rooms, events);
        }
        assert!(
            Instant::now() < deadline,
            "the server's rooms do not settle within {TIMEOUT:?}: {reply}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends one message in every room (relayed) and expects it, and nothing before it, at every
/// client of the room: no close, no presence change came first.
fn say_in_every_room(rooms: &mut [Room], what: &str) {
    for room in rooms.iter_mut() {
        let say = custom("chat/say", json!(format!("{what} in {}", room.id)));
        room.clients[0].send_json(&say);
        for client in &mut room.clients {
            client.expect_json(&say);
        }
    }
}

#[test]
fn haproxy_hashes_rooms_over_three_servers_and_moves_only_a_crashed_servers_rooms() {
    let mut servers: Vec<CliServer> = (0..3)
        .map(|_| {
            CliServer::start(
                "mio",
                &["--rooms", "/rooms", "--health-path", "/health", "--relay"],
            )
        })
        .collect();
    let mut haproxy = Haproxy::start(&recipe_config([
        servers[0].addr(),
        servers[1].addr(),
        servers[2].addr(),
    ]));
    let balancer = haproxy.addr();

    // 100 rooms of 4 through the balancer.
    let started = Instant::now();
    let ids: Vec<String> = (0..ROOMS).map(|room| format!("room-{room:03}")).collect();
    let mut rooms: Vec<Room> = ids
        .iter()
        .map(|id| connect_room(balancer, id, Instant::now()))
        .collect();
    link_rooms(&mut rooms);
    let linked_all = started.elapsed();

    // Every room lives in exactly one server, with its four users; all servers hold rooms.
    let all: BTreeSet<String> = ids.iter().cloned().collect();
    let mut home: BTreeMap<String, usize> = BTreeMap::new();
    let mut held: Vec<BTreeMap<String, Value>> = Vec::new();
    for (index, server) in servers.iter_mut().enumerate() {
        let (listed, events) = survey(server, &all);
        assert_eq!(
            events.keys().collect::<Vec<_>>(),
            listed.keys().collect::<Vec<_>>(),
            "server {index} printed events for the rooms it lists"
        );
        for (room, entry) in &listed {
            assert_eq!(*entry, whole_room(room), "server {index}");
            assert_eq!(events[room], first_links(room), "server {index}, {room}");
            if let Some(other) = home.insert(room.clone(), index) {
                panic!("{room} is open on servers {other} and {index}");
            }
        }
        held.push(listed);
    }
    assert_eq!(
        home.keys().cloned().collect::<BTreeSet<_>>(),
        all,
        "every room is open on a server"
    );
    let counts: Vec<usize> = held.iter().map(BTreeMap::len).collect();
    assert!(
        counts.iter().all(|count| *count >= MIN_ROOMS_PER_SERVER),
        "the rooms spread over the three servers: {counts:?}"
    );

    // Server 1 crashes (SIGKILL: no close frames, no goodbyes). The clients of its rooms see
    // their connections end; nobody else hears anything (checked below).
    let crashed = 1;
    let moved: BTreeSet<String> = held[crashed].keys().cloned().collect();
    let killed = Instant::now();
    servers[crashed].signal("KILL");
    let _ = servers[crashed].wait_exit();
    let (mut moved_rooms, mut kept_rooms): (Vec<Room>, Vec<Room>) =
        rooms.into_iter().partition(|room| moved.contains(&room.id));
    for room in &mut moved_rooms {
        for client in &mut room.clients {
            match client.next_within(TIMEOUT) {
                Some(Incoming::Ended(_)) => {}
                other => panic!("{}: expected the connection to end, got {other:?}", room.id),
            }
        }
    }

    // They reconnect to the same URLs and relink: each room meets again, whole.
    let deadline = Instant::now() + TIMEOUT;
    let mut relinked_rooms: Vec<Room> = moved_rooms
        .iter()
        .map(|room| connect_room(balancer, &room.id, deadline))
        .collect();
    drop(moved_rooms);
    link_rooms(&mut relinked_rooms);
    let whole_again = killed.elapsed();

    // On the two servers left: each moved room is open on exactly one of them, new (its users
    // joined afresh); every other room is where it was, with the same users, and printed
    // nothing since.
    let mut landed: BTreeMap<String, usize> = BTreeMap::new();
    for (index, server) in servers.iter_mut().enumerate() {
        if index == crashed {
            continue;
        }
        let (listed, events) = survey(server, &moved);
        for (room, lines) in &events {
            assert!(
                moved.contains(room),
                "server {index} printed lines for {room}, which did not move: {lines:?}"
            );
            assert_eq!(*lines, first_links(room), "server {index}, {room}");
        }
        let kept: BTreeMap<String, Value> = listed
            .iter()
            .filter(|(room, _)| !moved.contains(*room))
            .map(|(room, entry)| (room.clone(), entry.clone()))
            .collect();
        assert_eq!(
            kept, held[index],
            "server {index} keeps its rooms as they were"
        );
        for (room, entry) in listed.iter().filter(|(room, _)| moved.contains(*room)) {
            assert_eq!(*entry, whole_room(room), "server {index}");
            assert!(events.contains_key(room), "{room} on server {index}");
            if let Some(other) = landed.insert(room.clone(), index) {
                panic!("{room} moved to servers {other} and {index}");
            }
        }
    }
    assert_eq!(
        landed.keys().cloned().collect::<BTreeSet<_>>(),
        moved,
        "every moved room is open again"
    );

    // Every room still talks, and nothing came before that one message anywhere.
    say_in_every_room(&mut kept_rooms, "untouched");
    say_in_every_room(&mut relinked_rooms, "moved");
    haproxy.assert_running();

    println!(
        "balancer: {} clients in {ROOMS} rooms linked through haproxy in {} ms; rooms per \
         server {counts:?}; server {crashed} killed: its {} rooms whole again on the others \
         {} ms after the kill (to {:?} rooms on servers 0 and 2)",
        ROOMS * USERS.len(),
        linked_all.as_millis(),
        moved.len(),
        whole_again.as_millis(),
        [0, 2].map(|index| landed.values().filter(|at| **at == index).count()),
    );
}
