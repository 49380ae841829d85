//! Fuzz target `log`: see `duro::fuzzing::log`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| duro::fuzzing::log(data));
