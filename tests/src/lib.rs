//! # incus-tests
//!
//! Cross-crate tests. The privileged end-to-end tests of the engine live in
//! `incus-core/tests/privileged.rs` (so cargo builds the `incus-helper` binary they need);
//! this crate holds tests that combine crates, and the scripts in this directory
//! (`install-deps.sh`, `run-tests.sh`, `main-job.sh`, `images/mk-busybox-image.sh`).

use std::path::Path;

/// Builds the busybox test images (`busybox.tar.xz`, and the split
/// `busybox-split.meta.tar.xz` + `busybox-split.rootfs.squashfs`) into `dir` with
/// `tests/images/mk-busybox-image.sh`. For tests: panics with the builder's output on failure.
pub fn build_busybox_images(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/mk-busybox-image.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(dir)
        .output()
        .expect("run the image builder");
    assert!(
        out.status.success(),
        "building the busybox images failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use incus_core::drivers::{DriverRegistry, StoragePoolSpec};

    #[test]
    fn storage_drivers_plug_into_the_core_registry() {
        let mut r = DriverRegistry::new();
        incus_storage::register_all(&mut r);
        incus_network::register_all(&mut r);
        assert_eq!(r.storage_drivers(), vec!["btrfs", "dir", "lvm", "zfs"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = StoragePoolSpec {
            name: "p".into(),
            config: Default::default(),
            mount_root: dir.path().into(),
        };
        let d = r.storage("dir", spec).expect("dir driver");
        assert_eq!(d.info().name, "dir");
        assert!(!d.info().quotas, "dir cannot enforce quotas on this host");
    }
}
