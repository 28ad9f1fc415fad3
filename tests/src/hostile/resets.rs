//! TCP resets (SO_LINGER 0) at every stage of a connection's life: in the HTTP upgrade, right
//! after it, in the middle of a link, during a pending authentication, in the middle of a
//! broadcast. None of them may disturb anybody else.

use super::{
    assert_server_still_serves, bulk, eventually, open_fds, quiet, relay, relay_hook, reset,
    serial, server_sockets, start_upgrade, start_with_pair, upgraded, wait_event,
};
use crate::server::{Command, Setup};
use crate::{Client, RunningServer, ServerEvent, TIMEOUT, Transport, VERSION, frames, msg};
use krmx_core::{AuthDecision, AuthMode};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Waits until the server holds no more sockets than `sockets` (its listener and the
/// connections it had before): it has seen every reset since, and forgotten their connections
/// (both transports drop a connection's socket as they hand its end to the core, and commands
/// come after that).
fn wait_sockets_released(server: &RunningServer, sockets: usize) {
    let port = server.addr().port();
    eventually(TIMEOUT, "the server released the reset connections", || {
        server_sockets(port) <= sockets
    });
}

/// The bytes of a link request frame for `name`.
fn link_frame(name: &str) -> Vec<u8> {
    frames::text(msg::link(name, VERSION, None).to_string().as_bytes())
}

/// Every user but the pair, with whether it is linked.
fn others(server: &RunningServer) -> Vec<(String, bool)> {
    server
        .users()
        .into_iter()
        .filter(|(name, _)| !super::PAIR.contains(&name.as_str()))
        .collect()
}

/// 400 connections reset in their upgrade (part of a request sent; the whole request sent and
/// the answer not read; the upgrade done; the upgrade done and a message sent): no event, every
/// descriptor released, the pair chats on.
pub fn reset_mid_handshake_and_right_after_the_upgrade(transport: Transport) {
    let _serial = serial();
    let (mut server, mut pair) = start_with_pair(transport, relay(quiet()));
    let addr = server.addr();
    let (fds, sockets) = (open_fds(), server_sockets(addr.port()));
    pair.chatter_during(|| {
        for round in 0..100 {
            let mut partial = TcpStream::connect(addr).expect("connecting");
            partial
                .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpg")
                .expect("writing");
            reset(partial);
            reset(start_upgrade(addr));
            reset(upgraded(addr));
            let mut talking = upgraded(addr);
            let message = if round % 2 == 0 {
                link_frame("ghost")
            } else {
                frames::text(br#"{"type":"chat"}"#)
            };
            talking.write_all(&message).expect("writing");
            reset(talking);
        }
    });
    wait_sockets_released(&server, sockets);
    eventually(
        TIMEOUT,
        "every reset connection's descriptor closed",
        || open_fds() <= fds,
    );
    pair.exchange(4);
    // A "ghost" may have linked before its reset was seen: then it is unlinked now.
    assert!(
        others(&server).iter().all(|(_, linked)| !linked),
        "a reset connection is still linked: {:?}",
        others(&server)
    );
    for event in pair.events_until_marker(&mut server) {
        match event {
            ServerEvent::Message(name, _) => {
                assert!(
                    super::PAIR.contains(&name.as_str()),
                    "{name} sent a message"
                );
            }
            ServerEvent::Joined(name) | ServerEvent::Linked(name) | ServerEvent::Unlinked(name)
                if name == "ghost" => {}
            other => panic!("a reset connection produced {other:?}"),
        }
    }
    assert_server_still_serves(&mut server, &mut pair);
}

/// 100 connections send a link and reset at once: each link is handled or not, but no user
/// stays linked to a dead connection, and each name can be linked again.
pub fn reset_mid_link_leaves_the_user_unlinked_or_absent(transport: Transport) {
    let _serial = serial();
    let (mut server, mut pair) = start_with_pair(transport, relay(quiet()));
    let addr = server.addr();
    let sockets = server_sockets(addr.port());
    pair.chatter_during(|| {
        for i in 0..100 {
            let name = format!("victim{i}");
            let mut stream = upgraded(addr);
            stream
                .write_all(&link_frame(&name))
                .expect("writing the link");
            if i % 2 == 0 {
                // Half of them once the link is done (its answer unread: the reset discards
                // it), the others at once.
                wait_event(&mut server, TIMEOUT, |event| {
                    *event == ServerEvent::linked(&name)
                });
            }
            reset(stream);
        }
    });
    wait_sockets_released(&server, sockets);
    assert!(
        others(&server).iter().all(|(_, linked)| !linked),
        "a victim is still linked: {:?}",
        others(&server)
    );
    let joined = others(&server).len();
    eprintln!("{joined} of 100 reset links were handled before their reset");
    assert!(joined >= 50, "only {joined} links were handled");
    pair.exchange(4);
    for event in pair.events_until_marker(&mut server) {
        match event {
            ServerEvent::Message(name, _) => {
                assert!(
                    super::PAIR.contains(&name.as_str()),
                    "{name} sent a message"
                );
            }
            ServerEvent::Joined(name) | ServerEvent::Linked(name) | ServerEvent::Unlinked(name)
                if name.starts_with("victim") => {}
            other => panic!("a reset link produced {other:?}"),
        }
    }
    for i in [0, 1, 98, 99] {
        let name = format!("victim{i}");
        let mut client = Client::connect(addr);
        client.link(&name);
        assert_eq!(client.next_json(), msg::accepted(), "{name}");
        wait_event(&mut server, TIMEOUT, |event| {
            *event == ServerEvent::linked(&name)
        });
    }
    pair.exchange(2);
    assert_server_still_serves(&mut server, &mut pair);
}

/// With application authentication: a connection that resets while its link waits for the
/// decision is forgotten; the late decision does nothing (no join, no link), and the name can
/// be linked by someone else. Also with the reset arriving before the link was read.
pub fn reset_during_a_pending_authentication_forgets_it(transport: Transport) {
    let _serial = serial();
    let config = quiet()
        .auth(AuthMode::Application)
        .auth_timeout(Duration::from_secs(30));
    let mut relaying = relay_hook();
    let setup = Setup::new(config).on_event(move |event| match event {
        ServerEvent::Authenticate { id, username, .. }
            if super::PAIR.contains(&username.as_str()) || username.starts_with("late") =>
        {
            vec![Command::DecideAuth(*id, AuthDecision::Accept)]
        }
        other => relaying(other),
    });
    let (mut server, mut pair) = start_with_pair(transport, setup);
    let addr = server.addr();
    let sockets = server_sockets(addr.port());
    for i in 0..20 {
        let name = format!("victim{i}");
        let mut stream = upgraded(addr);
        stream.write_all(&link_frame(&name)).expect("writing");
        let asked = wait_event(&mut server, TIMEOUT, |event| match event {
            ServerEvent::Authenticate { .. } => true,
            ServerEvent::Message(..) => false,
            other => panic!("a forgotten link produced {other:?}"),
        });
        let id = match asked {
            ServerEvent::Authenticate { id, username, .. } if username == name => id,
            other => panic!("expected the authentication of {name}, got {other:?}"),
        };
        reset(stream);
        // The decision comes once the server has seen the reset.
        wait_sockets_released(&server, sockets);
        server.decide_auth(id, AuthDecision::Accept);
        pair.exchange(1);
    }
    // Resets that may come before the server reads the link.
    for i in 0..20 {
        let mut stream = upgraded(addr);
        stream
            .write_all(&link_frame(&format!("early{i}")))
            .expect("writing");
        reset(stream);
    }
    wait_sockets_released(&server, sockets);
    // Decide whatever was asked (late, for connections that are gone): nothing may follow.
    let mut asked = 0;
    for event in pair.events_until_marker(&mut server) {
        match event {
            ServerEvent::Authenticate { id, username, .. } if username.starts_with("early") => {
                server.decide_auth(id, AuthDecision::Accept);
                asked += 1;
            }
            ServerEvent::Message(..) => {}
            other => panic!("a forgotten link produced {other:?}"),
        }
    }
    eprintln!("{asked} of 20 links reset at once were read before their reset");
    for event in pair.events_until_marker(&mut server) {
        assert!(
            matches!(event, ServerEvent::Message(..)),
            "a late decision produced {event:?}"
        );
    }
    assert_eq!(others(&server), []);
    pair.exchange(4);
    // The names are free: linking as one (through the auto-accepting `late` rule) works.
    let mut client = Client::connect(addr);
    client.link("late0");
    assert_eq!(client.next_json(), msg::accepted());
    wait_event(&mut server, TIMEOUT, |event| {
        *event == ServerEvent::linked("late0")
    });
    pair.exchange(2);
    assert_server_still_serves(&mut server, &mut pair);
}

/// Three linked clients that do not read are reset while the server broadcasts 400 messages
/// of 8 KiB (one after 100, one after 200, one at the end): each is unlinked, and the pair
/// receives every broadcast in order, and its chat, throughout.
pub fn reset_mid_broadcast_unlinks_only_that_user(transport: Transport) {
    let _serial = serial();
    const COUNT: u64 = 400;
    let (mut server, mut pair) = start_with_pair(transport, relay(quiet()));
    let addr = server.addr();
    let mut victims: Vec<TcpStream> = (0..3)
        .map(|i| {
            let name = format!("victim{i}");
            let mut stream = upgraded(addr);
            stream.write_all(&link_frame(&name)).expect("writing");
            wait_event(&mut server, TIMEOUT, |event| {
                *event == ServerEvent::linked(&name)
            });
            stream
        })
        .collect();
    let fill = "r".repeat(8 << 10);
    pair.chatter_during(|| {
        for seq in 0..COUNT {
            server.broadcast(&bulk(seq, &fill), None);
            if seq == 100 || seq == 200 {
                reset(victims.remove(0));
            }
        }
        reset(victims.remove(0));
    });
    pair.expect_bulk(COUNT);
    // Each is unlinked, in whatever order the server noticed the resets.
    let mut victims: Vec<ServerEvent> = (0..3)
        .map(|i| ServerEvent::unlinked(&format!("victim{i}")))
        .collect();
    let deadline = Instant::now() + TIMEOUT;
    while !victims.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(event) = server.next_event_within(left) else {
            // For the diagnosis: a command wakes the server; does the event come then?
            let users = server.users();
            let nudged = server.next_event_within(Duration::from_millis(200));
            panic!(
                "{victims:?} did not come within {TIMEOUT:?}; the users: {users:?}; the \
                 server's sockets: {}; the next event once a command woke the server: \
                 {nudged:?}",
                server_sockets(addr.port())
            );
        };
        if matches!(event, ServerEvent::Message(..)) {
            continue;
        }
        let at = victims
            .iter()
            .position(|victim| *victim == event)
            .unwrap_or_else(|| panic!("expected one of {victims:?}, got {event:?}"));
        victims.remove(at);
    }
    assert_eq!(
        others(&server),
        (0..3)
            .map(|i| (format!("victim{i}"), false))
            .collect::<Vec<_>>()
    );
    pair.exchange(4);
    assert_server_still_serves(&mut server, &mut pair);
}
