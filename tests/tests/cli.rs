//! The `krmx serve` contract (CLI.md), driven through stdin and stdout as a script would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use krmx_tests::cli::{CliServer, run_to_exit};
use krmx_tests::msg::{accepted, joined, left, linked, rejected, unlinked};
use krmx_tests::{Client, TIMEOUT};
use serde_json::{Value, json};
use std::time::Duration;

fn event(name: &str, username: &str) -> Value {
    json!({"event": name, "username": username})
}

fn ok(command: &str) -> Value {
    json!({ "ok": command })
}

fn error(message: &str) -> Value {
    json!({ "error": message })
}

/// Links `username` (no auth) on a new connection; expects the roster on the client and the
/// authenticate, join (when new) and link lines on stdout.
fn link(server: &mut CliServer, username: &str, roster: &[(&str, bool)], is_new: bool) -> Client {
    let mut client = Client::connect(server.addr());
    client.link(username);
    client.expect_linked(roster);
    server.expect(&json!({"event": "authenticate", "username": username, "isNewUser": is_new}));
    if is_new {
        server.expect(&event("join", username));
    }
    server.expect(&event("link", username));
    client
}

fn status_and_users_reply_with_one_line_each(transport: &str) {
    let mut server = CliServer::start(transport, &[]);
    server.command("status", &json!({"status": "listening"}));
    server.command("users", &json!({"users": []}));
    let _alice = link(&mut server, "alice", &[("alice", true)], true);
    server.command("join", &error("usage: join NAME"));
    server.command("join bob", &event("join", "bob"));
    server.expect(&ok("join"));
    server.command(
        "users",
        &json!({"users": [
            {"username": "alice", "isLinked": true},
            {"username": "bob", "isLinked": false}
        ]}),
    );
    // A blank line is not a command: no reply, so the next line answers `status`.
    server.send_line("   ");
    server.command("status", &json!({"status": "listening"}));
}

fn links_print_authenticate_join_link_and_messages_print_whole(transport: &str) {
    let mut server = CliServer::start(transport, &[]);
    let mut alice = Client::connect(server.addr());
    alice.link_with("alice", "0.6.2", Some("tok"));
    alice.expect_linked(&[("alice", true)]);
    server.expect_lines(&[
        json!({"event": "authenticate", "username": "alice", "isNewUser": true, "auth": "tok"}),
        event("join", "alice"),
        event("link", "alice"),
    ]);
    let message = json!({"type": "chat/say", "payload": {"text": "hi"}, "extra": [1, null]});
    alice.send_json(&message);
    server.expect(&json!({"event": "message", "username": "alice", "message": message}));
    // Relinking an existing user: not new, no join line.
    alice.send_json(&json!({"type": "krmx/unlink"}));
    alice.expect_json(&unlinked("alice"));
    server.expect(&event("unlink", "alice"));
    alice.link("alice");
    alice.expect_linked(&[("alice", true)]);
    server.expect_lines(&[
        json!({"event": "authenticate", "username": "alice", "isNewUser": false}),
        event("link", "alice"),
    ]);
    alice.send_json(&json!({"type": "krmx/leave"}));
    alice.expect_jsons(&[unlinked("alice"), left("alice")]);
    server.expect_lines(&[event("unlink", "alice"), event("leave", "alice")]);
}

fn join_kick_and_unlink_commands_print_their_events_then_ok(transport: &str) {
    let mut server = CliServer::start(transport, &[]);
    let mut alice = link(&mut server, "alice", &[("alice", true)], true);

    server.command("join dave", &event("join", "dave"));
    server.expect(&ok("join"));
    alice.expect_json(&joined("dave"));

    server.command("unlink alice", &event("unlink", "alice"));
    server.expect(&ok("unlink"));
    alice.expect_json(&unlinked("alice"));
    alice.link("alice");
    alice.expect_linked(&[("alice", true), ("dave", false)]);
    server.expect_lines(&[
        json!({"event": "authenticate", "username": "alice", "isNewUser": false}),
        event("link", "alice"),
    ]);

    server.command("kick dave", &event("leave", "dave"));
    server.expect(&ok("kick"));
    alice.expect_json(&left("dave"));

    server.command("kick alice", &event("unlink", "alice"));
    server.expect_lines(&[event("leave", "alice"), ok("kick")]);
    alice.expect_jsons(&[unlinked("alice"), left("alice")]);

    for (line, message) in [
        ("kick zed", "cannot kick a user that does not exist"),
        ("join 1bad", "cannot join a user with an invalid username"),
        (
            "unlink zed",
            "cannot unlink a connection from a user that does not exist",
        ),
    ] {
        server.command(line, &error(message));
    }
    server.command("join dave", &event("join", "dave"));
    server.expect(&ok("join"));
    server.command("join dave", &error("cannot join a user that already exist"));
    server.command(
        "unlink dave",
        &error("cannot unlink a connection from a user that is not linked"),
    );
    server.command("status", &json!({"status": "listening"}));
}

fn send_broadcast_and_broadcast_except_reach_the_right_users(transport: &str) {
    let mut server = CliServer::start(transport, &[]);
    let mut alice = link(&mut server, "alice", &[("alice", true)], true);
    let mut bob = link(&mut server, "bob", &[("alice", true), ("bob", true)], true);
    alice.expect_jsons(&[joined("bob"), linked("bob")]);

    server.command(
        r#"send bob {"type":"app/one","payload":{"n":1}}"#,
        &ok("send"),
    );
    bob.expect_json(&json!({"type": "app/one", "payload": {"n": 1}}));

    server.command(r#"broadcast {"type":"app/all","x":true}"#, &ok("broadcast"));
    alice.expect_json(&json!({"type": "app/all", "x": true}));
    bob.expect_json(&json!({"type": "app/all", "x": true}));

    server.command(
        r#"broadcast-except alice {"type":"app/most"}"#,
        &ok("broadcast-except"),
    );
    bob.expect_json(&json!({"type": "app/most"}));
    alice.expect_nothing_for(Duration::from_millis(50));

    server.command(
        r#"send zed {"type":"a"}"#,
        &error("cannot send a message to a user that does not exist"),
    );
    server.command("join dave", &event("join", "dave"));
    server.expect(&ok("join"));
    server.command(
        r#"send dave {"type":"a"}"#,
        &error("cannot send a message to a user that is not linked to a connection"),
    );
    alice.expect_json(&joined("dave"));
    bob.expect_json(&joined("dave"));
    bob.expect_nothing_for(Duration::from_millis(30));
}

fn unknown_commands_and_unparsable_json_get_an_error_and_the_server_keeps_running(transport: &str) {
    let mut server = CliServer::start(transport, &[]);
    server.command("dance", &error("unknown command 'dance'"));
    for line in [
        "broadcast {",
        r#"broadcast {"type":"a""#,
        "send alice not-json",
        "broadcast-except alice {]",
    ] {
        server.send_line(line);
        let reply = server.next_json();
        let message = reply["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{line}: {reply}"));
        assert!(message.starts_with("invalid JSON"), "{line}: {reply}");
    }
    for line in ["broadcast [1]", r#"broadcast {"type":1}"#, "broadcast {}"] {
        server.send_line(line);
        let reply = server.next_json();
        assert!(reply["error"].is_string(), "{line}: {reply}");
    }
    server.command("status", &json!({"status": "listening"}));
    server.assert_running();
}

