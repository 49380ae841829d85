//! Fuzz target `ids`: see `duro::fuzzing::ids`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| duro::fuzzing::ids(data));
