//! What every libFuzzer target of this harness does: run one `incus_daemon::fuzzing` target
//! and turn a broken invariant into a crash libFuzzer records.

use std::path::PathBuf;
use std::sync::OnceLock;

/// A private scratch directory for the tar target, made once per process.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("incus-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch directory");
        d
    })
}

/// Runs target `name` on `data`; panics (a libFuzzer crash) when an invariant breaks.
pub fn check(name: &str, data: &[u8]) {
    if let Err(why) = incus_daemon::fuzzing::run(name, data, scratch()) {
        panic!("{name}: {why}");
    }
}
