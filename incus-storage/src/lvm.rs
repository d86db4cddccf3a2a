//! The `lvm` driver, through the `lvm2` command line as Incus drives it: a logical volume per
//! volume, holding a filesystem (`block.filesystem`: ext4 by default, xfs or btrfs) mounted at
//! the path the `dir` driver uses.
//!
//! - Pool storage: a sparse loop file `$INCUS_DIR/disks/<pool>.img` of `size` (default 5GiB)
//!   attached with `losetup` and made a physical volume of a new volume group `lvm.vg_name`
//!   (default: the pool's name); or `source=/dev/...`, a block device for a new volume group;
//!   or `source=<vg>`, an existing volume group, used in place.
//! - Thin provisioning by default (`lvm.use_thinpool=true`): a thin pool `lvm.thinpool_name`
//!   (default `IncusThinPool`) takes all the space; instances are thin snapshots of the image
//!   volume, snapshots are read-only thin snapshots, copies are thin snapshots too (thin
//!   snapshots do not depend on their origin). Thick pools (`lvm.use_thinpool=false`) copy
//!   trees and take snapshots of the origin's size.
//! - Names as Incus gives them: `containers_<name>`, `images_<fingerprint>`,
//!   `custom_<project>_<name>`, `-` doubled in names, a snapshot `<volume>-<snapshot>`.
//! - Every volume has a size: new ones get `volume.size` (default 10GiB; thin volumes take
//!   space only as it is written). `size` grows a volume (`lvextend` and the filesystem's own
//!   grow); shrinking is refused.
//! - Every command goes through a [`Runner`], so the driver's logic is tested against recorded
//!   transcripts where device-mapper is missing (as on the machines this is built on).

use crate::command::{Runner, System};
use crate::layout::{self, LAYOUT, is_mounted};
use async_trait::async_trait;
use incus_core::api::ConfigMap;
use incus_core::drivers::{
    IdShift, StorageDriver, StorageDriverInfo, StoragePoolSpec, Volume, VolumeType,
};
use incus_core::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The loop file size when `size` is not given.
const DEFAULT_SIZE: &str = "5GiB";
/// The size of a new volume when `volume.size` is not set (Incus's default block size).
const DEFAULT_VOLUME_SIZE: &str = "10GiB";
/// The thin pool's name when `lvm.thinpool_name` is not set.
const DEFAULT_THINPOOL: &str = "IncusThinPool";

/// Where the pool's volume group comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Backing {
    /// A loop file the driver creates.
    LoopFile(PathBuf),
    /// A block device for a new volume group.
    Device(PathBuf),
    /// An existing volume group.
    VolumeGroup,
}

/// An `lvm` storage pool.
pub struct LvmDriver {
    spec: StoragePoolSpec,
    backing: Backing,
    vg: String,
    thinpool: Option<String>,
    filesystem: String,
    mount_options: String,
    volume_size: u64,
    runner: Arc<dyn Runner>,
}

/// `-` doubled, as Incus escapes volume names in LV names (so `-` can separate snapshots).
fn escape(name: &str) -> String {
    name.replace('-', "--")
}

/// `true` for a valid LVM name (volume groups, thin pools).
fn valid_lvm_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c))
}

impl LvmDriver {
    /// A driver for the pool `spec` running the real `lvm2` commands; checks the config.
    pub fn new(spec: StoragePoolSpec) -> Result<Self> {
        Self::with_runner(spec, Arc::new(System))
    }

