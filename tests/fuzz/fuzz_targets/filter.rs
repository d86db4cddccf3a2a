#![no_main]
//! libFuzzer target: `incus_daemon::fuzzing::filter`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| incus_fuzz::check("filter", data));
