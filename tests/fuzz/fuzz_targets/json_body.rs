#![no_main]
//! libFuzzer target: `incus_daemon::fuzzing::json_body`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| incus_fuzz::check("json_body", data));
