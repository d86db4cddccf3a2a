//! The `zfs` driver, through the `zfs` and `zpool` command line as Incus drives it (kernel
//! ZFS or `zfs-fuse`; the `zfs-core` crate is stale).
//!
//! - Pool storage: a sparse loop file `$INCUS_DIR/disks/<pool>.img` of `size` (default 5GiB)
//!   holding a new zpool named `zfs.pool_name` (default: the pool's name); or `source=` a block
//!   device for a new zpool; or `source=` the name of an existing zpool or dataset (`tank`,
//!   `tank/incus`), which must be empty and is used in place.
//! - Datasets as Incus names them below the pool's root dataset `R`: `R/containers/<name>`,
//!   `R/images/<fingerprint>`, `R/custom/<project>_<name>`; snapshots are ZFS snapshots
//!   `@snapshot-<name>`. The type datasets are never mounted (`mountpoint=none`); each volume
//!   has its own `mountpoint` at the path the `dir` driver would use
//!   (`$INCUS_DIR/storage-pools/<pool>/containers/<name>`), so a volume is renamed unmounted.
//! - Images are unpacked once into an image dataset; instances are clones of its `@readonly`
//!   snapshot (shifted in place for unprivileged containers), so a launch copies no data. An
//!   image deleted while instances still use it stays, marked `incus:deleted=true`, and is
//!   destroyed with its last clone (Incus renames it into `deleted/`, which zfs-fuse cannot do
//!   while the clones are mounted).
//! - Copies within the pool go through `zfs send | zfs receive`, snapshots included, so a copy
//!   is independent of its source.
//! - Snapshot content is reached by cloning the snapshot read-only under `R/snapmounts/` at
//!   [`StorageDriver::snapshot_path`] (zfs-fuse has no `.zfs` directory and no `mount -t zfs`).
//!   Restoring the latest snapshot is a `zfs rollback`; an older one is restored by content,
//!   so later snapshots are kept (Incus refuses unless they are deleted).
//! - Quotas through `refquota`; usage is the dataset's `referenced` bytes.

use crate::layout::{self, LAYOUT};
use async_trait::async_trait;
use incus_core::api::ConfigMap;
use incus_core::drivers::{
    IdShift, StorageDriver, StorageDriverInfo, StoragePoolSpec, Volume, VolumeType,
};
use incus_core::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The loop file size when `size` is not given.
const DEFAULT_SIZE: &str = "5GiB";

/// The snapshot that image clones are made from.
const IMAGE_SNAPSHOT: &str = "readonly";

/// Children of the root dataset the driver creates (never mounted).
const DATASETS: [&str; 5] = [
    "containers",
    "images",
    "custom",
    "snapmounts",
    "virtual-machines",
];

/// The user property marking an image deleted while instances still use it.
const DELETED_PROPERTY: &str = "incus:deleted";

/// Where the pool's zpool comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Backing {
    /// A loop file the driver creates, holding a new zpool.
    LoopFile(PathBuf),
    /// A block device for a new zpool.
    Device(PathBuf),
    /// An existing zpool or dataset, used in place.
    Dataset,
}

/// A `zfs` storage pool.
pub struct ZfsDriver {
    spec: StoragePoolSpec,
    backing: Backing,
    /// The zpool's name.
    zpool: String,
    /// The dataset everything lives under (`zpool` or `source`).
    root: String,
}

/// The output of a `zfs`/`zpool` run; its stderr becomes the error.
async fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            Error::internal(format!(
                "Failed to run {program} (is ZFS or zfs-fuse installed and running?): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `zfs ARGS`, retried a few times while ZFS answers that the dataset is busy (zfs-fuse does
/// for a moment after a mount or a receive).
async fn zfs(args: &[&str]) -> Result<String> {
    let mut tries = 0;
    loop {
        match run("zfs", args).await {
            Err(e) if tries < 10 && e.to_string().contains("busy") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
            }
            r => return r,
        }
    }
}

/// `zfs send ARGS | zfs receive TARGET`.
async fn send_receive(send_args: &[&str], target: &str) -> Result<()> {
    let fail = |e: std::io::Error| Error::internal(format!("Failed to run zfs send: {e}"));
    let mut send = tokio::process::Command::new("zfs")
        .arg("send")
        .args(send_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    let stream: Stdio = send
        .stdout
        .take()
        .ok_or_else(|| Error::internal("zfs send has no output"))?
        .try_into()
        .map_err(fail)?;
    let recv = tokio::process::Command::new("zfs")
        .args(["receive", target])
        .stdin(stream)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let (sent, received) = tokio::join!(send.wait_with_output(), recv);
    let (sent, received) = (sent.map_err(fail)?, received.map_err(fail)?);
    if !sent.status.success() || !received.status.success() {
        return Err(Error::internal(format!(
            "zfs send {} | zfs receive {target}: {} {}",
            send_args.join(" "),
            String::from_utf8_lossy(&sent.stderr).trim(),
            String::from_utf8_lossy(&received.stderr).trim()
        )));
    }
    Ok(())
}

/// `name` is a valid ZFS dataset path (`tank`, `tank/incus`).
fn valid_dataset(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-.:".contains(ch))
        })
}

