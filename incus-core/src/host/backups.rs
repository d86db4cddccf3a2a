//! Instance backups in Incus's portable tarball layout, so `incus export` and `incus import`
//! work as with Incus (and archives move between the two):
//!
//! ```text
//! backup/index.yaml            name, backend, pool, snapshots, optimized, type, config
//! backup/snapshots/<snap>/     each snapshot's volume (unless instance_only), oldest first
//! backup/container/            the instance volume: backup.yaml, metadata.yaml, rootfs/, templates/
//! ```
//!
//! Ids are written as the container sees them (unshifted). Backups are files under
//! `$INCUS_DIR/backups/instances/<storage name>/` (`<backup>` and `<backup>.json`), made by an
//! operation and streamed by `export`. Only the portable layout is written
//! (`optimized_storage` is refused).

use super::db::Table;
use super::instances::{SnapshotRecord, instance_pool, new_record, storage_name};
use super::{Host, Operation, instance_url};
use crate::api;
use crate::config;
use crate::drivers::{IdShift, StorageDriver, Volume, VolumeType};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `backup/index.yaml` (Incus's `backup.Info`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupIndex {
    /// Instance name.
    pub name: String,
    /// Storage driver of the pool it came from.
    pub backend: String,
    /// Pool it came from.
    pub pool: String,
    /// Snapshot names, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
    /// Native storage format.
    pub optimized: Option<bool>,
    /// Native storage header.
    pub optimized_header: Option<bool>,
    /// `container`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The records.
    pub config: Option<BackupConfig>,
}

/// The records in `index.yaml` (Incus's `config.Config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupConfig {
    /// The instance.
    pub container: Option<api::Instance>,
    /// Its snapshots.
    pub snapshots: Vec<api::InstanceSnapshot>,
    /// The pool.
    pub pool: Option<api::StoragePool>,
    /// The profiles it used.
    pub profiles: Vec<api::Profile>,
    /// The instance volume.
    pub volume: Option<api::StorageVolume>,
    /// The volume's snapshots.
    pub volume_snapshots: Vec<api::StorageVolumeSnapshot>,
}

fn io(p: &Path, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{}: {e}", p.display()))
}

fn backup_url(project: &str, name: &str, backup: &str) -> String {
    super::with_project(&format!("/1.0/instances/{name}/backups/{backup}"), project)
}

impl Host {
    /// Where an instance's backups are kept.
    pub(super) fn backups_dir(&self, project: &str, name: &str) -> PathBuf {
        self.inner
            .dir
            .join("backups/instances")
            .join(storage_name(project, name))
    }

    /// The backups of an instance, oldest first.
    pub fn list_instance_backups(
        &self,
        project: &str,
        name: &str,
    ) -> Result<Vec<api::InstanceBackup>> {
        self.get_instance_record(project, name)?;
        Ok(read_backups(&self.backups_dir(project, name)))
    }

