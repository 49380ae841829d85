//! Fuzz target `route`: see `duro::fuzzing::route`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| duro::fuzzing::route(data));
