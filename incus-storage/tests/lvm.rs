//! The `lvm` driver. This machine's kernel has no device-mapper, so the driver's logic is
//! tested against transcripts of the `lvm2` commands it runs (`tests/transcripts/*.txt`,
//! replayed by `incus_storage::command::Transcript`); the real-device test runs the
//! scenario where the kernel has device-mapper and otherwise reports skipped.
//!
//! `lvm-thin.txt` and `lvm-thick.txt` are produced by running the scenario against
//! [`Model`], a small model of lvm2's state and answers (output texts as lvm2 2.03.16 prints
//! them; `pvcreate`, `vgcreate`, `vgs`, `vgremove`, `pvremove` and the refusals were recorded
//! on this machine), with `INCUS_RECORD_TRANSCRIPTS=1`; without it the committed files are
//! replayed and every command must match, in order.

use async_trait::async_trait;
use incus_core::drivers::{IdShift, StorageDriver, StoragePoolSpec, Volume, VolumeType};
use incus_core::error::{Error, Result};
use incus_storage::command::{Runner, Transcript};
use incus_storage::lvm::LvmDriver;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// lvm2's state as far as the driver can see it, answering as lvm2 does.
#[derive(Default)]
struct Model {
    lvs: Mutex<BTreeMap<String, u64>>,
    attached: Mutex<Option<String>>,
    log: Mutex<String>,
}

impl Model {
    fn answer(&self, program: &str, args: &[String]) -> (i32, String) {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut lvs = self.lvs.lock().expect("lvs");
        let mut attached = self.attached.lock().expect("attached");
        match (program, &a[..]) {
            ("losetup", ["-j", f]) => match attached.as_ref() {
                Some(d) => (0, format!("{d}: []: ({f})\n")),
                None => (0, String::new()),
            },
            ("losetup", ["--find", "--show", _]) => {
                *attached = Some("/dev/loop7".into());
                (0, "/dev/loop7\n".into())
            }
            ("losetup", ["-d", _]) => {
                *attached = None;
                (0, String::new())
            }
            ("pvcreate", [d]) => (
                0,
                format!("  Physical volume \"{d}\" successfully created.\n"),
            ),
            ("pvremove", [d]) => (
                0,
                format!("  Labels on physical volume \"{d}\" successfully wiped.\n"),
            ),
            ("vgcreate", [vg, _]) => (0, format!("  Volume group \"{vg}\" successfully created\n")),
            ("vgremove", ["-f", vg]) => {
                lvs.clear();
                (0, format!("  Volume group \"{vg}\" successfully removed\n"))
            }
            ("vgs", [.., vg]) => (0, format!("  {vg}\n")),
            ("lvs", ["--noheadings", "-o", "lv_name", _]) => {
                (0, lvs.keys().map(|n| format!("  {n}\n")).collect())
            }
            ("lvs", [.., "lv_size", full]) => {
                let lv = full.split_once('/').map(|(_, l)| l).unwrap_or(full);
                match lvs.get(lv) {
                    Some(s) => (0, format!("  {s}\n")),
                    None => (5, format!("  Failed to find logical volume \"{full}\"\n")),
                }
            }
            ("lvcreate", [.., "--thinpool", full]) => {
                let lv = full.split_once('/').map(|(_, l)| l).unwrap_or(full);
                lvs.insert(lv.to_string(), 1 << 30);
                (
                    0,
                    format!(
                        "  Thin pool volume with chunk size 64.00 KiB can address at most 15.81 TiB of data.\n  Logical volume \"{lv}\" created.\n"
                    ),
                )
            }
            ("lvcreate", ["-Wy", "--yes", "--thin", "-n", lv, "--virtualsize", size, _])
            | ("lvcreate", ["-Wy", "--yes", "-n", lv, "-L", size, _]) => {
                let bytes = size.trim_end_matches('b').parse().expect("size");
                lvs.insert(lv.to_string(), bytes);
                (0, format!("  Logical volume \"{lv}\" created.\n"))
            }
            ("lvcreate", ["-s", "-p", _, "-n", to, .., from]) => {
                let src = from.split_once('/').map(|(_, l)| l).unwrap_or(from);
                match lvs.get(src).copied() {
                    Some(s) => {
                        lvs.insert(to.to_string(), s);
                        (0, format!("  Logical volume \"{to}\" created.\n"))
                    }
                    None => (5, format!("  Failed to find logical volume \"{from}\"\n")),
                }
            }
            ("lvremove", ["-f", full]) => {
                let lv = full.split_once('/').map(|(_, l)| l).unwrap_or(full);
                lvs.remove(lv);
                (
                    0,
                    format!("  Logical volume \"{lv}\" successfully removed.\n"),
                )
            }
            ("lvrename", [vg, from, to]) => {
                let s = lvs.remove(*from).expect("renamed LV exists");
                lvs.insert(to.to_string(), s);
                (
                    0,
                    format!("  Renamed \"{from}\" to \"{to}\" in volume group \"{vg}\"\n"),
                )
            }
            ("lvextend", ["-L", size, full]) => {
                let lv = full.split_once('/').map(|(_, l)| l).unwrap_or(full);
                let bytes = size.trim_end_matches('b').parse().expect("size");
                lvs.insert(lv.to_string(), bytes);
                (
                    0,
                    format!("  Logical volume {full} successfully resized.\n"),
                )
            }
            // mkfs, mount, umount, lvchange, vgchange, resize2fs: quiet on success.
            _ => (0, String::new()),
        }
    }
}