    /// The backups of every instance that has any, by storage name (`<project>_<name>`, or
    /// the name in `default`): for `recursion=2` listings.
    pub(super) fn all_instance_backups(&self) -> BTreeMap<String, Vec<api::InstanceBackup>> {
        let root = self.inner.dir.join("backups/instances");
        let Ok(entries) = std::fs::read_dir(&root) else {
            return BTreeMap::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let list = read_backups(&e.path());
                (!list.is_empty()).then(|| (e.file_name().to_string_lossy().into_owned(), list))
            })
            .collect()
    }

    /// One backup.
    pub fn get_instance_backup(
        &self,
        project: &str,
        name: &str,
        backup: &str,
    ) -> Result<api::InstanceBackup> {
        self.list_instance_backups(project, name)?
            .into_iter()
            .find(|b| b.name == backup)
            .ok_or_else(|| Error::not_found("Instance backup not found"))
    }

    /// The tarball of a backup (`GET .../backups/<b>/export` streams it).
    pub fn instance_backup_file(&self, project: &str, name: &str, backup: &str) -> Result<PathBuf> {
        self.get_instance_backup(project, name, backup)?;
        Ok(self.backups_dir(project, name).join(backup))
    }

    /// Makes a backup (an operation holding the instance's lock). A running instance is
    /// backed up as it is at that moment, as Incus does for `dir`.
    pub fn create_instance_backup(
        &self,
        project: &str,
        name: &str,
        req: api::InstanceBackupsPost,
    ) -> Result<Operation> {
        let inst = self.get_instance_record(project, name)?;
        if req.optimized_storage {
            return Err(Error::unsupported(
                "Optimized (native storage) backups are not supported yet",
            ));
        }
        let compression = compression_of(&req.compression_algorithm)?;
        let existing: Vec<String> = self
            .list_instance_backups(project, name)?
            .into_iter()
            .map(|b| b.name)
            .collect();
        let backup = pick_backup_name(&req.name, &existing)?;
        let mut resources = BTreeMap::new();
        resources.insert("backups".into(), vec![backup_url(project, name, &backup)]);
        resources.insert("instances".into(), vec![instance_url(project, name)]);
        let host = self.clone();
        let (project, name) = (project.to_string(), name.to_string());
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Backing up instance",
            resources,
            false,
            move |_| async move {
                let lock = host.instance_lock(&project, &name);
                let _g = lock.lock().await;
                let meta = api::InstanceBackup {
                    name: backup.clone(),
                    created_at: chrono::Utc::now(),
                    expires_at: req.expires_at.unwrap_or_else(api::zero_time),
                    instance_only: req.instance_only,
                    optimized_storage: false,
                };
                host.write_backup(&project, &inst, &meta, compression)
                    .await?;
                host.inner.events.lifecycle(
                    "instance-backup-created",
                    &backup_url(&project, &name, &backup),
                    &project,
                    None,
                );
                Ok(None)
            },
        ))
    }

    async fn write_backup(
        &self,
        project: &str,
        inst: &api::Instance,
        meta: &api::InstanceBackup,
        compression: &'static str,
    ) -> Result<()> {
        let (driver, vol) = self.root_volume(inst)?;
        let pool_name = instance_pool(inst).to_string();
        let privileged = config::is_true(&inst.expanded_config, "security.privileged");
        let unshift = (!privileged).then_some(self.inner.idmap);
        let mut cfg = self.backup_config(project, inst)?;
        if meta.instance_only {
            cfg.snapshots.clear();
            cfg.volume_snapshots.clear();
        }
        // The volume's own backup.yaml is brought up to date first (Incus checks it on import).
        self.write_backup_yaml(project, &inst.name, &driver.volume_path(&vol));
        let index = BackupIndex {
            name: inst.name.clone(),
            backend: driver.info().name.to_string(),
            pool: pool_name.clone(),
            snapshots: cfg.snapshots.iter().map(|s| s.name.clone()).collect(),
            optimized: Some(false),
            optimized_header: Some(false),
            kind: "container".into(),
            config: Some(cfg),
        };
        let yaml = serde_saphyr::to_string(&index)
            .map_err(|e| Error::internal(format!("index.yaml: {e}")))?;
        let json = serde_json::to_string(meta).map_err(|e| Error::internal(e.to_string()))?;
        let out = BackupOutput {
            dir: self.backups_dir(project, &inst.name),
            name: meta.name.clone(),
            meta_json: json,
            index_yaml: yaml,
            unshift,
            compression,
        };
        archive_volume(
            &driver,
            &vol,
            &index,
            "backup/snapshots",
            "backup/container",
            out,
        )
        .await
    }

    /// Renames a backup (an operation).
    pub fn rename_instance_backup(
        &self,
        project: &str,
        name: &str,
        backup: &str,
        new_name: &str,
    ) -> Result<Operation> {
        self.get_instance_backup(project, name, backup)?;
        config::validate_entity_name("backup", new_name)?;
        let dir = self.backups_dir(project, name);
        let host = self.clone();
        let mut resources = BTreeMap::new();
        resources.insert("instances".into(), vec![instance_url(project, name)]);
        let (project, name, backup, new_name) = (
            project.to_string(),
            name.to_string(),
            backup.to_string(),
            new_name.to_string(),
        );
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Renaming instance backup",
            resources,
            false,
            move |_| async move {
                rename_backup_files::<api::InstanceBackup>(&dir, &backup, &new_name)?;
                host.inner.events.lifecycle(
                    "instance-backup-renamed",
                    &backup_url(&project, &name, &new_name),
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

    /// Deletes a backup (an operation).
    pub fn delete_instance_backup(
        &self,
        project: &str,
        name: &str,
        backup: &str,
    ) -> Result<Operation> {
        let file = self.instance_backup_file(project, name, backup)?;
        let host = self.clone();
        let mut resources = BTreeMap::new();
        resources.insert("instances".into(), vec![instance_url(project, name)]);
        let (project, name, backup) = (project.to_string(), name.to_string(), backup.to_string());
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Removing instance backup",
            resources,
            false,
            move |_| async move {
                std::fs::remove_file(&file).map_err(|e| io(&file, e))?;
                let _ = std::fs::remove_file(json_of(&file));
                host.inner.events.lifecycle(
                    "instance-backup-deleted",
                    &backup_url(&project, &name, &backup),
                    &project,
                    None,
                );
                Ok(None)
            },
        ))
    }

    /// Creates an instance from a backup tarball (`POST /1.0/instances` with an
    /// `application/octet-stream` body; `incus import`). `file` is the uploaded archive, removed
    /// once read; `name` and `pool` override what the archive says. The archive is unpacked
    /// into a staging directory with the same path checks as images (no entry escapes it),
    /// then each snapshot, oldest first, and the instance are copied into a new volume, ids
    /// shifted for an unprivileged container.
    pub fn import_instance_backup(
        &self,
        project: &str,
        file: PathBuf,
        name: Option<String>,
        pool: Option<String>,
    ) -> Result<Operation> {
        self.get_project(project)?;
        let host = self.clone();
        let project = project.to_string();
        let mut resources = BTreeMap::new();
        if let Some(n) = &name {
            resources.insert("instances".into(), vec![instance_url(&project, n)]);
        }
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Restoring backup",
            resources,
            false,
            move |_| async move {
                let staging = host.import_staging();
                let r = host
                    .import_from(&project, &file, &staging, name, pool)
                    .await;
                discard_import(&file, &staging);
                r.map(|_| None)
            },
        ))
    }

    async fn import_from(
        &self,
        project: &str,
        file: &Path,
        staging: &Path,
        name: Option<String>,
        pool: Option<String>,
    ) -> Result<()> {
        let index = unpack_backup(file, staging).await?;
        if index.kind != "container" {
            return Err(Error::unsupported(format!(
                "Backups of type {:?} cannot be imported (containers only)",
                index.kind
            )));
        }
        let mut inst = index
            .config
            .as_ref()
            .and_then(|c| c.container.clone())
            .ok_or_else(|| Error::invalid("backup/index.yaml holds no instance"))?;
        let name = name.unwrap_or_else(|| index.name.clone());
        config::validate_instance_name(&name)?;
        let pool = match pool {
            Some(p) => p,
            None if self.get_storage_pool(&index.pool).is_ok() => index.pool.clone(),
            None => self.default_root_pool(project)?,
        };
        self.get_storage_pool(&pool)?;
        // The record: the archive's instance under its new name, project and pool.
        let mut has_root = false;
        for dev in inst.put.devices.values_mut() {
            if dev.get("type").map(String::as_str) == Some("disk")
                && dev.get("path").map(String::as_str) == Some("/")
            {
                dev.insert("pool".into(), pool.clone());
                has_root = true;
            }
        }
        // A root disk from a profile on another pool: a local one on the chosen pool, as
        // Incus does on import.
        if !has_root && self.default_root_pool(project).ok().as_deref() != Some(pool.as_str()) {
            inst.put.devices.insert(
                "root".into(),
                [("type", "disk"), ("path", "/"), ("pool", pool.as_str())]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        let base_image = inst.put.config.get("volatile.base_image").cloned();
        inst.put.config.retain(|k, _| !k.starts_with("volatile."));
        let (ec, _) = self.validate_put(project, &inst.put)?;
        let mut rec = new_record(project, &name, inst.put.clone(), &pool, base_image);
        rec.created_at = inst.created_at;
        let shift: Option<IdShift> =
            (!config::is_true(&ec, "security.privileged")).then_some(self.inner.idmap);
        let lock = self.instance_lock(project, &name);
        let _g = lock.lock().await;
        let driver = self.pool_driver(&pool)?;
        let vol = crate::drivers::Volume::new(VolumeType::Container, storage_name(project, &name));
        let _intent = self
            .claim_volume("import", project, &name, &pool, &driver, &vol)
            .await?;
        driver.create_volume(&vol).await?;
        let snapshots: Vec<api::InstanceSnapshot> = index
            .config
            .as_ref()
            .map(|c| c.snapshots.clone())
            .unwrap_or_default();
        let work = async {
            let dst = driver.volume_path(&vol);
            for s in &index.snapshots {
                let src = staging.join("backup/snapshots").join(s);
                if !src.is_dir() {
                    continue;
                }
                config::validate_snapshot_name(s)?;
                super::custom_volumes::replace_contents(src, dst.clone(), shift).await?;
                driver.create_snapshot(&vol, s).await?;
            }
            let src = staging.join("backup/container");
            if !src.is_dir() {
                return Err(Error::invalid(
                    "Not an instance backup: backup/container is missing",
                ));
            }
            super::custom_volumes::replace_contents(src, dst, shift).await?;
            self.inner
                .db
                .insert(Table::Instances, project, &name, &rec)?;
            for s in &index.snapshots {
                if !staging.join("backup/snapshots").join(s).is_dir() {
                    continue;
                }
                let mut snap = snapshots
                    .iter()
                    .find(|x| &x.name == s)
                    .cloned()
                    .unwrap_or_else(|| api::InstanceSnapshot {
                        name: s.clone(),
                        created_at: chrono::Utc::now(),
                        ..Default::default()
                    });
                snap.name = s.clone();
                let row = SnapshotRecord {
                    instance: name.clone(),
                    snapshot: snap,
                };
                self.inner
                    .db
                    .insert(Table::Snapshots, project, &format!("{name}/{s}"), &row)?;
            }
            Ok(())
        };
        if let Err(e) = work.await {
            let _ = driver.delete_volume(&vol).await;
            let _ = self
                .inner
                .db
                .delete_prefix(Table::Snapshots, project, &format!("{name}/"));
            let _ = self.inner.db.delete(Table::Instances, project, &name);
            return Err(e);
        }
        self.write_backup_yaml(project, &name, &driver.volume_path(&vol));
        self.inner.events.lifecycle(
            "instance-created",
            &instance_url(project, &name),
            project,
            None,
        );
        Ok(())
    }

    /// The records of an instance as `backup.yaml` and `index.yaml` hold them.
    /// Keys of this engine's own that Incus does not know (the instance's pool is recorded
    /// in `volatile.rootfs.pool`) are left out, so Incus imports the archive.
    fn backup_config(&self, project: &str, inst: &api::Instance) -> Result<BackupConfig> {
        const OWN: &str = "volatile.rootfs.pool";
        let mut snapshots = self.list_snapshots(project, &inst.name)?;
        for s in &mut snapshots {
            s.config.remove(OWN);
            s.expanded_config.remove(OWN);
        }
        let mut inst = inst.clone();
        inst.put.config.remove(OWN);
        inst.expanded_config.remove(OWN);
        let inst = &inst;
        let profile_project = self.feature_project(project, "features.profiles");
        Ok(BackupConfig {
            container: Some(inst.clone()),
            volume_snapshots: snapshots
                .iter()
                .map(|s| api::StorageVolumeSnapshot {
                    name: s.name.clone(),
                    created_at: s.created_at,
                    expires_at: Some(s.expires_at),
                    ..Default::default()
                })
                .collect(),
            snapshots,
            pool: self.get_storage_pool(instance_pool(inst)).ok(),
            profiles: inst
                .put
                .profiles
                .iter()
                .filter_map(|p| self.get_profile(&profile_project, p).ok())
                .collect(),
            volume: Some(api::StorageVolume {
                name: inst.name.clone(),
                kind: VolumeType::Container.api_name().into(),
                project: project.to_string(),
                created_at: inst.created_at,
                ..Default::default()
            }),
        })
    }

    /// Writes `backup.yaml` into the instance volume (what Incus keeps there, so that the
    /// database can be rebuilt from the pools and imports can check the snapshots). Best
    /// effort.
    pub(super) fn write_backup_yaml(&self, project: &str, name: &str, vol_path: &Path) {
        let Ok(inst) = self.get_instance_record(project, name) else {
            return;
        };
        if let Ok(cfg) = self.backup_config(project, &inst)
            && let Ok(text) = serde_saphyr::to_string(&cfg)
        {
            let _ = std::fs::write(vol_path.join("backup.yaml"), text);
        }
    }

    /// [`Host::write_backup_yaml`] into the instance's own volume.
    pub(super) fn refresh_backup_yaml(&self, project: &str, name: &str) {
        if let Ok(inst) = self.get_instance_record(project, name)
            && let Ok((driver, vol)) = self.root_volume(&inst)
        {
            self.write_backup_yaml(project, name, &driver.volume_path(&vol));
        }
    }

    /// A new staging directory for unpacking an uploaded backup.
    pub(super) fn import_staging(&self) -> PathBuf {
        self.inner
            .dir
            .join("backups")
            .join(format!("import-{}", uuid::Uuid::new_v4()))
    }

    /// The pool of the root disk of the project's `default` profile.
    fn default_root_pool(&self, project: &str) -> Result<String> {
        let prof = self.get_profile(
            &self.feature_project(project, "features.profiles"),
            "default",
        )?;
        prof.put
            .devices
            .values()
            .find(|d| d.get("path").map(String::as_str) == Some("/"))
            .and_then(|d| d.get("pool").cloned())
            .ok_or_else(|| {
                Error::invalid("No storage pool given and no root disk in the default profile")
            })
    }
}

/// A backup record: what `<backup>.json` holds beside each tarball.
pub(super) trait BackupRecord: serde::de::DeserializeOwned + Serialize {
    /// The backup's name.
    fn name(&self) -> &str;
    /// Renames the record.
    fn set_name(&mut self, name: &str);
    /// When it was made.
    fn created(&self) -> api::Timestamp;
    /// When it expires (the zero time: never).
    fn expires(&self) -> api::Timestamp;
}

impl BackupRecord for api::InstanceBackup {
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }
    fn created(&self) -> api::Timestamp {
        self.created_at
    }
    fn expires(&self) -> api::Timestamp {
        self.expires_at
    }
}

