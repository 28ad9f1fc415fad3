//! The smol-specific API on loopback: the event stream, deferred authentication through
//! responders, handles from other threads, `run_with`, adoption and closing.

mod support;

use krmx_core::{AuthMode, Error, Event as CoreEvent, KrmxConfig, Message, Status};
use krmx_transport_smol::{CommandError, Event, Server, TransportConfig};
use serde_json::json;
use smol::Timer;
use std::time::Duration;
use support::{Client, Received, presence, start, within};

/// Clients in these tests do not answer the close: do not wait long for them.
fn quick_linger() -> TransportConfig {
    TransportConfig::default().close_linger(Duration::from_millis(200))
}

fn with_auth() -> KrmxConfig {
    KrmxConfig::default().auth(AuthMode::Application)
}

#[test]
fn event_stream_reports_join_link_message_unlink_and_leave() {
    smol::block_on(async {
        let mut server = start(KrmxConfig::default()).await;
        let mut client = server.client().await;
        client.link("simon", None).await;
        assert_eq!(client.kind().await, "krmx/accepted");
        assert!(
            matches!(server.next_event().await.event, CoreEvent::Joined { username } if username.as_str() == "simon")
        );
        assert!(
            matches!(server.next_event().await.event, CoreEvent::Linked { username, .. } if username.as_str() == "simon")
        );

        client
            .send_text(r#"{"type":"chat/say","payload":"hi","seq":1}"#)
            .await;
        match server.next_event().await.event {
            CoreEvent::Message { username, message } => {
                assert_eq!(username.as_str(), "simon");
                assert_eq!(message.kind(), "chat/say");
                assert_eq!(message.get("seq"), Some(&json!(1)));
            }
            other => panic!("{other:?}"),
        }

        client.send_text(r#"{"type":"krmx/leave"}"#).await;
        assert!(matches!(
            server.next_event().await.event,
            CoreEvent::Unlinked { .. }
        ));
        assert!(
            matches!(server.next_event().await.event, CoreEvent::Left { username } if username.as_str() == "simon")
        );
        assert!(server.handle.users().await.expect("users").is_empty());
    });
}

#[test]
fn responder_answered_later_from_another_task_links_the_user() {
    smol::block_on(async {
        let mut server = start(with_auth()).await;
        let mut client = server.client().await;
        client.link("simon", Some("token-1")).await;
        let Event {
            event:
                CoreEvent::AuthRequested {
                    username,
                    is_new_user,
                    auth,
                    ..
                },
            responder: Some(responder),
        } = server.next_event().await
        else {
            panic!("expected an authentication request");
        };
        assert_eq!(
            (username.as_str(), is_new_user, auth.as_deref()),
            ("simon", true, Some("token-1"))
        );
        smol::spawn(async move {
            Timer::after(Duration::from_millis(100)).await;
            responder.accept();
        })
        .detach();
        assert_eq!(client.kind().await, "krmx/accepted");
        assert_eq!(client.json().await, presence("krmx/joined", "simon"));
        assert_eq!(client.json().await, presence("krmx/linked", "simon"));
        assert!(matches!(
            server.next_event().await.event,
            CoreEvent::Joined { .. }
        ));
        assert!(matches!(
            server.next_event().await.event,
            CoreEvent::Linked { .. }
        ));
    });
}

#[test]
fn responder_rejection_reaches_the_client_with_its_reason() {
    smol::block_on(async {
        let mut server = start(with_auth()).await;
        let mut client = server.client().await;
        client.link("simon", Some("wrong")).await;
        let Event {
            event: CoreEvent::AuthRequested { .. },
            responder: Some(responder),
        } = server.next_event().await
        else {
            panic!("expected an authentication request");
        };
        std::thread::spawn(move || responder.reject("invalid token"));
        assert_eq!(
            client.json().await,
            json!({ "type": "krmx/rejected", "payload": { "reason": "invalid token" } })
        );
        assert!(server.handle.users().await.expect("users").is_empty());
    });
}

#[test]
fn dropped_responder_rejects_with_authentication_failed() {
    smol::block_on(async {
        let mut server = start(with_auth()).await;
        let mut client = server.client().await;
        client.link("simon", None).await;
        let event = server.next_event().await;
        assert!(matches!(
            event,
            Event {
                event: CoreEvent::AuthRequested { .. },
                responder: Some(_),
            }
        ));
        drop(event);
        assert_eq!(
            client.json().await,
            json!({ "type": "krmx/rejected", "payload": { "reason": "authentication failed" } })
        );
        // The connection stays open and may try again.
        client.link("simon", None).await;
        assert!(matches!(
            server.next_event().await,
            Event {
                event: CoreEvent::AuthRequested { .. },
                responder: Some(_),
            }
        ));
    });
}

#[test]
fn responder_answered_after_the_auth_timeout_is_ignored() {
    smol::block_on(async {
        let config = with_auth().auth_timeout(Duration::from_millis(50));
        let mut server = start(config).await;
        let mut client = server.client().await;
        client.link("simon", None).await;
        let Event {
            event: CoreEvent::AuthRequested { .. },
            responder: Some(responder),
        } = server.next_event().await
        else {
            panic!("expected an authentication request");
        };
        assert_eq!(
            client.json().await,
            json!({ "type": "krmx/rejected", "payload": { "reason": "authentication timeout" } })
        );
        responder.accept();
        assert_eq!(server.handle.status().await, Ok(Status::Listening));
        assert!(server.handle.users().await.expect("users").is_empty());
    });
}

#[test]
fn handle_commands_from_another_thread_get_the_core_results() {
    smol::block_on(async {
        let server = start(KrmxConfig::default()).await;
        let mut client = server.client().await;
        client.link("alice", None).await;
        assert_eq!(client.kind().await, "krmx/accepted");
        assert_eq!(client.kind().await, "krmx/joined");
        assert_eq!(client.kind().await, "krmx/linked");

        let handle = server.handle.clone();
        let results = std::thread::spawn(move || {
            smol::block_on(async {
                let joined = handle.join("bob").await;
                let again = handle.join("bob").await;
                let send = handle
                    .send("alice", Message::new("game/hello").with_payload(json!(1)))
                    .await;
                let not_linked = handle.send("bob", Message::new("game/hello")).await;
                let users = handle.users().await;
                (joined, again, send, not_linked, users)
            })
        })
        .join()
        .expect("the thread");
        let (joined, again, send, not_linked, users) = results;
        assert_eq!(joined, Ok(()));
        assert_eq!(again, Err(CommandError::Core(Error::JoinExistingUser)));
        assert_eq!(send, Ok(()));
        assert_eq!(
            not_linked.map_err(|e| e.to_string()),
            Err("cannot send a message to a user that is not linked to a connection".to_owned())
        );
        let users: Vec<_> = users
            .expect("users")
            .iter()
            .map(|u| (u.username.as_str().to_owned(), u.is_linked))
            .collect();
        assert_eq!(
            users,
            vec![("alice".to_owned(), true), ("bob".to_owned(), false)]
        );
        assert_eq!(client.json().await, presence("krmx/joined", "bob"));
        assert_eq!(
            client.json().await,
            json!({ "type": "game/hello", "payload": 1 })
        );
        // Broadcast with a skip.
        server
            .handle
            .broadcast(Message::new("game/all"), Some("alice"))
            .await
            .expect("broadcast");
        server
            .handle
            .broadcast(Message::new("game/all"), None)
            .await
            .expect("broadcast");
        assert_eq!(client.json().await, json!({ "type": "game/all" }));
    });
}

#[test]
fn handle_metrics_gives_the_figures_and_their_openmetrics_text() {
    smol::block_on(async {
        let server = start(KrmxConfig::default()).await;
        let mut client = server.client().await;
        client.link("alice", None).await;
        assert_eq!(client.kind().await, "krmx/accepted");
        assert_eq!(client.kind().await, "krmx/joined");
        assert_eq!(client.kind().await, "krmx/linked");
        let metrics = server.handle.metrics().await.expect("metrics");
        assert_eq!(metrics.connections_open, 1);
        assert_eq!((metrics.users, metrics.linked_users), (1, 1));
        assert_eq!(metrics.links_accepted, 1);
        assert_eq!(metrics.messages_received, 1);
        assert_eq!(metrics.messages_sent, 3);
        assert!(metrics.turns.count > 0, "the pump times its turns");
        let text = metrics.to_openmetrics().expect("the text");
        assert!(text.contains("\nkrmx_linked_users 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    });
}

#[test]
fn close_sends_left_and_a_close_frame_then_ends_the_stream_and_the_driver() {
    smol::block_on(async {
        let mut server = start(KrmxConfig::default()).await;
        let mut client = server.client().await;
        client.link("simon", None).await;
        for kind in ["krmx/accepted", "krmx/joined", "krmx/linked"] {
            assert_eq!(client.kind().await, kind);
        }
        server.handle.close().await.expect("close");
        // A handle of a closed server sees it closed, with the core's words. The driver runs
        // on: the client has not answered the close frame yet (1 s linger).
        assert_eq!(server.handle.status().await, Ok(Status::Closed));
        assert_eq!(
            server.handle.kick("simon").await.map_err(|e| e.to_string()),
            Err("cannot kick a user when the server is closed".to_owned())
        );
        assert_eq!(
            server.handle.close().await.map_err(|e| e.to_string()),
            Err("cannot close when the server is closed".to_owned())
        );
        assert_eq!(client.json().await, presence("krmx/unlinked", "simon"));
        assert_eq!(client.json().await, presence("krmx/left", "simon"));
        assert_eq!(
            client.close_frame().await,
            (1001, "server closing".to_owned())
        );
        let mut seen = Vec::new();
        while let Some(event) = within("the stream's end", server.events.next_event()).await {
            seen.push(format!("{:?}", event.event));
        }
        assert!(seen.last().is_some_and(|e| e == "Closed"), "{seen:?}");
        within("the driver", server.driver).await;

        // A handle of a finished server sees it gone.
        assert_eq!(server.handle.status().await, Err(CommandError::ServerGone));
        assert_eq!(server.handle.users().await, Err(CommandError::ServerGone));
        assert_eq!(
            server.handle.kick("simon").await,
            Err(CommandError::ServerGone)
        );
        assert_eq!(server.handle.close().await, Err(CommandError::ServerGone));
        // The listener is gone.
        assert!(smol::net::TcpStream::connect(server.addr).await.is_err());
    });
}

#[test]
fn run_with_reacts_inside_the_driver() {
    smol::block_on(async {
        let config = with_auth();
        let server = Server::bind("127.0.0.1:0", config, quick_linger())
            .await
            .expect("bind");
        let addr = server.local_addr().expect("a listener");
        let handle = server.handle();
        let driver = smol::spawn(server.run_with(|server, event| match event {
            CoreEvent::AuthRequested { id, username, .. } => {
                let decision = if username.as_str() == "mallory" {
                    krmx_core::AuthDecision::reject("banned")
                } else {
                    krmx_core::AuthDecision::Accept
                };
                server
                    .commands()
                    .decide_auth(id, decision)
                    .expect("a pending authentication");
            }
            CoreEvent::Message { username, message } => {
                let _ = server.commands().send(username.as_str(), message);
            }
            _ => {}
        }));

        let mut mallory = Client::connect(addr, "/").await;
        mallory.link("mallory", None).await;
        assert_eq!(
            mallory.json().await,
            json!({ "type": "krmx/rejected", "payload": { "reason": "banned" } })
        );
        let mut simon = Client::connect(addr, "/").await;
        simon.link("simon", None).await;
        for kind in ["krmx/accepted", "krmx/joined", "krmx/linked"] {
            assert_eq!(simon.kind().await, kind);
        }
        simon
            .send_text(r#"{"type":"echo/me","payload":[1,2]}"#)
            .await;
        assert_eq!(
            simon.json().await,
            json!({ "type": "echo/me", "payload": [1, 2] })
        );
        handle.close().await.expect("close");
        within("the driver", driver).await;
    });
}

#[test]
fn adopted_connections_replay_the_bytes_already_read() {
    smol::block_on(async {
        let mut server = Server::new(KrmxConfig::default(), quick_linger());
        let mut events = server.events();
        let handle = server.handle();
        let driver = smol::spawn(server.run());
        assert!(matches!(
            within("listen", events.next_event()).await,
            Some(Event {
                event: CoreEvent::Listening { port: 0 },
                responder: None,
            })
        ));

        // The application's own HTTP server reads the request head, sees an upgrade to
        // /krmx and hands the connection over.
        let listener =
            smol::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
        let addr = listener.get_ref().local_addr().expect("address");
        let app_handle = handle.clone();
        let app = smol::spawn(async move {
            use smol::io::AsyncReadExt;
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut head = vec![0; 16];
            let n = stream.read(&mut head).await.expect("read");
            head.truncate(n);
            assert!(head.starts_with(b"GET /krmx"));
            let stream = stream.into_inner().expect("the std stream");
            app_handle.adopt(stream, head).await.expect("adopt");
        });
        let mut client = Client::connect(addr, "/krmx").await;
        app.await;
        client.link("simon", None).await;
        assert_eq!(client.kind().await, "krmx/accepted");
        assert!(matches!(
            within("join", events.next_event()).await,
            Some(Event {
                event: CoreEvent::Joined { .. },
                responder: None,
            })
        ));
        handle.close().await.expect("close");
        within("the driver", driver).await;
        // The stream ends after the rest of the events.
        while within("the stream's end", events.next_event())
            .await
            .is_some()
        {}
    });
}

#[test]
fn turn_loop_can_race_the_server_against_other_futures() {
    smol::block_on(async {
        let mut server = Server::bind("127.0.0.1:0", KrmxConfig::default(), quick_linger())
            .await
            .expect("bind");
        let addr = server.local_addr().expect("a listener");
        assert!(matches!(
            server.poll_event(),
            Some(CoreEvent::Listening { .. })
        ));
        let mut client = smol::spawn(async move {
            let mut client = Client::connect(addr, "/").await;
            client.link("simon", None).await;
            for kind in ["krmx/accepted", "krmx/joined", "krmx/linked"] {
                assert_eq!(client.kind().await, kind);
            }
            client
        });
        let ticks = smol::channel::unbounded::<()>();
        let mut linked = false;
        let mut turns = 0;
        while !linked {
            turns += 1;
            assert!(turns < 10_000, "never linked");
            // A losing turn() is dropped and loses nothing.
            let _ = ticks.0.try_send(());
            within(
                "a turn",
                smol::future::or(server.turn(), async {
                    let _ = ticks.1.recv().await;
                }),
            )
            .await;
            while let Some(event) = server.poll_event() {
                linked |= matches!(event, CoreEvent::Linked { .. });
            }
        }
        // The connection tasks run while the server is driven: keep turning until the client
        // has read what the link sent it.
        let mut client = within("the client", async {
            loop {
                let done = smol::future::or(async { Some((&mut client).await) }, async {
                    server.turn().await;
                    None
                });
                if let Some(client) = done.await {
                    break client;
                }
            }
        })
        .await;
        server.commands().close().expect("close");
        loop {
            // Draining the events writes what the close queued.
            while server.poll_event().is_some() {}
            if server.is_finished() {
                break;
            }
            within("closing", server.turn()).await;
        }
        assert!(matches!(client.next().await, Received::Json(_)));
    });
}

#[test]
fn close_drops_connections_still_in_their_upgrade() {
    smol::block_on(async {
        let server = start(KrmxConfig::default()).await;
        // A connection that never finishes its upgrade (the handshake timeout is 5 s).
        let mut stalled = smol::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        smol::io::AsyncWriteExt::write_all(&mut stalled, b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        Timer::after(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        server.handle.close().await.expect("close");
        within("the driver", server.driver).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let mut rest = Vec::new();
        let read = smol::io::AsyncReadExt::read_to_end(&mut stalled, &mut rest).await;
        assert!(read.is_err() || rest.is_empty());
    });
}
