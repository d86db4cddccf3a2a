//! Intents: the crash journal that keeps the database and the disks in agreement.
//!
//! An action that changes both (creating, copying or deleting an instance, a snapshot, a
//! custom volume; unpacking an image onto a pool) first writes an intent row naming the
//! object it is about to make or remove, does its work, and removes the row when it ends,
//! whether it succeeded or failed (a failure cleans up in-process). A row still present when
//! an engine opens the state directory means the previous engine was killed part-way
//! (SIGKILL, power loss), so [`Host::open`] settles it before serving anything.
//!
//! Every action here but renames ends in one of two states: the object complete and
//! recorded, or the object gone. The client of an interrupted action never heard of success,
//! so settling is the same for both directions: whatever is left of the object, on disk and
//! in the database, is removed. An interrupted create is undone; an interrupted delete is finished.
//! Removal is idempotent in every storage driver (and called whether or not the volume
//! itself is still there: a delete may have removed it and not yet its snapshots), so a
//! crash during settling is settled again on the next start.
//!
//! A rename changes the database in one transaction, so after a crash the database names
//! the object by its old or its new name; settling moves what is on disk to that name
//! (`StorageDriver::finish_rename`, which completes a driver's rename from any step).

use super::Host;
use super::custom_volumes::{driver_volume, key};
use super::db::Table;
use super::instances::storage_name;
use crate::drivers::{Volume, VolumeType};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// The object an unfinished action was making or removing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "kebab-case")]
pub(super) enum Unsettled {
    /// An instance with its root volume and snapshots.
    Instance {
        project: String,
        name: String,
        pool: String,
    },
    /// An instance's root volume (with its snapshots) on `pool`, kept only if the instance's
    /// record puts its root disk there: the copy on the new pool while an instance moves,
    /// then the old one.
    PoolCopy {
        project: String,
        name: String,
        pool: String,
    },
    /// An instance being renamed from `from` to `to`. The database changes in one
    /// transaction, so it names the instance one way or the other; settling moves the
    /// instance's volume, snapshots, logs and backups to the name the database has.
    InstanceRename {
        project: String,
        from: String,
        to: String,
        pool: String,
    },
    /// One snapshot of an instance.
    InstanceSnapshot {
        project: String,
        instance: String,
        snapshot: String,
        pool: String,
    },
    /// A custom volume with its snapshots.
    CustomVolume {
        project: String,
        pool: String,
        name: String,
    },
    /// A custom volume being renamed from `from` to `to`; settled like
    /// [`Unsettled::InstanceRename`].
    CustomVolumeRename {
        project: String,
        pool: String,
        from: String,
        to: String,
    },
    /// One snapshot of a custom volume.
    CustomVolumeSnapshot {
        project: String,
        pool: String,
        volume: String,
        snapshot: String,
    },
    /// An image unpacked onto a pool (the source of new instances' root volumes).
    ImageVolume { pool: String, fingerprint: String },
}

/// An intent row: what was being done, to what.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IntentRow {
    /// `create`, `copy`, `import`, `delete`, `unpack`: for the log of the next start.
    action: String,
    #[serde(flatten)]
    object: Unsettled,
}

/// An intent in the database; removed when dropped, so every way out of an action (success,
/// error, `?`) ends it. Only a dead process leaves it behind.
pub(super) struct Intent {
    host: Host,
    key: String,
}

impl Drop for Intent {
    fn drop(&mut self) {
        if let Err(e) = self.host.inner.db.delete(Table::Intents, "", &self.key) {
            tracing::warn!(intent = %self.key, "could not end an intent: {e}");
        }
    }
}

impl Host {
    /// Records that `action` is about to make or remove `object`. The caller must already
    /// hold the object's lock and, for a new object, have checked that no record owns the
    /// name: settling removes what the intent names.
    pub(super) fn begin(&self, action: &str, object: Unsettled) -> Result<Intent> {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let row = IntentRow {
            action: action.to_string(),
            object,
        };
        self.inner.db.insert(Table::Intents, "", &key, &row)?;
        Ok(Intent {
            host: self.clone(),
            key,
        })
    }

    /// Settles every intent a killed engine left: each named object is removed from disk
    /// and database. Returns what was settled (`action object`), for the log. An intent that
    /// cannot be settled now (a storage error) stays for the next start and is logged.
    pub(super) async fn settle_intents(&self) -> Result<Vec<String>> {
        let rows = self.inner.db.list_keyed::<IntentRow>(Table::Intents, "")?;
        let mut settled = Vec::new();
        for (key, row) in rows {
            let what = format!("{} {:?}", row.action, row.object);
            match self.settle(&row.object).await {
                Ok(()) => {
                    self.inner.db.delete(Table::Intents, "", &key)?;
                    tracing::warn!("settled an action interrupted by a crash: {what}");
                    settled.push(what);
                }
                Err(e) => {
                    tracing::error!("could not settle an interrupted action ({what}): {e}");
                }
            }
        }
        Ok(settled)
    }