impl BackupRecord for api::StorageVolumeBackup {
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }
    fn created(&self) -> api::Timestamp {
        self.created_at
    }
    fn expires(&self) -> api::Timestamp {
        self.expires_at
    }
}

/// The backups recorded in `dir` (`<backup>.json` beside each tarball), oldest first.
pub(super) fn read_backups<T: BackupRecord>(dir: &Path) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json")
            && let Ok(text) = std::fs::read_to_string(&p)
            && let Ok(b) = serde_json::from_str::<T>(&text)
        {
            out.push(b);
        }
    }
    out.sort_by_key(|b| b.created());
    out
}

/// The compression a backup request asks for (`gzip` when empty).
pub(super) fn compression_of(algorithm: &str) -> Result<&'static str> {
    match algorithm {
        "" | "gzip" => Ok("gzip"),
        "none" => Ok("none"),
        "xz" => Ok("xz"),
        "zstd" => Ok("zstd"),
        other => Err(Error::invalid(format!(
            "Unsupported compression algorithm {other:?}"
        ))),
    }
}

/// The name of a new backup: the requested one, or the first free `backup<N>`; checked and
/// refused when taken.
pub(super) fn pick_backup_name(requested: &str, existing: &[String]) -> Result<String> {
    let backup = if requested.is_empty() {
        (0..)
            .map(|i| format!("backup{i}"))
            .find(|n| !existing.contains(n))
            .unwrap_or_default()
    } else {
        requested.to_string()
    };
    config::validate_entity_name("backup", &backup)?;
    if existing.contains(&backup) {
        return Err(Error::already_exists(format!(
            "Backup {backup:?} already exists"
        )));
    }
    Ok(backup)
}

