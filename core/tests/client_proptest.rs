//! Several clients and the server exchange random operations; the clients keep agreeing with
//! the server: every linked client's user list is the server's `users()`, and every client's
//! status matches what the server knows of its connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod client_support;

use client_support::{Net, message};
use krmx_core::{ClientConfig, ClientError, ClientInput, ClientStatus, Input, KrmxConfig};
use proptest::prelude::*;

const CLIENTS: usize = 3;
/// A small pool, so that names collide; `x` breaks the username rule.
const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "x"];

#[derive(Debug, Clone)]
enum Op {
    Connect(usize),
    Link(usize, usize),
    Unlink(usize),
    Leave(usize),
    Send(usize),
    SendReserved(usize),
    Disconnect(usize, bool),
    /// The network drops the connection.
    Drop(usize),
    ServerJoin(usize),
    ServerKick(usize),
    ServerUnlink(usize),
    ServerSend(usize),
    ServerBroadcast,
    /// Deliver one message from the client to the server.
    ToServer(usize),
    /// Deliver one message from the server to the client.
    ToClient(usize),
    /// Deliver everything and check agreement.
    Settle,
}

fn ops(interleaved: bool) -> BoxedStrategy<Op> {
    let client = 0..CLIENTS;
    let name = 0..NAMES.len();
    let base = prop_oneof![
        3 => client.clone().prop_map(Op::Connect),
        5 => (client.clone(), name.clone()).prop_map(|(i, n)| Op::Link(i, n)),
        2 => client.clone().prop_map(Op::Unlink),
        2 => client.clone().prop_map(Op::Leave),
        3 => client.clone().prop_map(Op::Send),
        1 => client.clone().prop_map(Op::SendReserved),
        1 => (client.clone(), any::<bool>()).prop_map(|(i, f)| Op::Disconnect(i, f)),
        1 => client.clone().prop_map(Op::Drop),
        1 => name.clone().prop_map(Op::ServerJoin),
        1 => name.clone().prop_map(Op::ServerKick),
        1 => name.clone().prop_map(Op::ServerUnlink),
        1 => name.clone().prop_map(Op::ServerSend),
        1 => Just(Op::ServerBroadcast),
    ];
    if interleaved {
        prop_oneof![
            10 => base,
            6 => client.clone().prop_map(Op::ToServer),
            6 => client.prop_map(Op::ToClient),
            1 => Just(Op::Settle),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

/// The statuses in which the JavaScript client allows a command, and its word for it.
fn allowed(input: &ClientInput) -> (&'static str, Vec<ClientStatus>) {
    use ClientStatus::{
        Closed, Closing, Connected, Connecting, Initializing, Linked, Linking, Unlinking,
    };
    match input {
        ClientInput::Connect { .. } => ("connect", vec![Initializing, Closed]),
        ClientInput::Link { .. } => ("link", vec![Connected]),
        ClientInput::Unlink | ClientInput::Send { .. } => ("send", vec![Linked]),
        ClientInput::Leave => ("leave", vec![Linked]),
        ClientInput::Disconnect { force: false } => {
            ("disconnect", vec![Connected, Linking, Unlinking])
        }
        ClientInput::Disconnect { force: true } => (
            "disconnect",
            vec![Connected, Linking, Unlinking, Connecting, Linked, Closing],
        ),
        other => panic!("not a command: {other:?}"),
    }
}

/// Feeds a command and checks it was allowed or refused exactly as the JavaScript client would.
fn command(net: &mut Net, i: usize, input: ClientInput, reserved: bool) {
    let status = net.status(i);
    let users = net.users(i);
    let (action, statuses) = allowed(&input);
    let result = net.command(i, input);
    if !statuses.contains(&status) {
        assert_eq!(result, Err(ClientError::WrongStatus { action, status }));
    } else if reserved {
        assert_eq!(result, Err(ClientError::ReservedType));
    } else {
        assert_eq!(result, Ok(()));
        return;
    }
    assert_eq!(net.status(i), status, "a refused command changes nothing");
    assert_eq!(net.users(i), users, "a refused command changes nothing");
}

fn apply(net: &mut Net, op: &Op) {
    match *op {
        Op::Connect(i) => command(
            net,
            i,
            ClientInput::Connect {
                url: "ws://localhost:8082".into(),
            },
            false,
        ),
        Op::Link(i, n) => command(
            net,
            i,
            ClientInput::Link {
                username: NAMES[n].into(),
                auth: None,
            },
            false,
        ),
        Op::Unlink(i) => command(net, i, ClientInput::Unlink, false),
        Op::Leave(i) => command(net, i, ClientInput::Leave, false),
        Op::Send(i) => command(
            net,
            i,
            ClientInput::Send {
                message: message(r#"{"type":"chat/say","payload":"hi"}"#),
            },
            false,
        ),
        Op::SendReserved(i) => command(
            net,
            i,
            ClientInput::Send {
                message: message(r#"{"type":"krmx/unlink"}"#),
            },
            true,
        ),
        Op::Disconnect(i, force) => command(net, i, ClientInput::Disconnect { force }, false),
        Op::Drop(i) => net.drop_connection(i),
        // Server commands may be refused (unknown user, not linked, ...): that is the server's
        // business, tested elsewhere.
        Op::ServerJoin(n) => {
            let _ = net.server_input(Input::Join {
                username: NAMES[n].into(),
            });
        }
        Op::ServerKick(n) => {
            let _ = net.server_input(Input::Kick {
                username: NAMES[n].into(),
            });
        }
        Op::ServerUnlink(n) => {
            let _ = net.server_input(Input::Unlink {
                username: NAMES[n].into(),
            });
        }
        Op::ServerSend(n) => {
            let _ = net.server_input(Input::Send {
                username: NAMES[n].into(),
                message: message(r#"{"type":"game/tick"}"#),
            });
        }
        Op::ServerBroadcast => {
            let _ = net.server_input(Input::Broadcast {
                message: message(r#"{"type":"game/all"}"#),
                skip: None,
            });
        }
        Op::ToServer(i) => {
            net.deliver_to_server(i);
        }
        Op::ToClient(i) => {
            net.deliver_to_client(i);
        }
        Op::Settle => {
            net.settle();
            net.check_agreement();
        }
    }
}

fn network() -> Net {
    let mut net = Net::new(KrmxConfig::default());
    for _ in 0..CLIENTS {
        net.add_client(ClientConfig::default());
    }
    net
}

/// Closes the server: every client ends closed with no users.
fn close(net: &mut Net) {
    net.settle();
    net.server_input(Input::Close).unwrap();
    net.settle();
    net.check_agreement();
    for i in 0..CLIENTS {
        assert!(matches!(
            net.status(i),
            ClientStatus::Closed | ClientStatus::Initializing
        ));
        assert!(net.users(i).is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every operation is followed by full delivery; after every step every client agrees with
    /// the server.
    #[test]
    fn clients_agree_with_the_server_after_every_step(steps in prop::collection::vec(ops(false), 1..80)) {
        let mut net = network();
        for op in &steps {
            apply(&mut net, op);
            net.settle();
            net.check_agreement();
        }
        close(&mut net);
    }

    /// Operations interleave with single deliveries (replies on their way while clients and the
    /// server act again); whenever the network is settled, every client agrees with the server.
    #[test]
    fn clients_agree_with_the_server_whenever_settled(steps in prop::collection::vec(ops(true), 1..150)) {
        let mut net = network();
        for op in &steps {
            apply(&mut net, op);
        }
        net.settle();
        net.check_agreement();
        close(&mut net);
    }
}
