//! The `dir` driver: each volume is a plain directory under the pool's mount root, laid out as
//! Incus lays it out (`containers/<name>`, `containers-snapshots/<name>/<snap>`, `images/<fp>`,
//! `custom/<name>`). The pool's `source` may point at any host directory; by default the pool
//! lives directly at `$INCUS_DIR/storage-pools/<name>`. Copies and snapshots are full tree
//! copies ([`crate::copy`]); this host filesystem cannot enforce size limits, so `size` is
//! refused.

use crate::copy::{copy_tree, disk_usage};
use crate::layout::{self, LAYOUT};
use async_trait::async_trait;
use incus_core::api::ConfigMap;
use incus_core::drivers::{
    IdShift, StorageDriver, StorageDriverInfo, StoragePoolSpec, Volume, VolumeType,
};
use incus_core::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A `dir` storage pool.
pub struct DirDriver {
    spec: StoragePoolSpec,
    root: PathBuf,
}

impl DirDriver {
    /// A driver for the pool `spec`; checks the config.
    pub fn new(spec: StoragePoolSpec) -> Result<Self> {
        let root = match spec.config.get("source").filter(|s| !s.is_empty()) {
            Some(s) => PathBuf::from(s),
            None => spec.mount_root.clone(),
        };
        let d = DirDriver { spec, root };
        d.validate_pool_config(&d.spec.config)?;
        Ok(d)
    }

    fn snapshots_dir(&self, vol: &Volume) -> PathBuf {
        self.root
            .join(format!("{}-snapshots", vol.kind.dir_name()))
            .join(&vol.name)
    }
}

fn io(what: &Path, e: std::io::Error) -> Error {
    Error::io(what.display(), e)
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("storage task failed: {e}")))?
}

/// Copies the tree `from` to `to`, which must not exist yet (its parent is created), removing
/// any partial copy on failure.
async fn copy_new(from: PathBuf, to: PathBuf, shift: Option<IdShift>) -> Result<()> {
    blocking(move || {
        if to.exists() {
            return Err(Error::already_exists(format!("{} exists", to.display())));
        }
        // A snapshot's parent (`containers-snapshots/<name>`) is made on first use, and
        // removed again if that first copy fails: a failure leaves nothing behind.
        let made_parent = match to.parent() {
            Some(parent) if !parent.exists() => {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                Some(parent)
            }
            _ => None,
        };
        let r = copy_tree(&from, &to, shift);
        if r.is_err() {
            let _ = remove_tree(&to);
            if let Some(parent) = made_parent {
                let _ = std::fs::remove_dir(parent);
            }
        }
        r
    })
    .await
}

fn remove_tree(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(p, e)),
    }
}

#[async_trait]
impl StorageDriver for DirDriver {
    fn info(&self) -> StorageDriverInfo {
        StorageDriverInfo {
            name: "dir",
            version: "1".into(),
            remote: false,
            optimized_images: false,
            quotas: false,
            volume_types: vec![VolumeType::Container, VolumeType::Image, VolumeType::Custom],
        }
    }

    fn validate_pool_config(&self, config: &ConfigMap) -> Result<()> {
        for (k, v) in config {
            match k.as_str() {
                "source" => layout::check_source(&self.spec.name, v)?,
                "size" | "volume.size" => {
                    return Err(Error::invalid(format!(
                        "Pool {:?}: the dir driver cannot enforce size limits on this host",
                        self.spec.name
                    )));
                }
                _ => layout::shared_key("dir", &self.spec.name, k, v, None)?,
            }
        }
        Ok(())
    }

    async fn create_pool(&self) -> Result<()> {
        let root = self.root.clone();
        let link = self.spec.mount_root.clone();
        blocking(move || {
            for ty in LAYOUT {
                let d = root.join(ty);
                std::fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| io(&root, e))?;
            for ty in ["containers", "containers-snapshots"] {
                let d = root.join(ty);
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o711))
                    .map_err(|e| io(&d, e))?;
            }
            if root != link && !link.exists() {
                if let Some(parent) = link.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                }
                std::os::unix::fs::symlink(&root, &link).map_err(|e| io(&link, e))?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_pool(&self) -> Result<()> {
        let (root, link) = (self.root.clone(), self.spec.mount_root.clone());
        blocking(move || {
            if root == link {
                remove_tree(&root)
            } else {
                for ty in LAYOUT {
                    remove_tree(&root.join(ty))?;
                }
                let _ = std::fs::remove_file(&link);
                Ok(())
            }
        })
        .await
    }

    async fn mount_pool(&self) -> Result<()> {
        if self.root.join("containers").is_dir() {
            Ok(())
        } else {
            self.create_pool().await
        }
    }

    fn volume_path(&self, vol: &Volume) -> PathBuf {
        self.root.join(vol.kind.dir_name()).join(&vol.name)
    }

    fn snapshot_path(&self, vol: &Volume, snapshot: &str) -> PathBuf {
        self.snapshots_dir(vol).join(snapshot)
    }

    async fn has_volume(&self, vol: &Volume) -> Result<bool> {
        Ok(self.volume_path(vol).is_dir())
    }

    async fn create_volume(&self, vol: &Volume) -> Result<()> {
        let p = self.volume_path(vol);
        blocking(move || {
            if p.exists() {
                return Err(Error::already_exists(format!(
                    "Volume {} exists",
                    p.display()
                )));
            }
            std::fs::create_dir(&p).map_err(|e| io(&p, e))
        })
        .await
    }

    async fn create_volume_from_copy(
        &self,
        vol: &Volume,
        src: &Volume,
        shift: Option<IdShift>,
    ) -> Result<()> {
        let (from, to) = (self.volume_path(src), self.volume_path(vol));
        copy_new(from, to, shift).await
    }

    async fn delete_volume(&self, vol: &Volume) -> Result<()> {
        let (p, s) = (self.volume_path(vol), self.snapshots_dir(vol));
        // Snapshots first: the volume is there until the very end, so a delete cut short
        // is seen (`has_volume`) and can be finished.
        blocking(move || {
            remove_tree(&s)?;
            remove_tree(&p)
        })
        .await
    }

    async fn rename_volume(&self, vol: &Volume, new_name: &str) -> Result<()> {
        let new = Volume::new(vol.kind, new_name);
        let (from, to) = (self.volume_path(vol), self.volume_path(&new));
        let (sfrom, sto) = (self.snapshots_dir(vol), self.snapshots_dir(&new));
        blocking(move || layout::rename_volume(&from, &to, &sfrom, &sto)).await
    }

    async fn finish_rename(&self, vol: &Volume, new_name: &str) -> Result<()> {
        let new = Volume::new(vol.kind, new_name);
        let (from, to) = (self.volume_path(vol), self.volume_path(&new));
        let (sfrom, sto) = (self.snapshots_dir(vol), self.snapshots_dir(&new));
        blocking(move || layout::finish_rename(&from, &to, &sfrom, &sto)).await
    }

    async fn create_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let (from, to) = (self.volume_path(vol), self.snapshot_path(vol, snapshot));
        copy_new(from, to, None).await
    }