#[async_trait]
impl Runner for Model {
    async fn run(&self, program: &str, args: &[String]) -> Result<String> {
        let (code, out) = self.answer(program, args);
        let mut line = format!(
            "${} {program}",
            if code == 0 {
                String::new()
            } else {
                code.to_string()
            }
        );
        for a in args {
            line.push(' ');
            line.push_str(a);
        }
        let mut log = self.log.lock().expect("log");
        log.push_str(&line);
        log.push('\n');
        log.push_str(&out);
        if code == 0 {
            Ok(out)
        } else {
            Err(Error::internal(out))
        }
    }
}

fn spec(state: &Path, config: &[(&str, &str)]) -> StoragePoolSpec {
    StoragePoolSpec {
        name: "p".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        mount_root: state.join("storage-pools/p"),
    }
}

/// The scenario: a pool, an image, an instance from it (shifted), snapshots, mount of a
/// snapshot, restore, rename, copy with snapshots, quota grow and refused shrink, deletion.
async fn scenario(d: &dyn StorageDriver) {
    d.create_pool().await.expect("create pool");
    let img = Volume::new(VolumeType::Image, "fp1");
    d.create_volume(&img).await.expect("image volume");
    assert!(d.has_volume(&img).await.expect("has"));
    let c1 = Volume::new(VolumeType::Container, "web-1");
    d.create_volume_from_copy(
        &c1,
        &img,
        Some(IdShift {
            base: 1_000_000,
            size: 65536,
        }),
    )
    .await
    .expect("instance from image");
    d.create_snapshot(&c1, "snap-0").await.expect("snapshot");
    assert!(d.create_snapshot(&c1, "snap-0").await.is_err(), "exists");
    let p = d
        .mount_snapshot(&c1, "snap-0")
        .await
        .expect("mount snapshot");
    assert!(p.ends_with("containers-snapshots/web-1/snap-0"));
    d.unmount_snapshot(&c1, "snap-0").await.expect("unmount");
    d.restore_snapshot(&c1, "snap-0").await.expect("restore");
    d.rename_snapshot(&c1, "snap-0", "s1")
        .await
        .expect("rename snapshot");
    let c2 = Volume::new(VolumeType::Container, "c2");
    d.copy_volume(&c2, &c1, &["s1".to_string()])
        .await
        .expect("copy with snapshots");
    d.rename_volume(&c2, "c3").await.expect("rename");
    let c3 = Volume::new(VolumeType::Container, "c3");
    d.set_volume_quota(&c3, 20 << 30).await.expect("grow");
    let e = d.set_volume_quota(&c3, 1 << 30).await.expect_err("shrink");
    assert!(e.message().contains("Shrinking"), "{e}");
    assert!(
        d.set_volume_quota(&c3, 0).await.is_err(),
        "no size is refused"
    );
    assert!(d.volume_usage(&c3).await.expect("usage") > 0);
    d.mount_pool().await.expect("mount pool");
    for v in [&c1, &c3, &img] {
        d.delete_volume(v).await.expect("delete");
    }
    assert!(!d.has_volume(&c1).await.expect("has"));
    d.delete_pool().await.expect("delete pool");
}

/// Replays (or, with INCUS_RECORD_TRANSCRIPTS=1, records) `name` for a pool with `config`.
async fn replay(name: &str, config: &[(&str, &str)]) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/transcripts")
        .join(name);
    // A fixed state directory, so the paths in the transcript are stable.
    let state = Path::new("/tmp/incus-lvm-transcript").join(name);
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state dir");
    if std::env::var("INCUS_RECORD_TRANSCRIPTS").as_deref() == Ok("1") {
        let model = Arc::new(Model::default());
        let d = LvmDriver::with_runner(spec(&state, config), model.clone()).expect("driver");
        scenario(&d).await;
        let header = format!(
            "# {name}: the lvm driver's commands for tests/lvm.rs's scenario, pool config {config:?}.\n# Produced from tests/lvm.rs's Model (see there); replayed by the test.\n"
        );
        let log = model.log.lock().expect("log").clone();
        std::fs::write(&file, header + &log).expect("write transcript");
    } else {
        let text = std::fs::read_to_string(&file).expect("transcript");
        let t = Arc::new(Transcript::parse(&text).expect("parse"));
        let d = LvmDriver::with_runner(spec(&state, config), t.clone()).expect("driver");
        scenario(&d).await;
        assert_eq!(t.finished(), Ok(()), "commands left unrun");
    }
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test]
async fn thin_pool_on_a_loop_file_transcript() {
    replay("lvm-thin.txt", &[("size", "2GiB"), ("volume.size", "1GiB")]).await;
}

