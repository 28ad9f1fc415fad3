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
use std::ops::Range;
use std::time::{Duration, Instant};

const ROOMS: usize = 100;
/// The users of every room in the order they link: the first [`PER_ROOM`] from the start, and
/// a newcomer at the end.
const USERS: [&str; 5] = ["ann", "ben", "cat", "dan", "eve"];
const PER_ROOM: usize = 4;
const NEWCOMER: usize = PER_ROOM;
/// Rooms each server must hold at least, for the rooms to count as spread.
const MIN_ROOMS_PER_SERVER: usize = 10;

/// One room's clients through the balancer, in the order of [`USERS`].
struct Room {
    id: String,
    clients: Vec<Client>,
}

/// Connects the first [`PER_ROOM`] users of room `id` through the balancer.
fn connect_room(balancer: SocketAddr, id: &str, deadline: Instant) -> Room {
    let clients = (0..PER_ROOM)
        .map(|_| connect(balancer, id, deadline))
        .collect();
    Room {
        id: id.to_owned(),
        clients,
    }
}

/// Connects to `/rooms/<id>` through the balancer. A connection the balancer refuses (`503`
/// while every retry met a stopped server) is tried again until `deadline`.
fn connect(balancer: SocketAddr, id: &str, deadline: Instant) -> Client {
    loop {
        match Client::try_connect(balancer, &format!("/rooms/{id}")) {
            Ok(client) => return client,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "connecting to {id} through the balancer: {error}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Links the users of `seats` in every room (their clients connected), one seat at a time
/// across all rooms: each user sees every user before it (all linked) and itself, and the
/// users before it see it join and link.
fn link_rooms(rooms: &mut [Room], seats: Range<usize>) {
    for seat in seats {
        let username = USERS[seat];
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

/// The stdout lines of the users of `seats` linking to `room` for the first time, in order.
fn first_links(room: &str, seats: Range<usize>) -> Vec<Value> {
    USERS[seats]
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

/// The entry of a room with `users` users, all linked, as `rooms` replies it.
fn whole_room(room: &str, users: usize) -> Value {
    json!({"room": room, "users": users, "linkedUsers": users, "connections": users})
}

/// What a server holds: its `rooms` reply by room, and the event lines it printed since the
/// last survey, by room. Asks again until every room it lists that `expected` names printed
/// that many lines (the lines and the clients' messages race).
fn survey(
    server: &mut CliServer,
    expected: &BTreeMap<String, usize>,
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
        let settled = rooms.keys().all(|room| {
            expected
                .get(room)
                .is_none_or(|lines| events.get(room).map_or(0, Vec::len) >= *lines)
        });
        if settled {
            return (rooms, events);
        }
        assert!(
            Instant::now() < deadline,
            "the server's lines do not settle within {TIMEOUT:?}: {reply}"
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
                // --quiet: no message lines, so every line left is presence.
                &[
                    "--rooms",
                    "/rooms",
                    "--health-path",
                    "/health",
                    "--relay",
                    "--quiet",
                ],
            )
        })
        .collect();
    let haproxy = Haproxy::start(&recipe_config([
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
    link_rooms(&mut rooms, 0..PER_ROOM);
    let linked_all = started.elapsed();

    // Every room lives in exactly one server, with its four users; all servers hold rooms.
    let all_linked: BTreeMap<String, usize> = ids
        .iter()
        .map(|id| (id.clone(), first_links(id, 0..PER_ROOM).len()))
        .collect();
    let mut home: BTreeMap<String, usize> = BTreeMap::new();
    let mut held: Vec<BTreeMap<String, Value>> = Vec::new();
    for (index, server) in servers.iter_mut().enumerate() {
        let (listed, events) = survey(server, &all_linked);
        assert_eq!(
            events.keys().collect::<Vec<_>>(),
            listed.keys().collect::<Vec<_>>(),
            "server {index} printed lines for the rooms it lists, and for no other"
        );
        for (room, entry) in &listed {
            assert_eq!(*entry, whole_room(room, PER_ROOM), "server {index}");
            assert_eq!(
                events[room],
                first_links(room, 0..PER_ROOM),
                "server {index}, {room}"
            );
            if let Some(other) = home.insert(room.clone(), index) {
                panic!("{room} is open on servers {other} and {index}");
            }
        }
        held.push(listed);
    }
    assert_eq!(home.len(), ROOMS, "every room is open on a server");
    let counts: Vec<usize> = held.iter().map(BTreeMap::len).collect();
    assert!(
        counts.iter().all(|count| *count >= MIN_ROOMS_PER_SERVER),
        "the rooms spread over the three servers: {counts:?}"
    );

    // Server 1 (`krmx2` in the recipe) crashes: SIGKILL, so no close frames and no goodbyes.
    // The clients of its rooms see their connections end.
    let crashed = 1;
    let moved: BTreeSet<String> = held[crashed].keys().cloned().collect();
    let killed = Instant::now();
    servers[crashed].signal("KILL");
    let _ = servers[crashed].wait_exit();
    let (moved_rooms, mut kept_rooms): (Vec<Room>, Vec<Room>) =
        rooms.into_iter().partition(|room| moved.contains(&room.id));
    for mut room in moved_rooms {
        for client in &mut room.clients {
            match client.next_within(TIMEOUT) {
                Some(Incoming::Ended(_)) => {}
                other => panic!("{}: expected the connection to end, got {other:?}", room.id),
            }
        }
    }

    // They reconnect to the same URLs at once (the health checks may not have noticed yet:
    // the balancer retries elsewhere) and relink: each room meets again, whole.
    let deadline = Instant::now() + TIMEOUT;
    let mut relinked_rooms: Vec<Room> = moved
        .iter()
        .map(|id| connect_room(balancer, id, deadline))
        .collect();
    link_rooms(&mut relinked_rooms, 0..PER_ROOM);
    let whole_again = killed.elapsed();

    // On the two servers left: each moved room is open on exactly one of them, new (its users
    // joined afresh); every other room is where it was, with the same users, and printed
    // nothing since.
    let moved_linked: BTreeMap<String, usize> = moved
        .iter()
        .map(|id| (id.clone(), first_links(id, 0..PER_ROOM).len()))
        .collect();
    let mut landed: BTreeMap<String, usize> = BTreeMap::new();
    for (index, server) in servers.iter_mut().enumerate() {
        if index == crashed {
            continue;
        }
        let (listed, events) = survey(server, &moved_linked);
        for (room, lines) in &events {
            assert!(
                moved.contains(room),
                "server {index} printed lines for {room}, which did not move: {lines:?}"
            );
            assert_eq!(
                *lines,
                first_links(room, 0..PER_ROOM),
                "server {index}, {room}"
            );
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
            assert_eq!(*entry, whole_room(room, PER_ROOM), "server {index}");
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

    // Every room still talks, and nothing came before that one message anywhere: no close and
    // no presence change in the rooms that did not move.
    say_in_every_room(&mut kept_rooms, "untouched");
    say_in_every_room(&mut relinked_rooms, "moved");

    // Once the health checks took the crashed server out, every route holds: a newcomer to any
    // room meets its four users, on the server the room is on (the one it always was on, for
    // the rooms that did not move). A hash that is not consistent would send most newcomers
    // elsewhere now that one server is out.
    haproxy.wait_for_stderr("Server krmx_rooms/krmx2 is DOWN");
    let marked_down = killed.elapsed();
    let mut every_room: Vec<Room> = kept_rooms.into_iter().chain(relinked_rooms).collect();
    for room in &mut every_room {
        room.clients
            .push(connect(balancer, &room.id, Instant::now()));
    }
    link_rooms(&mut every_room, NEWCOMER..NEWCOMER + 1);
    let newcomer_lines: BTreeMap<String, usize> = ids
        .iter()
        .map(|id| (id.clone(), first_links(id, NEWCOMER..NEWCOMER + 1).len()))
        .collect();
    for (index, server) in servers.iter_mut().enumerate() {
        if index == crashed {
            continue;
        }
        let (listed, events) = survey(server, &newcomer_lines);
        let expected: BTreeSet<&String> = home
            .iter()
            .chain(&landed)
            .filter(|(_, at)| **at == index)
            .map(|(room, _)| room)
            .collect();
        assert_eq!(
            listed.keys().collect::<BTreeSet<_>>(),
            expected,
            "server {index} holds the same rooms"
        );
        for (room, entry) in &listed {
            assert_eq!(*entry, whole_room(room, PER_ROOM + 1), "server {index}");
            assert_eq!(
                events.get(room),
                Some(&first_links(room, NEWCOMER..NEWCOMER + 1)),
                "server {index}, {room}"
            );
        }
    }
    say_in_every_room(&mut every_room, "all five");

    println!(
        "balancer: {} clients in {ROOMS} rooms linked through haproxy in {} ms; rooms per \
         server {counts:?}; server {crashed} killed: its {} rooms whole again on the others \
         {} ms after the kill ({:?} to servers 0 and 2); haproxy's DOWN line read {} ms after the kill",
        ROOMS * PER_ROOM,
        linked_all.as_millis(),
        moved.len(),
        whole_again.as_millis(),
        [0, 2].map(|index| landed.values().filter(|at| **at == index).count()),
        marked_down.as_millis(),
    );
}
