//! Every hostile-input scenario (`krmx_tests::hostile`) on the smol transport, one at a time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

krmx_tests::hostile_tests!(krmx_tests::Transport::Smol);
