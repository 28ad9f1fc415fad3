//! The connection's HTTP request target: the endpoint path and the required query parameters,
//! checked when the connection opens, before any Krmx message; and connection-id mistakes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Error, Input, KrmxConfig, QueryRequirement, RequestRejection};
use support::*;

fn invalid_query(conn: u64) -> Out {
    Out::Close(conn, 1008, "invalid query parameters")
}

#[test]
fn any_path_is_accepted_when_none_is_configured() {
    let mut server = Server::default_listening();
    assert_eq!(server.open_at(1, "/"), []);
    assert_eq!(server.open_at(2, "/anything/at/all?x=1"), []);
    assert_eq!(server.krmx.connections().count(), 2);
}

#[test]
fn configured_path_gets_its_leading_slash() {
    assert_eq!(
        KrmxConfig::default().path("game").path_rule(),
        Some("/game")
    );
    assert_eq!(
        KrmxConfig::default().path("/game").path_rule(),
        Some("/game")
    );
    assert_eq!(KrmxConfig::default().path_rule(), None);
}

#[test]
fn configured_path_accepts_only_that_path() {
    let mut server = Server::listening(KrmxConfig::default().path("game"));
    assert_eq!(server.open_at(1, "/game"), []);
    assert_eq!(server.open_at(2, "/game?room=1"), []);
    assert_eq!(
        server.open_at(3, "/"),
        [Out::Close(3, 1008, "invalid path")]
    );
    assert_eq!(
        server.open_at(4, "/game/"),
        [Out::Close(4, 1008, "invalid path")]
    );
    assert_eq!(
        server.open_at(5, "/games"),
        [Out::Close(5, 1008, "invalid path")]
    );
    assert_eq!(
        server.krmx.connections().collect::<Vec<_>>(),
        [id(1), id(2)]
    );
}

#[test]
fn check_request_tells_the_transport_which_rejection_applies() {
    let config = KrmxConfig::default()
        .path("/game")
        .query("room", QueryRequirement::Present);
    assert_eq!(config.check_request("/game?room"), Ok(()));
    assert_eq!(
        config.check_request("/lobby?room"),
        Err(RequestRejection::Path)
    );
    assert_eq!(config.check_request("/game"), Err(RequestRejection::Query));
    assert_eq!(config.check_request("/lobby"), Err(RequestRejection::Path));
}

#[test]
fn connection_failing_a_query_requirement_is_closed_before_any_message() {
    let config = KrmxConfig::default().query("key", QueryRequirement::Present);
    let mut server = Server::listening(config);
    assert_eq!(server.open_at(1, "/"), [invalid_query(1)]);
    assert_eq!(server.open_at(2, "/?other=1"), [invalid_query(2)]);
    assert_eq!(
        server.try_input(Input::Frame {
            conn: id(1),
            frame: krmx_core::Frame::Text(link_frame("alice", "0.6.0", None)),
        }),
        Err(Error::UnknownConnection(id(1)))
    );
    assert_eq!(server.open_at(3, "/?key"), []);
    assert_eq!(server.link(3, "alice").first(), Some(&send(3, accepted())));
}

#[test]
fn query_parameter_required_absent_refuses_its_presence() {
    let config = KrmxConfig::default().query("debug", QueryRequirement::Absent);
    let mut server = Server::listening(config);
    assert_eq!(server.open_at(1, "/?debug=0"), [invalid_query(1)]);
    assert_eq!(server.open_at(2, "/?debug"), [invalid_query(2)]);
    assert_eq!(server.open_at(3, "/?x=debug"), []);
}

#[test]
fn query_parameter_required_equal_compares_the_decoded_first_value() {
    let config = KrmxConfig::default().query("krmx", QueryRequirement::Equals("my server".into()));
    let mut server = Server::listening(config);
    assert_eq!(server.open_at(1, "/?krmx=my+server"), []);
    assert_eq!(server.open_at(2, "/?krmx=my%20server&krmx=other"), []);
    assert_eq!(
        server.open_at(3, "/?krmx=other&krmx=my+server"),
        [invalid_query(3)]
    );
    assert_eq!(server.open_at(4, "/?krmx="), [invalid_query(4)]);
    assert_eq!(server.open_at(5, "/"), [invalid_query(5)]);
}

#[test]
fn query_parameter_predicate_must_hold() {
    let config = KrmxConfig::default().query(
        "room",
        QueryRequirement::matches(|v| v.parse::<u8>().is_ok()),
    );
    let mut server = Server::listening(config);
    assert_eq!(server.open_at(1, "/?room=7"), []);
    assert_eq!(server.open_at(2, "/?room=700"), [invalid_query(2)]);
    assert_eq!(server.open_at(3, "/"), [invalid_query(3)]);
}

#[test]
fn every_query_requirement_must_hold() {
    let config = KrmxConfig::default()
        .path("play")
        .query("key", QueryRequirement::Present)
        .query("debug", QueryRequirement::Absent);
    let mut server = Server::listening(config);
    assert_eq!(server.open_at(1, "/play?key=1"), []);
    assert_eq!(server.open_at(2, "/play?key=1&debug"), [invalid_query(2)]);
    assert_eq!(server.open_at(3, "/play"), [invalid_query(3)]);
    assert_eq!(
        server.open_at(4, "/other?key=1"),
        [Out::Close(4, 1008, "invalid path")]
    );
}

#[test]
fn opening_an_open_connection_id_again_is_an_error_and_keeps_the_first() {
    let mut server = alice_and_bob();
    assert_eq!(
        server.try_input(Input::ConnectionOpened {
            conn: id(1),
            target: "/".into(),
        }),
        Err(Error::DuplicateConnection(id(1)))
    );
    assert_eq!(
        server.refused(Input::ConnectionOpened {
            conn: id(2),
            target: "/".into(),
        }),
        "connection cn-2 is already open"
    );
    assert_eq!(server.krmx.linked_user(id(1)).unwrap(), "alice");
    assert_eq!(
        server.text(1, r#"{"type":"a"}"#),
        [ev_message("alice", r#"{"type":"a"}"#)]
    );
}

#[test]
fn connection_ids_are_listed_in_id_order() {
    let mut server = Server::default_listening();
    for conn in [3, 1, 2] {
        server.open(conn);
    }
    assert_eq!(
        server.krmx.connections().collect::<Vec<_>>(),
        [id(1), id(2), id(3)]
    );
}