fn manual_auth_waits_for_accept_or_reject_by_id(transport: &str) {
    let mut server = CliServer::start(transport, &["--manual-auth"]);
    let mut alice = Client::connect(server.addr());
    alice.link_with("alice", "0.6.0", Some("secret"));
    let request = server.next_json();
    let id = request["id"].as_u64().expect("an id");
    assert_eq!(
        request,
        json!({"event": "authenticate", "id": id, "username": "alice", "isNewUser": true, "auth": "secret"})
    );
    alice.expect_nothing_for(Duration::from_millis(100));
    server.command(&format!("accept {id}"), &event("join", "alice"));
    server.expect_lines(&[event("link", "alice"), ok("accept")]);
    alice.expect_linked(&[("alice", true)]);

    let mut mallory = Client::connect(server.addr());
    mallory.link("mallory");
    let request = server.next_json();
    let other = request["id"].as_u64().expect("an id");
    assert_ne!(other, id);
    assert_eq!(
        request,
        json!({"event": "authenticate", "id": other, "username": "mallory", "isNewUser": true})
    );
    server.command(
        &format!("reject {other} not  today, mallory"),
        &ok("reject"),
    );
    mallory.expect_json(&rejected("not  today, mallory"));

    server.command(
        &format!("accept {other}"),
        &error(&format!("no pending authentication with id {other}")),
    );
    server.command(
        "reject 999 no",
        &error("no pending authentication with id 999"),
    );
    server.send_line("accept x");
    assert!(server.next_json()["error"].is_string());
    server.command(
        "users",
        &json!({"users": [{"username": "alice", "isLinked": true}]}),
    );
}

fn manual_auth_times_out_after_auth_timeout_ms(transport: &str) {
    let mut server = CliServer::start(transport, &["--manual-auth", "--auth-timeout-ms", "100"]);
    let mut client = Client::connect(server.addr());
    client.link("alice");
    let id = server.next_json()["id"].as_u64().expect("an id");
    client.expect_json(&rejected("authentication timeout"));
    server.command(
        &format!("accept {id}"),
        &error(&format!("no pending authentication with id {id}")),
    );
}

fn reject_option_rejects_those_users_at_once(transport: &str) {
    let mut server = CliServer::start(
        transport,
        &["--reject", "mallory=banned for life", "--reject", "eve"],
    );
    let mut client = Client::connect(server.addr());
    client.link("mallory");
    client.expect_json(&rejected("banned for life"));
    server.expect(&json!({"event": "authenticate", "username": "mallory", "isNewUser": true}));
    client.link("eve");
    client.expect_json(&rejected("rejected"));
    server.expect(&json!({"event": "authenticate", "username": "eve", "isNewUser": true}));
    client.link("alice");
    client.expect_linked(&[("alice", true)]);
    server.expect_lines(&[
        json!({"event": "authenticate", "username": "alice", "isNewUser": true}),
        event("join", "alice"),
        event("link", "alice"),
    ]);
}

fn relay_sends_every_message_to_every_linked_user_including_the_sender(transport: &str) {
    let mut server = CliServer::start(transport, &["--relay"]);
    let mut alice = link(&mut server, "alice", &[("alice", true)], true);
    let mut bob = link(&mut server, "bob", &[("alice", true), ("bob", true)], true);
    alice.expect_jsons(&[joined("bob"), linked("bob")]);
    let mut stranger = Client::connect(server.addr());

    let message = json!({"type": "chat/say", "payload": "hi", "extra": {"k": [1, 2]}, "seq": 0});
    alice.send_json(&message);
    alice.expect_json(&message);
    bob.expect_json(&message);
    server.expect(&json!({"event": "message", "username": "alice", "message": message}));

    // Each sender's messages arrive in the order sent.
    for seq in 1..=20 {
        bob.send_json(&json!({"type": "n", "payload": seq}));
    }
    for seq in 1..=20 {
        let expected = json!({"type": "n", "payload": seq});
        alice.expect_json(&expected);
        bob.expect_json(&expected);
        server.expect(&json!({"event": "message", "username": "bob", "message": expected}));
    }
    stranger.expect_nothing_for(Duration::from_millis(50));
}

fn echo_sends_every_message_back_to_its_sender_only(transport: &str) {
    let mut server = CliServer::start(transport, &["--echo"]);
    let mut alice = link(&mut server, "alice", &[("alice", true)], true);
    let mut bob = link(&mut server, "bob", &[("alice", true), ("bob", true)], true);
    alice.expect_jsons(&[joined("bob"), linked("bob")]);
    let message = json!({"type": "chat/say", "payload": [1, 2], "extra": "kept"});
    alice.send_json(&message);
    alice.expect_json(&message);
    server.expect(&json!({"event": "message", "username": "alice", "message": message}));
    bob.expect_nothing_for(Duration::from_millis(50));
}

fn relay_with_echo_refuses_to_start(transport: &str) {
    let (status, stderr) = run_to_exit(&[
        "serve",
        "--port",
        "0",
        "--transport",
        transport,
        "--relay",
        "--echo",
    ]);
    assert!(!status.success(), "krmx started with --relay --echo");
    assert!(!stderr.is_empty());
}

fn quiet_prints_no_message_events(transport: &str) {
    let mut server = CliServer::start(transport, &["--quiet", "--echo"]);
    let mut alice = link(&mut server, "alice", &[("alice", true)], true);
    alice.send_json(&json!({"type": "chat/say"}));
    alice.expect_json(&json!({"type": "chat/say"}));
    // The message was handled: were its event printed, it would come before this reply.
    server.command("status", &json!({"status": "listening"}));
    alice.send_json(&json!({"type": "krmx/unlink"}));
    alice.expect_json(&unlinked("alice"));
    server.expect(&event("unlink", "alice"));
}

fn no_new_users_admits_only_users_joined_by_command(transport: &str) {
    let mut server = CliServer::start(transport, &["--no-new-users"]);
    let mut client = Client::connect(server.addr());
    client.link("alice");
    client.expect_json(&rejected("server is not accepting new users"));
    server.command("join alice", &event("join", "alice"));
    server.expect(&ok("join"));
    client.link("alice");
    client.expect_linked(&[("alice", true)]);
    server.expect_lines(&[
        json!({"event": "authenticate", "username": "alice", "isNewUser": false}),
        event("link", "alice"),
    ]);
}

