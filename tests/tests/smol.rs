//! Every loopback scenario on the smol transport.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

krmx_tests::scenario_tests!(krmx_tests::Transport::Smol);
