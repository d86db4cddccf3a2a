#![no_main]
//! libFuzzer target: `incus_daemon::fuzzing::image_metadata`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| incus_fuzz::check("image_metadata", data));
