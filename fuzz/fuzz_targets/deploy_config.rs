//! Fuzz target `deploy_config`: see `duro::fuzzing::deploy_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| duro::fuzzing::deploy_config(data));
