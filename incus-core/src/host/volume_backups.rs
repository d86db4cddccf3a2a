//! Custom volume backups in Incus's tarball layout, so `incus storage volume export` and
//! `incus storage volume import` work as with Incus (and archives move between the two):
//!
//! ```text
//! backup/index.yaml                 name, backend, pool, snapshots, type: custom, config
//! backup/volume-snapshots/<snap>/   each snapshot (unless volume_only), oldest first
//! backup/volume/                    the volume's content
//! ```
//!
//! Backups are files under `$INCUS_DIR/backups/custom/<pool>/<project>_<volume>/`
//! (`<backup>` and `<backup>.json`), as Incus keeps them; they follow the volume when it is
//! renamed and go with it when it is deleted. Content is written as stored (custom volumes
//! are kept unshifted).

use super::backups::{
    BackupConfig, BackupIndex, BackupOutput, archive_volume, compression_of, discard_import,
    json_of, pick_backup_name, read_backups, rename_backup_files, unpack_backup,
};
use super::custom_volumes::{
    VolumeRecord, VolumeSnapshotRecord, driver_volume, key, replace_contents, snap_name,
    validate_volume_config,
};
use super::db::Table;
use super::{Host, Operation, with_project};
use crate::api;
use crate::config;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn backup_url(project: &str, pool: &str, name: &str, backup: &str) -> String {
    with_project(
        &format!("/1.0/storage-pools/{pool}/volumes/custom/{name}/backups/{backup}"),
        project,
    )
}

fn io(p: &Path, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{}: {e}", p.display()))
}

impl Host {
    /// Where a custom volume's backups are kept (`project` is the volume's own project).
    pub(super) fn volume_backups_dir(&self, project: &str, pool: &str, name: &str) -> PathBuf {
        self.inner
            .dir
            .join("backups/custom")
            .join(pool)
            .join(format!("{project}_{name}"))
    }

    /// The backups of a custom volume, oldest first.
    pub fn list_volume_backups(
        &self,
        project: &str,
        pool: &str,
        name: &str,
    ) -> Result<Vec<api::StorageVolumeBackup>> {
        let project = self.volume_project(project);
        self.volume_record(&project, pool, name)?;
        Ok(read_backups(&self.volume_backups_dir(&project, pool, name)))
    }

    /// One custom volume backup.
    pub fn get_volume_backup(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        backup: &str,
    ) -> Result<api::StorageVolumeBackup> {
        self.list_volume_backups(project, pool, name)?
            .into_iter()
            .find(|b| b.name == backup)
            .ok_or_else(|| Error::not_found("Storage volume backup not found"))
    }

    /// The tarball of a custom volume backup (`GET .../backups/<b>/export` streams it).
    pub fn volume_backup_file(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        backup: &str,
    ) -> Result<PathBuf> {
        self.get_volume_backup(project, pool, name, backup)?;
        let project = self.volume_project(project);
        Ok(self.volume_backups_dir(&project, pool, name).join(backup))
    }

