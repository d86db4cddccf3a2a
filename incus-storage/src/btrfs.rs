//! The `btrfs` driver, through the `btrfs` command line as Incus drives it: a subvolume per
//! volume under the pool's mount, laid out as the `dir` driver lays out directories
//! (`containers/<name>`, `containers-snapshots/<name>/<snap>`, `images/<fp>`, `custom/...`).
//!
//! - Pool storage: a sparse loop file `$INCUS_DIR/disks/<pool>.img` of `size` (default 5GiB)
//!   formatted and mounted at `$INCUS_DIR/storage-pools/<pool>`; or `source=` a block device
//!   (formatted when empty; a device holding a filesystem is refused); or `source=` a directory
//!   that is already on btrfs (used in place).
//! - Images are unpacked once into an image subvolume; instances are writable snapshots of it
//!   (shifted in place for unprivileged containers), so a launch copies no data.
//! - Snapshots are read-only subvolume snapshots; restore swaps in a writable snapshot of one.
//! - Quotas through qgroups (`btrfs quota enable`, `btrfs qgroup limit`).
//! - Subvolumes that a container created inside its volume are deleted with it.

use crate::copy::{disk_usage, shift_tree};
use crate::layout::{self, LAYOUT, is_mounted};
use async_trait::async_trait;
use incus_core::api::ConfigMap;
use incus_core::drivers::{
    IdShift, StorageDriver, StorageDriverInfo, StoragePoolSpec, Volume, VolumeType,
};
use incus_core::error::{Error, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The loop file size when `size` is not given.
const DEFAULT_SIZE: &str = "5GiB";

/// Where the pool's filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Backing {
    /// A loop file the driver creates.
    LoopFile(PathBuf),
    /// An existing block device.
    Device(PathBuf),
    /// A directory already on btrfs.
    Directory(PathBuf),
}

/// A `btrfs` storage pool.
pub struct BtrfsDriver {
    spec: StoragePoolSpec,
    backing: Backing,
}

fn io(what: &Path, e: std::io::Error) -> Error {
    Error::io(what.display(), e)
}