impl ZfsDriver {
    /// A driver for the pool `spec`; checks the config.
    pub fn new(spec: StoragePoolSpec) -> Result<Self> {
        let source = spec.config.get("source").filter(|s| !s.is_empty()).cloned();
        let zpool_name = spec
            .config
            .get("zfs.pool_name")
            .filter(|s| !s.is_empty())
            .cloned();
        let (backing, root) = match source {
            None => {
                // $INCUS_DIR/storage-pools/<pool> -> $INCUS_DIR/disks/<pool>.img
                let file = layout::loop_file(&spec)?;
                let root = zpool_name.clone().unwrap_or_else(|| spec.name.clone());
                (Backing::LoopFile(file), root)
            }
            Some(s) if s.starts_with('/') => {
                let root = zpool_name.clone().unwrap_or_else(|| spec.name.clone());
                (Backing::Device(s.into()), root)
            }
            Some(s) => (Backing::Dataset, s),
        };
        let zpool = root.split('/').next().unwrap_or_default().to_string();
        let d = ZfsDriver {
            spec,
            backing,
            zpool,
            root,
        };
        d.validate_pool_config(&d.spec.config)?;
        Ok(d)
    }

    /// The dataset of a volume.
    fn dataset(&self, vol: &Volume) -> String {
        format!("{}/{}/{}", self.root, vol.kind.dir_name(), vol.name)
    }

    /// The dataset a snapshot is mounted from while it is read.
    fn snapmount(&self, vol: &Volume, snapshot: &str) -> String {
        format!(
            "{}/snapmounts/{}/{}/{snapshot}",
            self.root,
            vol.kind.dir_name(),
            vol.name
        )
    }

    fn snapshots_dir(&self, vol: &Volume) -> PathBuf {
        self.spec
            .mount_root
            .join(format!("{}-snapshots", vol.kind.dir_name()))
            .join(&vol.name)
    }