    /// Makes a backup of a custom volume (an operation holding the volume's lock; its
    /// resources name the backup, which `incus storage volume export` reads).
    pub fn create_volume_backup(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        req: api::StorageVolumeBackupsPost,
    ) -> Result<Operation> {
        let project = self.volume_project(project);
        let rec = self.volume_record(&project, pool, name)?;
        if req.optimized_storage {
            return Err(Error::unsupported(
                "Optimized (native storage) backups are not supported yet",
            ));
        }
        let compression = compression_of(&req.compression_algorithm)?;
        let existing: Vec<String> = self
            .list_volume_backups(&project, pool, name)?
            .into_iter()
            .map(|b| b.name)
            .collect();
        let backup = pick_backup_name(&req.name, &existing)?;
        let mut resources = BTreeMap::new();
        resources.insert(
            "backups".into(),
            vec![backup_url(&project, pool, name, &backup)],
        );
        resources.insert(
            "storage_volumes".into(),
            vec![super::custom_volumes::volume_url(&project, pool, name)],
        );
        let host = self.clone();
        let (pool, name) = (pool.to_string(), name.to_string());
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Backing up storage volume",
            resources,
            false,
            move |_| async move {
                let lock = host.volume_lock(&project, &pool, &name);
                let _g = lock.lock().await;
                let meta = api::StorageVolumeBackup {
                    name: backup.clone(),
                    created_at: chrono::Utc::now(),
                    expires_at: req.expires_at.unwrap_or_else(api::zero_time),
                    volume_only: req.volume_only,
                    optimized_storage: false,
                };
                host.write_volume_backup(&project, &pool, rec, &meta, compression)
                    .await?;
                host.inner.events.lifecycle(
                    "storage-volume-backup-created",
                    &backup_url(&project, &pool, &name, &backup),
                    &project,
                    None,
                );
                Ok(None)
            },
        ))
    }

    async fn write_volume_backup(
        &self,
        project: &str,
        pool: &str,
        rec: VolumeRecord,
        meta: &api::StorageVolumeBackup,
        compression: &'static str,
    ) -> Result<()> {
        let name = rec.volume.name.clone();
        let driver = self.pool_driver(pool)?;
        let vol = driver_volume(project, &name);
        let snapshots: Vec<api::StorageVolumeSnapshot> = if meta.volume_only {
            Vec::new()
        } else {
            let mut list = self.volume_snapshots(project, pool, &name)?;
            list.sort_by_key(|s| s.snapshot.created_at);
            list.into_iter()
                .map(|s| {
                    let mut snap = s.snapshot.clone();
                    snap.name = snap_name(&s.snapshot).to_string();
                    snap
                })
                .collect()
        };
        let index = BackupIndex {
            name: name.clone(),
            backend: driver.info().name.to_string(),
            pool: pool.to_string(),
            snapshots: snapshots.iter().map(|s| s.name.clone()).collect(),
            optimized: Some(false),
            optimized_header: Some(false),
            kind: "custom".into(),
            config: Some(BackupConfig {
                pool: self.get_storage_pool(pool).ok(),
                volume: Some(rec.volume),
                volume_snapshots: snapshots,
                ..Default::default()
            }),
        };
        let yaml = serde_saphyr::to_string(&index)
            .map_err(|e| Error::internal(format!("index.yaml: {e}")))?;
        let out = BackupOutput {
            dir: self.volume_backups_dir(project, pool, &name),
            name: meta.name.clone(),
            meta_json: serde_json::to_string(meta).map_err(|e| Error::internal(e.to_string()))?,
            index_yaml: yaml,
            unshift: None,
            compression,
        };
        archive_volume(
            &driver,
            &vol,
            &index,
            "backup/volume-snapshots",
            "backup/volume",
            out,
        )
        .await
    }

    /// Renames a custom volume backup (an operation).
    pub fn rename_volume_backup(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        backup: &str,
        new_name: &str,
    ) -> Result<Operation> {
        self.get_volume_backup(project, pool, name, backup)?;
        let project = self.volume_project(project);
        config::validate_entity_name("backup", new_name)?;
        let dir = self.volume_backups_dir(&project, pool, name);
        let host = self.clone();
        let (pool, name, backup, new_name) = (
            pool.to_string(),
            name.to_string(),
            backup.to_string(),
            new_name.to_string(),
        );
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Renaming storage volume backup",
            BTreeMap::new(),
            false,
            move |_| async move {
                rename_backup_files::<api::StorageVolumeBackup>(&dir, &backup, &new_name)?;
                host.inner.events.lifecycle(
                    "storage-volume-backup-renamed",
                    &backup_url(&project, &pool, &name, &new_name),
                    &project,
                    Some(
                        [("old_name".to_string(), serde_json::json!(backup))]
                            .into_iter()
                            .collect(),
                    ),
                );
                Ok(None)
            },
        ))
    }

    /// Deletes a custom volume backup (an operation).
    pub fn delete_volume_backup(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        backup: &str,
    ) -> Result<Operation> {
        let file = self.volume_backup_file(project, pool, name, backup)?;
        let project = self.volume_project(project);
        let host = self.clone();
        let (pool, name, backup) = (pool.to_string(), name.to_string(), backup.to_string());
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Removing storage volume backup",
            BTreeMap::new(),
            false,
            move |_| async move {
                std::fs::remove_file(&file).map_err(|e| io(&file, e))?;
                let _ = std::fs::remove_file(json_of(&file));
                if let Some(dir) = file.parent() {
                    // Gone with its last backup, as in Incus.
                    let _ = std::fs::remove_dir(dir);
                }
                host.inner.events.lifecycle(
                    "storage-volume-backup-deleted",
                    &backup_url(&project, &pool, &name, &backup),
                    &project,
                    None,
                );
                Ok(None)
            },
        ))
    }

    /// Creates a custom volume from a backup tarball (`POST
    /// /1.0/storage-pools/<pool>/volumes/custom` with an `application/octet-stream` body;
    /// `incus storage volume import`). `file` is the uploaded archive, removed once read;
    /// `name` overrides the archive's volume name. Each snapshot, oldest first, then the
    /// volume are copied into a new volume of `pool`.
    pub fn import_volume_backup(
        &self,
        project: &str,
        pool: &str,
        file: PathBuf,
        name: Option<String>,
    ) -> Result<Operation> {
        let project = self.volume_project(project);
        self.get_storage_pool(pool)?;
        let host = self.clone();
        let pool = pool.to_string();
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Restoring storage volume backup",
            BTreeMap::new(),
            false,
            move |_| async move {
                let staging = host.import_staging();
                let r = host
                    .import_volume_from(&project, &pool, &file, &staging, name)
                    .await;
                discard_import(&file, &staging);
                r.map(|_| None)
            },
        ))
    }

    async fn import_volume_from(
        &self,
        project: &str,
        pool: &str,
        file: &Path,
        staging: &Path,
        name: Option<String>,
    ) -> Result<()> {
        let index = unpack_backup(file, staging).await?;
        if index.kind != "custom" {
            return Err(Error::invalid(format!(
                "Not a custom volume backup (type {:?}); use `incus import` for instances",
                index.kind
            )));
        }
        let cfg = index.config.unwrap_or_default();
        let mut volume = cfg.volume.unwrap_or_default();
        if !matches!(volume.content_type.as_str(), "" | "filesystem") {
            return Err(Error::unsupported(format!(
                "{} volumes are not supported yet",
                volume.content_type
            )));
        }
        let name = name.unwrap_or_else(|| index.name.clone());
        let req = api::StorageVolumesPost {
            name: name.clone(),
            kind: "custom".into(),
            ..Default::default()
        };
        self.check_new_volume(project, pool, &req)?;
        volume.put.config.retain(|k, _| !k.starts_with("volatile."));
        validate_volume_config(&volume.put.config)?;
        let driver = self.pool_driver(pool)?;
        let size = self.volume_size(&driver, pool, &volume.put.config)?;
        let lock = self.volume_lock(project, pool, &name);
        let _g = lock.lock().await;
        // Made by someone else while the archive was unpacked.
        self.check_new_volume(project, pool, &req)?;
        let vol = driver_volume(project, &name);
        let _intent = self
            .claim_custom_volume("import", project, pool, &name, &driver)
            .await?;
        driver.create_volume(&vol).await?;
        let mut rec = VolumeRecord::new(
            pool,
            project,
            &name,
            volume.put.config.clone(),
            &volume.put.description,
        );
        if volume.created_at != api::zero_time() {
            rec.volume.created_at = volume.created_at;
        }
        let work = async {
            if let Some(bytes) = size {
                driver.set_volume_quota(&vol, bytes).await?;
            }
            let dst = driver.volume_path(&vol);
            let mut made = Vec::new();
            for s in &index.snapshots {
                config::validate_snapshot_name(s)?;
                let src = staging.join("backup/volume-snapshots").join(s);
                if !src.is_dir() {
                    return Err(Error::invalid(format!(
                        "The backup lists snapshot {s:?} but holds no backup/volume-snapshots/{s}"
                    )));
                }
                replace_contents(src, dst.clone(), None).await?;
                driver.create_snapshot(&vol, s).await?;
                made.push(s.clone());
            }
            let src = staging.join("backup/volume");
            if !src.is_dir() {
                return Err(Error::invalid(
                    "Not a custom volume backup: backup/volume is missing",
                ));
            }
            replace_contents(src, dst, None).await?;
            let db = &self.inner.db;
            db.insert(Table::Volumes, project, &key(pool, &name), &rec)?;
            for s in &made {
                let mut snap = cfg
                    .volume_snapshots
                    .iter()
                    .find(|x| x.name.rsplit('/').next() == Some(s.as_str()))
                    .cloned()
                    .unwrap_or_else(|| api::StorageVolumeSnapshot {
                        created_at: chrono::Utc::now(),
                        ..Default::default()
                    });
                snap.name = format!("{name}/{s}");
                snap.config.retain(|k, _| !k.starts_with("volatile."));
                snap.content_type = "filesystem".into();
                let row = VolumeSnapshotRecord {
                    pool: pool.to_string(),
                    volume: name.clone(),
                    snapshot: snap,
                };
                db.insert(
                    Table::VolumeSnapshots,
                    project,
                    &format!("{pool}/{name}/{s}"),
                    &row,
                )?;
            }
            Ok(())
        };
        if let Err(e) = work.await {
            let _ = driver.delete_volume(&vol).await;
            let db = &self.inner.db;
            let _ = db.delete_prefix(Table::VolumeSnapshots, project, &format!("{pool}/{name}/"));
            let _ = db.delete(Table::Volumes, project, &key(pool, &name));
            return Err(e);
        }
        self.volume_event("storage-volume-created", project, pool, &name);
        Ok(())
    }
}
