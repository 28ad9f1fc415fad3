//! The `handshake` fuzz target: see `krmx_fuzz::handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| krmx_fuzz::handshake::run(data));
