#![no_main]
//! libFuzzer target: `incus_daemon::fuzzing::gzip_body`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| incus_fuzz::check("gzip_body", data));
