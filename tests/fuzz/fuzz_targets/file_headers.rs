#![no_main]
//! libFuzzer target: `incus_daemon::fuzzing::file_headers`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| incus_fuzz::check("file_headers", data));