    /// A driver running its commands through `runner` (a transcript in tests).
    pub fn with_runner(spec: StoragePoolSpec, runner: Arc<dyn Runner>) -> Result<Self> {
        let get = |k: &str| spec.config.get(k).filter(|v| !v.is_empty()).cloned();
        let (backing, vg) = match get("source") {
            None => {
                // $INCUS_DIR/storage-pools/<pool> -> $INCUS_DIR/disks/<pool>.img
                let file = layout::loop_file(&spec)?;
                let vg = get("lvm.vg_name").unwrap_or_else(|| spec.name.clone());
                (Backing::LoopFile(file), vg)
            }
            Some(s) if s.starts_with('/') => {
                let vg = get("lvm.vg_name").unwrap_or_else(|| spec.name.clone());
                (Backing::Device(s.into()), vg)
            }
            Some(s) => (Backing::VolumeGroup, s),
        };
        let thin = get("lvm.use_thinpool")
            .is_none_or(|v| incus_core::config::parse_bool(&v).unwrap_or(true));
        let thinpool = thin.then(|| get("lvm.thinpool_name").unwrap_or(DEFAULT_THINPOOL.into()));
        let filesystem = get("block.filesystem").unwrap_or_else(|| "ext4".into());
        let mount_options = get("block.mount_options").unwrap_or_else(|| "discard".into());
        let volume_size = incus_core::config::parse_size(
            &get("volume.size").unwrap_or_else(|| DEFAULT_VOLUME_SIZE.into()),
        )
        .map_err(|e| Error::invalid(format!("Pool {:?}: volume.size: {e}", spec.name)))?;
        let d = LvmDriver {
            spec,
            backing,
            vg,
            thinpool,
            filesystem,
            mount_options,
            volume_size,
            runner,
        };
        d.validate_pool_config(&d.spec.config)?;
        Ok(d)
    }

