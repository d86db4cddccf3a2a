#![no_main]
//! libFuzzer target: `incus_daemon::fuzzing::credentials`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| incus_fuzz::check("credentials", data));
