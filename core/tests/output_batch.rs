//! `poll_output_batch`: a broadcast comes whole, as the sends `poll_output` gives one by one,
//! and the two may be mixed. (Every transcript drains through batches too.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use krmx_core::{Input, Message, Output, OutputBatch};
use support::*;

fn broadcast(server: &mut Server) {
    server
        .krmx
        .handle_input(
            server.now,
            Input::Broadcast {
                message: Message::new("chat"),
                skip: None,
            },
        )
        .unwrap();
}

#[test]
fn a_broadcast_is_one_batch_with_every_recipient_in_join_order() {
    let mut server = alice_and_bob();
    server.connect(3, "carol");
    broadcast(&mut server);
    let Some(OutputBatch::Broadcast { text, to }) = server.krmx.poll_output_batch() else {
        panic!("expected a broadcast batch");
    };
    assert_eq!(text.as_str(), r#"{"type":"chat"}"#);
    assert_eq!(to, [id(1), id(2), id(3)]);
    assert_eq!(server.krmx.poll_output_batch(), None);
}

#[test]
fn single_outputs_and_batches_mix_and_keep_the_order() {
    let mut server = alice_and_bob();
    server.connect(3, "carol");
    broadcast(&mut server);
    broadcast(&mut server);
    // The first send of the first broadcast one by one, then the rest of it as a batch.
    let first = server.krmx.poll_output();
    assert!(matches!(first, Some(Output::Send { to, .. }) if to == id(1)));
    let Some(OutputBatch::Broadcast { to, .. }) = server.krmx.poll_output_batch() else {
        panic!("expected the rest of the broadcast");
    };
    assert_eq!(to, [id(2), id(3)]);
    // The second broadcast one by one.
    let rest: Vec<Output> = std::iter::from_fn(|| server.krmx.poll_output()).collect();
    let recipients: Vec<_> = rest
        .iter()
        .map(|output| match output {
            Output::Send { to, .. } => *to,
            other => panic!("expected a send, got {other:?}"),
        })
        .collect();
    assert_eq!(recipients, [id(1), id(2), id(3)]);
}