    async fn settle(&self, object: &Unsettled) -> Result<()> {
        let db = &self.inner.db;
        match object {
            Unsettled::Instance {
                project,
                name,
                pool,
            } => {
                let record = self.get_instance_record(project, name).ok();
                let driver = self.pool_driver(pool)?;
                let vol = Volume::new(VolumeType::Container, storage_name(project, name));
                driver.delete_volume(&vol).await?;
                db.delete_prefix(Table::Snapshots, project, &format!("{name}/"))?;
                db.delete(Table::Instances, project, name)?;
                if let Some(inst) = record {
                    self.release_nics(&inst).await;
                }
                let _ = std::fs::remove_dir_all(self.inner.dir.join("logs").join(&vol.name));
                let _ = std::fs::remove_dir_all(self.backups_dir(project, name));
            }
            Unsettled::PoolCopy {
                project,
                name,
                pool,
            } => {
                let owner = self.instance_row(project, name).ok();
                if owner.is_some_and(|i| super::instances::instance_pool(&i) == pool) {
                    return Ok(());
                }
                let driver = self.pool_driver(pool)?;
                let vol = Volume::new(VolumeType::Container, storage_name(project, name));
                driver.delete_volume(&vol).await?;
            }
            Unsettled::InstanceRename {
                project,
                from,
                to,
                pool,
            } => {
                let renamed = db
                    .get::<crate::api::Instance>(Table::Instances, project, to)?
                    .is_some();
                let (old, new) = if renamed { (from, to) } else { (to, from) };
                let driver = self.pool_driver(pool)?;
                let vol = Volume::new(VolumeType::Container, storage_name(project, old));
                driver
                    .finish_rename(&vol, &storage_name(project, new))
                    .await?;
                let logs = self.inner.dir.join("logs");
                follow(
                    &logs.join(&vol.name),
                    &logs.join(storage_name(project, new)),
                );
                follow(
                    &self.backups_dir(project, old),
                    &self.backups_dir(project, new),
                );
            }
            Unsettled::InstanceSnapshot {
                project,
                instance,
                snapshot,
                pool,
            } => {
                let driver = self.pool_driver(pool)?;
                let vol = Volume::new(VolumeType::Container, storage_name(project, instance));
                driver.delete_snapshot(&vol, snapshot).await?;
                db.delete(Table::Snapshots, project, &format!("{instance}/{snapshot}"))?;
                self.refresh_backup_yaml(project, instance);
            }
            Unsettled::CustomVolume {
                project,
                pool,
                name,
            } => {
                let driver = self.pool_driver(pool)?;
                let vol = driver_volume(project, name);
                driver.delete_volume(&vol).await?;
                db.delete_prefix(Table::VolumeSnapshots, project, &format!("{pool}/{name}/"))?;
                db.delete(Table::Volumes, project, &key(pool, name))?;
                let _ = std::fs::remove_dir_all(self.volume_backups_dir(project, pool, name));
            }
            Unsettled::CustomVolumeRename {
                project,
                pool,
                from,
                to,
            } => {
                let renamed = db
                    .get::<serde_json::Value>(Table::Volumes, project, &key(pool, to))?
                    .is_some();
                let (old, new) = if renamed { (from, to) } else { (to, from) };
                let driver = self.pool_driver(pool)?;
                driver
                    .finish_rename(
                        &driver_volume(project, old),
                        &driver_volume(project, new).name,
                    )
                    .await?;
                follow(
                    &self.volume_backups_dir(project, pool, old),
                    &self.volume_backups_dir(project, pool, new),
                );
            }
            Unsettled::CustomVolumeSnapshot {
                project,
                pool,
                volume,
                snapshot,
            } => {
                let driver = self.pool_driver(pool)?;
                driver
                    .delete_snapshot(&driver_volume(project, volume), snapshot)
                    .await?;
                db.delete(
                    Table::VolumeSnapshots,
                    project,
                    &format!("{pool}/{volume}/{snapshot}"),
                )?;
            }
            Unsettled::ImageVolume { pool, fingerprint } => {
                let driver = self.pool_driver(pool)?;
                let vol = Volume::new(VolumeType::Image, fingerprint.clone());
                driver.delete_volume(&vol).await?;
            }
        }
        Ok(())
    }

    /// Removes what a killed engine left in `images/`: uploads that never became images
    /// (`upload-*`), half-copied files (`*.incustmp`), and image files that no image record
    /// owns (copied in, then killed before the record was written). Returns their names.
    pub(super) fn sweep_image_files(&self) -> Result<Vec<String>> {
        let dir = self.inner.dir.join("images");
        let known: std::collections::HashSet<String> = self
            .inner
            .db
            .list::<crate::api::Image>(Table::Images, None)?
            .into_iter()
            .map(|(_, i)| i.fingerprint)
            .collect();
        let mut removed = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(removed);
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let fp = name.strip_suffix(".rootfs").unwrap_or(&name);
            let stray = name.starts_with("upload-")
                || name.ends_with(".incustmp")
                || (is_fingerprint(fp) && !known.contains(fp));
            if stray && e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(e.path());
                removed.push(name);
            }
        }
        if !removed.is_empty() {
            tracing::warn!("removed image files left by a crash: {removed:?}");
        }
        Ok(removed)
    }
}

/// Moves a renamed object's side directory (logs, backups) from `old` to `new`, unless it
/// is already there; best effort, as the rename itself does.
fn follow(old: &std::path::Path, new: &std::path::Path) {
    if old.exists() && !new.exists() {
        let _ = std::fs::rename(old, new);
    }
}

/// A SHA-256 in lowercase hex, as image files are named.
fn is_fingerprint(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_as_flat_json() {
        let row = IntentRow {
            action: "create".into(),
            object: Unsettled::InstanceSnapshot {
                project: "default".into(),
                instance: "c1".into(),
                snapshot: "snap0".into(),
                pool: "default".into(),
            },
        };
        let text = serde_json::to_string(&row).expect("json");
        assert_eq!(
            text,
            r#"{"action":"create","object":"instance-snapshot","project":"default","instance":"c1","snapshot":"snap0","pool":"default"}"#
        );
        let back: IntentRow = serde_json::from_str(&text).expect("parse");
        assert_eq!(back.object, row.object);
    }

    #[test]
    fn fingerprints_are_recognised() {
        assert!(is_fingerprint(&"a".repeat(64)));
        assert!(!is_fingerprint(&"A".repeat(64)));
        assert!(!is_fingerprint("upload-123"));
    }
}