#[tokio::test]
async fn thick_pool_on_an_existing_volume_group_transcript() {
    replay(
        "lvm-thick.txt",
        &[
            ("source", "vg0"),
            ("lvm.use_thinpool", "false"),
            ("block.filesystem", "xfs"),
            ("volume.size", "1GiB"),
        ],
    )
    .await;
}

#[tokio::test]
async fn failures_are_reported_and_cleaned_up() {
    let t = tempfile::tempdir().expect("tempdir");
    // The volume group of `source` must exist (recorded on this machine).
    let tr = Arc::new(
        Transcript::parse(
            "$5 vgs --noheadings -o vg_name nosuchvg\n  Volume group \"nosuchvg\" not found\n  Cannot process volume group nosuchvg\n",
        )
        .expect("parse"),
    );
    let d = LvmDriver::with_runner(spec(t.path(), &[("source", "nosuchvg")]), tr.clone())
        .expect("driver");
    let e = d.create_pool().await.expect_err("no such vg");
    assert!(e.message().contains("not found"), "{e}");
    assert_eq!(tr.finished(), Ok(()));
    // Without device-mapper the thin pool cannot be made (recorded on this machine): the
    // error says so.
    let tr = Arc::new(
        Transcript::parse(
            "$ vgs --noheadings -o vg_name vg0\n  vg0\n$ lvs --noheadings -o lv_name vg0\n$3 lvcreate --yes -l 100%FREE --thinpool vg0/IncusThinPool\n  /dev/mapper/control: open failed: No such device\n  Failure to communicate with kernel device-mapper driver.\n",
        )
        .expect("parse"),
    );
    let d =
        LvmDriver::with_runner(spec(t.path(), &[("source", "vg0")]), tr.clone()).expect("driver");
    let e = d.create_pool().await.expect_err("no device-mapper");
    assert!(e.message().contains("device-mapper"), "{e}");
    assert_eq!(tr.finished(), Ok(()));
    // On a loop file, the volume group made for the pool goes again with the loop device
    // and the file.
    let file = t.path().join("disks/p.img");
    let f = file.display();
    let tr = Arc::new(
        Transcript::parse(&format!(
            "$ losetup -j {f}\n$ losetup --find --show {f}\n/dev/loop7\n$ pvcreate /dev/loop7\n$ vgcreate p /dev/loop7\n$ lvs --noheadings -o lv_name p\n$3 lvcreate --yes -l 100%FREE --thinpool p/IncusThinPool\n  /dev/mapper/control: open failed: No such device\n$ vgremove -f p\n$ pvremove /dev/loop7\n$ losetup -d /dev/loop7\n"
        ))
        .expect("parse"),
    );
    let d = LvmDriver::with_runner(spec(t.path(), &[]), tr.clone()).expect("driver");
    d.create_pool().await.expect_err("no device-mapper");
    assert_eq!(tr.finished(), Ok(()));
    assert!(!file.exists(), "loop file removed");
    // A failed mkfs removes the new LV.
    let tr = Arc::new(
        Transcript::parse(
            "$ lvs --noheadings -o lv_name vg0\n  IncusThinPool\n$ lvcreate -Wy --yes --thin -n custom_default_v --virtualsize 10737418240b vg0/IncusThinPool\n$1 mkfs.ext4 -q -E nodiscard /dev/vg0/custom_default_v\n  mkfs failed\n$ lvremove -f vg0/custom_default_v\n",
        )
        .expect("parse"),
    );
    let d =
        LvmDriver::with_runner(spec(t.path(), &[("source", "vg0")]), tr.clone()).expect("driver");
    let v = Volume::new(VolumeType::Custom, "default_v");
    let e = d.create_volume(&v).await.expect_err("mkfs fails");
    assert!(e.message().contains("mkfs failed"), "{e}");
    assert_eq!(tr.finished(), Ok(()));
}

/// The conformance scenario on real LVM, where the kernel has device-mapper.
#[tokio::test]
async fn real_lvm_on_a_loop_file() {
    // /dev/mapper/control may exist without the kernel driver (lvm2's packaging makes the
    // node): the kernel's own list of misc devices tells.
    let dm = std::fs::read_to_string("/proc/misc").is_ok_and(|m| m.contains("device-mapper"));
    if !dm {
        eprintln!(
            "SKIPPED real_lvm_on_a_loop_file: no device-mapper in this kernel (/proc/misc); the transcript tests cover the driver's logic"
        );
        return;
    }
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED real_lvm_on_a_loop_file: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let vg = format!("incustest{}", std::process::id());
    let d = LvmDriver::new(spec(
        t.path(),
        &[
            ("size", "2GiB"),
            ("lvm.vg_name", &vg),
            ("volume.size", "256MiB"),
        ],
    ))
    .expect("driver");
    scenario(&d).await;
}
