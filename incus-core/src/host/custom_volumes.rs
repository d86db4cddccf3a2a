//! Custom storage volumes: create, update (size, restore), rename, copy and move between
//! pools and projects, delete, snapshots, usage, and their use by instances as `disk`
//! devices (`pool`, `source`, `path`).
//!
//! A volume is one row of the `volumes` table keyed by `<pool>/<name>` in the project that
//! owns it (the request's project with `features.storage.volumes`, else `default`, as in
//! Incus); its storage name is `<project>_<name>` in the pool's `custom/` directory, as Incus
//! lays it out. Content is stored unshifted: an unprivileged container sees it through an
//! idmapped mount, so one volume can be shared by containers with any id map.

use super::db::Table;
use super::intents::{Intent, Unsettled};
use super::{DEFAULT_PROJECT, Host, Operation, instance_url, with_project};
use crate::api::{self, ConfigMap};
use crate::config;
use crate::drivers::{InstanceDriver, PowerState, StorageDriver, Volume, VolumeType};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Objects with the project each belongs to.
type InProject<T> = Vec<(String, T)>;

/// Volume config keys this engine implements (plus `user.*`).
const VOLUME_KEYS: &[&str] = &[
    "size",
    "snapshots.expiry",
    "snapshots.pattern",
    "snapshots.schedule",
];

/// A custom volume as stored: the API object and its pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct VolumeRecord {
    pub(super) pool: String,
    pub(super) volume: api::StorageVolume,
}

impl VolumeRecord {
    /// A new filesystem volume's record, created now.
    pub(super) fn new(
        pool: &str,
        project: &str,
        name: &str,
        config: ConfigMap,
        description: &str,
    ) -> VolumeRecord {
        VolumeRecord {
            pool: pool.to_string(),
            volume: api::StorageVolume {
                put: api::StorageVolumePut {
                    config,
                    description: description.to_string(),
                    restore: String::new(),
                },
                name: name.to_string(),
                kind: "custom".into(),
                project: project.to_string(),
                created_at: chrono::Utc::now(),
                ..Default::default()
            },
        }
    }
}

/// Removes what a failed cleanup left under a volume's name (no record owns it).
pub(super) async fn reclaim_volume(driver: &Arc<dyn StorageDriver>, vol: &Volume) -> Result<()> {
    if driver.has_volume(vol).await? {
        driver.delete_volume(vol).await?;
    }
    Ok(())
}

/// A custom volume snapshot as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct VolumeSnapshotRecord {
    pub(super) pool: String,
    pub(super) volume: String,
    pub(super) snapshot: api::StorageVolumeSnapshot,
}

pub(super) fn key(pool: &str, name: &str) -> String {
    format!("{pool}/{name}")
}

pub(super) fn driver_volume(project: &str, name: &str) -> Volume {
    Volume::new(VolumeType::Custom, format!("{project}_{name}"))
}

/// The API URL of a custom volume.
pub(super) fn volume_url(project: &str, pool: &str, name: &str) -> String {
    with_project(
        &format!("/1.0/storage-pools/{pool}/volumes/custom/{name}"),
        project,
    )
}

fn is_custom_disk(dev: &ConfigMap) -> bool {
    dev.get("type").map(String::as_str) == Some("disk")
        && dev.get("path").map(String::as_str) != Some("/")
        && dev.get("pool").is_some_and(|p| !p.is_empty())
}

/// Checks a custom volume's config: known keys, sizes, expiries.
pub(super) fn validate_volume_config(config: &ConfigMap) -> Result<()> {
    for (k, v) in config {
        if k.starts_with("user.") {
            continue;
        }
        if !VOLUME_KEYS.contains(&k.as_str()) {
            return Err(Error::invalid(format!(
                "Invalid storage volume configuration key {k:?}"
            )));
        }
        match k.as_str() {
            "size" if !v.is_empty() => {
                config::parse_size(v)
                    .map_err(|e| Error::invalid(format!("Invalid value for \"size\": {e}")))?;
            }
            "snapshots.expiry" if !v.is_empty() => {
                config::parse_expiry(v)?;
            }
            "snapshots.schedule" => {
                config::Schedule::parse(v)?;
            }
            _ => {}
        }
    }
    Ok(())
}

impl Host {
    /// The project owning the custom volumes seen from `project`.
    pub(super) fn volume_project(&self, project: &str) -> String {
        self.feature_project(project, "features.storage.volumes")
    }

    pub(super) fn volume_record(
        &self,
        project: &str,
        pool: &str,
        name: &str,
    ) -> Result<VolumeRecord> {
        self.inner
            .db
            .get::<VolumeRecord>(Table::Volumes, project, &key(pool, name))?
            .ok_or_else(|| Error::not_found("Storage volume not found"))
    }

    pub(super) fn volume_snapshots(
        &self,
        project: &str,
        pool: &str,
        name: &str,
    ) -> Result<Vec<VolumeSnapshotRecord>> {
        self.inner.db.list_prefix::<VolumeSnapshotRecord>(
            Table::VolumeSnapshots,
            project,
            &format!("{pool}/{name}/"),
        )
    }