/// Renames a backup's tarball and record in `dir` (refused when `new` is taken or invalid).
pub(super) fn rename_backup_files<T: BackupRecord>(dir: &Path, old: &str, new: &str) -> Result<()> {
    config::validate_entity_name("backup", new)?;
    let list: Vec<T> = read_backups(dir);
    let mut rec = list
        .into_iter()
        .find(|b| b.name() == old)
        .ok_or_else(|| Error::not_found("Backup not found"))?;
    if dir.join(format!("{new}.json")).exists() {
        return Err(Error::already_exists(format!(
            "Backup {new:?} already exists"
        )));
    }
    std::fs::rename(dir.join(old), dir.join(new)).map_err(|e| io(&dir.join(old), e))?;
    rec.set_name(new);
    let json = serde_json::to_string(&rec).map_err(|e| Error::internal(e.to_string()))?;
    std::fs::write(dir.join(format!("{new}.json")), json).map_err(|e| io(dir, e))?;
    std::fs::remove_file(dir.join(format!("{old}.json"))).map_err(|e| io(dir, e))
}

/// Removes the backups in `dir` whose expiry has passed; returns how many.
pub(super) fn prune_backup_dir<T: BackupRecord>(dir: &Path, now: api::Timestamp) -> usize {
    let mut n = 0;
    for b in read_backups::<T>(dir) {
        let at = b.expires();
        if at != api::zero_time() && at <= now {
            let name = b.name();
            let _ = std::fs::remove_file(dir.join(name));
            if std::fs::remove_file(dir.join(format!("{name}.json"))).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// Removes an uploaded backup and its staging directory once an import is over.
pub(super) fn discard_import(file: &Path, staging: &Path) {
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_dir_all(staging);
}

/// The record beside a backup tarball (`<backup>.json`).
pub(super) fn json_of(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".json");
    PathBuf::from(name)
}

/// Where and how a backup tarball is written.
pub(super) struct BackupOutput {
    /// The directory holding the backups of this instance or volume.
    pub dir: PathBuf,
    /// The backup's name (its file name).
    pub name: String,
    /// Its record, written as `<name>.json` once the tarball is complete.
    pub meta_json: String,
    /// `backup/index.yaml`.
    pub index_yaml: String,
    /// Ids written as the container sees them.
    pub unshift: Option<IdShift>,
    /// `gzip`, `none`, `xz` or `zstd`.
    pub compression: &'static str,
}

/// Writes a volume and the snapshots `index` lists into a backup tarball: each snapshot,
/// mounted for the time of the read, under `snap_prefix/<snap>`, the volume under `main`.
pub(super) async fn archive_volume(
    driver: &Arc<dyn StorageDriver>,
    vol: &Volume,
    index: &BackupIndex,
    snap_prefix: &str,
    main: &str,
    out: BackupOutput,
) -> Result<()> {
    let mut sources: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut mounted = Vec::new();
    let mut mount_err = None;
    for s in &index.snapshots {
        match driver.mount_snapshot(vol, s).await {
            Ok(p) => {
                mounted.push(s.clone());
                sources.push((p, Path::new(snap_prefix).join(s)));
            }
            Err(e) => {
                mount_err = Some(e);
                break;
            }
        }
    }
    sources.push((driver.volume_path(vol), PathBuf::from(main)));
    let written = match mount_err {
        Some(e) => Err(e),
        None => tokio::task::spawn_blocking(move || write_tarball(&out, &sources))
            .await
            .map_err(|e| Error::internal(e.to_string()))
            .and_then(|r| r),
    };
    for s in &mounted {
        driver.unmount_snapshot(vol, s).await?;
    }
    written
}

/// Unpacks an uploaded backup into `staging` (with the same path checks as images: no entry
/// escapes it) and reads its `backup/index.yaml`.
pub(super) async fn unpack_backup(file: &Path, staging: &Path) -> Result<BackupIndex> {
    std::fs::create_dir_all(staging).map_err(|e| io(staging, e))?;
    let (f, s) = (file.to_path_buf(), staging.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&f).map_err(|e| io(&f, e))?;
        super::archive::extract(super::archive::decompress(file)?, &s, None)
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))??;
    let text = std::fs::read_to_string(staging.join("backup/index.yaml"))
        .map_err(|_| Error::invalid("Not a backup: backup/index.yaml is missing"))?;
    let index: BackupIndex = serde_saphyr::from_str(&text)
        .map_err(|e| Error::invalid(format!("Bad backup/index.yaml: {e}")))?;
    if index.optimized == Some(true) {
        return Err(Error::unsupported(format!(
            "Optimized ({}) backups cannot be imported yet",
            index.backend
        )));
    }
    Ok(index)
}

