//! The `server_inputs` fuzz target: see `krmx_fuzz::server_inputs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| krmx_fuzz::server_inputs::run(data));
