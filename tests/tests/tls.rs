//! `wss://`: `krmx serve --tls-cert --tls-key` on both transports, with certificates made at
//! test time. The Rust clients (blocking and async) link and relay over TLS; many clients link
//! at once and drop abruptly; the health endpoint answers over https; and every broken TLS
//! handshake (plain WebSocket to the TLS port, an untrusted certificate, garbage, a stalled
//! hello, TLS to a plain port) is closed with a log line while the server goes on serving.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use krmx_client::{ClientFailure, ClientOptions, ClientTls};
use krmx_tests::cli::CliServer;
use krmx_tests::rust_client::{
    Adapter, Async, Blocking, expect_events, joined, linked, linked_client, message, message_event,
    server_users, unlinked,
};
use krmx_tests::tls::{TestCerts, closed_within};
use krmx_tests::{Client, TIMEOUT};
use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A `krmx serve` on `transport` with the test certificate, logging at info.
fn tls_server(transport: &str, certs: &TestCerts, extra: &[&str]) -> CliServer {
    let mut args: Vec<String> = certs.serve_args();
    args.extend(["--log-level", "info"].map(str::to_owned));
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    CliServer::start(transport, &args)
}

fn wss_url(server: &CliServer) -> String {
    format!("wss://localhost:{}/", server.addr().port())
}

/// Client options trusting the test authority only.
fn trusting(pem: &str) -> ClientOptions {
    ClientOptions::new()
        .timeout(TIMEOUT)
        .tls(ClientTls::root_pem(pem.as_bytes()).unwrap())
}

fn linked_over_tls<C: Adapter>(
    certs: &TestCerts,
    url: &str,
    username: &str,
    roster: &[(&str, bool)],
) -> C {
    let mut client = C::connect_with(url, trusting(&certs.ca_pem))
        .unwrap_or_else(|error| panic!("connecting to {url}: {error}"));
    expect_events(
        &mut client,
        &[
            krmx_core::ClientEvent::Connecting,
            krmx_core::ClientEvent::Connected,
        ],
    );
    client.link(username, None).unwrap();
    let mut events = vec![
        krmx_core::ClientEvent::Linking,
        krmx_core::ClientEvent::Accepted,
    ];
    for (name, is_linked) in roster {
        events.push(joined(name));
        if *is_linked {
            events.push(linked(name));
        }
    }
    expect_events(&mut client, &events);
    client
}