    /// The project owning the custom volumes of each project (one query; see
    /// [`Host::volume_project`]).
    fn volume_projects(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .inner
            .db
            .list::<api::Project>(Table::Projects, None)?
            .into_iter()
            .map(|(_, p)| {
                let own = p.name != DEFAULT_PROJECT
                    && p.put
                        .config
                        .get("features.storage.volumes")
                        .map(String::as_str)
                        == Some("true");
                let owner = if own {
                    p.name.clone()
                } else {
                    DEFAULT_PROJECT.into()
                };
                (p.name, owner)
            })
            .collect())
    }

    /// The instance rows (all projects) whose custom volumes `project` owns.
    fn instances_seeing(&self, project: &str) -> Result<Vec<(String, api::Instance)>> {
        let owners = self.volume_projects()?;
        Ok(self
            .inner
            .db
            .list::<api::Instance>(Table::Instances, None)?
            .into_iter()
            .filter(|(p, _)| owners.get(p).map(String::as_str).unwrap_or(p) == project)
            .collect())
    }

    /// Who uses each custom volume of `project`: instance and profile URLs by `(pool, name)`.
    /// Three queries, whatever the number of instances.
    fn volume_users(&self, project: &str) -> Result<BTreeMap<(String, String), Vec<String>>> {
        let owners = self.volume_projects()?;
        let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut add = |devices: &api::DevicesMap, url: String| {
            for dev in devices.values().filter(|d| is_custom_disk(d)) {
                let (Some(pool), Some(src)) = (dev.get("pool"), dev.get("source")) else {
                    continue;
                };
                let users = out.entry((pool.clone(), src.clone())).or_default();
                if !users.contains(&url) {
                    users.push(url.clone());
                }
            }
        };
        for (p, inst) in self.instances_seeing(project)? {
            add(&inst.put.devices, instance_url(&p, &inst.name));
        }
        for (p, prof) in self.inner.db.list::<api::Profile>(Table::Profiles, None)? {
            if owners.get(&p).map(String::as_str).unwrap_or(&p) == project {
                add(
                    &prof.put.devices,
                    with_project(&format!("/1.0/profiles/{}", prof.name), &p),
                );
            }
        }
        Ok(out)
    }

    /// The names of the running instances whose expanded devices use the volume (profiles
    /// expanded once per project).
    async fn running_users(&self, project: &str, pool: &str, name: &str) -> Result<Vec<String>> {
        let mut by_project: BTreeMap<String, Vec<api::Instance>> = BTreeMap::new();
        for (p, inst) in self.instances_seeing(project)? {
            by_project.entry(p).or_default().push(inst);
        }
        let mut out = Vec::new();
        for (p, mut list) in by_project {
            self.expand_all(&p, &mut list)?;
            for inst in list {
                let uses = inst.expanded_devices.values().any(|d| {
                    is_custom_disk(d)
                        && d.get("pool").map(String::as_str) == Some(pool)
                        && d.get("source").map(String::as_str) == Some(name)
                });
                if !uses {
                    continue;
                }
                let (_, spec) = self.instance_spec(&p, &inst.name)?;
                if self.inner.lxc.power_state(&spec).await? != PowerState::Stopped {
                    out.push(inst.name);
                }
            }
        }
        Ok(out)
    }

    /// A lifecycle event about a custom volume.
    pub(super) fn volume_event(&self, action: &str, project: &str, pool: &str, name: &str) {
        self.inner
            .events
            .lifecycle(action, &volume_url(project, pool, name), project, None);
    }

    /// `Busy` while an instance or a profile uses the volume.
    fn refuse_if_used(&self, project: &str, pool: &str, name: &str) -> Result<()> {
        match self
            .volume_users(project)?
            .remove(&(pool.to_string(), name.to_string()))
        {
            Some(users) => Err(Error::busy(format!(
                "The storage volume is still in use by {}",
                users.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// `Busy` while a running instance uses the volume.
    async fn refuse_if_running(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        action: &str,
    ) -> Result<()> {
        let running = self.running_users(project, pool, name).await?;
        if running.is_empty() {
            return Ok(());
        }
        Err(Error::busy(format!(
            "Cannot {action} storage volume {name:?} while instances using it are running: {}",
            running.join(", ")
        )))
    }

    /// The custom volumes of `pool` seen from `project`, each followed by its snapshots
    /// (named `<volume>/<snapshot>`, as Incus lists them).
    pub(crate) fn list_custom_volumes(
        &self,
        project: &str,
        pool: &str,
    ) -> Result<Vec<api::StorageVolume>> {
        let project = self.volume_project(project);
        let users = self.volume_users(&project)?;
        let prefix = format!("{pool}/");
        // Every snapshot of the pool's volumes in one query, grouped by volume.
        let mut snaps: BTreeMap<String, Vec<api::StorageVolumeSnapshot>> = BTreeMap::new();
        for s in self.inner.db.list_prefix::<VolumeSnapshotRecord>(
            Table::VolumeSnapshots,
            &project,
            &prefix,
        )? {
            snaps.entry(s.volume).or_default().push(s.snapshot);
        }
        let mut out = Vec::new();
        for rec in self
            .inner
            .db
            .list_prefix::<VolumeRecord>(Table::Volumes, &project, &prefix)?
        {
            let mut v = rec.volume;
            v.used_by = users
                .get(&(pool.to_string(), v.name.clone()))
                .cloned()
                .unwrap_or_default();
            let own = snaps.remove(&v.name).unwrap_or_default();
            out.push(v.clone());
            out.extend(own.iter().map(|s| snapshot_as_volume(&v, s)));
        }
        Ok(out)
    }

    /// One custom volume, or with `name` = `<volume>/<snapshot>` one of its snapshots shown
    /// as a volume.
    pub fn get_custom_volume(
        &self,
        project: &str,
        pool: &str,
        name: &str,
    ) -> Result<api::StorageVolume> {
        self.get_storage_pool(pool)?;
        let project = self.volume_project(project);
        if let Some((vol, snap)) = name.split_once('/') {
            let v = self.volume_record(&project, pool, vol)?.volume;
            let s = self.get_volume_snapshot(&project, pool, vol, snap)?;
            return Ok(snapshot_as_volume(&v, &s));
        }
        let mut v = self.volume_record(&project, pool, name)?.volume;
        v.used_by = self
            .volume_users(&project)?
            .remove(&(pool.to_string(), name.to_string()))
            .unwrap_or_default();
        Ok(v)
    }

    /// Creates an empty custom filesystem volume (`POST .../volumes/custom` without a
    /// source). The pool's `volume.*` keys are the defaults of the new volume's config, as in
    /// Incus. Synchronous, as in Incus.
    pub async fn create_custom_volume(
        &self,
        project: &str,
        pool: &str,
        req: api::StorageVolumesPost,
    ) -> Result<()> {
        let project = self.volume_project(project);
        self.check_new_volume(&project, pool, &req)?;
        let driver = self.pool_driver(pool)?;
        let pool_rec = self.get_storage_pool(pool)?;
        let mut cfg = ConfigMap::new();
        for (k, v) in &pool_rec.put.config {
            if let Some(k) = k.strip_prefix("volume.")
                && VOLUME_KEYS.contains(&k)
            {
                cfg.insert(k.to_string(), v.clone());
            }
        }
        cfg.extend(req.put.config.clone());
        validate_volume_config(&cfg)?;
        let size = self.volume_size(&driver, pool, &cfg)?;
        let lock = self.volume_lock(&project, pool, &req.name);
        let _g = lock.lock().await;
        let vol = driver_volume(&project, &req.name);
        let _intent = self
            .claim_custom_volume("create", &project, pool, &req.name, &driver)
            .await?;
        driver.create_volume(&vol).await?;
        let rec = VolumeRecord::new(pool, &project, &req.name, cfg, &req.put.description);
        let done = async {
            if let Some(bytes) = size {
                driver.set_volume_quota(&vol, bytes).await?;
            }
            self.inner
                .db
                .insert(Table::Volumes, &project, &key(pool, &req.name), &rec)
        };
        if let Err(e) = done.await {
            let _ = driver.delete_volume(&vol).await;
            return Err(e);
        }
        self.volume_event("storage-volume-created", &project, pool, &req.name);
        Ok(())
    }

    /// Before a new custom volume is made (under its lock): refuses a name another create
    /// has meanwhile taken, removes a volume no record owns (left by a failed cleanup), and
    /// records the intent to make it, which the caller holds until it is complete.
    pub(super) async fn claim_custom_volume(
        &self,
        action: &str,
        project: &str,
        pool: &str,
        name: &str,
        driver: &Arc<dyn StorageDriver>,
    ) -> Result<Intent> {
        if self.volume_record(project, pool, name).is_ok() {
            return Err(Error::already_exists(format!(
                "Storage volume {name:?} already exists"
            )));
        }
        reclaim_volume(driver, &driver_volume(project, name)).await?;
        self.begin(
            action,
            Unsettled::CustomVolume {
                project: project.into(),
                pool: pool.into(),
                name: name.into(),
            },
        )
    }

    pub(super) fn check_new_volume(
        &self,
        project: &str,
        pool: &str,
        req: &api::StorageVolumesPost,
    ) -> Result<()> {
        self.get_storage_pool(pool)?;
        if !req.kind.is_empty() && req.kind != "custom" {
            return Err(Error::invalid(format!(
                "Only custom volumes can be created, not {:?}",
                req.kind
            )));
        }
        match req.content_type.as_str() {
            "" | "filesystem" => {}
            "block" | "iso" => {
                return Err(Error::unsupported(format!(
                    "{} volumes are not supported yet (they serve virtual machines)",
                    req.content_type
                )));
            }
            other => {
                return Err(Error::invalid(format!("Invalid content type {other:?}")));
            }
        }
        config::validate_entity_name("storage volume", &req.name)?;
        if self.volume_record(project, pool, &req.name).is_ok() {
            return Err(Error::already_exists(format!(
                "Storage volume {:?} already exists in pool {pool:?}",
                req.name
            )));
        }
        Ok(())
    }

    /// The size limit a config asks for, refused when the pool cannot enforce it.
    pub(super) fn volume_size(
        &self,
        driver: &Arc<dyn StorageDriver>,
        pool: &str,
        cfg: &ConfigMap,
    ) -> Result<Option<u64>> {
        let Some(size) = cfg.get("size").filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let bytes = config::parse_size(size).map_err(Error::invalid)?;
        let info = driver.info();
        if !info.quotas {
            return Err(Error::invalid(format!(
                "Storage pool {pool:?} (driver {}) cannot enforce a volume \"size\"",
                info.name
            )));
        }
        Ok(Some(bytes))
    }

    pub(super) fn volume_lock(
        &self,
        project: &str,
        pool: &str,
        name: &str,
    ) -> Arc<tokio::sync::Mutex<()>> {
        self.instance_lock(project, &format!("\u{0}volume/{pool}/{name}"))
    }

    /// Copies a custom volume (`POST .../volumes/custom` with `source.type: copy`), with its
    /// snapshots unless `volume_only`, within a pool or across pools and projects.
    pub fn copy_custom_volume(
        &self,
        project: &str,
        pool: &str,
        req: api::StorageVolumesPost,
    ) -> Result<Operation> {
        let project = self.volume_project(project);
        if req.source.kind != "copy" {
            return Err(Error::unsupported(format!(
                "Volume source type {:?} is not supported",
                req.source.kind
            )));
        }
        if req.source.refresh {
            return Err(Error::unsupported(
                "Refreshing volume copies is not supported yet",
            ));
        }
        self.check_new_volume(&project, pool, &req)?;
        let src_pool = if req.source.pool.is_empty() {
            pool.to_string()
        } else {
            req.source.pool.clone()
        };
        let src_project = if req.source.project.is_empty() {
            project.clone()
        } else {
            self.volume_project(&req.source.project)
        };
        let src = self.volume_record(&src_project, &src_pool, &req.source.name)?;
        let mut cfg = if req.put.config.is_empty() {
            src.volume.put.config.clone()
        } else {
            req.put.config.clone()
        };
        cfg.retain(|k, _| !k.starts_with("volatile."));
        validate_volume_config(&cfg)?;
        let driver = self.pool_driver(pool)?;
        let size = self.volume_size(&driver, pool, &cfg)?;
        let host = self.clone();
        let pool = pool.to_string();
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Copying storage volume",
            BTreeMap::new(),
            false,
            move |_| async move {
                let copy = VolumeCopy {
                    src_project,
                    src_pool,
                    src_name: req.source.name.clone(),
                    project,
                    pool,
                    name: req.name.clone(),
                    volume_only: req.source.volume_only,
                    description: if req.put.description.is_empty() {
                        src.volume.put.description.clone()
                    } else {
                        req.put.description.clone()
                    },
                    config: cfg,
                    size,
                };
                host.copy_volume(&copy).await?;
                Ok(None)
            },
        ))
    }

    /// Makes the target volume of `c` with its content and snapshots, and its records. On
    /// failure nothing of the target is left.
    async fn copy_volume(&self, c: &VolumeCopy) -> Result<()> {
        let lock = self.volume_lock(&c.project, &c.pool, &c.name);
        let _g = lock.lock().await;
        let src_driver = self.pool_driver(&c.src_pool)?;
        let driver = self.pool_driver(&c.pool)?;
        let src_vol = driver_volume(&c.src_project, &c.src_name);
        let vol = driver_volume(&c.project, &c.name);
        let snaps = if c.volume_only {
            Vec::new()
        } else {
            self.volume_snapshots(&c.src_project, &c.src_pool, &c.src_name)?
        };
        let _intent = self
            .claim_custom_volume("copy", &c.project, &c.pool, &c.name, &driver)
            .await?;
        let work = async {
            if c.src_pool == c.pool {
                let names: Vec<String> = snaps
                    .iter()
                    .map(|s| snap_name(&s.snapshot).to_string())
                    .collect();
                driver.copy_volume(&vol, &src_vol, &names).await?;
            } else {
                let names: Vec<String> = snaps
                    .iter()
                    .map(|s| snap_name(&s.snapshot).to_string())
                    .collect();
                replay_volume(&src_driver, &src_vol, &names, &driver, &vol).await?;
            }
            if let Some(bytes) = c.size {
                driver.set_volume_quota(&vol, bytes).await?;
            }
            let rec = VolumeRecord::new(
                &c.pool,
                &c.project,
                &c.name,
                c.config.clone(),
                &c.description,
            );
            self.inner
                .db
                .insert(Table::Volumes, &c.project, &key(&c.pool, &c.name), &rec)?;
            for s in &snaps {
                let mut s = s.clone();
                let sn = snap_name(&s.snapshot).to_string();
                s.pool = c.pool.clone();
                s.volume = c.name.clone();
                s.snapshot.name = format!("{}/{sn}", c.name);
                self.inner.db.insert(
                    Table::VolumeSnapshots,
                    &c.project,
                    &format!("{}/{}/{sn}", c.pool, c.name),
                    &s,
                )?;
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = work.await {
            let _ = driver.delete_volume(&vol).await;
            let _ = self
                .inner
                .db
                .delete(Table::Volumes, &c.project, &key(&c.pool, &c.name));
            let _ = self.inner.db.delete_prefix(
                Table::VolumeSnapshots,
                &c.project,
                &format!("{}/{}/", c.pool, c.name),
            );
            return Err(e);
        }
        self.volume_event("storage-volume-created", &c.project, &c.pool, &c.name);
        Ok(())
    }

    /// Replaces a custom volume's writable fields (`PUT`/`PATCH`), or with `restore` set,
    /// restores that snapshot (refused while a running instance uses the volume). A new
    /// `size` is applied to the storage; shrinking below what is used fails in the driver.
    pub async fn update_custom_volume(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        put: api::StorageVolumePut,
    ) -> Result<()> {
        let project = self.volume_project(project);
        let mut rec = self.volume_record(&project, pool, name)?;
        let driver = self.pool_driver(pool)?;
        let vol = driver_volume(&project, name);
        let lock = self.volume_lock(&project, pool, name);
        if !put.restore.is_empty() {
            self.get_volume_snapshot(&project, pool, name, &put.restore)?;
            self.refuse_if_running(&project, pool, name, "restore")
                .await?;
            let _g = lock.lock().await;
            driver.restore_snapshot(&vol, &put.restore).await?;
            self.inner.events.lifecycle(
                "storage-volume-restored",
                &volume_url(&project, pool, name),
                &project,
                Some(
                    [("snapshot".to_string(), serde_json::json!(put.restore))]
                        .into_iter()
                        .collect(),
                ),
            );
            return Ok(());
        }
        validate_volume_config(&put.config)?;
        let _g = lock.lock().await;
        if rec.volume.put.config.get("size") != put.config.get("size") {
            match self.volume_size(&driver, pool, &put.config)? {
                Some(bytes) => driver.set_volume_quota(&vol, bytes).await?,
                None if driver.info().quotas => driver.set_volume_quota(&vol, 0).await?,
                None => {}
            }
        }
        rec.volume.put.config = put.config;
        rec.volume.put.description = put.description;
        rec.volume.used_by.clear();
        self.inner
            .db
            .update(Table::Volumes, &project, &key(pool, name), &rec)?;
        self.volume_event("storage-volume-updated", &project, pool, name);
        Ok(())
    }

    /// Renames a custom volume in its pool (`POST` with a new `name`): the instances and
    /// profiles using it follow; refused while a running instance uses it.
    pub async fn rename_custom_volume(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        new_name: &str,
    ) -> Result<()> {
        let project = self.volume_project(project);
        let mut rec = self.volume_record(&project, pool, name)?;
        config::validate_entity_name("storage volume", new_name)?;
        if self.volume_record(&project, pool, new_name).is_ok() {
            return Err(Error::already_exists(format!(
                "Storage volume {new_name:?} already exists"
            )));
        }
        self.refuse_if_running(&project, pool, name, "rename")
            .await?;
        let lock = self.volume_lock(&project, pool, name);
        let _g = lock.lock().await;
        let driver = self.pool_driver(pool)?;
        let vol = driver_volume(&project, name);
        let _intent = self.begin(
            "rename",
            Unsettled::CustomVolumeRename {
                project: project.clone(),
                pool: pool.to_string(),
                from: name.to_string(),
                to: new_name.to_string(),
            },
        )?;
        driver
            .rename_volume(&vol, &driver_volume(&project, new_name).name)
            .await?;
        rec.volume.name = new_name.to_string();
        let snapshots = self.volume_snapshots(&project, pool, name)?;
        let (instances, profiles) = self.users_repointed(&project, pool, name, new_name)?;
        // The volume, its snapshots and the devices using it change together or not at all.
        let r = self.inner.db.atomically(|w| {
            w.rename(
                Table::Volumes,
                &project,
                &key(pool, name),
                &key(pool, new_name),
            )?;
            w.update(Table::Volumes, &project, &key(pool, new_name), &rec)?;
            for mut s in snapshots {
                let sn = snap_name(&s.snapshot).to_string();
                let old = format!("{pool}/{name}/{sn}");
                let new = format!("{pool}/{new_name}/{sn}");
                w.rename(Table::VolumeSnapshots, &project, &old, &new)?;
                s.volume = new_name.to_string();
                s.snapshot.name = format!("{new_name}/{sn}");
                w.update(Table::VolumeSnapshots, &project, &new, &s)?;
            }
            for (p, inst) in &instances {
                w.update(Table::Instances, p, &inst.name, inst)?;
            }
            for (p, prof) in &profiles {
                w.update(Table::Profiles, p, &prof.name, prof)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            let _ = driver
                .rename_volume(&driver_volume(&project, new_name), &vol.name)
                .await;
            return Err(e);
        }
        // The backups follow (a missing directory: none made).
        let _ = std::fs::rename(
            self.volume_backups_dir(&project, pool, name),
            self.volume_backups_dir(&project, pool, new_name),
        );
        self.inner.events.lifecycle(
            "storage-volume-renamed",
            &volume_url(&project, pool, new_name),
            &project,
            Some(
                [("old_name".to_string(), serde_json::json!(name))]
                    .into_iter()
                    .collect(),
            ),
        );
        Ok(())
    }

    /// The instances and profiles whose disk devices use volume `name`
    /// of `pool`, pointed at `new_name`: what a rename writes.
    fn users_repointed(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        new_name: &str,
    ) -> Result<(InProject<api::Instance>, InProject<api::Profile>)> {
        let fix = |devices: &mut api::DevicesMap| {
            let mut changed = false;
            for dev in devices.values_mut() {
                if is_custom_disk(dev)
                    && dev.get("pool").map(String::as_str) == Some(pool)
                    && dev.get("source").map(String::as_str) == Some(name)
                {
                    dev.insert("source".into(), new_name.to_string());
                    changed = true;
                }
            }
            changed
        };
        let db = &self.inner.db;
        let mut instances = Vec::new();
        for (p, mut inst) in db.list::<api::Instance>(Table::Instances, None)? {
            if self.volume_project(&p) == project && fix(&mut inst.put.devices) {
                instances.push((p, inst));
            }
        }
        let mut profiles = Vec::new();
        for (p, mut prof) in db.list::<api::Profile>(Table::Profiles, None)? {
            if self.volume_project(&p) == project && fix(&mut prof.put.devices) {
                prof.used_by.clear();
                profiles.push((p, prof));
            }
        }
        Ok((instances, profiles))
    }

    /// Moves a custom volume to another pool and/or project (`POST` with `pool` or
    /// `project`): a copy with its snapshots, then the source is deleted. Refused while the
    /// volume is used.
    pub fn move_custom_volume(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        req: api::StorageVolumePost,
    ) -> Result<Operation> {
        let project = self.volume_project(project);
        let rec = self.volume_record(&project, pool, name)?;
        self.refuse_if_used(&project, pool, name)?;
        let target_pool = if req.pool.is_empty() {
            pool.to_string()
        } else {
            req.pool.clone()
        };
        let target_project = if req.project.is_empty() {
            project.clone()
        } else {
            self.get_project(&req.project)?;
            self.volume_project(&req.project)
        };
        let new_name = if req.name.is_empty() {
            name.to_string()
        } else {
            req.name.clone()
        };
        let copy_req = api::StorageVolumesPost {
            put: api::StorageVolumePut {
                config: rec.volume.put.config.clone(),
                description: rec.volume.put.description.clone(),
                restore: String::new(),
            },
            name: new_name.clone(),
            kind: "custom".into(),
            source: api::StorageVolumeSource {
                name: name.to_string(),
                kind: "copy".into(),
                pool: pool.to_string(),
                project: project.clone(),
                volume_only: req.volume_only,
                refresh: false,
            },
            content_type: rec.volume.content_type.clone(),
        };
        self.check_new_volume(&target_project, &target_pool, &copy_req)?;
        let target_driver = self.pool_driver(&target_pool)?;
        let size = self.volume_size(&target_driver, &target_pool, &copy_req.put.config)?;
        let host = self.clone();
        let (pool, name) = (pool.to_string(), name.to_string());
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Moving storage volume",
            BTreeMap::new(),
            false,
            move |_| async move {
                let copy = VolumeCopy {
                    src_project: project.clone(),
                    src_pool: pool.clone(),
                    src_name: name.clone(),
                    project: target_project,
                    pool: target_pool,
                    name: new_name,
                    volume_only: req.volume_only,
                    description: copy_req.put.description.clone(),
                    config: copy_req.put.config.clone(),
                    size,
                };
                host.copy_volume(&copy).await?;
                host.delete_custom_volume(&project, &pool, &name).await?;
                Ok(None)
            },
        ))
    }

    /// Deletes an unused custom volume with its snapshots.
    pub async fn delete_custom_volume(&self, project: &str, pool: &str, name: &str) -> Result<()> {
        let project = self.volume_project(project);
        self.volume_record(&project, pool, name)?;
        self.refuse_if_used(&project, pool, name)?;
        let lock = self.volume_lock(&project, pool, name);
        let _g = lock.lock().await;
        let driver = self.pool_driver(pool)?;
        // Again under the lock: a delete that waited for it may find the volume gone.
        self.volume_record(&project, pool, name)?;
        let _intent = self.begin(
            "delete",
            Unsettled::CustomVolume {
                project: project.clone(),
                pool: pool.into(),
                name: name.into(),
            },
        )?;
        driver.delete_volume(&driver_volume(&project, name)).await?;
        self.inner.db.delete_prefix(
            Table::VolumeSnapshots,
            &project,
            &format!("{pool}/{name}/"),
        )?;
        self.inner
            .db
            .delete(Table::Volumes, &project, &key(pool, name))?;
        let _ = std::fs::remove_dir_all(self.volume_backups_dir(&project, pool, name));
        self.volume_event("storage-volume-deleted", &project, pool, name);
        Ok(())
    }

    /// Space used by a custom volume (`GET .../state`).
    pub async fn custom_volume_state(
        &self,
        project: &str,
        pool: &str,
        name: &str,
    ) -> Result<api::StorageVolumeState> {
        let project = self.volume_project(project);
        let rec = self.volume_record(&project, pool, name)?;
        let driver = self.pool_driver(pool)?;
        let used = driver.volume_usage(&driver_volume(&project, name)).await?;
        let total = rec
            .volume
            .put
            .config
            .get("size")
            .and_then(|s| config::parse_size(s).ok())
            .and_then(|b| i64::try_from(b).ok())
            .unwrap_or(0);
        Ok(api::StorageVolumeState {
            usage: Some(api::StorageVolumeStateUsage { used, total }),
        })
    }

    /// The URLs of every custom volume, by pool (one query; pools holding volumes list them
    /// in `used_by` and cannot be deleted).
    pub(crate) fn volume_urls_by_pool(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (p, r) in self.inner.db.list::<VolumeRecord>(Table::Volumes, None)? {
            out.entry(r.pool.clone())
                .or_default()
                .push(volume_url(&p, &r.pool, &r.volume.name));
        }
        Ok(out)
    }

    /// The number of custom volumes a project owns (projects holding volumes cannot be
    /// deleted).
    pub(crate) fn project_volume_count(&self, project: &str) -> Result<usize> {
        Ok(self
            .inner
            .db
            .list::<VolumeRecord>(Table::Volumes, Some(project))?
            .len())
    }

    /// Checks that every custom volume named by `devices` (`pool` + `source`) exists.
    pub(crate) fn check_custom_volumes(
        &self,
        project: &str,
        devices: &api::DevicesMap,
    ) -> Result<()> {
        let project = self.volume_project(project);
        for (dev_name, dev) in devices.iter().filter(|(_, d)| is_custom_disk(d)) {
            let (Some(pool), Some(src)) = (dev.get("pool"), dev.get("source")) else {
                continue;
            };
            if self.volume_record(&project, pool, src).is_err() {
                return Err(Error::not_found(format!(
                    "Device {dev_name:?}: storage volume {src:?} not found in pool {pool:?}"
                )));
            }
        }
        Ok(())
    }

    /// Rewrites the custom-volume disks of an instance's expanded devices into host-path
    /// bind mounts of the volumes, marked `shift` so that an unprivileged container sees the
    /// unshifted content through an idmapped mount.
    pub(crate) fn resolve_volume_disks(
        &self,
        project: &str,
        devices: &mut api::DevicesMap,
    ) -> Result<()> {
        if !devices.values().any(is_custom_disk) {
            return Ok(());
        }
        let project = self.volume_project(project);
        for (dev_name, dev) in devices.iter_mut() {
            if !is_custom_disk(dev) {
                continue;
            }
            let (Some(pool), Some(src)) = (dev.get("pool").cloned(), dev.get("source").cloned())
            else {
                continue;
            };
            if self.volume_record(&project, &pool, &src).is_err() {
                return Err(Error::not_found(format!(
                    "Device {dev_name:?}: storage volume {src:?} not found in pool {pool:?}"
                )));
            }
            let path = self
                .pool_driver(&pool)?
                .volume_path(&driver_volume(&project, &src));
            dev.remove("pool");
            dev.insert("source".into(), path.display().to_string());
            dev.insert("shift".into(), "true".into());
        }
        Ok(())
    }

    // ---- snapshots ----

    /// Snapshots of a custom volume, oldest first.
    pub fn list_volume_snapshots(
        &self,
        project: &str,
        pool: &str,
        name: &str,
    ) -> Result<Vec<api::StorageVolumeSnapshot>> {
        let project = self.volume_project(project);
        self.volume_record(&project, pool, name)?;
        Ok(self
            .volume_snapshots(&project, pool, name)?
            .into_iter()
            .map(|s| s.snapshot)
            .collect())
    }

    fn get_volume_snapshot(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        snap: &str,
    ) -> Result<api::StorageVolumeSnapshot> {
        self.inner
            .db
            .get::<VolumeSnapshotRecord>(
                Table::VolumeSnapshots,
                project,
                &format!("{pool}/{name}/{snap}"),
            )?
            .map(|s| s.snapshot)
            .ok_or_else(|| Error::not_found("Storage volume snapshot not found"))
    }

    /// One snapshot of a custom volume.
    pub fn volume_snapshot(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        snap: &str,
    ) -> Result<api::StorageVolumeSnapshot> {
        let project = self.volume_project(project);
        self.get_volume_snapshot(&project, pool, name, snap)
    }

    /// Snapshots a custom volume (an operation, as in Incus). The name defaults to
    /// `snapshots.pattern` (`snap%d`); the expiry to `snapshots.expiry`.
    pub fn create_volume_snapshot(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        req: api::StorageVolumeSnapshotsPost,
    ) -> Result<Operation> {
        let project = self.volume_project(project);
        let rec = self.volume_record(&project, pool, name)?;
        let existing = self.volume_snapshots(&project, pool, name)?;
        let taken = |n: &str| existing.iter().any(|s| snap_name(&s.snapshot) == n);
        let snap = if req.name.is_empty() {
            let pattern = rec
                .volume
                .put
                .config
                .get("snapshots.pattern")
                .map_or("", String::as_str);
            config::next_snapshot_name(pattern, taken)
        } else {
            req.name.clone()
        };
        config::validate_snapshot_name(&snap)?;
        if taken(&snap) {
            return Err(Error::already_exists(format!(
                "Snapshot {snap:?} already exists"
            )));
        }
        let now = chrono::Utc::now();
        let expires_at = match req.expires_at {
            // The zero time asks for no expiry, whatever `snapshots.expiry` says.
            Some(t) if t == api::zero_time() => None,
            Some(t) => Some(t),
            None => match rec.volume.put.config.get("snapshots.expiry") {
                Some(e) if !e.is_empty() => Some(now + config::parse_expiry(e)?),
                _ => None,
            },
        };
        let host = self.clone();
        let (pool, name) = (pool.to_string(), name.to_string());
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Creating storage volume snapshot",
            BTreeMap::new(),
            false,
            move |_| async move {
                let lock = host.volume_lock(&project, &pool, &name);
                let _g = lock.lock().await;
                let driver = host.pool_driver(&pool)?;
                let vol = driver_volume(&project, &name);
                // Checked again under the lock: settling a crash removes what the intent
                // names, so it must never name a snapshot another create completed.
                if host
                    .get_volume_snapshot(&project, &pool, &name, &snap)
                    .is_ok()
                {
                    return Err(Error::already_exists(format!(
                        "Snapshot {snap:?} already exists"
                    )));
                }
                let _intent = host.begin(
                    "create",
                    Unsettled::CustomVolumeSnapshot {
                        project: project.clone(),
                        pool: pool.clone(),
                        volume: name.clone(),
                        snapshot: snap.clone(),
                    },
                )?;
                driver.create_snapshot(&vol, &snap).await?;
                let s = VolumeSnapshotRecord {
                    pool: pool.clone(),
                    volume: name.clone(),
                    snapshot: api::StorageVolumeSnapshot {
                        description: rec.volume.put.description.clone(),
                        expires_at,
                        name: format!("{name}/{snap}"),
                        config: rec.volume.put.config.clone(),
                        content_type: rec.volume.content_type.clone(),
                        created_at: now,
                    },
                };
                if let Err(e) = host.inner.db.insert(
                    Table::VolumeSnapshots,
                    &project,
                    &format!("{pool}/{name}/{snap}"),
                    &s,
                ) {
                    let _ = driver.delete_snapshot(&vol, &snap).await;
                    return Err(e);
                }
                host.inner.events.lifecycle(
                    "storage-volume-snapshot-created",
                    &with_project(
                        &format!(
                            "/1.0/storage-pools/{pool}/volumes/custom/{name}/snapshots/{snap}"
                        ),
                        &project,
                    ),
                    &project,
                    None,
                );
                Ok(None)
            },
        ))
    }

    /// Deletes a custom volume snapshot (an operation).
    pub fn delete_volume_snapshot(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        snap: &str,
    ) -> Result<Operation> {
        let project = self.volume_project(project);
        self.get_volume_snapshot(&project, pool, name, snap)?;
        let host = self.clone();
        let (pool, name, snap) = (pool.to_string(), name.to_string(), snap.to_string());
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Deleting storage volume snapshot",
            BTreeMap::new(),
            false,
            move |_| async move {
                host.remove_volume_snapshot(&project, &pool, &name, &snap)
                    .await?;
                Ok(None)
            },
        ))
    }

    async fn remove_volume_snapshot(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        snap: &str,
    ) -> Result<()> {
        let lock = self.volume_lock(project, pool, name);
        let _g = lock.lock().await;
        let driver = self.pool_driver(pool)?;
        self.get_volume_snapshot(project, pool, name, snap)?;
        let _intent = self.begin(
            "delete",
            Unsettled::CustomVolumeSnapshot {
                project: project.into(),
                pool: pool.into(),
                volume: name.into(),
                snapshot: snap.into(),
            },
        )?;
        driver
            .delete_snapshot(&driver_volume(project, name), snap)
            .await?;
        self.inner.db.delete(
            Table::VolumeSnapshots,
            project,
            &format!("{pool}/{name}/{snap}"),
        )?;
        self.inner.events.lifecycle(
            "storage-volume-snapshot-deleted",
            &with_project(
                &format!("/1.0/storage-pools/{pool}/volumes/custom/{name}/snapshots/{snap}"),
                project,
            ),
            project,
            None,
        );
        Ok(())
    }

    /// Renames a custom volume snapshot (an operation).
    pub fn rename_volume_snapshot(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        snap: &str,
        new_name: &str,
    ) -> Result<Operation> {
        let project = self.volume_project(project);
        let mut rec = self
            .inner
            .db
            .get::<VolumeSnapshotRecord>(
                Table::VolumeSnapshots,
                &project,
                &format!("{pool}/{name}/{snap}"),
            )?
            .ok_or_else(|| Error::not_found("Storage volume snapshot not found"))?;
        config::validate_snapshot_name(new_name)?;
        if self
            .get_volume_snapshot(&project, pool, name, new_name)
            .is_ok()
        {
            return Err(Error::already_exists(format!(
                "Snapshot {new_name:?} already exists"
            )));
        }
        let host = self.clone();
        let (pool, name, snap, new_name) = (
            pool.to_string(),
            name.to_string(),
            snap.to_string(),
            new_name.to_string(),
        );
        Ok(self.inner.ops.spawn(
            &project.clone(),
            "Renaming storage volume snapshot",
            BTreeMap::new(),
            false,
            move |_| async move {
                let lock = host.volume_lock(&project, &pool, &name);
                let _g = lock.lock().await;
                let driver = host.pool_driver(&pool)?;
                driver
                    .rename_snapshot(&driver_volume(&project, &name), &snap, &new_name)
                    .await?;
                let (old, new) = (
                    format!("{pool}/{name}/{snap}"),
                    format!("{pool}/{name}/{new_name}"),
                );
                host.inner
                    .db
                    .rename(Table::VolumeSnapshots, &project, &old, &new)?;
                rec.snapshot.name = format!("{name}/{new_name}");
                host.inner
                    .db
                    .update(Table::VolumeSnapshots, &project, &new, &rec)?;
                Ok(None)
            },
        ))
    }

    /// Updates a snapshot's description and expiry (`PUT`/`PATCH`).
    pub fn update_volume_snapshot(
        &self,
        project: &str,
        pool: &str,
        name: &str,
        snap: &str,
        put: api::StorageVolumeSnapshotPut,
    ) -> Result<()> {
        let project = self.volume_project(project);
        let k = format!("{pool}/{name}/{snap}");
        let mut rec = self
            .inner
            .db
            .get::<VolumeSnapshotRecord>(Table::VolumeSnapshots, &project, &k)?
            .ok_or_else(|| Error::not_found("Storage volume snapshot not found"))?;
        rec.snapshot.description = put.description;
        rec.snapshot.expires_at = put.expires_at;
        self.inner
            .db
            .update(Table::VolumeSnapshots, &project, &k, &rec)
    }

    /// Deletes every custom volume snapshot whose `expires_at` has passed; returns how many.
    /// The daemon calls this once a minute.
    pub async fn prune_expired_volume_snapshots(&self) -> Result<usize> {
        let now = chrono::Utc::now();
        let expired: Vec<(String, VolumeSnapshotRecord)> = self
            .inner
            .db
            .list::<VolumeSnapshotRecord>(Table::VolumeSnapshots, None)?
            .into_iter()
            .filter(|(_, s)| {
                s.snapshot
                    .expires_at
                    .is_some_and(|t| t != api::zero_time() && t <= now)
            })
            .collect();
        let mut n = 0;
        for (project, s) in expired {
            let sn = snap_name(&s.snapshot).to_string();
            self.remove_volume_snapshot(&project, &s.pool, &s.volume, &sn)
                .await?;
            n += 1;
        }
        Ok(n)
    }
}

