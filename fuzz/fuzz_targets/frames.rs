//! The `frames` fuzz target: see `krmx_fuzz::frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| krmx_fuzz::frames::run(data));