/// Waits until the server's stderr holds `needle` at least `times` times.
fn wait_for_log(server: &CliServer, needle: &str, times: usize) {
    let deadline = Instant::now() + TIMEOUT;
    while server.stderr().matches(needle).count() < times {
        assert!(
            Instant::now() < deadline,
            "no {times}× `{needle}` in the server log:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The blocking and the async client link over `wss://`, see each other's presence and relay
/// messages both ways, in order; a user that drops is seen unlinked.
fn rust_clients_link_and_relay_over_wss(transport: &str) {
    let certs = TestCerts::generate();
    let mut server = tls_server(transport, &certs, &["--relay"]);
    let url = wss_url(&server);
    let mut alice: Blocking = linked_over_tls(&certs, &url, "alice", &[("alice", true)]);
    let mut bob: Async = linked_over_tls(&certs, &url, "bob", &[("alice", true), ("bob", true)]);
    expect_events(&mut alice, &[joined("bob"), linked("bob")]);
    let burst: Vec<_> = (0..20)
        .map(|n| json!({"type": "game/move", "payload": {"n": n, "pad": "x".repeat(n * 1000)}}))
        .collect();
    for value in &burst {
        alice.send(message(value)).unwrap();
    }
    let relayed: Vec<_> = burst.iter().map(message_event).collect();
    expect_events(&mut alice, &relayed);
    expect_events(&mut bob, &relayed);
    let back = json!({"type": "chat/say", "payload": "over TLS"});
    bob.send(message(&back)).unwrap();
    expect_events(&mut alice, &[message_event(&back)]);
    expect_events(&mut bob, &[message_event(&back)]);
    // A large message, past one TLS record (16 KiB) many times over.
    let large = json!({"type": "doc/put", "payload": "y".repeat(400_000)});
    bob.send(message(&large)).unwrap();
    expect_events(&mut alice, &[message_event(&large)]);
    expect_events(&mut bob, &[message_event(&large)]);
    drop(bob);
    expect_events(&mut alice, &[unlinked("bob")]);
    assert_eq!(
        server_users(&mut server),
        vec![("alice".to_owned(), true), ("bob".to_owned(), false)]
    );
}

/// 60 clients link over TLS at once (each from its own thread), then half drop without a
/// close: the others see every unlink, within the timeout; repeated three times on one server.
fn many_wss_clients_link_at_once_and_drop_abruptly(transport: &str) {
    const CLIENTS: usize = 60;
    let certs = TestCerts::generate();
    let mut server = tls_server(transport, &certs, &[]);
    let url = wss_url(&server);
    for round in 0..3 {
        let started = Instant::now();
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let url = url.clone();
                let options = trusting(&certs.ca_pem);
                std::thread::spawn(move || {
                    let mut client = krmx_client::Client::connect_with(&url, options).unwrap();
                    client.link(&format!("r{round}u{i:02}"), None).unwrap();
                    client
                })
            })
            .collect();
        let mut clients: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let deadline = Instant::now() + TIMEOUT;
        let linked_now = |server: &mut CliServer| {
            server_users(server)
                .iter()
                .filter(|(name, linked)| *linked && name.starts_with(&format!("r{round}")))
                .count()
        };
        while linked_now(&mut server) < CLIENTS {
            assert!(Instant::now() < deadline, "round {round}: not all linked");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Every other client drops its socket, no close frame, no close_notify.
        let kept: Vec<_> = clients.drain(..).step_by(2).collect();
        let mut watcher = kept.into_iter().next().unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let mut unlinks = 0;
        while unlinks < CLIENTS / 2 {
            assert!(
                Instant::now() < deadline,
                "round {round}: {unlinks} of {} unlinks seen after {:?}",
                CLIENTS / 2,
                started.elapsed()
            );
            if let Some(krmx_core::ClientEvent::Unlinked { .. }) =
                watcher.next_event_timeout(Duration::from_millis(100))
            {
                unlinks += 1;
            }
        }
    }
    server.assert_running();
}

/// The health endpoint answers over https; a plain request to the TLS port gets no answer
/// but a log line.
fn health_answers_over_https(transport: &str) {
    let certs = TestCerts::generate();
    let server = tls_server(transport, &certs, &["--health-path", "/health"]);
    let response = certs.https_request(
        server.addr(),
        "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let health: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(health["status"], "listening");
    assert_eq!(health["users"], 0);
}

/// Every broken TLS handshake ends in a closed connection and a log line, and the server goes
/// on serving: checked after each case, five rounds over.
fn broken_tls_handshakes_are_closed_with_a_log_line(transport: &str) {
    let certs = TestCerts::generate();
    let server = tls_server(
        transport,
        &certs,
        &[
            "--handshake-timeout-ms",
            "300",
            "--metrics-path",
            "/metrics",
        ],
    );
    let url = wss_url(&server);
    const ROUNDS: usize = 5;
    for round in 1..=ROUNDS {
        // A plain WebSocket client on the TLS port.
        assert!(
            Client::try_connect(server.addr(), "/").is_err(),
            "a plain upgrade"
        );
        wait_for_log(&server, "TLS handshake failed", round * 3 - 2);

        // A client that trusts another authority refuses the certificate.
        let refused = krmx_client::Client::connect_with(&url, trusting(&certs.other_ca_pem));
        match refused {
            Err(ClientFailure::Tls { message }) => {
                assert!(message.contains("certificate"), "{message}");
            }
            other => panic!("an untrusted certificate: {other:?}"),
        }
        wait_for_log(&server, "TLS handshake failed", round * 3 - 1);

        // Garbage: closed at once.
        let mut garbage = TcpStream::connect(server.addr()).unwrap();
        garbage.write_all(&[0xff; 64]).unwrap();
        assert!(closed_within(&mut garbage, TIMEOUT), "garbage is closed");
        wait_for_log(&server, "TLS handshake failed", round * 3);

        // Silence, and half a hello: closed by the handshake timeout.
        let mut silent = TcpStream::connect(server.addr()).unwrap();
        let mut half = TcpStream::connect(server.addr()).unwrap();
        half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .unwrap();
        assert!(closed_within(&mut silent, TIMEOUT), "a silent client");
        assert!(closed_within(&mut half, TIMEOUT), "a stalled hello");
        wait_for_log(&server, "TLS handshake timed out", round * 2);

        // And a good client links (those of the rounds before stay, unlinked).
        let names: Vec<String> = (1..=round).map(|r| format!("good{r}")).collect();
        let roster: Vec<(&str, bool)> = names
            .iter()
            .map(|name| (name.as_str(), *name == names[round - 1]))
            .collect();
        let _good: Blocking = linked_over_tls(&certs, &url, &names[round - 1], &roster);
    }
    // The metrics, over https, count each failed handshake once: three failed and two timed
    // out per round.
    let response = certs.https_request(
        server.addr(),
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    let body = response.split_once("\r\n\r\n").unwrap().1;
    let scrape = krmx_tests::openmetrics::parse(body).unwrap();
    let failed = scrape.value("krmx_tls_handshakes_failed_total", &[]);
    assert_eq!(failed, Some((ROUNDS * 5) as f64), "{body}");
    assert_eq!(
        scrape.value("krmx_links_accepted_total", &[]),
        Some(ROUNDS as f64)
    );
}

/// A `wss://` client to a server without TLS: the client fails with a TLS error, the server
/// logs it and closes, and plain clients go on linking.
fn tls_to_a_plain_port_is_closed_with_a_log_line(transport: &str) {
    let certs = TestCerts::generate();
    let mut server = CliServer::start(transport, &["--log-level", "info"]);
    let plain_url = format!("ws://127.0.0.1:{}/", server.addr().port());
    let wss = format!("wss://localhost:{}/", server.addr().port());
    for round in 1..=3 {
        match krmx_client::Client::connect_with(&wss, trusting(&certs.ca_pem)) {
            Err(ClientFailure::Tls { .. }) => {}
            other => panic!("TLS to a plain port: {other:?}"),
        }
        wait_for_log(&server, "a TLS handshake on a plain port", round);
        let names: Vec<String> = (1..=round).map(|r| format!("plain{r}")).collect();
        let roster: Vec<(&str, bool)> = names
            .iter()
            .map(|name| (name.as_str(), *name == names[round - 1]))
            .collect();
        let _plain: Blocking = linked_client(&plain_url, &names[round - 1], &roster);
    }
    server.assert_running();
    assert_eq!(server_users(&mut server).len(), 3);
}

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
    rust_clients_link_and_relay_over_wss,
    many_wss_clients_link_at_once_and_drop_abruptly,
    health_answers_over_https,
    broken_tls_handshakes_are_closed_with_a_log_line,
    tls_to_a_plain_port_is_closed_with_a_log_line,
);

/// A certificate that cannot be read or used stops `krmx serve` at start with exit code 1 and
/// the reason; a certificate without its key is an invalid command line (exit code 2).
#[test]
fn unusable_certificates_stop_krmx_serve_at_start() {
    let certs = TestCerts::generate();
    let cert = certs.cert_file();
    let key = certs.key_file();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let missing = "/nonexistent/krmx-cert.pem";
    for (args, needle) in [
        (vec!["--tls-cert", missing, "--tls-key", key], "cannot read"),
        (
            vec!["--tls-cert", key, "--tls-key", key],
            "no valid certificate",
        ),
        (
            vec!["--tls-cert", cert, "--tls-key", cert],
            "no valid private key",
        ),
    ] {
        let mut all = vec!["serve", "--port", "0"];
        all.extend(args);
        let (status, stderr) = krmx_tests::cli::run_to_exit(&all);
        assert_eq!(status.code(), Some(1), "{all:?}: {stderr}");
        assert!(
            stderr.starts_with("krmx: cannot use --tls-cert"),
            "{stderr}"
        );
        assert!(stderr.contains(needle), "{all:?}: {stderr}");
    }
    let (status, stderr) =
        krmx_tests::cli::run_to_exit(&["serve", "--port", "0", "--tls-cert", cert]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
}
