#![no_main]
//! libFuzzer target: `incus_daemon::fuzzing::tar_stream`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| incus_fuzz::check("tar_stream", data));