/// What a volume copy or move makes.
struct VolumeCopy {
    src_project: String,
    src_pool: String,
    src_name: String,
    project: String,
    pool: String,
    name: String,
    volume_only: bool,
    description: String,
    config: ConfigMap,
    size: Option<u64>,
}

/// The snapshot part of `<volume>/<snapshot>`.
pub(super) fn snap_name(s: &api::StorageVolumeSnapshot) -> &str {
    s.name.rsplit_once('/').map(|(_, n)| n).unwrap_or(&s.name)
}

/// A snapshot shown as a volume (`GET .../volumes/custom/<vol>%2F<snap>`, and pool listings).
fn snapshot_as_volume(
    v: &api::StorageVolume,
    s: &api::StorageVolumeSnapshot,
) -> api::StorageVolume {
    api::StorageVolume {
        put: api::StorageVolumePut {
            config: s.config.clone(),
            description: s.description.clone(),
            restore: String::new(),
        },
        name: s.name.clone(),
        kind: v.kind.clone(),
        used_by: Vec::new(),
        location: v.location.clone(),
        content_type: v.content_type.clone(),
        project: v.project.clone(),
        created_at: s.created_at,
    }
}

/// Copies a volume with its snapshots to another pool (any two drivers): a new volume,
/// each snapshot's content (mounted for the read) copied in and snapshotted, oldest first,
/// then the current content. Content is copied as stored (no id shift).
pub(super) async fn replay_volume(
    src_driver: &Arc<dyn StorageDriver>,
    src_vol: &Volume,
    snapshots: &[String],
    driver: &Arc<dyn StorageDriver>,
    vol: &Volume,
) -> Result<()> {
    driver.create_volume(vol).await?;
    let dst = driver.volume_path(vol);
    for sn in snapshots {
        let from = src_driver.mount_snapshot(src_vol, sn).await?;
        let r = replace_contents(from, dst.clone(), None).await;
        src_driver.unmount_snapshot(src_vol, sn).await?;
        r?;
        driver.create_snapshot(vol, sn).await?;
    }
    replace_contents(src_driver.volume_path(src_vol), dst, None).await
}

/// [`crate::tree::replace_contents`] on a blocking thread.
pub(crate) async fn replace_contents(
    from: std::path::PathBuf,
    to: std::path::PathBuf,
    shift: Option<crate::drivers::IdShift>,
) -> Result<()> {
    tokio::task::spawn_blocking(move || crate::tree::replace_contents(&from, &to, shift))
        .await
        .map_err(|e| Error::internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys() {
        let m = |k: &str, v: &str| ConfigMap::from([(k.to_string(), v.to_string())]);
        assert!(validate_volume_config(&m("size", "10MiB")).is_ok());
        assert!(validate_volume_config(&m("user.x", "y")).is_ok());
        assert!(validate_volume_config(&m("size", "ten")).is_err());
        assert!(validate_volume_config(&m("bogus", "1")).is_err());
        assert!(validate_volume_config(&m("snapshots.expiry", "1q")).is_err());
        assert!(validate_volume_config(&m("snapshots.schedule", "@hourly, @daily")).is_ok());
        assert!(validate_volume_config(&m("snapshots.schedule", "61 * * * *")).is_err());
    }
}