    async fn exists(&self, dataset: &str) -> Result<bool> {
        match run("zfs", &["list", "-H", "-o", "name", dataset]).await {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("does not exist") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The `columns` (comma-separated `zfs list` properties) of every filesystem below the
    /// root dataset, one row each.
    async fn list_filesystems(&self, columns: &str) -> Result<Vec<Vec<String>>> {
        let out = run(
            "zfs",
            &[
                "list",
                "-H",
                "-r",
                "-t",
                "filesystem",
                "-o",
                columns,
                &self.root,
            ],
        )
        .await?;
        Ok(out
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }

    /// `(name, origin)` of every filesystem below the root dataset.
    async fn filesystems(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .list_filesystems("name,origin")
            .await?
            .into_iter()
            .filter_map(|row| match &row[..] {
                [n, o] => Some((n.clone(), o.clone())),
                _ => None,
            })
            .collect())
    }

    /// Whether the zpool is imported.
    async fn imported(&self) -> Result<bool> {
        match run("zpool", &["list", "-H", "-o", "name", &self.zpool]).await {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("no such pool") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the type datasets and the host directories of the layout.
    async fn make_layout(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for ds in DATASETS {
            let name = format!("{}/{ds}", self.root);
            if !self.exists(&name).await? {
                zfs(&["create", "-o", "mountpoint=none", &name]).await?;
            }
        }
        let root = &self.spec.mount_root;
        for ty in LAYOUT {
            let d = root.join(ty);
            tokio::fs::create_dir_all(&d)
                .await
                .map_err(|e| Error::io(d.display(), e))?;
        }
        for p in [
            root.clone(),
            root.join("containers"),
            root.join("containers-snapshots"),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| Error::io(p.display(), e))?;
        }
        Ok(())
    }

    /// Destroys `dataset` and its snapshots, then the deleted image that was kept only for
    /// it.
    async fn destroy(&self, dataset: &str) -> Result<()> {
        let all = self.filesystems().await?;
        let origin = all
            .iter()
            .find(|(n, _)| n == dataset)
            .map(|(_, o)| o.clone())
            .filter(|o| o.contains('@'));
        if all.iter().any(|(n, _)| n == dataset) {
            zfs(&["destroy", "-r", dataset]).await?;
        }
        if let Some(origin) = origin
            && let Some((parent, _)) = origin.split_once('@')
        {
            let others = all.iter().any(|(n, o)| *o == origin && n != dataset);
            let deleted = run(
                "zfs",
                &["get", "-H", "-o", "value", DELETED_PROPERTY, parent],
            )
            .await
            .is_ok_and(|v| v.trim() == "true");
            if deleted && !others {
                zfs(&["destroy", "-r", parent]).await?;
            }
        }
        Ok(())
    }

    /// Destroys every snapshot mount of a volume.
    async fn drop_snapmounts(&self, vol: &Volume) -> Result<()> {
        let base = format!(
            "{}/snapmounts/{}/{}",
            self.root,
            vol.kind.dir_name(),
            vol.name
        );
        if self.exists(&base).await? {
            zfs(&["destroy", "-r", &base]).await?;
        }
        Ok(())
    }

    /// The names of the volume's snapshots, oldest first.
    async fn snapshot_names(&self, dataset: &str) -> Result<Vec<String>> {
        let out = run(
            "zfs",
            &[
                "list", "-H", "-r", "-d", "1", "-t", "snapshot", "-s", "creation", "-o", "name",
                dataset,
            ],
        )
        .await?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('@'))
            .map(|(_, s)| s.to_string())
            .collect())
    }

    /// Sets the volume's mount point and mounts it.
    async fn mount_at(&self, dataset: &str, path: &Path) -> Result<()> {
        let mp = format!("mountpoint={}", path.display());
        zfs(&["set", &mp, dataset]).await?;
        let mounted = run("zfs", &["get", "-H", "-o", "value", "mounted", dataset]).await?;
        if mounted.trim() != "yes" {
            zfs(&["mount", dataset]).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl StorageDriver for ZfsDriver {
    fn info(&self) -> StorageDriverInfo {
        // Asked once per process: kernel ZFS tells its version, zfs-fuse does not.
        static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let version = VERSION.get_or_init(|| {
            std::fs::read_to_string("/sys/module/zfs/version")
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|_| "zfs-fuse".into())
        });
        StorageDriverInfo {
            name: "zfs",
            version: version.clone(),
            remote: false,
            optimized_images: true,
            quotas: true,
            volume_types: vec![VolumeType::Container, VolumeType::Image, VolumeType::Custom],
        }
    }

    fn validate_pool_config(&self, config: &ConfigMap) -> Result<()> {
        let pool = &self.spec.name;
        for (k, v) in config {
            match k.as_str() {
                "source" => {
                    if !v.is_empty() && !v.starts_with("/dev/") && !valid_dataset(v) {
                        return Err(Error::invalid(format!(
                            "Pool {pool:?}: \"source\" must be a block device (/dev/...) or \
                             the name of an existing zpool or dataset"
                        )));
                    }
                }
                "zfs.pool_name" => {
                    if !v.is_empty() && (!valid_dataset(v) || v.contains('/')) {
                        return Err(Error::invalid(format!(
                            "Pool {pool:?}: invalid zfs.pool_name {v:?}"
                        )));
                    }
                    if self.backing == Backing::Dataset && !v.is_empty() {
                        return Err(Error::invalid(format!(
                            "Pool {pool:?}: zfs.pool_name does not apply to an existing \
                             dataset source"
                        )));
                    }
                }
                _ => layout::shared_key(
                    "zfs",
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
        match &self.backing {
            Backing::LoopFile(file) => {
                if self.imported().await? {
                    return Err(Error::already_exists(format!(
                        "A zpool named {:?} already exists (set zfs.pool_name)",
                        self.zpool
                    )));
                }
                layout::create_loop_file(file, &self.spec.config, DEFAULT_SIZE)?;
                let path = file.to_string_lossy();
                if let Err(e) = run("zpool", &["create", "-m", "none", &self.zpool, &path]).await {
                    let _ = std::fs::remove_file(file);
                    return Err(e);
                }
            }
            Backing::Device(dev) => {
                // Without -f, zpool refuses a device in use or holding another pool.
                let dev = dev.to_string_lossy();
                run("zpool", &["create", "-m", "none", &self.zpool, &dev]).await?;
            }
            Backing::Dataset => {
                if !self.imported().await? {
                    return Err(Error::invalid(format!(
                        "Pool {:?}: zpool {:?} does not exist",
                        self.spec.name, self.zpool
                    )));
                }
                if self.exists(&self.root).await? {
                    let children = run(
                        "zfs",
                        &["list", "-H", "-r", "-d", "1", "-o", "name", &self.root],
                    )
                    .await?;
                    if children.lines().count() > 1 {
                        return Err(Error::invalid(format!(
                            "Pool {:?}: dataset {:?} is not empty",
                            self.spec.name, self.root
                        )));
                    }
                } else {
                    zfs(&["create", "-p", "-o", "mountpoint=none", &self.root]).await?;
                }
            }
        }
        self.make_layout().await
    }

    async fn delete_pool(&self) -> Result<()> {
        if self.imported().await? {
            match self.backing {
                Backing::Dataset => {
                    for ds in DATASETS {
                        let name = format!("{}/{ds}", self.root);
                        if self.exists(&name).await? {
                            zfs(&["destroy", "-r", &name]).await?;
                        }
                    }
                }
                _ => {
                    run("zpool", &["destroy", &self.zpool]).await?;
                }
            }
        }
        for ty in LAYOUT {
            let d = self.spec.mount_root.join(ty);
            match std::fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(d.display(), e)),
            }
        }
        let _ = std::fs::remove_dir(&self.spec.mount_root);
        if let Backing::LoopFile(file) = &self.backing {
            match std::fs::remove_file(file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(file.display(), e)),
            }
        }
        Ok(())
    }

    async fn mount_pool(&self) -> Result<()> {
        if !self.imported().await? {
            let dir = match &self.backing {
                Backing::LoopFile(f) => f.parent().map(|p| p.to_string_lossy().into_owned()),
                _ => None,
            };
            let mut args = vec!["import"];
            if let Some(d) = &dir {
                args.extend(["-d", d.as_str()]);
            }
            args.push(&self.zpool);
            run("zpool", &args).await?;
        }
        // One listing: snapshot mounts are transient (whatever a crash left is dropped), every
        // other filesystem with a mountpoint is mounted.
        let all = self.list_filesystems("name,mountpoint,mounted").await?;
        let snapmounts = format!("{}/snapmounts/", self.root);
        let depth = snapmounts.matches('/').count();
        for row in &all {
            match &row[..] {
                [name, ..]
                    if name.starts_with(&snapmounts) && name.matches('/').count() == depth =>
                {
                    zfs(&["destroy", "-r", name]).await?;
                }
                [name, ..] if name.starts_with(&snapmounts) => {}
                [name, mp, mounted] if mounted == "no" && mp.starts_with('/') => {
                    zfs(&["mount", name]).await?;
                }
                _ => {}
            }
        }
        self.make_layout().await
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
        self.exists(&self.dataset(vol)).await
    }

    async fn create_volume(&self, vol: &Volume) -> Result<()> {
        let ds = self.dataset(vol);
        if self.exists(&ds).await? {
            return Err(Error::already_exists(format!("Volume {ds} exists")));
        }
        let mp = format!("mountpoint={}", self.volume_path(vol).display());
        zfs(&["create", "-o", &mp, &ds]).await?;
        Ok(())
    }

    async fn create_volume_from_copy(
        &self,
        vol: &Volume,
        src: &Volume,
        shift: Option<IdShift>,
    ) -> Result<()> {
        let (from, to) = (self.dataset(src), self.dataset(vol));
        if self.exists(&to).await? {
            return Err(Error::already_exists(format!("Volume {to} exists")));
        }
        let path = self.volume_path(vol);
        if src.kind == VolumeType::Image {
            // Instances are clones of the image's read-only snapshot.
            let origin = format!("{from}@{IMAGE_SNAPSHOT}");
            if !self.exists(&origin).await? {
                zfs(&["snapshot", &origin]).await?;
            }
            let mp = format!("mountpoint={}", path.display());
            zfs(&["clone", "-o", &mp, &origin, &to]).await?;
            // An image deleted while in use and imported again is in use again.
            zfs(&["inherit", DELETED_PROPERTY, &from]).await?;
        } else {
            self.copy_volume(vol, src, &[]).await?;
        }
        if let Some(shift) = shift {
            let target = path.clone();
            let r = tokio::task::spawn_blocking(move || crate::copy::shift_tree(&target, shift))
                .await
                .map_err(|e| Error::internal(e.to_string()))
                .and_then(|r| r);
            if let Err(e) = r {
                let _ = self.destroy(&to).await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn copy_volume(&self, vol: &Volume, src: &Volume, snapshots: &[String]) -> Result<()> {
        let (from, to) = (self.dataset(src), self.dataset(vol));
        if self.exists(&to).await? {
            return Err(Error::already_exists(format!("Volume {to} exists")));
        }
        // Each snapshot as an incremental stream on the previous one, then the current state
        // through a temporary snapshot, dropped on both sides afterwards.
        // Unique per call: two copies of one source may run at once.
        static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = format!("copy-{}-{n}", std::process::id());
        let mut names: Vec<String> = snapshots.iter().map(|s| format!("snapshot-{s}")).collect();
        names.push(temp.clone());
        zfs(&["snapshot", &format!("{from}@{temp}")]).await?;
        let work = async {
            let mut prev: Option<String> = None;
            for n in &names {
                let cur = format!("{from}@{n}");
                match &prev {
                    None => send_receive(&[&cur], &to).await?,
                    Some(p) => send_receive(&["-i", p, &cur], &to).await?,
                }
                prev = Some(cur);
            }
            zfs(&["destroy", &format!("{to}@{temp}")]).await?;
            self.mount_at(&to, &self.volume_path(vol)).await
        }
        .await;
        let _ = zfs(&["destroy", &format!("{from}@{temp}")]).await;
        if work.is_err() {
            let _ = self.destroy(&to).await;
        }
        work
    }

    async fn delete_volume(&self, vol: &Volume) -> Result<()> {
        let ds = self.dataset(vol);
        self.drop_snapmounts(vol).await?;
        let all = self.filesystems().await?;
        if !all.iter().any(|(n, _)| *n == ds) {
            return Ok(());
        }
        let prefix = format!("{ds}@");
        let cloned = all.iter().any(|(_, o)| o.starts_with(&prefix));
        if cloned {
            // Instances still use this image: it stays, marked, until the last one goes
            // (zfs-fuse cannot rename a dataset whose clones are in use). An image imported
            // again meanwhile finds it in place: same fingerprint, same content.
            zfs(&["set", &format!("{DELETED_PROPERTY}=true"), &ds]).await?;
            return Ok(());
        }
        self.destroy(&ds).await?;
        let _ = std::fs::remove_dir(self.volume_path(vol));
        let _ = std::fs::remove_dir_all(self.snapshots_dir(vol));
        Ok(())
    }

    async fn rename_volume(&self, vol: &Volume, new_name: &str) -> Result<()> {
        let new = Volume::new(vol.kind, new_name);
        let (from, to) = (self.dataset(vol), self.dataset(&new));
        if self.exists(&to).await? {
            return Err(Error::already_exists(format!("Volume {to} exists")));
        }
        self.drop_snapmounts(vol).await?;
        // zfs-fuse cannot rename a mounted dataset.
        zfs(&["umount", &from]).await?;
        if let Err(e) = zfs(&["rename", &from, &to]).await {
            let _ = zfs(&["mount", &from]).await;
            return Err(e);
        }
        let _ = std::fs::remove_dir(self.volume_path(vol));
        let _ = std::fs::remove_dir_all(self.snapshots_dir(vol));
        self.mount_at(&to, &self.volume_path(&new)).await
    }

    async fn create_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let snap = format!("{}@snapshot-{snapshot}", self.dataset(vol));
        if self.exists(&snap).await? {
            return Err(Error::already_exists(format!("Snapshot {snap} exists")));
        }
        zfs(&["snapshot", &snap]).await?;
        Ok(())
    }

    async fn delete_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        self.unmount_snapshot(vol, snapshot).await?;
        let snap = format!("{}@snapshot-{snapshot}", self.dataset(vol));
        if self.exists(&snap).await? {
            zfs(&["destroy", &snap]).await?;
        }
        Ok(())
    }

    async fn rename_snapshot(&self, vol: &Volume, snapshot: &str, new_name: &str) -> Result<()> {
        self.unmount_snapshot(vol, snapshot).await?;
        let ds = self.dataset(vol);
        let to = format!("{ds}@snapshot-{new_name}");
        if self.exists(&to).await? {
            return Err(Error::already_exists(format!("Snapshot {to} exists")));
        }
        zfs(&["rename", &format!("{ds}@snapshot-{snapshot}"), &to]).await?;
        Ok(())
    }

    async fn mount_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<PathBuf> {
        let path = self.snapshot_path(vol, snapshot);
        let clone = self.snapmount(vol, snapshot);
        if self.exists(&clone).await? {
            return Ok(path);
        }
        let snap = format!("{}@snapshot-{snapshot}", self.dataset(vol));
        if !self.exists(&snap).await? {
            return Err(Error::not_found(format!("Snapshot {snap} not found")));
        }
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(|e| Error::io(path.display(), e))?;
        let mp = format!("mountpoint={}", path.display());
        zfs(&["clone", "-p", "-o", "readonly=on", "-o", &mp, &snap, &clone]).await?;
        Ok(path)
    }

    async fn unmount_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let clone = self.snapmount(vol, snapshot);
        if self.exists(&clone).await? {
            zfs(&["destroy", &clone]).await?;
            // The volume's parent dataset of its snapshot mounts goes with the last of them.
            if let Some((parent, _)) = clone.rsplit_once('/') {
                let left = run("zfs", &["list", "-H", "-r", "-o", "name", parent]).await?;
                if left.lines().count() == 1 {
                    zfs(&["destroy", parent]).await?;
                }
            }
        }
        let _ = std::fs::remove_dir(self.snapshot_path(vol, snapshot));
        Ok(())
    }

    async fn restore_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let ds = self.dataset(vol);
        let names = self.snapshot_names(&ds).await?;
        let want = format!("snapshot-{snapshot}");
        if !names.contains(&want) {
            return Err(Error::not_found(format!("Snapshot {ds}@{want} not found")));
        }
        if names.last() == Some(&want) {
            zfs(&["rollback", &format!("{ds}@{want}")]).await?;
            return Ok(());
        }
        // An older snapshot: by content, so the later snapshots stay.
        let from = self.mount_snapshot(vol, snapshot).await?;
        let to = self.volume_path(vol);
        let r = tokio::task::spawn_blocking(move || {
            incus_core::tree::replace_contents(&from, &to, None)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))
        .and_then(|r| r);
        self.unmount_snapshot(vol, snapshot).await?;
        r
    }

    async fn volume_usage(&self, vol: &Volume) -> Result<u64> {
        let out = run(
            "zfs",
            &[
                "get",
                "-H",
                "-p",
                "-o",
                "value",
                "referenced",
                &self.dataset(vol),
            ],
        )
        .await?;
        out.trim()
            .parse()
            .map_err(|_| Error::internal(format!("zfs get referenced: {out:?}")))
    }

    async fn set_volume_quota(&self, vol: &Volume, bytes: u64) -> Result<()> {
        let ds = self.dataset(vol);
        if !self.exists(&ds).await? {
            return Err(Error::not_found(format!("Volume {ds} not found")));
        }
        let value = if bytes == 0 {
            "refquota=none".to_string()
        } else {
            format!("refquota={bytes}")
        };
        zfs(&["set", &value, &ds]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::layout::test_spec as spec;

    #[test]
    fn config_is_checked() {
        let t = tempfile::tempdir().expect("tempdir");
        let t = t.path();
        let d = ZfsDriver::new(spec(t, &[("size", "2GiB")])).expect("loop pool");
        assert_eq!(d.backing, Backing::LoopFile(t.join("disks/p.img")));
        assert_eq!((d.zpool.as_str(), d.root.as_str()), ("p", "p"));
        let d = ZfsDriver::new(spec(t, &[("zfs.pool_name", "incus_p1")])).expect("named");
        assert_eq!(d.root, "incus_p1");
        let d = ZfsDriver::new(spec(t, &[("source", "tank/incus")])).expect("dataset");
        assert_eq!((d.zpool.as_str(), d.root.as_str()), ("tank", "tank/incus"));
        assert_eq!(
            d.dataset(&Volume::new(VolumeType::Container, "c1")),
            "tank/incus/containers/c1"
        );
        let d = ZfsDriver::new(spec(t, &[("source", "/dev/sdz")])).expect("device");
        assert_eq!(d.backing, Backing::Device("/dev/sdz".into()));
        for bad in [
            &[("size", "lots")][..],
            &[("bogus", "1")],
            &[("source", "tank//x")],
            &[("source", "tank/x y")],
            &[("source", "/dev/sdz"), ("size", "1GiB")],
            &[("source", "tank"), ("zfs.pool_name", "other")],
            &[("zfs.pool_name", "a/b")],
        ] {
            assert!(ZfsDriver::new(spec(t, bad)).is_err(), "{bad:?} accepted");
        }
    }
}
