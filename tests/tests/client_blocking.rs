//! The blocking Rust client of `krmx-client` against `krmx serve` on both transports.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

krmx_tests::client_scenario_tests!(krmx_tests::rust_client::Blocking);