    async fn copy_volume(&self, vol: &Volume, src: &Volume, snapshots: &[String]) -> Result<()> {
        self.create_volume_from_copy(vol, src, None).await?;
        for s in snapshots {
            let (from, to) = (self.snapshot_path(src, s), self.snapshot_path(vol, s));
            copy_new(from, to, None).await?;
        }
        Ok(())
    }

    async fn delete_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let p = self.snapshot_path(vol, snapshot);
        blocking(move || remove_tree(&p)).await
    }

    async fn rename_snapshot(&self, vol: &Volume, snapshot: &str, new_name: &str) -> Result<()> {
        let (from, to) = (
            self.snapshot_path(vol, snapshot),
            self.snapshot_path(vol, new_name),
        );
        blocking(move || layout::rename_new(&from, &to)).await
    }

    async fn restore_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()> {
        let (snap, dst) = (self.snapshot_path(vol, snapshot), self.volume_path(vol));
        blocking(move || {
            if !snap.is_dir() {
                return Err(Error::not_found(format!(
                    "Snapshot {} not found",
                    snap.display()
                )));
            }
            // Copy next to the volume first, then swap, so a failed copy leaves it intact.
            let tmp = dst.with_extension("incustmp");
            let old = dst.with_extension("incusold");
            remove_tree(&tmp)?;
            remove_tree(&old)?;
            if let Err(e) = copy_tree(&snap, &tmp, None) {
                let _ = remove_tree(&tmp);
                return Err(e);
            }
            std::fs::rename(&dst, &old).map_err(|e| io(&dst, e))?;
            std::fs::rename(&tmp, &dst).map_err(|e| io(&tmp, e))?;
            remove_tree(&old)
        })
        .await
    }

    async fn volume_usage(&self, vol: &Volume) -> Result<u64> {
        let p = self.volume_path(vol);
        blocking(move || disk_usage(&p)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(root: &Path) -> DirDriver {
        DirDriver::new(StoragePoolSpec {
            name: "default".into(),
            config: ConfigMap::new(),
            mount_root: root.to_path_buf(),
        })
        .expect("driver")
    }

    #[tokio::test]
    async fn volume_and_snapshot_lifecycle() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = driver(&t.path().join("pool"));
        d.create_pool().await.expect("create pool");
        let img = Volume::new(VolumeType::Image, "abc");
        d.create_volume(&img).await.expect("image");
        std::fs::write(d.volume_path(&img).join("f"), "1").expect("write");
        let c = Volume::new(VolumeType::Container, "c1");
        d.create_volume_from_copy(&c, &img, None)
            .await
            .expect("copy");
        assert!(d.create_volume(&c).await.is_err(), "exists");
        d.create_snapshot(&c, "s0").await.expect("snapshot");
        std::fs::write(d.volume_path(&c).join("f"), "2").expect("write");
        d.restore_snapshot(&c, "s0").await.expect("restore");
        assert_eq!(
            std::fs::read_to_string(d.volume_path(&c).join("f")).expect("read"),
            "1"
        );
        d.rename_snapshot(&c, "s0", "s1")
            .await
            .expect("rename snap");
        d.rename_volume(&c, "c2").await.expect("rename");
        let c2 = Volume::new(VolumeType::Container, "c2");
        assert!(d.snapshot_path(&c2, "s1").is_dir());
        assert!(d.volume_usage(&c2).await.expect("usage") > 0);
        d.delete_volume(&c2).await.expect("delete");
        assert!(!d.has_volume(&c2).await.expect("has"));
        assert!(!d.snapshot_path(&c2, "s1").exists());
    }

    #[test]
    fn size_and_unknown_keys_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        for (k, v) in [("size", "1GiB"), ("bogus", "1"), ("source", "relative")] {
            let mut config = ConfigMap::new();
            config.insert(k.into(), v.into());
            let r = DirDriver::new(StoragePoolSpec {
                name: "p".into(),
                config,
                mount_root: t.path().into(),
            });
            assert!(r.is_err(), "{k}");
        }
    }
}
