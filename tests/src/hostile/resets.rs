//! TCP resets (SO_LINGER 0) at every stage of a connection's life: in the HTTP upgrade, right
//! after it, in the middle of a link, during a pending authentication, in the middle of a
//! broadcast. None of them may disturb anybody else.

use super::{
    bulk, drain_events, eventually, open_fds, quiet, relay, relay_hook, reset, serial,
    start_upgrade, start_with_pair, upgraded, wait_event,
};
use crate::server::{Command, Setup};
use crate::{Client, RunningServer, ServerEvent, TIMEOUT, Transport, VERSION, frames, msg};
use krmx_core::{AuthDecision, AuthMode};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

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
    let fds = open_fds();
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
    eventually(
        TIMEOUT,
        "every reset connection's descriptor closed",
        || open_fds() <= fds,
    );
    pair.exchange(4);
    // A "ghost" may have linked before its reset was seen: then it is unlinked now.
    eventually(TIMEOUT, "ghost unlinked", || {
        others(&server).iter().all(|(_, linked)| !linked)
    });
    let _ = drain_events(&mut server);
}

/// 100 connections send a link and reset at once: each link is handled or not, but no user
/// stays linked to a dead connection, and each name can be linked again.
pub fn reset_mid_link_leaves_the_user_unlinked_or_absent(transport: Transport) {
    let _serial = serial();
    let (mut server, mut pair) = start_with_pair(transport, relay(quiet()));
    let addr = server.addr();
    pair.chatter_during(|| {
        for i in 0..100 {
            let mut stream = upgraded(addr);
            stream
                .write_all(&link_frame(&format!("victim{i}")))
                .expect("writing the link");
            if i % 2 == 0 {
                // Some after the answer has arrived (unread: the reset discards it).
                std::thread::sleep(Duration::from_millis(2));
            }
            reset(stream);
        }
    });
    eventually(TIMEOUT, "every victim unlinked", || {
        others(&server).iter().all(|(_, linked)| !linked)
    });
    let joined = others(&server).len();
    eprintln!("{joined} of 100 reset links were handled before their reset");
    pair.exchange(4);
    let _ = drain_events(&mut server);
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
    for i in 0..20 {
        let name = format!("victim{i}");
        let mut stream = upgraded(addr);
        stream.write_all(&link_frame(&name)).expect("writing");
        let id = match wait_event(&mut server, TIMEOUT, |event| {
            matches!(event, ServerEvent::Authenticate { .. })
        }) {
            ServerEvent::Authenticate { id, username, .. } if username == name => id,
            other => panic!("expected the authentication of {name}, got {other:?}"),
        };
        reset(stream);
        // The reset reaches the server within a few milliseconds; the decision comes later.
        std::thread::sleep(Duration::from_millis(50));
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
    // Decide whatever was asked (late, for connections that are gone): nothing may follow.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(100));
        for event in drain_events(&mut server) {
            match event {
                ServerEvent::Authenticate { id, .. } => {
                    server.decide_auth(id, AuthDecision::Accept);
                }
                ServerEvent::Message(..) => {}
                other => panic!("a forgotten link produced {other:?}"),
            }
        }
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
    for i in 0..3 {
        let name = format!("victim{i}");
        wait_event(&mut server, TIMEOUT, |event| {
            *event == ServerEvent::unlinked(&name)
        });
    }
    assert_eq!(
        others(&server),
        (0..3)
            .map(|i| (format!("victim{i}"), false))
            .collect::<Vec<_>>()
    );
    pair.exchange(4);
}