    async fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.runner.run(program, &args).await
    }

    /// The LV name of a volume.
    fn lv(&self, vol: &Volume) -> String {
        format!("{}_{}", vol.kind.dir_name(), escape(&vol.name))
    }

    /// The LV name of a snapshot.
    fn snap_lv(&self, vol: &Volume, snapshot: &str) -> String {
        format!("{}-{}", self.lv(vol), escape(snapshot))
    }

    /// `vg/lv`.
    fn full(&self, lv: &str) -> String {
        format!("{}/{lv}", self.vg)
    }

    fn device(&self, lv: &str) -> String {
        format!("/dev/{}/{lv}", self.vg)
    }

    fn snapshots_dir(&self, vol: &Volume) -> PathBuf {
        self.spec
            .mount_root
            .join(format!("{}-snapshots", vol.kind.dir_name()))
            .join(&vol.name)
    }

    /// Names of the volume group's LVs.
    async fn lvs(&self) -> Result<Vec<String>> {
        let out = self
            .run("lvs", &["--noheadings", "-o", "lv_name", &self.vg])
            .await?;
        Ok(out
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Size in bytes of an LV.
    async fn lv_size(&self, lv: &str) -> Result<u64> {
        let out = self
            .run(
                "lvs",
                &[
                    "--noheadings",
                    "--units",
                    "b",
                    "--nosuffix",
                    "-o",
                    "lv_size",
                    &self.full(lv),
                ],
            )
            .await?;
        out.trim()
            .parse()
            .map_err(|_| Error::internal(format!("lvs lv_size: {out:?}")))
    }

    /// The LVs (of `all`) holding snapshots of `vol`, by snapshot name.
    fn snapshot_lvs(&self, vol: &Volume, all: &[String]) -> Vec<(String, String)> {
        let prefix = format!("{}-", self.lv(vol));
        all.iter()
            .filter_map(|lv| {
                let rest = lv.strip_prefix(&prefix)?;
                // A lone `-` separates; `--` is an escaped `-` of the volume's own name.
                (!rest.starts_with('-')).then(|| (rest.replace("--", "-"), lv.clone()))
            })
            .collect()
    }

    /// Mount options of a volume; a snapshot (or a clone of one) read-only without replaying
    /// the journal, and xfs clones without the UUID check.
    fn options(&self, readonly: bool) -> String {
        let mut opts = self.mount_options.clone();
        if readonly {
            opts = format!("ro,{opts}");
            if self.filesystem == "ext4" {
                opts.push_str(",noload");
            }
        }
        if self.filesystem == "xfs" {
            opts.push_str(",nouuid");
        }
        opts
    }

    async fn mount_lv(&self, lv: &str, path: &Path, readonly: bool) -> Result<()> {
        if is_mounted(path) {
            return Ok(());
        }
        tokio::fs::create_dir_all(path)
            .await
            .map_err(|e| Error::io(path.display(), e))?;
        let (dev, opts, p) = (
            self.device(lv),
            self.options(readonly),
            path.to_string_lossy(),
        );
        self.run("mount", &["-t", &self.filesystem, "-o", &opts, &dev, &p])
            .await?;
        Ok(())
    }

    async fn unmount(&self, path: &Path) -> Result<()> {
        if is_mounted(path) {
            self.run("umount", &[&path.to_string_lossy()]).await?;
        }
        Ok(())
    }

    /// A new LV of `bytes` holding a new filesystem, mounted at `path`.
    async fn create_lv(&self, lv: &str, bytes: u64, path: &Path) -> Result<()> {
        let size = format!("{bytes}b");
        match &self.thinpool {
            Some(pool) => {
                let pool = self.full(pool);
                self.run(
                    "lvcreate",
                    &[
                        "-Wy",
                        "--yes",
                        "--thin",
                        "-n",
                        lv,
                        "--virtualsize",
                        &size,
                        &pool,
                    ],
                )
                .await?
            }
            None => {
                self.run(
                    "lvcreate",
                    &["-Wy", "--yes", "-n", lv, "-L", &size, &self.vg],
                )
                .await?
            }
        };
        let dev = self.device(lv);
        let made = match self.filesystem.as_str() {
            "ext4" => {
                self.run("mkfs.ext4", &["-q", "-E", "nodiscard", &dev])
                    .await
            }
            "xfs" => self.run("mkfs.xfs", &["-q", &dev]).await,
            _ => self.run("mkfs.btrfs", &["-q", &dev]).await,
        };
        if let Err(e) = made.and(Ok(())) {
            let _ = self.run("lvremove", &["-f", &self.full(lv)]).await;
            return Err(e);
        }
        if let Err(e) = self.mount_lv(lv, path, false).await {
            let _ = self.run("lvremove", &["-f", &self.full(lv)]).await;
            return Err(e);
        }
        Ok(())
    }

    /// A thin snapshot `to` of `from`, activated; read-only when `readonly`. The filesystem of
    /// a writable copy gets a new UUID where two equal ones cannot be mounted together.
    async fn thin_snapshot(&self, from: &str, to: &str, readonly: bool) -> Result<()> {
        let perm = if readonly { "r" } else { "rw" };
        self.run("lvcreate", &["-s", "-p", perm, "-n", to, &self.full(from)])
            .await?;
        self.run("lvchange", &["-ay", "-K", &self.full(to)]).await?;
        if !readonly {
            let dev = self.device(to);
            match self.filesystem.as_str() {
                "xfs" => {
                    self.run("xfs_admin", &["-U", "generate", &dev]).await?;
                }
                "btrfs" => {
                    self.run("btrfstune", &["-f", "-u", &dev]).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Copies the tree at `from` into the mounted volume at `to` (thick pools).
    async fn copy_into(&self, from: PathBuf, to: PathBuf, shift: Option<IdShift>) -> Result<()> {
        tokio::task::spawn_blocking(move || incus_core::tree::replace_contents(&from, &to, shift))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
    }

    /// The loop device attached to the pool's file, attaching it when none is.
    async fn loop_device(&self, file: &Path) -> Result<String> {
        let f = file.to_string_lossy();
        let out = self.run("losetup", &["-j", &f]).await?;
        if let Some(dev) = out.lines().next().and_then(|l| l.split(':').next()) {
            return Ok(dev.to_string());
        }
        Ok(self
            .run("losetup", &["--find", "--show", &f])
            .await?
            .trim()
            .to_string())
    }
}

#[async_trait]
impl StorageDriver for LvmDriver {
    fn info(&self) -> StorageDriverInfo {
        StorageDriverInfo {
            name: "lvm",
            version: String::new(),
            remote: false,
            optimized_images: self.thinpool.is_some(),
            quotas: true,
            volume_types: vec![VolumeType::Container, VolumeType::Image, VolumeType::Custom],
        }
    }

    fn validate_pool_config(&self, config: &ConfigMap) -> Result<()> {
        let pool = &self.spec.name;
        for (k, v) in config {
            match k.as_str() {
                "source" => {
                    if !v.is_empty() && !v.starts_with("/dev/") && !valid_lvm_name(v) {
                        return Err(Error::invalid(format!(
                            "Pool {pool:?}: \"source\" must be a block device (/dev/...) or \
                             the name of an existing volume group"
                        )));
                    }
                }
                "lvm.vg_name" | "lvm.thinpool_name" => {
                    if !v.is_empty() && !valid_lvm_name(v) {
                        return Err(Error::invalid(format!("Pool {pool:?}: invalid {k} {v:?}")));
                    }
                }
                "lvm.use_thinpool" => {
                    incus_core::config::parse_bool(v)
                        .map_err(|e| Error::invalid(format!("Pool {pool:?}: {k}: {e}")))?;
                }
                "block.filesystem" => {
                    if !["ext4", "xfs", "btrfs", ""].contains(&v.as_str()) {
                        return Err(Error::invalid(format!(
                            "Pool {pool:?}: block.filesystem must be ext4, xfs or btrfs"
                        )));
                    }
                }
                "block.mount_options" => {}
                _ => layout::shared_key(
                    "lvm",
                    pool,
                    k,
                    v,
                    Some(matches!(self.backing, Backing::LoopFile(_))),
                )?,
            }
        }
        Ok(())
    }

    async fn create_pool(&self) -> Result<()> {
        let pv = match &self.backing {
            Backing::LoopFile(file) => {
                layout::create_loop_file(file, &self.spec.config, DEFAULT_SIZE)?;
                match self.loop_device(file).await {
                    Ok(d) => Some(d),
                    Err(e) => {
                        let _ = std::fs::remove_file(file);
                        return Err(e);
                    }
                }
            }
            Backing::Device(dev) => Some(dev.to_string_lossy().into_owned()),
            Backing::VolumeGroup => None,
        };
        match &pv {
            Some(pv) => {
                let made = async {
                    self.run("pvcreate", &[pv]).await?;
                    self.run("vgcreate", &[&self.vg, pv]).await
                }
                .await;
                if let Err(e) = made {
                    if let Backing::LoopFile(file) = &self.backing {
                        let _ = self.run("losetup", &["-d", pv]).await;
                        let _ = std::fs::remove_file(file);
                    }
                    return Err(e);
                }
            }
            None => {
                self.run("vgs", &["--noheadings", "-o", "vg_name", &self.vg])
                    .await
                    .map_err(|e| {
                        Error::invalid(format!(
                            "Pool {:?}: volume group {:?} not found: {e}",
                            self.spec.name, self.vg
                        ))
                    })?;
            }
        }
        if let Some(pool) = &self.thinpool
            && !self.lvs().await?.contains(pool)
        {
            let made = self
                .run(
                    "lvcreate",
                    &["--yes", "-l", "100%FREE", "--thinpool", &self.full(pool)],
                )
                .await;
            if let (Err(e), Some(pv)) = (&made, &pv) {
                // The volume group made here goes again (the error says why, typically no
                // device-mapper in the kernel).
                let _ = self.run("vgremove", &["-f", &self.vg]).await;
                let _ = self.run("pvremove", &[pv]).await;
                if let Backing::LoopFile(file) = &self.backing {
                    let _ = self.run("losetup", &["-d", pv]).await;
                    let _ = std::fs::remove_file(file);
                }
                return Err(e.clone());
            }
            made?;
        }
        for ty in LAYOUT {
            let d = self.spec.mount_root.join(ty);
            tokio::fs::create_dir_all(&d)
                .await
                .map_err(|e| Error::io(d.display(), e))?;
        }
        Ok(())
    }

    async fn delete_pool(&self) -> Result<()> {
        for ty in LAYOUT {
            let d = self.spec.mount_root.join(ty);
            if let Ok(entries) = std::fs::read_dir(&d) {
                for e in entries.flatten() {
                    self.unmount(&e.path()).await?;
                    if ty.ends_with("-snapshots")
                        && let Ok(snaps) = std::fs::read_dir(e.path())
                    {
                        for s in snaps.flatten() {
                            self.unmount(&s.path()).await?;
                        }
                    }
                }
            }
        }
        match &self.backing {
            Backing::VolumeGroup => {
                // Only what the driver made goes; the user's volume group and thin pool stay.
                let prefixes: Vec<String> = LAYOUT
                    .iter()
                    .filter(|t| !t.ends_with("-snapshots"))
                    .map(|t| format!("{t}_"))
                    .collect();
                for lv in self.lvs().await? {
                    if prefixes.iter().any(|p| lv.starts_with(p)) {
                        self.run("lvremove", &["-f", &self.full(&lv)]).await?;
                    }
                }
            }
            Backing::Device(dev) => {
                self.run("vgremove", &["-f", &self.vg]).await?;
                self.run("pvremove", &[&dev.to_string_lossy()]).await?;
            }
            Backing::LoopFile(file) => {
                let dev = self.loop_device(file).await?;
                self.run("vgremove", &["-f", &self.vg]).await?;
                self.run("pvremove", &[&dev]).await?;
                self.run("losetup", &["-d", &dev]).await?;
                match std::fs::remove_file(file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(file.display(), e)),
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.spec.mount_root);
        Ok(())
    }

    async fn mount_pool(&self) -> Result<()> {
        if let Backing::LoopFile(file) = &self.backing {
            self.loop_device(file).await?;
        }
        self.run("vgchange", &["-ay", &self.vg]).await?;
        // Every volume back at its path (snapshots are mounted on demand).
        for lv in self.lvs().await? {
            let Some((kind, rest)) = lv.split_once('_') else {
                continue;
            };
            let kind = match kind {
                "containers" => VolumeType::Container,
                "images" => VolumeType::Image,
                "custom" => VolumeType::Custom,
                _ => continue,
            };
            // A snapshot has a lone `-`: drop the doubled ones and look.
            if rest.replace("--", "").contains('-') {
                continue;
            }
            let vol = Volume::new(kind, rest.replace("--", "-"));
            self.mount_lv(&lv, &self.volume_path(&vol), false).await?;
        }
        Ok(())
    }

    fn volume_path(&self, vol: &Volume) -> PathBuf {
        self.spec
            .mount_root
            .join(vol.kind.dir_name())
            .join(&vol.name)
    }

    fn snapshot_path(&self, vol: &Volume, snapshot: &str) -> PathBuf {
        self.snapshots_dir(vol).join(snapshot)
    }

    async fn has_volume(&self, vol: &Volume) -> Result<bool> {
        Ok(self.lvs().await?.contains(&self.lv(vol)))
    }

    async fn create_volume(&self, vol: &Volume) -> Result<()> {
        let lv = self.lv(vol);
        if self.lvs().await?.contains(&lv) {
            return Err(Error::already_exists(format!("Volume {lv} exists")));
        }
        self.create_lv(&lv, self.volume_size, &self.volume_path(vol))
            .await
    }

    async fn create_volume_from_copy(
        &self,
        vol: &Volume,
        src: &Volume,
        shift: Option<IdShift>,
    ) -> Result<()> {
        let (from, to) = (self.lv(src), self.lv(vol));
        let all = self.lvs().await?;
        if all.contains(&to) {
            return Err(Error::already_exists(format!("Volume {to} exists")));
        }
        if !all.contains(&from) {
            return Err(Error::not_found(format!("Volume {from} not found")));
        }
        let path = self.volume_path(vol);
        if self.thinpool.is_some() {
            self.thin_snapshot(&from, &to, false).await?;
            if let Err(e) = self.mount_lv(&to, &path, false).await {
                let _ = self.run("lvremove", &["-f", &self.full(&to)]).await;
                return Err(e);
            }
            if let Some(shift) = shift {
                let target = path.clone();
                let r =
                    tokio::task::spawn_blocking(move || crate::copy::shift_tree(&target, shift))
                        .await
                        .map_err(|e| Error::internal(e.to_string()))
                        .and_then(|r| r);
                if let Err(e) = r {
                    let _ = self.delete_volume(vol).await;
                    return Err(e);
                }
            }
            return Ok(());
        }
        let size = self.lv_size(&from).await?.max(self.volume_size);
        self.create_lv(&to, size, &path).await?;
        if let Err(e) = self.copy_into(self.volume_path(src), path, shift).await {
            let _ = self.delete_volume(vol).await;
            return Err(e);
        }
        Ok(())
    }

    async fn copy_volume(&self, vol: &Volume, src: &Volume, snapshots: &[String]) -> Result<()> {
        if self.thinpool.is_some() {
            // Thin snapshots of each snapshot and of the volume: independent of the source.
            self.create_volume_from_copy(vol, src, None).await?;
            for s in snapshots {
                let (from, to) = (self.snap_lv(src, s), self.snap_lv(vol, s));
                self.run("lvcreate", &["-s", "-p", "r", "-n", &to, &self.full(&from)])
                    .await?;
            }
            return Ok(());
        }
        // Thick: each snapshot's content replayed into the new volume and snapshotted, oldest
        // first, then the current content.
        let size = self.lv_size(&self.lv(src)).await?.max(self.volume_size);
        let path = self.volume_path(vol);
        self.create_lv(&self.lv(vol), size, &path).await?;
        for s in snapshots {
            let from = self.mount_snapshot(src, s).await?;
            let r = self.copy_into(from, path.clone(), None).await;
            self.unmount_snapshot(src, s).await?;
            r?;
            self.create_snapshot(vol, s).await?;
        }
        self.copy_into(self.volume_path(src), path, None).await
    }

    async fn delete_volume(&self, vol: &Volume) -> Result<()> {
        let lv = self.lv(vol);
        let all = self.lvs().await?;
        for (snap, slv) in self.snapshot_lvs(vol, &all) {
            self.unmount(&self.snapshot_path(vol, &snap)).await?;
            self.run("lvremove", &["-f", &self.full(&slv)]).await?;
        }
        let path = self.volume_path(vol);
        self.unmount(&path).await?;
        if all.contains(&lv) {
            self.run("lvremove", &["-f", &self.full(&lv)]).await?;
        }
        let _ = std::fs::remove_dir(&path);
        let _ = std::fs::remove_dir_all(self.snapshots_dir(vol));
        Ok(())
    }

    async fn rename_volume(&self, vol: &Volume, new_name: &str) -> Result<()> {
        let new = Volume::new(vol.kind, new_name);
        let (from, to) = (self.lv(vol), self.lv(&new));
        let all = self.lvs().await?;
        if all.contains(&to) {
            return Err(Error::already_exists(format!("Volume {to} exists")));
        }
        let snaps = self.snapshot_lvs(vol, &all);
        for (snap, _) in &snaps {
            self.unmount(&self.snapshot_path(vol, snap)).await?;
        }
        self.unmount(&self.volume_path(vol)).await?;
        self.run("lvrename", &[&self.vg, &from, &to]).await?;
        for (snap, slv) in &snaps {
            self.run("lvrename", &[&self.vg, slv, &self.snap_lv(&new, snap)])
                .await?;
        }
        let _ = std::fs::remove_dir(self.volume_path(vol));
        let _ = std::fs::remove_dir_all(self.snapshots_dir(vol));
        self.mount_lv(&to, &self.volume_path(&new), false).await
    }

    async fn create_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let (lv, slv) = (self.lv(vol), self.snap_lv(vol, snapshot));
        if self.lvs().await?.contains(&slv) {
            return Err(Error::already_exists(format!("Snapshot {slv} exists")));
        }
        if self.thinpool.is_some() {
            self.run("lvcreate", &["-s", "-p", "r", "-n", &slv, &self.full(&lv)])
                .await?;
        } else {
            let size = format!("{}b", self.lv_size(&lv).await?);
            self.run(
                "lvcreate",
                &["-s", "-p", "r", "-n", &slv, "-L", &size, &self.full(&lv)],
            )
            .await?;
        }
        Ok(())
    }

    async fn delete_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let slv = self.snap_lv(vol, snapshot);
        self.unmount(&self.snapshot_path(vol, snapshot)).await?;
        if self.lvs().await?.contains(&slv) {
            self.run("lvremove", &["-f", &self.full(&slv)]).await?;
        }
        let _ = std::fs::remove_dir(self.snapshot_path(vol, snapshot));
        Ok(())
    }

    async fn rename_snapshot(&self, vol: &Volume, snapshot: &str, new_name: &str) -> Result<()> {
        let (from, to) = (self.snap_lv(vol, snapshot), self.snap_lv(vol, new_name));
        if self.lvs().await?.contains(&to) {
            return Err(Error::already_exists(format!("Snapshot {to} exists")));
        }
        self.unmount(&self.snapshot_path(vol, snapshot)).await?;
        self.run("lvrename", &[&self.vg, &from, &to]).await?;
        Ok(())
    }

    async fn mount_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<PathBuf> {
        let slv = self.snap_lv(vol, snapshot);
        if !self.lvs().await?.contains(&slv) {
            return Err(Error::not_found(format!("Snapshot {slv} not found")));
        }
        let path = self.snapshot_path(vol, snapshot);
        self.run("lvchange", &["-ay", "-K", &self.full(&slv)])
            .await?;
        self.mount_lv(&slv, &path, true).await?;
        Ok(path)
    }

    async fn unmount_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let path = self.snapshot_path(vol, snapshot);
        self.unmount(&path).await?;
        let _ = std::fs::remove_dir(&path);
        Ok(())
    }

    async fn restore_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let (lv, slv) = (self.lv(vol), self.snap_lv(vol, snapshot));
        if !self.lvs().await?.contains(&slv) {
            return Err(Error::not_found(format!("Snapshot {slv} not found")));
        }
        let path = self.volume_path(vol);
        if self.thinpool.is_none() {
            let from = self.mount_snapshot(vol, snapshot).await?;
            let r = self.copy_into(from, path, None).await;
            self.unmount_snapshot(vol, snapshot).await?;
            return r;
        }
        // A writable thin snapshot of the snapshot takes the volume's place.
        let tmp = format!("{lv}.restore");
        self.thin_snapshot(&slv, &tmp, false).await?;
        self.unmount(&path).await?;
        self.run("lvremove", &["-f", &self.full(&lv)]).await?;
        self.run("lvrename", &[&self.vg, &tmp, &lv]).await?;
        self.mount_lv(&lv, &path, false).await
    }

    async fn volume_usage(&self, vol: &Volume) -> Result<u64> {
        let p = self.volume_path(vol);
        let st = nix::sys::statvfs::statvfs(&p)
            .map_err(|e| Error::internal(format!("{}: {e}", p.display())))?;
        Ok((st.blocks() - st.blocks_free()) * st.fragment_size())
    }

    async fn set_volume_quota(&self, vol: &Volume, bytes: u64) -> Result<()> {
        let lv = self.lv(vol);
        if bytes == 0 {
            return Err(Error::invalid(
                "LVM volumes always have a size: it can be grown, not removed",
            ));
        }
        let current = self.lv_size(&lv).await?;
        if bytes < current {
            return Err(Error::invalid(format!(
                "Shrinking LVM volume {lv:?} from {current} to {bytes} bytes is not supported"
            )));
        }
        if bytes == current {
            return Ok(());
        }
        let size = format!("{bytes}b");
        self.run("lvextend", &["-L", &size, &self.full(&lv)])
            .await?;
        let (dev, path) = (self.device(&lv), self.volume_path(vol));
        let p = path.to_string_lossy();
        match self.filesystem.as_str() {
            "ext4" => self.run("resize2fs", &[&dev]).await?,
            "xfs" => self.run("xfs_growfs", &[&p]).await?,
            _ => {
                self.run("btrfs", &["filesystem", "resize", "max", &p])
                    .await?
            }
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::layout::test_spec as spec;

    #[test]
    fn names_and_config() {
        let t = tempfile::tempdir().expect("tempdir");
        let t = t.path();
        let d = LvmDriver::new(spec(t, &[])).expect("defaults");
        assert_eq!(d.backing, Backing::LoopFile(t.join("disks/p.img")));
        assert_eq!(
            (d.vg.as_str(), d.thinpool.as_deref()),
            ("p", Some("IncusThinPool"))
        );
        assert_eq!(d.volume_size, 10 << 30);
        let c = Volume::new(VolumeType::Container, "web-1");
        assert_eq!(d.lv(&c), "containers_web--1");
        assert_eq!(d.snap_lv(&c, "snap-0"), "containers_web--1-snap--0");
        assert_eq!(d.device("x"), "/dev/p/x");
        let d = LvmDriver::new(spec(t, &[("source", "vg0"), ("lvm.use_thinpool", "false")]))
            .expect("existing vg, thick");
        assert_eq!(
            (d.backing.clone(), d.vg.as_str()),
            (Backing::VolumeGroup, "vg0")
        );
        assert!(d.thinpool.is_none());
        assert_eq!(d.options(true), "ro,discard,noload");
        let d = LvmDriver::new(spec(t, &[("block.filesystem", "xfs")])).expect("xfs");
        assert_eq!(d.options(false), "discard,nouuid");
        for bad in [
            &[("bogus", "1")][..],
            &[("block.filesystem", "zfs")],
            &[("lvm.use_thinpool", "maybe")],
            &[("lvm.vg_name", "a/b")],
            &[("source", "/dev/sdz"), ("size", "1GiB")],
            &[("volume.size", "huge")],
        ] {
            assert!(LvmDriver::new(spec(t, bad)).is_err(), "{bad:?} accepted");
        }
    }
}