/// Runs a storage command; its stderr becomes the error.
async fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::internal(format!("Failed to run {program} (btrfs-progs): {e}")))?;
    if !out.status.success() {
        let cmd: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        return Err(Error::internal(format!(
            "{program} {}: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `btrfs ARGS... PATHS...`
async fn btrfs(args: &[&str], paths: &[&Path]) -> Result<String> {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend(paths.iter().map(|p| p.as_os_str()));
    run("btrfs", &all).await
}

/// Whether `path` is the root of a subvolume (inode 256 on btrfs).
fn is_subvolume(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.ino() == 256)
}

/// Subvolumes nested below `path` (not `path` itself), deepest first.
fn nested_subvolumes(path: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in entries.flatten() {
            let child = e.path();
            // symlink_metadata: symlinks are never followed.
            if let Ok(md) = child.symlink_metadata()
                && md.is_dir()
            {
                if md.ino() == 256 {
                    found.push(child.clone());
                }
                stack.push(child);
            }
        }
    }
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Deletes the subvolume at `path` and every subvolume nested in it. Missing is not an error.
async fn delete_subvolume(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    if !is_subvolume(path) {
        return tokio::fs::remove_dir_all(path)
            .await
            .map_err(|e| io(path, e));
    }
    let p = path.to_path_buf();
    let nested = tokio::task::spawn_blocking(move || nested_subvolumes(&p))
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
    for n in nested.iter().chain(std::iter::once(&path.to_path_buf())) {
        // A read-only snapshot must become writable before what it holds can be removed.
        let _ = btrfs(
            &["property", "set", "-ts"],
            &[n, Path::new("ro"), Path::new("false")],
        )
        .await;
        btrfs(&["subvolume", "delete"], &[n]).await?;
    }
    Ok(())
}

impl BtrfsDriver {
    /// A driver for the pool `spec`; checks the config.
    pub fn new(spec: StoragePoolSpec) -> Result<Self> {
        let source = spec.config.get("source").filter(|s| !s.is_empty()).cloned();
        let backing = match source {
            None => {
                // $INCUS_DIR/storage-pools/<pool> -> $INCUS_DIR/disks/<pool>.img
                let file = layout::loop_file(&spec)?;
                Backing::LoopFile(file)
            }
            Some(s) if s.starts_with("/dev/") => Backing::Device(s.into()),
            Some(s) => Backing::Directory(s.into()),
        };
        let d = BtrfsDriver { spec, backing };
        d.validate_pool_config(&d.spec.config)?;
        Ok(d)
    }

    /// Where the volumes live.
    fn root(&self) -> &Path {
        match &self.backing {
            Backing::Directory(d) => d,
            _ => &self.spec.mount_root,
        }
    }

    fn snapshots_dir(&self, vol: &Volume) -> PathBuf {
        self.root()
            .join(format!("{}-snapshots", vol.kind.dir_name()))
            .join(&vol.name)
    }

    fn mount_options(&self) -> String {
        self.spec
            .config
            .get("btrfs.mount_options")
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| "user_subvol_rm_allowed".into())
    }

    async fn mount(&self) -> Result<()> {
        let root = &self.spec.mount_root;
        if is_mounted(root) {
            return Ok(());
        }
        let dev = match &self.backing {
            Backing::LoopFile(f) => f,
            Backing::Device(d) => d,
            Backing::Directory(_) => return Ok(()),
        };
        tokio::fs::create_dir_all(root)
            .await
            .map_err(|e| io(root, e))?;
        let mut opts = self.mount_options();
        if matches!(self.backing, Backing::LoopFile(_)) {
            opts = format!("loop,{opts}");
        }
        run(
            "mount",
            &[
                "-t".as_ref(),
                "btrfs".as_ref(),
                "-o".as_ref(),
                opts.as_ref(),
                dev.as_os_str(),
                root.as_os_str(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn unmount(&self) -> Result<()> {
        let root = &self.spec.mount_root;
        if is_mounted(root) {
            run("umount", &[root.as_os_str()]).await?;
        }
        Ok(())
    }

    async fn make_layout(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let root = self.root().to_path_buf();
        for ty in LAYOUT {
            let d = root.join(ty);
            tokio::fs::create_dir_all(&d).await.map_err(|e| io(&d, e))?;
        }
        for p in [
            root.clone(),
            root.join("containers"),
            root.join("containers-snapshots"),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| io(&p, e))?;
        }
        Ok(())
    }

    /// A writable (or read-only) snapshot of `from` at `to`, which must not exist.
    async fn snapshot(&self, from: &Path, to: &Path, readonly: bool) -> Result<()> {
        if to.exists() {
            return Err(Error::already_exists(format!("{} exists", to.display())));
        }
        if !is_subvolume(from) {
            return Err(Error::not_found(format!(
                "{} is not a btrfs subvolume",
                from.display()
            )));
        }
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io(parent, e))?;
        }
        let args: &[&str] = if readonly {
            &["subvolume", "snapshot", "-r"]
        } else {
            &["subvolume", "snapshot"]
        };
        btrfs(args, &[from, to]).await?;
        Ok(())
    }
}

#[async_trait]
impl StorageDriver for BtrfsDriver {
    fn info(&self) -> StorageDriverInfo {
        // Asked once per process: `btrfs --version` does not change under us.
        static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let version = VERSION.get_or_init(|| {
            std::process::Command::new("btrfs")
                .arg("--version")
                .output()
                .ok()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .trim_start_matches("btrfs-progs v")
                        .to_string()
                })
                .unwrap_or_default()
        });
        StorageDriverInfo {
            name: "btrfs",
            version: version.clone(),
            remote: false,
            optimized_images: true,
            quotas: true,
            volume_types: vec![VolumeType::Container, VolumeType::Image, VolumeType::Custom],
        }
    }

    fn validate_pool_config(&self, config: &ConfigMap) -> Result<()> {
        for (k, v) in config {
            match k.as_str() {
                "source" => layout::check_source(&self.spec.name, v)?,
                "btrfs.mount_options" => {}
                _ => layout::shared_key(
                    "btrfs",
                    &self.spec.name,
                    k,
                    v,
                    Some(matches!(self.backing, Backing::LoopFile(_))),
                )?,
            }
        }
        Ok(())
    }

    async fn create_pool(&self) -> Result<()> {
        match &self.backing {
            Backing::LoopFile(file) => {
                if !file.exists() {
                    layout::create_loop_file(file, &self.spec.config, DEFAULT_SIZE)?;
                    if let Err(e) = run(
                        "mkfs.btrfs",
                        &[
                            "-q".as_ref(),
                            "-L".as_ref(),
                            self.spec.name.as_ref(),
                            file.as_os_str(),
                        ],
                    )
                    .await
                    {
                        let _ = std::fs::remove_file(file);
                        return Err(e);
                    }
                }
                self.mount().await?;
            }
            Backing::Device(dev) => {
                // Without -f, mkfs refuses a device that holds a filesystem: nothing is lost.
                if !is_mounted(&self.spec.mount_root) {
                    run(
                        "mkfs.btrfs",
                        &[
                            "-q".as_ref(),
                            "-L".as_ref(),
                            self.spec.name.as_ref(),
                            dev.as_os_str(),
                        ],
                    )
                    .await?;
                }
                self.mount().await?;
            }
            Backing::Directory(dir) => {
                let fs = nix::sys::statfs::statfs(dir)
                    .map(|s| s.filesystem_type())
                    .map_err(|e| Error::invalid(format!("{}: {e}", dir.display())))?;
                if fs != nix::sys::statfs::BTRFS_SUPER_MAGIC {
                    return Err(Error::invalid(format!(
                        "Pool {:?}: {} is not on a btrfs filesystem",
                        self.spec.name,
                        dir.display()
                    )));
                }
                let link = &self.spec.mount_root;
                if !link.exists() {
                    if let Some(parent) = link.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                    }
                    std::os::unix::fs::symlink(dir, link).map_err(|e| io(link, e))?;
                }
            }
        }
        self.make_layout().await
    }

    async fn delete_pool(&self) -> Result<()> {
        for ty in LAYOUT {
            let d = self.root().join(ty);
            if let Ok(entries) = std::fs::read_dir(&d) {
                for e in entries.flatten() {
                    let p = e.path();
                    if ty.ends_with("-snapshots") {
                        if let Ok(snaps) = std::fs::read_dir(&p) {
                            for s in snaps.flatten() {
                                delete_subvolume(&s.path()).await?;
                            }
                        }
                        let _ = std::fs::remove_dir(&p);
                    } else {
                        delete_subvolume(&p).await?;
                    }
                }
            }
            let _ = std::fs::remove_dir(&d);
        }
        match &self.backing {
            Backing::LoopFile(file) => {
                self.unmount().await?;
                let _ = std::fs::remove_dir(&self.spec.mount_root);
                match std::fs::remove_file(file) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io(file, e)),
                }
            }
            Backing::Device(_) => {
                self.unmount().await?;
                let _ = std::fs::remove_dir(&self.spec.mount_root);
                Ok(())
            }
            Backing::Directory(_) => {
                let _ = std::fs::remove_file(&self.spec.mount_root);
                Ok(())
            }
        }
    }

    async fn mount_pool(&self) -> Result<()> {
        self.mount().await?;
        if self.root().join("containers").is_dir() {
            Ok(())
        } else {
            self.make_layout().await
        }
    }

    fn volume_path(&self, vol: &Volume) -> PathBuf {
        self.root().join(vol.kind.dir_name()).join(&vol.name)
    }

    fn snapshot_path(&self, vol: &Volume, snapshot: &str) -> PathBuf {
        self.snapshots_dir(vol).join(snapshot)
    }

    async fn has_volume(&self, vol: &Volume) -> Result<bool> {
        Ok(is_subvolume(&self.volume_path(vol)))
    }

    async fn create_volume(&self, vol: &Volume) -> Result<()> {
        let p = self.volume_path(vol);
        if p.exists() {
            return Err(Error::already_exists(format!(
                "Volume {} exists",
                p.display()
            )));
        }
        btrfs(&["subvolume", "create"], &[&p]).await?;
        Ok(())
    }

    async fn create_volume_from_copy(
        &self,
        vol: &Volume,
        src: &Volume,
        shift: Option<IdShift>,
    ) -> Result<()> {
        let (from, to) = (self.volume_path(src), self.volume_path(vol));
        self.snapshot(&from, &to, false).await?;
        if let Some(shift) = shift {
            let target = to.clone();
            let r = tokio::task::spawn_blocking(move || shift_tree(&target, shift))
                .await
                .map_err(|e| Error::internal(e.to_string()))
                .and_then(|r| r);
            if let Err(e) = r {
                let _ = delete_subvolume(&to).await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn delete_volume(&self, vol: &Volume) -> Result<()> {
        let snaps = self.snapshots_dir(vol);
        if let Ok(entries) = std::fs::read_dir(&snaps) {
            for e in entries.flatten() {
                delete_subvolume(&e.path()).await?;
            }
        }
        match std::fs::remove_dir(&snaps) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&snaps, e)),
        }
        delete_subvolume(&self.volume_path(vol)).await
    }

    async fn rename_volume(&self, vol: &Volume, new_name: &str) -> Result<()> {
        let new = Volume::new(vol.kind, new_name);
        let (from, to) = (self.volume_path(vol), self.volume_path(&new));
        let (sfrom, sto) = (self.snapshots_dir(vol), self.snapshots_dir(&new));
        layout::rename_volume(&from, &to, &sfrom, &sto)
    }

    async fn finish_rename(&self, vol: &Volume, new_name: &str) -> Result<()> {
        let new = Volume::new(vol.kind, new_name);
        let (from, to) = (self.volume_path(vol), self.volume_path(&new));
        let (sfrom, sto) = (self.snapshots_dir(vol), self.snapshots_dir(&new));
        layout::finish_rename(&from, &to, &sfrom, &sto)
    }

    async fn create_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let (from, to) = (self.volume_path(vol), self.snapshot_path(vol, snapshot));
        self.snapshot(&from, &to, true).await
    }

    async fn delete_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        delete_subvolume(&self.snapshot_path(vol, snapshot)).await
    }

    async fn rename_snapshot(&self, vol: &Volume, snapshot: &str, new_name: &str) -> Result<()> {
        let (from, to) = (
            self.snapshot_path(vol, snapshot),
            self.snapshot_path(vol, new_name),
        );
        layout::rename_new(&from, &to)
    }

    async fn copy_volume(&self, vol: &Volume, src: &Volume, snapshots: &[String]) -> Result<()> {
        self.create_volume_from_copy(vol, src, None).await?;
        for s in snapshots {
            let (from, to) = (self.snapshot_path(src, s), self.snapshot_path(vol, s));
            self.snapshot(&from, &to, true).await?;
        }
        Ok(())
    }

    async fn restore_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let (snap, dst) = (self.snapshot_path(vol, snapshot), self.volume_path(vol));
        if !is_subvolume(&snap) {
            return Err(Error::not_found(format!(
                "Snapshot {} not found",
                snap.display()
            )));
        }
        // A writable snapshot beside the volume first, then swap, so a failure leaves the
        // volume as it was.
        let tmp = dst.with_extension("incustmp");
        let old = dst.with_extension("incusold");
        delete_subvolume(&tmp).await?;
        delete_subvolume(&old).await?;
        self.snapshot(&snap, &tmp, false).await?;
        std::fs::rename(&dst, &old).map_err(|e| io(&dst, e))?;
        std::fs::rename(&tmp, &dst).map_err(|e| io(&tmp, e))?;
        delete_subvolume(&old).await
    }

    async fn volume_usage(&self, vol: &Volume) -> Result<u64> {
        let p = self.volume_path(vol);
        tokio::task::spawn_blocking(move || disk_usage(&p))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
    }

    async fn set_volume_quota(&self, vol: &Volume, bytes: u64) -> Result<()> {
        let p = self.volume_path(vol);
        if !is_subvolume(&p) {
            return Err(Error::not_found(format!(
                "Volume {} not found",
                p.display()
            )));
        }
        // Enabling is idempotent; the limit applies to the volume's own qgroup (0/<id>).
        btrfs(&["quota", "enable"], &[self.root()]).await?;
        let limit = if bytes == 0 {
            "none".to_string()
        } else {
            bytes.to_string()
        };
        btrfs(&["qgroup", "limit", &limit], &[&p]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked() {
        let t = tempfile::tempdir().expect("tempdir");
        let spec = |k: &str, v: &str| StoragePoolSpec {
            name: "p".into(),
            config: [(k.to_string(), v.to_string())].into_iter().collect(),
            mount_root: t.path().join("storage-pools/p"),
        };
        assert!(BtrfsDriver::new(spec("size", "2GiB")).is_ok());
        assert!(BtrfsDriver::new(spec("btrfs.mount_options", "noatime")).is_ok());
        assert!(BtrfsDriver::new(spec("size", "lots")).is_err());
        assert!(BtrfsDriver::new(spec("bogus", "1")).is_err());
        assert!(BtrfsDriver::new(spec("source", "relative")).is_err());
        let mut s = spec("source", "/srv/btrfs");
        s.config.insert("size".into(), "1GiB".into());
        assert!(BtrfsDriver::new(s).is_err(), "size with a directory source");
        let d = BtrfsDriver::new(spec("user.x", "1")).expect("driver");
        assert_eq!(
            d.backing,
            Backing::LoopFile(t.path().join("disks/p.img")),
            "loop file under $INCUS_DIR/disks"
        );
    }
}
