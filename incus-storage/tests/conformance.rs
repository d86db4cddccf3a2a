//! One behavioural suite for every storage driver that runs on this machine: `dir` on a
//! directory, `btrfs` on a loop file and `zfs` (on zfs-fuse here) on a loop file. Needs root (mounts, chown), so it runs only with
//! INCUS_TEST_PRIVILEGED=1 (as CI does).

use incus_core::drivers::{IdShift, StorageDriver, StoragePoolSpec, Volume, VolumeType};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn privileged(test: &str) -> bool {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("SKIPPED {test}: set INCUS_TEST_PRIVILEGED=1 (as root)");
    false
}

/// Unmounts whatever the test mounted below its directory, also when it fails.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn driver(kind: &str, state: &Path, config: &[(&str, &str)]) -> std::sync::Arc<dyn StorageDriver> {
    let mut registry = incus_core::drivers::DriverRegistry::new();
    incus_storage::register_all(&mut registry);
    registry
        .storage(
            kind,
            StoragePoolSpec {
                name: "p".into(),
                config: config
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                mount_root: state.join("storage-pools/p"),
            },
        )
        .expect("driver")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).expect("read")
}

/// Reads a file of a snapshot, mounting the snapshot for the read.
async fn read_snapshot(d: &dyn StorageDriver, v: &Volume, snap: &str, file: &str) -> String {
    let p = d.mount_snapshot(v, snap).await.expect("mount snapshot");
    let content = read(&p.join(file));
    d.unmount_snapshot(v, snap).await.expect("unmount snapshot");
    content
}

