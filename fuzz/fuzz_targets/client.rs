//! The `client` fuzz target: see `krmx_fuzz::client`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| krmx_fuzz::client::run(data));