fn path_and_query_options_guard_the_endpoint(transport: &str) {
    let mut server = CliServer::start(
        transport,
        &[
            "--path", "game", "--query", "room", "--query", "!debug", "--query", "v=2",
        ],
    );
    match Client::try_connect(server.addr(), "/lobby?room=1&v=2") {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        Err(other) => panic!("expected HTTP 404, got {other}"),
        Ok(_) => panic!("the wrong path was accepted"),
    }
    for path in ["/game", "/game?room=1&v=2&debug", "/game?room=1&v=3"] {
        let mut client = Client::connect_path(server.addr(), path);
        client.expect_close(1008);
    }
    let mut client = Client::connect_path(server.addr(), "/game?room=1&v=2");
    client.link("alice");
    client.expect_linked(&[("alice", true)]);
    server.expect_lines(&[
        json!({"event": "authenticate", "username": "alice", "isNewUser": true}),
        event("join", "alice"),
        event("link", "alice"),
    ]);
}

/// Sends an upgrade request with `origin` (none when `None`) and returns the whole response
/// head and whatever body came before the server closed or 2 s passed.
fn upgrade_with_origin(addr: std::net::SocketAddr, origin: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let origin = origin.map_or_else(String::new, |o| format!("Origin: {o}\r\n"));
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let mut buf = [0_u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.starts_with(b"HTTP/1.1 101")
                    && response.windows(4).any(|w| w == b"\r\n\r\n")
                {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

fn allow_origin_refuses_other_browser_pages_with_403(transport: &str) {
    let mut server = CliServer::start(
        transport,
        &[
            "--allow-origin",
            "https://game.example.com",
            "--allow-origin",
            "https://*.example.org",
        ],
    );
    for refused in [
        "https://evil.example.net",
        "http://game.example.com",
        "https://example.org",
        "null",
    ] {
        let response = upgrade_with_origin(server.addr(), Some(refused));
        assert!(
            response.starts_with("HTTP/1.1 403"),
            "{refused}: {response}"
        );
        assert!(
            response.ends_with("403 forbidden: this origin may not connect\n"),
            "{response}"
        );
        assert!(
            !response.contains("krmx/"),
            "no Krmx message before the refusal"
        );
    }
    for allowed in [
        Some("https://game.example.com"),
        Some("https://eu.example.org"),
        None,
    ] {
        let response = upgrade_with_origin(server.addr(), allowed);
        assert!(
            response.starts_with("HTTP/1.1 101"),
            "{allowed:?}: {response}"
        );
    }
    // Refusals printed nothing, and the server still links users.
    link(&mut server, "alice", &[("alice", true)], true);
}

/// A plain HTTP request; the whole response (the server closes after it).
fn http_request(addr: std::net::SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn health(addr: std::net::SocketAddr) -> Value {
    let response = http_request(addr, "GET /health HTTP/1.1\r\nHost: krmx\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("Content-Type: application/json\r\n"),
        "{response}"
    );
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

/// The users the `users` command reports: (all, linked).
fn users_of(server: &mut CliServer) -> (usize, usize) {
    server.send_line("users");
    loop {
        let line = server.next_json();
        if let Some(users) = line["users"].as_array() {
            let linked = users.iter().filter(|user| user["isLinked"] == true).count();
            return (users.len(), linked);
        }
    }
}

fn health_path_answers_with_the_figures_of_users_while_1000_clients_are_linked(transport: &str) {
    let mut server = CliServer::start(transport, &["--health-path", "/health", "--quiet"]);
    let fresh = health(server.addr());
    assert_eq!(fresh["status"], "listening");
    assert_eq!(fresh["users"], 0);
    assert_eq!(fresh["protocolVersion"], "0.6");
    let mut clients = Vec::new();
    for i in 0..1000 {
        let mut client = Client::connect(server.addr());
        client.link(&format!("user{i:04}"));
        client.expect_json(&krmx_tests::msg::accepted());
        clients.push(client);
        if i % 250 == 0 {
            // Answered while links go on.
            assert_eq!(health(server.addr())["status"], "listening");
        }
    }
    let deadline = std::time::Instant::now() + TIMEOUT;
    while health(server.addr())["linkedUsers"] != 1000 {
        assert!(std::time::Instant::now() < deadline, "not all linked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (users, linked) = users_of(&mut server);
    let figures = health(server.addr());
    assert_eq!((users, linked), (1000, 1000));
    assert_eq!(figures["users"], users);
    assert_eq!(figures["linkedUsers"], linked);
    assert_eq!(figures["connections"], 1000);
    assert!(figures["uptimeSeconds"].as_f64().unwrap() > 0.0);
    // One drops: still a user, no longer linked.
    clients.pop().unwrap().drop_connection();
    while health(server.addr())["linkedUsers"] != 999 {
        assert!(
            std::time::Instant::now() < deadline,
            "the unlink is not seen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (users, linked) = users_of(&mut server);
    let figures = health(server.addr());
    assert_eq!(
        (figures["users"].as_u64(), figures["linkedUsers"].as_u64()),
        (Some(users as u64), Some(linked as u64))
    );
    assert_eq!((users, linked), (1000, 999));
    assert_eq!(figures["connections"], 999);
}

/// `--static-dir` serves a page and its script from the WebSocket port (same origin), with
/// their content types; missing files get 404, other methods 405; an upgrade on `/` still
/// links to Krmx.
fn static_dir_serves_a_page_beside_the_krmx_endpoint(transport: &str) {
    let dir = std::env::temp_dir().join(format!(
        "krmx-static-cli-{}-{transport}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("js")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><p>lobby</p>").unwrap();
    std::fs::write(dir.join("js/app.js"), "console.log('hi');").unwrap();
    let dir_arg = dir.to_str().unwrap().to_owned();
    let mut server = CliServer::start(transport, &["--static-dir", &dir_arg]);
    let page = http_request(server.addr(), "GET / HTTP/1.1\r\nHost: krmx\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(
        page.contains("Content-Type: text/html; charset=utf-8\r\n"),
        "{page}"
    );
    assert!(
        page.ends_with("\r\n\r\n<!doctype html><p>lobby</p>"),
        "{page}"
    );
    let script = http_request(
        server.addr(),
        "GET /js/app.js?v=1 HTTP/1.1\r\nHost: krmx\r\n\r\n",
    );
    assert!(
        script.contains("Content-Type: text/javascript; charset=utf-8\r\n"),
        "{script}"
    );
    assert!(script.ends_with("console.log('hi');"), "{script}");
    let head = http_request(
        server.addr(),
        "HEAD /index.html HTTP/1.1\r\nHost: krmx\r\n\r\n",
    );
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(head.contains("Content-Length: 27\r\n"), "{head}");
    let missing = http_request(
        server.addr(),
        "GET /js/none.js HTTP/1.1\r\nHost: krmx\r\n\r\n",
    );
    assert!(
        missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{missing}"
    );
    let post = http_request(
        server.addr(),
        "POST / HTTP/1.1\r\nHost: krmx\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{post}"
    );
    link(&mut server, "alice", &[("alice", true)], true);
    // Unreadable folders stop the server at start.
    std::fs::remove_dir_all(&dir).unwrap();
    let (status, stderr) =
        krmx_tests::cli::run_to_exit(&["serve", "--port", "0", "--static-dir", &dir_arg]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("krmx: cannot use --static-dir"),
        "{stderr}"
    );
}

const MONITOR_TOKEN: &str = "monitor-token-for-tests-0123456789";

/// A request to the monitor's API: `(status line, JSON body)`.
fn monitor(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (String, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token.map_or_else(String::new, |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: krmx\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = http_request(addr, &request);
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The monitor: its page loads without the token; its API refuses requests without the right
/// token (401, nothing changed) and with it reports the users, recent events and limits, and
/// unlinks, broadcasts and kicks.
fn monitor_refuses_requests_without_the_token_and_steers_the_server_with_it(transport: &str) {
    let mut server = CliServer::start(
        transport,
        &[
            "--monitor-token",
            MONITOR_TOKEN,
            "--max-message-bytes",
            "4096",
        ],
    );
    let addr = server.addr();
    let mut alice = link(&mut server, "alice", &[("alice", true)], true);
    let mut bob = link(&mut server, "bob", &[("alice", true), ("bob", true)], true);
    alice.expect_jsons(&[
        krmx_tests::msg::joined("bob"),
        krmx_tests::msg::linked("bob"),
    ]);

    let page = http_request(addr, "GET /monitor HTTP/1.1\r\nHost: krmx\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(page.contains("<title>Krmx monitor</title>"));
    assert!(!page.contains("alice"), "the page holds no data");

    let kick_bob = json!({"username": "bob"});
    for token in [None, Some("wrong-token-of-the-right-length!!"), Some("")] {
        for (method, path, body) in [
            ("GET", "/monitor/state", None),
            ("POST", "/monitor/kick", Some(&kick_bob)),
            ("POST", "/monitor/unlink", Some(&kick_bob)),
            (
                "POST",
                "/monitor/broadcast",
                Some(&json!({"message": {"type": "x/y"}})),
            ),
        ] {
            let (status, answer) = monitor(addr, method, path, token, body);
            assert_eq!(
                status, "HTTP/1.1 401 Unauthorized",
                "{method} {path} {token:?}"
            );
            assert!(
                answer["error"].as_str().unwrap().contains("Bearer"),
                "{answer}"
            );
        }
    }
    // Nothing changed: no events, bob still linked.
    server.expect_silence_for(Duration::from_millis(100));
    bob.expect_nothing_for(Duration::from_millis(10));

    let (status, state) = monitor(addr, "GET", "/monitor/state", Some(MONITOR_TOKEN), None);
    assert_eq!(status, "HTTP/1.1 200 OK");
    let users = state["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(
        (&users[0]["username"], &users[0]["isLinked"]),
        (&json!("alice"), &json!(true))
    );
    assert!(users[1]["connection"].is_string(), "{state}");
    assert_eq!(state["health"]["linkedUsers"], 2);
    assert_eq!(state["limits"]["maxMessageBytes"], 4096);
    let events: Vec<(String, String)> = state["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["username"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("join", "alice"),
        ("link", "alice"),
        ("join", "bob"),
        ("link", "bob"),
    ]
    .iter()
    .map(|(e, u)| ((*e).to_owned(), (*u).to_owned()))
    .collect();
    assert_eq!(events, expected);

    // A broadcast to everyone but bob.
    let hello = json!({"type": "ops/notice", "payload": "maintenance at noon"});
    let (status, answer) = monitor(
        addr,
        "POST",
        "/monitor/broadcast",
        Some(MONITOR_TOKEN),
        Some(&json!({"message": hello, "skip": "bob"})),
    );
    assert_eq!(
        (status.as_str(), &answer),
        ("HTTP/1.1 200 OK", &json!({"ok": true}))
    );
    alice.expect_json(&hello);
    bob.expect_nothing_for(Duration::from_millis(50));

    // Unlink bob, then kick him.
    let (status, _) = monitor(
        addr,
        "POST",
        "/monitor/unlink",
        Some(MONITOR_TOKEN),
        Some(&kick_bob),
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.expect(&event("unlink", "bob"));
    alice.expect_json(&krmx_tests::msg::unlinked("bob"));
    let (status, _) = monitor(
        addr,
        "POST",
        "/monitor/kick",
        Some(MONITOR_TOKEN),
        Some(&kick_bob),
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.expect(&event("leave", "bob"));
    alice.expect_json(&krmx_tests::msg::left("bob"));

    // The core's refusals come back as 400 with its text; wrong methods and bodies are refused.
    let (status, answer) = monitor(
        addr,
        "POST",
        "/monitor/kick",
        Some(MONITOR_TOKEN),
        Some(&kick_bob),
    );
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(
        answer["error"].as_str().unwrap().contains("does not exist"),
        "{answer}"
    );
    let reserved = json!({"message": {"type": "krmx/joined", "payload": {"username": "eve"}}});
    let (status, _) = monitor(
        addr,
        "POST",
        "/monitor/broadcast",
        Some(MONITOR_TOKEN),
        Some(&reserved),
    );
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    let (status, answer) = monitor(
        addr,
        "POST",
        "/monitor/kick",
        Some(MONITOR_TOKEN),
        Some(&json!(["bob"])),
    );
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(answer["error"], "the body must be a JSON object");
    let (status, _) = monitor(addr, "GET", "/monitor/kick", Some(MONITOR_TOKEN), None);
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let (status, _) = monitor(
        addr,
        "POST",
        "/monitor/state",
        Some(MONITOR_TOKEN),
        Some(&json!({})),
    );
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let (status, _) = monitor(addr, "GET", "/monitor/nothing", Some(MONITOR_TOKEN), None);
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    // The events so far, in order.
    let (_, state) = monitor(addr, "GET", "/monitor/state", Some(MONITOR_TOKEN), None);
    let last: Vec<&str> = state["events"].as_array().unwrap()[4..]
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(last, ["unlink", "leave"]);
    server.assert_running();

    // Off by default, and a short token stops the server at start.
    let plain = CliServer::start(transport, &[]);
    let (status, _) = monitor(
        plain.addr(),
        "GET",
        "/monitor/state",
        Some(MONITOR_TOKEN),
        None,
    );
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, stderr) =
        krmx_tests::cli::run_to_exit(&["serve", "--port", "0", "--monitor-token", "short"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
}

fn in_room(name: &str, username: &str, room: &str) -> Value {
    json!({"event": name, "username": username, "room": room})
}

/// With `--rooms`, every path under the prefix is its own world: the same username in two
/// rooms, presence and relay kept to each room, events and commands that carry the room, the
/// cap on rooms, and an empty room dropped after its idle time.
fn rooms_are_separate_worlds_routed_by_path(transport: &str) {
    let mut server = CliServer::start(
        transport,
        &[
            "--rooms",
            "/rooms",
            "--relay",
            "--max-rooms",
            "2",
            "--room-idle-ms",
            "100",
            "--workers",
            "1",
            "--monitor-token",
            MONITOR_TOKEN,
            "--health-path",
            "/health",
        ],
    );
    let addr = server.addr();
    let authenticate = |room: &str, username: &str| json!({"event": "authenticate", "username": username, "isNewUser": true, "room": room});
    let mut alice = Client::connect_path(addr, "/rooms/table-1");
    alice.link("alice");
    alice.expect_linked(&[("alice", true)]);
    server.expect_lines(&[
        authenticate("table-1", "alice"),
        in_room("join", "alice", "table-1"),
        in_room("link", "alice", "table-1"),
    ]);
    let mut bob = Client::connect_path(addr, "/rooms/table-1?seat=2");
    bob.link("bob");
    bob.expect_linked(&[("alice", true), ("bob", true)]);
    alice.expect_jsons(&[
        krmx_tests::msg::joined("bob"),
        krmx_tests::msg::linked("bob"),
    ]);
    server.expect_lines(&[
        authenticate("table-1", "bob"),
        in_room("join", "bob", "table-1"),
        in_room("link", "bob", "table-1"),
    ]);
    // Another room: an alice of its own, who sees nobody from table-1.
    let mut other = Client::connect_path(addr, "/rooms/table-2");
    other.link("alice");
    other.expect_linked(&[("alice", true)]);
    server.expect_lines(&[
        authenticate("table-2", "alice"),
        in_room("join", "alice", "table-2"),
        in_room("link", "alice", "table-2"),
    ]);
    // The relay stays in its room.
    let say = krmx_tests::msg::custom("chat/say", json!("hi table 1"));
    alice.send_json(&say);
    server.expect(
        &json!({"event": "message", "username": "alice", "message": say, "room": "table-1"}),
    );
    alice.expect_json(&say);
    bob.expect_json(&say);
    other.expect_nothing_for(Duration::from_millis(50));

    // Paths that name no room, and a third room past the cap.
    for path in ["/rooms", "/rooms/", "/rooms/a/b", "/", "/rooms/bad%20id"] {
        assert!(
            Client::try_connect(addr, path).is_err(),
            "{path} is refused"
        );
    }
    let mut third = Client::connect_path(addr, "/rooms/table-3");
    assert_eq!(third.expect_close(1013), "too many rooms");

    // Commands address a room.
    server.command(
        "rooms",
        &json!({"rooms": [
            {"room": "table-1", "users": 2, "linkedUsers": 2, "connections": 2},
            {"room": "table-2", "users": 1, "linkedUsers": 1, "connections": 1},
        ]}),
    );
    server.command(
        "in table-1 users",
        &json!({"users": [{"username": "alice", "isLinked": true}, {"username": "bob", "isLinked": true}]}),
    );
    server.command(
        "users",
        &error("rooms are on: address a room, in ROOM users ..."),
    );
    server.command("in table-9 users", &error("no room table-9"));
    server.send_line("in table-1 kick bob");
    server.expect_lines(&[
        in_room("unlink", "bob", "table-1"),
        in_room("leave", "bob", "table-1"),
        ok("kick"),
    ]);
    alice.expect_jsons(&[
        krmx_tests::msg::unlinked("bob"),
        krmx_tests::msg::left("bob"),
    ]);
    other.expect_nothing_for(Duration::from_millis(20));

    // table-2 empties: its user is kicked and its connection closes; it is dropped after its
    // idle time, which makes room for a new one.
    server.send_line("in table-2 kick alice");
    server.expect_lines(&[
        in_room("unlink", "alice", "table-2"),
        in_room("leave", "alice", "table-2"),
        ok("kick"),
    ]);
    other.close();
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        server.send_line("rooms");
        let reply = server.next_json();
        if reply["rooms"]
            .as_array()
            .is_some_and(|rooms| rooms.len() == 1)
        {
            assert_eq!(reply["rooms"][0]["room"], "table-1");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "table-2 is not dropped: {reply}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut fresh = Client::connect_path(addr, "/rooms/table-3");
    fresh.link("carol");
    fresh.expect_linked(&[("carol", true)]);
    server.expect_lines(&[
        authenticate("table-3", "carol"),
        in_room("join", "carol", "table-3"),
        in_room("link", "carol", "table-3"),
    ]);
    server.command("status", &json!({"status": "listening"}));
    let response = http_request(addr, "GET /health HTTP/1.1\r\nHost: krmx\r\n\r\n");
    assert!(
        response.ends_with(",\"rooms\":2}\n"),
        "health reports the rooms: {response}"
    );
    let (_, state) = monitor(addr, "GET", "/monitor/state", Some(MONITOR_TOKEN), None);
    assert_eq!(
        state["rooms"],
        json!([
            // bob's connection stayed open after his kick.
            {"room": "table-1", "users": 1, "linkedUsers": 1, "connections": 2},
            {"room": "table-3", "users": 1, "linkedUsers": 1, "connections": 1},
        ]),
        "the monitor lists the rooms"
    );

    // One room closes on its own; a new connection to it opens it afresh.
    server.send_line("in table-1 close");
    server.expect_lines(&[
        in_room("unlink", "alice", "table-1"),
        in_room("leave", "alice", "table-1"),
        json!({"event": "close", "room": "table-1"}),
        ok("close"),
    ]);
    assert_eq!(
        alice.expect_close_after_texts(1001).last(),
        Some(&krmx_tests::msg::left("alice"))
    );
    fresh.expect_nothing_for(Duration::from_millis(20));
    let mut again = Client::connect_path(addr, "/rooms/table-1");
    again.link("alice");
    again.expect_linked(&[("alice", true)]);
    server.expect_lines(&[
        authenticate("table-1", "alice"),
        in_room("join", "alice", "table-1"),
        in_room("link", "alice", "table-1"),
    ]);
    server.command("status", &json!({"status": "listening"}));
}

/// With `--rooms`, the close closes every room: each user's leave is printed with its room,
/// then one close event.
fn rooms_close_together(transport: &str) {
    let mut server = CliServer::start(transport, &["--rooms", "rooms"]);
    let addr = server.addr();
    let mut clients = Vec::new();
    for room in ["a", "b"] {
        let mut client = Client::connect_path(addr, &format!("/rooms/{room}"));
        client.link("dana");
        client.expect_linked(&[("dana", true)]);
        server.expect_lines(&[
            json!({"event": "authenticate", "username": "dana", "isNewUser": true, "room": room}),
            in_room("join", "dana", room),
            in_room("link", "dana", room),
        ]);
        clients.push(client);
    }
    server.send_line("close");
    let mut lines = Vec::new();
    loop {
        let line = server.next_json();
        let done = line == json!({"event": "close"});
        lines.push(line);
        if done {
            break;
        }
    }
    for room in ["a", "b"] {
        let unlink = lines
            .iter()
            .position(|l| *l == in_room("unlink", "dana", room));
        let leave = lines
            .iter()
            .position(|l| *l == in_room("leave", "dana", room));
        assert!(unlink.is_some() && unlink < leave, "{lines:?}");
    }
    for client in &mut clients {
        client.expect_close_after_texts(1001);
    }
    assert_eq!(server.wait_exit().code(), Some(0));
}

/// `--workers 2`: rooms spread over two event loops, each room whole in one of them: its users
/// meet, its relay stays in it, its commands reach it; `rooms` merges both; one close event.
#[test]
fn workers_spread_rooms_and_keep_each_room_whole() {
    const ROOMS: usize = 12;
    let mut server = CliServer::start(
        "mio",
        &[
            "--rooms",
            "/rooms",
            "--relay",
            "--workers",
            "2",
            "--health-path",
            "/health",
            "--metrics-path",
            "/metrics",
        ],
    );
    let addr = server.addr();
    let names: Vec<String> = (0..ROOMS).map(|i| format!("room-{i}")).collect();
    let owners: std::collections::HashSet<usize> = names
        .iter()
        .map(|name| krmx_transport_mio::RoomsConfig::worker_of(name, 2))
        .collect();
    assert_eq!(owners.len(), 2, "the rooms of this test use both workers");
    let mut pairs = Vec::new();
    for name in &names {
        let path = format!("/rooms/{name}");
        let mut ann = Client::connect_path(addr, &path);
        ann.link("ann");
        ann.expect_linked(&[("ann", true)]);
        let mut ben = Client::connect_path(addr, &path);
        ben.link("ben");
        ben.expect_linked(&[("ann", true), ("ben", true)]);
        ann.expect_jsons(&[
            krmx_tests::msg::joined("ben"),
            krmx_tests::msg::linked("ben"),
        ]);
        pairs.push((ann, ben));
    }
    for (i, (ann, ben)) in pairs.iter_mut().enumerate() {
        let say = krmx_tests::msg::custom("chat/say", json!(i));
        ann.send_json(&say);
        ann.expect_json(&say);
        ben.expect_json(&say);
    }
    // Every room printed its own events, in its own order, whatever the other worker printed.
    let mut lines = Vec::new();
    let expected_lines = ROOMS * (3 + 3 + 1);
    while lines.len() < expected_lines {
        lines.push(server.next_json());
    }
    for (i, name) in names.iter().enumerate() {
        let mine: Vec<Value> = lines
            .iter()
            .filter(|line| line["room"] == json!(name))
            .cloned()
            .collect();
        let authenticate = |username: &str| json!({"event": "authenticate", "username": username, "isNewUser": true, "room": name});
        let say = krmx_tests::msg::custom("chat/say", json!(i));
        assert_eq!(
            mine,
            vec![
                authenticate("ann"),
                in_room("join", "ann", name),
                in_room("link", "ann", name),
                authenticate("ben"),
                in_room("join", "ben", name),
                in_room("link", "ben", name),
                json!({"event": "message", "username": "ann", "message": say, "room": name}),
            ]
        );
    }
    server.send_line("rooms");
    let reply = server.next_json();
    let mut listed: Vec<(String, u64)> = reply["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|room| {
            (
                room["room"].as_str().unwrap().to_owned(),
                room["linkedUsers"].as_u64().unwrap(),
            )
        })
        .collect();
    listed.sort();
    let mut expected: Vec<(String, u64)> = names.iter().map(|name| (name.clone(), 2)).collect();
    expected.sort();
    assert_eq!(listed, expected);
    // The health and metrics endpoints count every worker's rooms.
    let figures = health(addr);
    assert_eq!(
        (
            &figures["users"],
            &figures["linkedUsers"],
            &figures["connections"]
        ),
        (&json!(2 * ROOMS), &json!(2 * ROOMS), &json!(2 * ROOMS))
    );
    let scrape = http_request(addr, "GET /metrics HTTP/1.1\r\nHost: krmx\r\n\r\n");
    let body = scrape.split_once("\r\n\r\n").unwrap().1;
    let metrics = krmx_tests::openmetrics::parse(body).unwrap();
    assert_eq!(metrics.value("krmx_rooms", &[]), Some(ROOMS as f64));
    assert_eq!(
        metrics.value("krmx_messages_received_total", &[]),
        Some((ROOMS * 3) as f64),
        "two links and one message per room"
    );
    // A command reaches its room's worker.
    server.send_line("in room-5 kick ben");
    server.expect_lines(&[
        in_room("unlink", "ben", "room-5"),
        in_room("leave", "ben", "room-5"),
        ok("kick"),
    ]);
    pairs[5].0.expect_jsons(&[
        krmx_tests::msg::unlinked("ben"),
        krmx_tests::msg::left("ben"),
    ]);
    server.command("in room-99 users", &error("no room room-99"));
    server.command(
        "users",
        &error("rooms are on: address a room, in ROOM users ..."),
    );
    assert_eq!(health(addr)["status"], "listening");
    // The close closes both workers' rooms, then one close event.
    server.send_line("close");
    assert_eq!(server.next_json(), ok("close"));
    let mut closing = Vec::new();
    loop {
        let line = server.next_json();
        if line == json!({"event": "close"}) {
            break;
        }
        closing.push(line);
    }
    assert_eq!(
        closing
            .iter()
            .filter(|line| line["event"] == "leave")
            .count(),
        2 * ROOMS - 1
    );
    assert_eq!(server.wait_exit().code(), Some(0));
}

fn plain_requests_get_a_clean_404_or_405(transport: &str) {
    let server = CliServer::start(transport, &["--health-path", "health"]);
    for request in [
        "GET / HTTP/1.1\r\nHost: krmx\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: krmx\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: krmx\r\n\r\n",
    ] {
        let response = http_request(server.addr(), request);
        assert!(
            response.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{response}"
        );
        assert!(response.ends_with("404 not found: no Krmx endpoint at this path\n"));
    }
    let response = http_request(
        server.addr(),
        "POST /health HTTP/1.1\r\nHost: krmx\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 405 "), "{response}");
    let response = http_request(
        server.addr(),
        "HEAD /health?x HTTP/1.1\r\nHost: krmx\r\n\r\n",
    );
    assert!(
        response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("\r\n\r\n"),
        "{response}"
    );
    let response = http_request(server.addr(), "\x16\x03\x01 not http at all\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    // Without the flag the health endpoint is off.
    let off = CliServer::start(transport, &[]);
    let response = http_request(off.addr(), "GET /health HTTP/1.1\r\nHost: krmx\r\n\r\n");
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
    // And WebSocket clients still link on both.
    for addr in [server.addr(), off.addr()] {
        let mut client = Client::connect(addr);
        client.link("alice");
        client.expect_linked(&[("alice", true)]);
    }
}

/// What the clients of a script were sent: messages and their payload bytes.
#[derive(Default)]
struct Ledger {
    messages: u64,
    bytes: u64,
}

impl Ledger {
    /// `client` receives exactly `expected`, counted.
    fn expect(&mut self, client: &mut Client, expected: &[Value]) {
        for value in expected {
            client.expect_json(value);
            self.messages += 1;
            self.bytes += value.to_string().len() as u64;
        }
    }

    /// `client` sends `value`, counted.
    fn send(&mut self, client: &mut Client, value: &Value) {
        client.send_json(value);
        self.messages += 1;
        self.bytes += value.to_string().len() as u64;
    }
}

/// A sample's labels as written in a test.
type Labels<'a> = &'a [(&'a str, &'a str)];

/// Scrapes `/metrics` and parses the text strictly.
fn scrape(addr: std::net::SocketAddr) -> krmx_tests::openmetrics::Scrape {
    let response = http_request(addr, "GET /metrics HTTP/1.1\r\nHost: krmx\r\n\r\n");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        head.contains(
            "\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
        ),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
        "{head}"
    );
    krmx_tests::openmetrics::parse(body).unwrap_or_else(|error| panic!("{error}\n{body}"))
}

/// The value of a sample that must be there.
fn sample(scrape: &krmx_tests::openmetrics::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .value(name, labels)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {scrape:#?}"))
}

fn metrics_path_counts_a_scripted_session_exactly(transport: &str) {
    const MESSAGES: u64 = 7;
    let mut server = CliServer::start(
        transport,
        &[
            "--metrics-path",
            "metrics",
            "--relay",
            "--reject",
            "mallory=banned until 2031",
            "--max-message-bytes",
            "1024",
        ],
    );
    let fresh = scrape(server.addr());
    for name in [
        "krmx_connections_accepted_total",
        "krmx_connections_open",
        "krmx_users",
        "krmx_messages_received_total",
        "krmx_messages_sent_total",
        "krmx_links_accepted_total",
    ] {
        assert_eq!(sample(&fresh, name, &[]), 0.0, "{name}");
    }
    assert_eq!(sample(&fresh, "krmx_streams_accepted_total", &[]), 1.0);
    assert_eq!(fresh.samples_of("krmx_http_requests"), []);

    let (mut sent, mut received) = (Ledger::default(), Ledger::default());
    let link_of = |name: &str| krmx_tests::msg::link(name, krmx_tests::VERSION, None);
    let mut alice = Client::connect(server.addr());
    received.send(&mut alice, &link_of("alice"));
    sent.expect(&mut alice, &[accepted(), joined("alice"), linked("alice")]);
    let mut bob = Client::connect(server.addr());
    received.send(&mut bob, &link_of("bob"));
    sent.expect(
        &mut bob,
        &[
            accepted(),
            joined("alice"),
            linked("alice"),
            joined("bob"),
            linked("bob"),
        ],
    );
    sent.expect(&mut alice, &[joined("bob"), linked("bob")]);
    let mut carol = Client::connect(server.addr());
    received.send(&mut carol, &link_of("carol"));
    sent.expect(
        &mut carol,
        &[
            accepted(),
            joined("alice"),
            linked("alice"),
            joined("bob"),
            linked("bob"),
            joined("carol"),
            linked("carol"),
        ],
    );
    for client in [&mut alice, &mut bob] {
        sent.expect(client, &[joined("carol"), linked("carol")]);
    }
    for name in ["alice", "bob", "carol"] {
        server.expect_lines(&[
            json!({"event": "authenticate", "username": name, "isNewUser": true}),
            event("join", name),
            event("link", name),
        ]);
    }
    // mallory: rejected by the application, then rejected as unlinked, then closed 1009 for
    // a message too large (not a message received).
    let mut mallory = Client::connect(server.addr());
    received.send(&mut mallory, &link_of("mallory"));
    sent.expect(&mut mallory, &[rejected("banned until 2031")]);
    server.expect(&json!({"event": "authenticate", "username": "mallory", "isNewUser": true}));
    received.send(
        &mut mallory,
        &json!({"type": "chat/say", "payload": "psst"}),
    );
    sent.expect(&mut mallory, &[rejected("unlinked connection")]);
    mallory.send_text(&"x".repeat(2000));
    mallory.expect_close(1009);
    // Relayed to the three linked users.
    for seq in 0..MESSAGES {
        let message = json!({"type": "chat/say", "payload": seq});
        received.send(&mut alice, &message);
        for client in [&mut alice, &mut bob, &mut carol] {
            sent.expect(client, std::slice::from_ref(&message));
        }
        server.expect(&json!({"event": "message", "username": "alice", "message": message}));
    }
    // carol closes (1001, going away); bob is kicked (his connection stays open).
    carol.send_raw(&krmx_tests::frames::close(1001));
    server.expect(&event("unlink", "carol"));
    for client in [&mut alice, &mut bob] {
        sent.expect(client, &[unlinked("carol")]);
    }
    server.send_line("kick bob");
    server.expect_lines(&[event("unlink", "bob"), event("leave", "bob"), ok("kick")]);
    for client in [&mut alice, &mut bob] {
        sent.expect(client, &[unlinked("bob"), left("bob")]);
    }
    let response = http_request(server.addr(), "GET /metricz HTTP/1.1\r\nHost: krmx\r\n\r\n");
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );

    let scrape = scrape(server.addr());
    assert_eq!(sent.messages, 29 + 3 * MESSAGES, "the script's own count");
    assert_eq!(received.messages, 5 + MESSAGES, "the script's own count");
    let exact: &[(&str, Labels, u64)] = &[
        ("krmx_server_info", &[("protocol_version", "0.6")], 1),
        ("krmx_streams_accepted_total", &[], 4 + 3),
        ("krmx_http_requests_total", &[("code", "200")], 1),
        ("krmx_http_requests_total", &[("code", "404")], 1),
        ("krmx_upgrades_failed_total", &[], 0),
        ("krmx_connections_accepted_total", &[], 4),
        ("krmx_connections_open", &[], 2),
        ("krmx_users", &[], 2),
        ("krmx_linked_users", &[], 1),
        ("krmx_pending_authentications", &[], 0),
        ("krmx_messages_received_total", &[], received.messages),
        ("krmx_messages_received_bytes_total", &[], received.bytes),
        ("krmx_messages_sent_total", &[], sent.messages),
        ("krmx_messages_sent_bytes_total", &[], sent.bytes),
        ("krmx_buffered_bytes", &[], 0),
        ("krmx_links_accepted_total", &[], 3),
        (
            "krmx_closes_total",
            &[("by", "server"), ("code", "1009")],
            1,
        ),
        (
            "krmx_closes_total",
            &[("by", "client"), ("code", "1001")],
            1,
        ),
    ];
    for &(name, labels, value) in exact {
        assert_eq!(
            sample(&scrape, name, labels),
            value as f64,
            "{name} {labels:?}"
        );
    }
    assert_eq!(scrape.samples_of("krmx_http_requests").len(), 2);
    assert_eq!(scrape.samples_of("krmx_closes").len(), 2);
    let rejected_by: Vec<(String, f64)> = scrape.samples_of("krmx_links_rejected");
    assert_eq!(rejected_by.len(), 11, "every reason, counted or not");
    for (labels, value) in rejected_by {
        let expected = match labels.as_str() {
            "reason=rejected by the application" | "reason=unlinked connection" => 1.0,
            _ => 0.0,
        };
        assert_eq!(value, expected, "{labels}");
    }
    assert_eq!(
        scrape.samples_of("krmx_slow_consumer_closes"),
        ["hard", "soft", "stall", "budget"].map(|limit| (format!("limit={limit}"), 0.0))
    );
    assert!(sample(&scrape, "krmx_turn_duration_seconds_count", &[]) > 0.0);
    assert!(sample(&scrape, "krmx_uptime_seconds", &[]) > 0.0);
    let family = scrape.family("krmx_messages_sent_bytes").unwrap();
    assert_eq!(
        (family.kind.as_str(), family.unit.as_deref()),
        ("counter", Some("bytes"))
    );

    // GET and HEAD only; other paths are 404 as before.
    let post = "POST /metrics HTTP/1.1\r\nHost: krmx\r\nContent-Length: 0\r\n\r\n";
    let response = http_request(server.addr(), post);
    assert!(response.starts_with("HTTP/1.1 405 "), "{response}");
    let response = http_request(
        server.addr(),
        "HEAD /metrics HTTP/1.1\r\nHost: krmx\r\n\r\n",
    );
    assert!(
        response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("\r\n\r\n"),
        "{response}"
    );
}

fn protocol_options_shape_the_server(transport: &str) {
    let mut server = CliServer::start(
        transport,
        &["--krmx-version", "1.2", "--max-message-bytes", "1024"],
    );
    let mut client = Client::connect(server.addr());
    client.link("alice");
    client.expect_json(&rejected(
        "krmx server version mismatch (server=1.2.*,client=0.6.0)",
    ));
    client.link_with("alice", "1.2.9", None);
    client.expect_linked(&[("alice", true)]);
    server.expect_lines(&[
        json!({"event": "authenticate", "username": "alice", "isNewUser": true}),
        event("join", "alice"),
        event("link", "alice"),
    ]);
    client.send_text(&format!(
        r#"{{"type":"big","payload":"{}"}}"#,
        "x".repeat(1024)
    ));
    client.expect_json(&unlinked("alice"));
    client.expect_close(1009);
    server.expect(&event("unlink", "alice"));
}

fn ping_interval_option_terminates_silent_clients(transport: &str) {
    let mut server = CliServer::start(transport, &["--ping-interval-ms", "100"]);
    let alice = link(&mut server, "alice", &[("alice", true)], true);
    let mut raw = alice.into_raw();
    server.expect(&event("unlink", "alice"));
    let (_, texts) = raw.expect_close_raw(1001, TIMEOUT);
    assert_eq!(texts, [unlinked("alice")]);
}

fn close_command_closes_gracefully_and_exits_0(transport: &str) {
    let mut server = CliServer::start(transport, &[]);
    let mut alice = link(&mut server, "alice", &[("alice", true)], true);
    server.command("join bob", &event("join", "bob"));
    server.expect(&ok("join"));
    alice.expect_json(&joined("bob"));
    server.command("close", &event("unlink", "alice"));
    server.expect_lines(&[
        event("leave", "alice"),
        event("leave", "bob"),
        json!({"event": "close"}),
        ok("close"),
    ]);
    alice.expect_jsons(&[unlinked("alice"), left("alice")]);
    alice.expect_close(1001);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
}

fn closes_gracefully_on(transport: &str, signal: &str) {
    let mut server = CliServer::start(transport, &[]);
    let mut alice = link(&mut server, "alice", &[("alice", true)], true);
    // A TCP connection that never upgrades does not hold the exit up.
    let _silent = std::net::TcpStream::connect(server.addr()).expect("connecting");
    server.command("status", &json!({"status": "listening"}));
    let started = std::time::Instant::now();
    server.signal(signal);
    server.expect_lines(&[
        event("unlink", "alice"),
        event("leave", "alice"),
        json!({"event": "close"}),
    ]);
    alice.expect_jsons(&[unlinked("alice"), left("alice")]);
    alice.expect_close(1001);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "exited only after {elapsed:?}"
    );
    assert_eq!(server.next_json_within(Duration::from_millis(100)), None);
}

fn sigterm_closes_gracefully_and_exits_0(transport: &str) {
    closes_gracefully_on(transport, "TERM");
}

fn sigint_closes_gracefully_and_exits_0(transport: &str) {
    closes_gracefully_on(transport, "INT");
}

fn end_of_stdin_does_not_close_the_server(transport: &str) {
    let mut server = CliServer::start(transport, &[]);
    server.close_stdin();
    server.expect_silence_for(Duration::from_millis(200));
    server.assert_running();
    let mut alice = link(&mut server, "alice", &[("alice", true)], true);
    alice.send_json(&json!({"type": "still/here"}));
    server.expect(
        &json!({"event": "message", "username": "alice", "message": {"type": "still/here"}}),
    );
    server.signal("TERM");
    server.expect_lines(&[
        event("unlink", "alice"),
        event("leave", "alice"),
        json!({"event": "close"}),
    ]);
    alice.expect_jsons(&[unlinked("alice"), left("alice")]);
    alice.expect_close(1001);
    assert_eq!(server.wait_exit().code(), Some(0));
}

/// Every test above, once per transport.
macro_rules! on_every_transport {
    ($($name:ident),* $(,)?) => {
        mod mio {
            $(#[test] fn $name() { super::$name("mio") })*
        }
        mod smol {
            $(#[test] fn $name() { super::$name("smol") })*
        }
    };
}

on_every_transport!(
    status_and_users_reply_with_one_line_each,
    links_print_authenticate_join_link_and_messages_print_whole,
    join_kick_and_unlink_commands_print_their_events_then_ok,
    send_broadcast_and_broadcast_except_reach_the_right_users,
    unknown_commands_and_unparsable_json_get_an_error_and_the_server_keeps_running,
    manual_auth_waits_for_accept_or_reject_by_id,
    manual_auth_times_out_after_auth_timeout_ms,
    reject_option_rejects_those_users_at_once,
    relay_sends_every_message_to_every_linked_user_including_the_sender,
    echo_sends_every_message_back_to_its_sender_only,
    relay_with_echo_refuses_to_start,
    quiet_prints_no_message_events,
    no_new_users_admits_only_users_joined_by_command,
    path_and_query_options_guard_the_endpoint,
    allow_origin_refuses_other_browser_pages_with_403,
    health_path_answers_with_the_figures_of_users_while_1000_clients_are_linked,
    plain_requests_get_a_clean_404_or_405,
    static_dir_serves_a_page_beside_the_krmx_endpoint,
    rooms_are_separate_worlds_routed_by_path,
    rooms_close_together,
    monitor_refuses_requests_without_the_token_and_steers_the_server_with_it,
    metrics_path_counts_a_scripted_session_exactly,
    protocol_options_shape_the_server,
    ping_interval_option_terminates_silent_clients,
    close_command_closes_gracefully_and_exits_0,
    sigterm_closes_gracefully_and_exits_0,
    sigint_closes_gracefully_and_exits_0,
    end_of_stdin_does_not_close_the_server,
);