/// Writes `<dir>/<backup>` (through `<backup>.partial`) and its `<backup>.json`.
fn write_tarball(out: &BackupOutput, sources: &[(PathBuf, PathBuf)]) -> Result<()> {
    let dir = &out.dir;
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join(&out.name);
    let partial = dir.join(format!("{}.partial", out.name));
    let file = std::fs::File::create(&partial).map_err(|e| io(&partial, e))?;
    let buffered = std::io::BufWriter::with_capacity(1 << 20, file);
    let w: Box<dyn std::io::Write> = match out.compression {
        "none" => Box::new(buffered),
        "xz" => Box::new(liblzma::write::XzEncoder::new(buffered, 6)),
        "zstd" => Box::new(
            zstd::stream::write::Encoder::new(buffered, 3)
                .map_err(|e| io(&partial, e))?
                .auto_finish(),
        ),
        _ => Box::new(flate2::write::GzEncoder::new(
            buffered,
            flate2::Compression::default(),
        )),
    };
    let r = (|| {
        let mut b = tar::Builder::new(w);
        let mut h = tar::Header::new_gnu();
        h.set_size(out.index_yaml.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default());
        b.append_data(&mut h, "backup/index.yaml", out.index_yaml.as_bytes())
            .map_err(|e| io(&partial, e))?;
        for (src, name) in sources {
            super::archive::append_tree(&mut b, src, name, out.unshift)?;
        }
        let mut w = b.into_inner().map_err(|e| io(&partial, e))?;
        w.flush().map_err(|e| io(&partial, e))?;
        drop(w);
        Ok::<(), Error>(())
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    // The tarball first, then the record that lists it.
    std::fs::rename(&partial, &path).map_err(|e| io(&path, e))?;
    std::fs::write(dir.join(format!("{}.json", out.name)), &out.meta_json).map_err(|e| io(&path, e))
}