/// The suite. `cow`: snapshots are read-only copy-on-write snapshots (btrfs, zfs);
/// `quotas`: size limits are enforced.
async fn suite(d: &dyn StorageDriver, cow: bool, quotas: bool) {
    d.create_pool().await.expect("create pool");
    d.mount_pool().await.expect("mount pool (idempotent)");

    // An image volume with what a root filesystem holds.
    let img = Volume::new(VolumeType::Image, "fp1");
    d.create_volume(&img).await.expect("image volume");
    assert!(d.has_volume(&img).await.expect("has"));
    assert!(d.create_volume(&img).await.is_err(), "exists");
    let ip = d.volume_path(&img);
    std::fs::create_dir_all(ip.join("rootfs/bin")).expect("mkdir");
    std::fs::write(ip.join("rootfs/bin/tool"), "v1").expect("write");
    std::fs::set_permissions(
        ip.join("rootfs/bin/tool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .expect("chmod");
    std::fs::hard_link(ip.join("rootfs/bin/tool"), ip.join("rootfs/bin/link")).expect("link");
    std::os::unix::fs::symlink("/bin/tool", ip.join("rootfs/sym")).expect("symlink");

    // Two instances from it: one shifted (unprivileged), one not.
    let shift = IdShift {
        base: 1_000_000,
        size: 65536,
    };
    let c1 = Volume::new(VolumeType::Container, "c1");
    let c2 = Volume::new(VolumeType::Container, "c2");
    d.create_volume_from_copy(&c1, &img, Some(shift))
        .await
        .expect("c1 from image");
    d.create_volume_from_copy(&c2, &img, None)
        .await
        .expect("c2 from image");
    let t1 = d.volume_path(&c1).join("rootfs/bin/tool");
    let md = std::fs::metadata(&t1).expect("stat");
    assert_eq!((md.uid(), md.gid()), (1_000_000, 1_000_000), "shifted");
    assert_eq!(md.mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(
        md.ino(),
        std::fs::metadata(d.volume_path(&c1).join("rootfs/bin/link"))
            .expect("stat")
            .ino(),
        "hard link kept"
    );
    assert_eq!(
        std::fs::read_link(d.volume_path(&c1).join("rootfs/sym")).expect("readlink"),
        Path::new("/bin/tool")
    );
    let t2 = d.volume_path(&c2).join("rootfs/bin/tool");
    assert_eq!(std::fs::metadata(&t2).expect("stat").uid(), 0, "unshifted");
    // The image is untouched by the shift.
    assert_eq!(
        std::fs::metadata(ip.join("rootfs/bin/tool"))
            .expect("stat")
            .uid(),
        0
    );
    if d.info().name == "btrfs" {
        assert_eq!(
            std::fs::metadata(d.volume_path(&c1)).expect("stat").ino(),
            256,
            "instance volume is a subvolume"
        );
    }

    // Snapshots: create, change, restore, rename; read-only where the backend has it.
    d.create_snapshot(&c1, "s0").await.expect("snapshot");
    assert!(
        d.create_snapshot(&c1, "s0").await.is_err(),
        "snapshot exists"
    );
    std::fs::write(&t1, "v2").expect("write");
    if cow {
        let p = d.mount_snapshot(&c1, "s0").await.expect("mount snapshot");
        assert!(
            std::fs::write(p.join("rootfs/new"), "x").is_err(),
            "snapshots are read-only"
        );
        d.unmount_snapshot(&c1, "s0").await.expect("unmount");
    }
    assert_eq!(read_snapshot(d, &c1, "s0", "rootfs/bin/tool").await, "v1");
    d.restore_snapshot(&c1, "s0").await.expect("restore");
    assert_eq!(read(&t1), "v1");
    assert_eq!(std::fs::metadata(&t1).expect("stat").uid(), 1_000_000);
    d.rename_snapshot(&c1, "s0", "s1")
        .await
        .expect("rename snapshot");
    assert!(
        d.restore_snapshot(&c1, "s0").await.is_err(),
        "old name gone"
    );
    // An older snapshot restored while a newer one exists: both stay.
    std::fs::write(&t1, "v3").expect("write");
    d.create_snapshot(&c1, "s2").await.expect("second snapshot");
    std::fs::write(&t1, "v4").expect("write");
    d.restore_snapshot(&c1, "s1").await.expect("restore older");
    assert_eq!(read(&t1), "v1");
    assert_eq!(read_snapshot(d, &c1, "s2", "rootfs/bin/tool").await, "v3");
    d.restore_snapshot(&c1, "s2").await.expect("restore newer");
    assert_eq!(read(&t1), "v3");

    // Copy with snapshots: independent of the source.
    let c3 = Volume::new(VolumeType::Container, "c3");
    d.copy_volume(&c3, &c1, &["s1".to_string(), "s2".to_string()])
        .await
        .expect("copy volume");
    assert_eq!(read(&d.volume_path(&c3).join("rootfs/bin/tool")), "v3");
    assert_eq!(read_snapshot(d, &c3, "s1", "rootfs/bin/tool").await, "v1");
    assert_eq!(read_snapshot(d, &c3, "s2", "rootfs/bin/tool").await, "v3");
    assert_eq!(
        std::fs::metadata(d.volume_path(&c3).join("rootfs/bin/tool"))
            .expect("stat")
            .uid(),
        1_000_000,
        "ownership kept"
    );
    std::fs::write(&t1, "v5").expect("write");
    assert_eq!(read(&d.volume_path(&c3).join("rootfs/bin/tool")), "v3");
    assert!(d.copy_volume(&c3, &c1, &[]).await.is_err(), "target exists");
    // A copy without snapshots.
    let c5 = Volume::new(VolumeType::Container, "c5");
    d.copy_volume(&c5, &c1, &[]).await.expect("plain copy");
    assert_eq!(read(&d.volume_path(&c5).join("rootfs/bin/tool")), "v5");
    assert!(
        d.mount_snapshot(&c5, "s1").await.is_err(),
        "no snapshots copied"
    );
    // Rename a volume with its snapshots.
    d.rename_volume(&c3, "c4").await.expect("rename volume");
    let c4 = Volume::new(VolumeType::Container, "c4");
    assert!(d.has_volume(&c4).await.expect("has"));
    assert!(!d.has_volume(&c3).await.expect("has"));
    assert_eq!(read(&d.volume_path(&c4).join("rootfs/bin/tool")), "v3");
    assert_eq!(read_snapshot(d, &c4, "s1", "rootfs/bin/tool").await, "v1");
    assert!(d.rename_volume(&c4, "c1").await.is_err(), "target exists");

    // The image goes while instances still use it: they keep working (zfs keeps the image
    // dataset until the last of them goes; the real-client test checks that).
    d.delete_volume(&img).await.expect("delete image in use");
    assert_eq!(read(&t2), "v1");
    std::fs::write(&t2, "c2").expect("write");
    d.delete_volume(&c2).await.expect("delete c2");
    d.delete_volume(&c5).await.expect("delete c5");
    let c2 = Volume::new(VolumeType::Container, "c2");
    d.create_volume(&c2).await.expect("c2 again, empty");

    assert!(d.volume_usage(&c1).await.expect("usage") > 0);

    // Quotas.
    let r = d.set_volume_quota(&c2, 8 << 20).await;
    if quotas {
        r.expect("quota");
        let big = vec![7u8; 16 << 20];
        let w = std::fs::write(d.volume_path(&c2).join("big"), &big)
            .and_then(|()| std::fs::File::open(d.volume_path(&c2).join("big"))?.sync_all());
        // btrfs accounts at commit: a sync makes the limit visible.
        let _ = std::process::Command::new("sync").status();
        let w2 = std::fs::write(d.volume_path(&c2).join("big2"), &big);
        assert!(
            w.is_err() || w2.is_err(),
            "16 MiB written twice past an 8 MiB quota"
        );
        d.set_volume_quota(&c2, 64 << 20)
            .await
            .expect("grow the quota");
        std::fs::write(d.volume_path(&c2).join("big3"), &big).expect("room after growing");
        d.set_volume_quota(&c2, 0).await.expect("remove the quota");
    } else {
        assert!(r.is_err(), "a driver without quotas refuses them");
    }

    // Everything goes: volumes with snapshots, then the pool.
    for v in [&c1, &c2, &c4] {
        d.delete_volume(v).await.expect("delete volume");
        assert!(!d.has_volume(v).await.expect("has"));
    }
    assert!(!d.snapshot_path(&c1, "s1").exists());
    d.delete_volume(&c1).await.expect("delete twice");
    d.delete_volume(&img).await.expect("delete a gone image");
    d.delete_pool().await.expect("delete pool");
}

#[tokio::test]
async fn dir_driver() {
    if !privileged("dir_driver") {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let d = driver("dir", t.path(), &[]);
    suite(d.as_ref(), false, false).await;
}

#[tokio::test]
async fn btrfs_driver_on_a_loop_file() {
    if !privileged("btrfs_driver_on_a_loop_file") {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let _guard = Unmount(t.path().join("storage-pools/p"));
    let d = driver("btrfs", t.path(), &[("size", "1GiB")]);
    suite(d.as_ref(), true, true).await;
    assert!(!t.path().join("disks/p.img").exists(), "loop file removed");
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .contains(&t.path().to_string_lossy().to_string()),
        "unmounted"
    );
}

#[tokio::test]
async fn btrfs_nested_subvolumes_and_remount() {
    if !privileged("btrfs_nested_subvolumes_and_remount") {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let _guard = Unmount(t.path().join("storage-pools/p"));
    let d = driver("btrfs", t.path(), &[("size", "1GiB")]);
    d.create_pool().await.expect("pool");
    let c = Volume::new(VolumeType::Container, "c1");
    d.create_volume(&c).await.expect("volume");
    // A container that made subvolumes of its own (as systemd or docker inside do).
    let inner = d.volume_path(&c).join("var/lib/machines");
    std::fs::create_dir_all(inner.parent().expect("parent")).expect("mkdir");
    let st = std::process::Command::new("btrfs")
        .args(["subvolume", "create"])
        .arg(&inner)
        .status()
        .expect("btrfs");
    assert!(st.success());
    let st = std::process::Command::new("btrfs")
        .args(["subvolume", "create"])
        .arg(inner.join("deeper"))
        .status()
        .expect("btrfs");
    assert!(st.success());
    d.create_snapshot(&c, "s0").await.expect("snapshot");
    // After an unmount (a reboot), mount_pool brings the pool back with its data.
    std::fs::write(d.volume_path(&c).join("kept"), "yes").expect("write");
    let st = std::process::Command::new("umount")
        .arg(t.path().join("storage-pools/p"))
        .status()
        .expect("umount");
    assert!(st.success());
    assert!(!d.volume_path(&c).join("kept").exists());
    d.mount_pool().await.expect("remount");
    assert_eq!(read(&d.volume_path(&c).join("kept")), "yes");
    d.delete_volume(&c)
        .await
        .expect("delete with nested subvolumes");
    assert!(!d.volume_path(&c).exists());
    d.delete_pool().await.expect("delete pool");
}

#[tokio::test]
async fn btrfs_directory_source_must_be_btrfs() {
    if !privileged("btrfs_directory_source_must_be_btrfs") {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let plain = t.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let d = driver(
        "btrfs",
        t.path(),
        &[("source", plain.to_str().expect("path"))],
    );
    let e = d.create_pool().await.expect_err("not btrfs");
    assert!(e.message().contains("not on a btrfs filesystem"), "{e}");
}

/// Destroys a test's zpool, also when the test failed.
struct Destroy(String);

impl Drop for Destroy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("zpool")
            .args(["destroy", "-f", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Whether a ZFS daemon answers (`tests/run-tests.sh` starts zfs-fuse when none does).
fn zfs_available(test: &str) -> bool {
    let ok = std::process::Command::new("zpool")
        .arg("list")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED {test}: no ZFS: `zpool list` fails (start zfs-fuse, as tests/run-tests.sh does)"
        );
    }
    ok
}

#[tokio::test]
async fn zfs_driver_on_a_loop_file() {
    if !privileged("zfs_driver_on_a_loop_file") || !zfs_available("zfs_driver_on_a_loop_file") {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let zpool = format!("incustest{}", std::process::id());
    let _guard = Destroy(zpool.clone());
    let d = driver(
        "zfs",
        t.path(),
        &[("size", "1GiB"), ("zfs.pool_name", &zpool)],
    );
    suite(d.as_ref(), true, true).await;
    assert!(!t.path().join("disks/p.img").exists(), "loop file removed");
    let pools = std::process::Command::new("zpool")
        .args(["list", "-H", "-o", "name"])
        .output()
        .expect("zpool list");
    assert!(
        !String::from_utf8_lossy(&pools.stdout).contains(&zpool),
        "zpool destroyed"
    );
}

#[tokio::test]
async fn zfs_existing_dataset_and_reimport() {
    if !privileged("zfs_existing_dataset_and_reimport")
        || !zfs_available("zfs_existing_dataset_and_reimport")
    {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let zpool = format!("incusds{}", std::process::id());
    // A zpool of the user's, with the pool in a dataset of it.
    let img = t.path().join("user.img");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(512 << 20))
        .expect("image");
    let zp = |args: &[&str]| {
        let st = std::process::Command::new("zpool")
            .args(args)
            .status()
            .expect("zpool");
        assert!(st.success(), "zpool {args:?}");
    };
    zp(&["create", "-m", "none", &zpool, img.to_str().expect("path")]);
    let _guard = Destroy(zpool.clone());
    let source = format!("{zpool}/incus");
    let d = driver("zfs", t.path(), &[("source", &source)]);
    d.create_pool().await.expect("pool in a dataset");
    let c = Volume::new(VolumeType::Custom, "default_v1");
    d.create_volume(&c).await.expect("volume");
    std::fs::write(d.volume_path(&c).join("kept"), "yes").expect("write");
    // A second pool on the same dataset is refused: it is not empty.
    let t2 = tempfile::tempdir().expect("tempdir");
    let d2 = driver("zfs", t2.path(), &[("source", &source)]);
    let e = d2.create_pool().await.expect_err("not empty");
    assert!(e.message().contains("not empty"), "{e}");
    // After an export and import (a reboot), mount_pool brings the volumes back.
    zp(&["export", &zpool]);
    assert!(!d.volume_path(&c).join("kept").exists());
    // The zpool of a loop file is found in the file's directory; a user's zpool by name.
    zp(&["import", "-d", t.path().to_str().expect("path"), &zpool]);
    d.mount_pool().await.expect("remount");
    assert_eq!(read(&d.volume_path(&c).join("kept")), "yes");
    d.delete_volume(&c).await.expect("delete");
    d.delete_pool().await.expect("delete pool");
    // The user's zpool and dataset stay.
    let st = std::process::Command::new("zfs")
        .args(["list", &source])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("zfs");
    assert!(st.success(), "the source dataset is kept");
}
