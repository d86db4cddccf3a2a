//! Instances: create from an image or empty, start, stop, restart, freeze, rename, update,
//! delete, state, exec and snapshots.
//!
//! Requests are validated completely before anything changes: a refused request leaves the
//! database and the disks untouched. Lifecycle actions on one instance are serialised by a
//! per-instance lock; different instances never wait on each other.

use super::db::Table;
use super::intents::{Intent, Unsettled};
use super::{DEFAULT_PROJECT, Host, Operation, instance_url, state, templates};
use crate::api::{self, ConfigMap, StatusCode};
use crate::config;
use crate::drivers::{
    ExecProcess, ExecRequest, ExecStdio, InstanceDriver, InstanceSpec, PowerState, StorageDriver,
    Volume, VolumeType,
};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default graceful stop timeout when the request says -1 (Incus waits 600 s; a stop request
/// from the CLI usually gives its own).
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(600);

pub(super) fn storage_name(project: &str, name: &str) -> String {
    if project == DEFAULT_PROJECT {
        name.to_string()
    } else {
        format!("{project}_{name}")
    }
}

/// The pool holding an instance's root volume (recorded at creation).
pub(crate) fn instance_pool(inst: &api::Instance) -> &str {
    inst.put
        .config
        .get("volatile.rootfs.pool")
        .map(String::as_str)
        .unwrap_or_default()
}

/// The intent object for snapshot `snapshot` of `inst`.
fn snapshot_object(inst: &api::Instance, project: &str, snapshot: &str) -> Unsettled {
    Unsettled::InstanceSnapshot {
        project: project.into(),
        instance: inst.name.clone(),
        snapshot: snapshot.into(),
        pool: instance_pool(inst).into(),
    }
}

/// Whether a device is a root disk (`type: disk`, `path: /`).
pub(super) fn is_root_disk(d: &ConfigMap) -> bool {
    d.get("type").map(String::as_str) == Some("disk")
        && d.get("path").map(String::as_str) == Some("/")
}

/// The root disk (`type: disk`, `path: /`) among expanded devices.
pub(super) fn root_disk(devices: &api::DevicesMap) -> Option<&ConfigMap> {
    devices.values().find(|d| is_root_disk(d))
}

/// The root disk's `size` in bytes, when set.
fn root_size(devices: &api::DevicesMap) -> Option<u64> {
    root_disk(devices)
        .and_then(|d| d.get("size"))
        .and_then(|s| config::parse_size(s).ok())
}

/// The pool of the root disk among expanded devices.
fn root_pool(devices: &api::DevicesMap) -> Option<String> {
    root_disk(devices).and_then(|d| d.get("pool")).cloned()
}

/// The engine-owned `volatile.*` keys of a config.
fn volatile_keys(config: &ConfigMap) -> ConfigMap {
    config
        .iter()
        .filter(|(k, _)| k.starts_with("volatile."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn status_of(ps: PowerState) -> StatusCode {
    match ps {
        PowerState::Stopped => StatusCode::Stopped,
        PowerState::Running(_) => StatusCode::Running,
        PowerState::Frozen(_) => StatusCode::Frozen,
    }
}

pub(super) fn resources(project: &str, name: &str) -> BTreeMap<String, Vec<String>> {
    BTreeMap::from([("instances".to_string(), vec![instance_url(project, name)])])
}

fn ctx(pairs: &[(&str, serde_json::Value)]) -> Option<serde_json::Map<String, serde_json::Value>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// A new instance's record: its writable fields plus the volatile keys every new instance
/// gets (root pool, a fresh uuid, stopped power state, the image it came from).
pub(super) fn new_record(
    project: &str,
    name: &str,
    mut put: api::InstancePut,
    pool: &str,
    base_image: Option<String>,
) -> api::Instance {
    put.config
        .insert("volatile.rootfs.pool".into(), pool.to_string());
    put.config
        .insert("volatile.uuid".into(), uuid::Uuid::new_v4().to_string());
    put.config
        .insert("volatile.last_state.power".into(), "STOPPED".into());
    if let Some(b) = base_image {
        put.config.insert("volatile.base_image".into(), b);
    }
    api::Instance {
        put,
        created_at: chrono::Utc::now(),
        name: name.to_string(),
        kind: "container".into(),
        project: project.into(),
        ..Default::default()
    }
}

impl Host {
    /// Expands profiles for many instances with one profile query.
    pub(super) fn expand_all(&self, project: &str, list: &mut [api::Instance]) -> Result<()> {
        let project = &self.feature_project(project, "features.profiles");
        let profiles: BTreeMap<String, api::Profile> = self
            .inner
            .db
            .list::<api::Profile>(Table::Profiles, Some(project))?
            .into_iter()
            .map(|(_, p)| (p.name.clone(), p))
            .collect();
        for inst in list {
            let ps: Vec<(&ConfigMap, &api::DevicesMap)> = inst
                .put
                .profiles
                .iter()
                .filter_map(|n| profiles.get(n).map(|p| (&p.put.config, &p.put.devices)))
                .collect();
            let (c, d) = config::expand(&ps, &inst.put.config, &inst.put.devices);
            inst.expanded_config = c;
            inst.expanded_devices = d;
        }
        Ok(())
    }

    fn spec_for(&self, inst: &api::Instance) -> Result<InstanceSpec> {
        if instance_pool(inst).is_empty() {
            return Err(Error::internal(format!(
                "Instance {:?} has no pool",
                inst.name
            )));
        }
        let (driver, vol) = self.root_volume(inst)?;
        let privileged = config::is_true(&inst.expanded_config, "security.privileged");
        let mut devices = inst.expanded_devices.clone();
        self.resolve_volume_disks(&inst.project, &mut devices)?;
        Ok(InstanceSpec {
            name: inst.name.clone(),
            project: inst.project.clone(),
            runtime_name: vol.name.clone(),
            rootfs: driver.volume_path(&vol).join("rootfs"),
            config: inst.expanded_config.clone(),
            devices,
            idmap: (!privileged).then_some(self.inner.idmap),
            log_dir: self.inner.dir.join("logs").join(&vol.name),
        })
    }

    /// The storage driver and root volume of an instance.
    pub(super) fn root_volume(
        &self,
        inst: &api::Instance,
    ) -> Result<(Arc<dyn StorageDriver>, Volume)> {
        let pool = instance_pool(inst);
        let vol = Volume::new(
            VolumeType::Container,
            storage_name(&inst.project, &inst.name),
        );
        Ok((self.pool_driver(pool)?, vol))
    }

    pub(crate) fn instance_spec(
        &self,
        project: &str,
        name: &str,
    ) -> Result<(api::Instance, InstanceSpec)> {
        let inst = self.get_instance_record(project, name)?;
        let spec = self.spec_for(&inst)?;
        Ok((inst, spec))
    }

    /// The stored row of an instance (no expansion).
    pub(super) fn instance_row(&self, project: &str, name: &str) -> Result<api::Instance> {
        self.inner
            .db
            .get(Table::Instances, project, name)?
            .ok_or_else(|| Error::not_found("Instance not found"))
    }

    /// Before a new instance's volume is made (under the instance lock): refuses a name
    /// that another create has meanwhile taken, removes a volume that no instance record
    /// owns (left by a failed cleanup), and records the intent to make the instance on
    /// `pool`, which the caller holds until the instance is complete (or cleaned up).
    pub(super) async fn claim_volume(
        &self,
        action: &str,
        project: &str,
        name: &str,
        pool: &str,
        driver: &Arc<dyn crate::drivers::StorageDriver>,
        vol: &Volume,
    ) -> Result<Intent> {
        if self.instance_row(project, name).is_ok() {
            return Err(Error::already_exists(format!(
                "Instance {name:?} already exists"
            )));
        }
        if driver.has_volume(vol).await? {
            tracing::warn!(volume = %vol.name, "removing a volume no instance owns");
            driver.delete_volume(vol).await?;
        }
        self.begin(
            action,
            Unsettled::Instance {
                project: project.into(),
                name: name.into(),
                pool: pool.into(),
            },
        )
    }

    pub(crate) fn get_instance_record(&self, project: &str, name: &str) -> Result<api::Instance> {
        let mut inst = self.instance_row(project, name)?;
        self.expand_all(project, std::slice::from_mut(&mut inst))?;
        Ok(inst)
    }

    async fn with_status(&self, mut inst: api::Instance) -> api::Instance {
        let ps = match self.spec_for(&inst) {
            Ok(spec) => self
                .inner
                .lxc
                .power_state(&spec)
                .await
                .unwrap_or(PowerState::Stopped),
            Err(_) => PowerState::Stopped,
        };
        let st = status_of(ps);
        inst.status = st.as_str().into();
        inst.status_code = st.code();
        inst
    }

    /// One instance with its expanded config and current status.
    pub async fn get_instance(&self, project: &str, name: &str) -> Result<api::Instance> {
        let inst = self.get_instance_record(project, name)?;
        Ok(self.with_status(inst).await)
    }

    /// All instances of a project (every project with `None`): two queries and a few file
    /// reads per instance, whatever their number.
    pub async fn list_instances(&self, project: Option<&str>) -> Result<Vec<api::Instance>> {
        let mut out = Vec::new();
        for inst in self.expanded_instances(project)? {
            out.push(self.with_status(inst).await);
        }
        Ok(out)
    }

    /// The records of a project's instances (every project with `None`) with their expanded
    /// config and devices, without live state: one query, profiles expanded per project.
    pub(super) fn expanded_instances(&self, project: Option<&str>) -> Result<Vec<api::Instance>> {
        let rows = self
            .inner
            .db
            .list::<api::Instance>(Table::Instances, project)?;
        let mut by_project: BTreeMap<String, Vec<api::Instance>> = BTreeMap::new();
        for (p, i) in rows {
            by_project.entry(p).or_default().push(i);
        }
        let mut out = Vec::new();
        for (p, mut list) in by_project {
            self.expand_all(&p, &mut list)?;
            out.extend(list);
        }
        Ok(out)
    }

    /// `(project, name)` of every instance of a project (every project with `None`): one
    /// query, no live state.
    pub fn list_instance_names(&self, project: Option<&str>) -> Result<Vec<(String, String)>> {
        Ok(self
            .inner
            .db
            .list::<api::Instance>(Table::Instances, project)?
            .into_iter()
            .map(|(p, i)| (p, i.name))
            .collect())
    }

    /// All instances with state and snapshots (`recursion=2`).
    pub async fn list_instances_full(
        &self,
        project: Option<&str>,
    ) -> Result<Vec<api::InstanceFull>> {
        let mut snaps: BTreeMap<(String, String), Vec<api::InstanceSnapshot>> = BTreeMap::new();
        for (p, s) in self
            .inner
            .db
            .list::<SnapshotRecord>(Table::Snapshots, project)?
        {
            snaps
                .entry((p, s.instance.clone()))
                .or_default()
                .push(s.snapshot);
        }
        // Backups: one directory read for all instances (only those with backups have one).
        let mut backups = self.all_instance_backups();
        let mut out = Vec::new();
        for inst in self.list_instances(project).await? {
            let state = self.state_of(&inst).await.ok();
            let snapshots = snaps
                .remove(&(inst.project.clone(), inst.name.clone()))
                .unwrap_or_default();
            out.push(api::InstanceFull {
                backups: backups
                    .remove(&storage_name(&inst.project, &inst.name))
                    .unwrap_or_default(),
                instance: inst,
                state,
                snapshots,
            });
        }
        Ok(out)
    }

    pub(super) fn validate_put(
        &self,
        project: &str,
        put: &api::InstancePut,
    ) -> Result<(ConfigMap, api::DevicesMap)> {
        config::validate_instance_config(&put.config, false)?;
        config::validate_devices(&put.devices, false)?;
        let mut profs = Vec::new();
        for p in &put.profiles {
            profs.push(
                self.inner
                    .db
                    .get::<api::Profile>(
                        Table::Profiles,
                        &self.feature_project(project, "features.profiles"),
                        p,
                    )?
                    .ok_or_else(|| Error::not_found(format!("Profile {p:?} not found")))?,
            );
        }
        let ps: Vec<_> = profs
            .iter()
            .map(|p| (&p.put.config, &p.put.devices))
            .collect();
        let (ec, ed) = config::expand(&ps, &put.config, &put.devices);
        config::validate_instance_config(&ec, true)?;
        config::validate_devices(&ed, true)?;
        self.check_custom_volumes(project, &ed)?;
        if root_size(&ed).is_some()
            && let Some(pool) = root_pool(&ed)
        {
            let info = self.pool_driver(&pool)?.info();
            if !info.quotas {
                return Err(Error::invalid(format!(
                    "The root disk's \"size\" cannot be enforced by storage pool {pool:?} (driver {})",
                    info.name
                )));
            }
        }
        Ok((ec, ed))
    }

    /// Applies the size limit of a new instance volume: the root disk's `size`, else the
    /// pool's `volume.size` default (as Incus does); none sets no limit.
    pub(super) async fn apply_root_size(
        &self,
        driver: &Arc<dyn crate::drivers::StorageDriver>,
        vol: &Volume,
        devices: &api::DevicesMap,
        pool: &str,
    ) -> Result<()> {
        let default = || {
            self.get_storage_pool(pool)
                .ok()
                .and_then(|p| p.put.config.get("volume.size").cloned())
                .and_then(|s| config::parse_size(&s).ok())
        };
        match root_size(devices).or_else(default) {
            Some(bytes) => driver.set_volume_quota(vol, bytes).await,
            None => Ok(()),
        }
    }

    /// Creates an instance (`POST /1.0/instances`). Everything is checked before the
    /// operation starts; with `start: true` the instance is started once created.
    pub async fn create_instance(
        &self,
        project: &str,
        mut req: api::InstancesPost,
    ) -> Result<Operation> {
        self.get_project(project)?;
        config::validate_instance_name(&req.name)?;
        if !req.kind.is_empty() && req.kind != "container" {
            return Err(Error::unsupported(format!(
                "Instance type {:?} is not supported yet",
                req.kind
            )));
        }
        if !req.instance_type.is_empty() {
            return Err(Error::unsupported("instance_type is not supported"));
        }
        if self
            .inner
            .db
            .get::<api::Instance>(Table::Instances, project, &req.name)?
            .is_some()
        {
            return Err(Error::already_exists(format!(
                "Instance {:?} already exists",
                req.name
            )));
        }
        if req.source.kind == "copy" {
            return self.copy_instance(project, req).await;
        }
        if req.put.profiles.is_empty() {
            // An absent profile list means the default profile, as in Incus; an explicit empty
            // list cannot be told apart in JSON defaults, so both get `default`.
            req.put.profiles = vec!["default".into()];
        }
        let image = match req.source.kind.as_str() {
            "image" => {
                let key = if !req.source.alias.is_empty() {
                    &req.source.alias
                } else {
                    &req.source.fingerprint
                };
                if key.is_empty() {
                    return Err(Error::invalid(
                        "Image source needs an alias or a fingerprint",
                    ));
                }
                if !req.source.server.is_empty() {
                    return Err(Error::unsupported(
                        "Remote image servers are not supported yet",
                    ));
                }
                Some(self.resolve_image(project, key)?)
            }
            "none" | "" => None,
            other => {
                return Err(Error::unsupported(format!(
                    "Instance source {other:?} is not supported yet"
                )));
            }
        };
        let (_, ed) = self.validate_put(project, &req.put)?;
        let pool = root_pool(&ed).ok_or_else(|| Error::invalid("No root device could be found"))?;
        self.get_storage_pool(&pool)?;
        let root_devices = ed.clone();

        let mut put = req.put.clone();
        put.architecture = image
            .as_ref()
            .map(|i| i.architecture.clone())
            .unwrap_or_else(|| std::env::consts::ARCH.into());
        if let Some(img) = &image {
            for (k, v) in &img.put.properties {
                put.config
                    .entry(format!("image.{k}"))
                    .or_insert_with(|| v.clone());
            }
        }
        let base = image.as_ref().map(|i| i.fingerprint.clone());
        let record = new_record(project, &req.name, put, &pool, base);
        let host = self.clone();
        let (project_s, name) = (project.to_string(), req.name.clone());
        let start = req.start;
        Ok(self.inner.ops.spawn(
            project,
            "Creating instance",
            resources(project, &req.name),
            false,
            move |ctx| async move {
                let lock = host.instance_lock(&project_s, &name);
                let _g = lock.lock().await;
                let driver = host.pool_driver(&pool)?;
                let vol = Volume::new(VolumeType::Container, storage_name(&project_s, &name));
                let intent = host
                    .claim_volume("create", &project_s, &name, &pool, &driver, &vol)
                    .await?;
                let privileged = config::is_true(&record.put.config, "security.privileged")
                    || host
                        .validate_put(&project_s, &record.put)
                        .map(|(c, _)| config::is_true(&c, "security.privileged"))
                        .unwrap_or(false);
                let shift = (!privileged).then_some(host.inner.idmap);
                match &image {
                    Some(img) => {
                        ctx.set_metadata(
                            "create_instance_from_image_unpack_progress",
                            serde_json::json!("Unpacking image"),
                        );
                        let src = host
                            .ensure_image_volume(&pool, &img.fingerprint, Some(ctx.clone()))
                            .await?;
                        driver.create_volume_from_copy(&vol, &src, shift).await?;
                    }
                    None => {
                        driver.create_volume(&vol).await?;
                        let rootfs = driver.volume_path(&vol).join("rootfs");
                        std::fs::create_dir(&rootfs).map_err(|e| Error::io(rootfs.display(), e))?;
                        if let Some(s) = shift {
                            std::os::unix::fs::chown(&rootfs, Some(s.base), Some(s.base))
                                .map_err(|e| Error::io(rootfs.display(), e))?;
                        }
                    }
                }
                let stored = match host
                    .apply_root_size(&driver, &vol, &root_devices, &pool)
                    .await
                {
                    Ok(()) => host
                        .inner
                        .db
                        .insert(Table::Instances, &project_s, &name, &record),
                    Err(e) => Err(e),
                };
                if let Err(e) = stored {
                    let _ = driver.delete_volume(&vol).await;
                    return Err(e);
                }
                host.finish_new_instance(
                    &project_s,
                    &name,
                    &driver.volume_path(&vol),
                    "create",
                    shift,
                );
                drop(intent);
                drop(_g);
                if start {
                    host.start_locked(&project_s, &name).await?;
                }
                Ok(None)
            },
        ))
    }

    /// Copies an instance (`source.type = "copy"`): its root volume and, unless
    /// `instance_only`, its snapshots, in the same project, on the same pool (the driver's
    /// fast copy) or onto another pool (the root disk's pool in the request; content replayed
    /// snapshot by snapshot). The source may
    /// run (the copy is then not atomic, as with Incus on dir). Volatile keys are not copied;
    /// `copy` templates are applied, so the host name follows the new name.
    async fn copy_instance(&self, project: &str, mut req: api::InstancesPost) -> Result<Operation> {
        if !req.source.project.is_empty() && req.source.project != project {
            return Err(Error::unsupported(
                "Copies between projects are not supported yet",
            ));
        }
        // A copy of a running container is taken as it is (not atomic, as with Incus on dir);
        // `live` asks for exactly that.
        if req.source.refresh {
            return Err(Error::unsupported(
                "Refreshing copies are not supported yet",
            ));
        }
        let src_name = req.source.source.clone();
        if src_name.contains('/') {
            return Err(Error::unsupported(
                "Copying from a snapshot is not supported yet",
            ));
        }
        let src = self.get_instance_record(project, &src_name)?;
        // The client sends the source's writable fields (volatile keys included); an empty
        // request takes them from the source.
        if req.put.config.is_empty() && req.put.devices.is_empty() && req.put.profiles.is_empty() {
            req.put = src.put.clone();
        }
        req.put.config.retain(|k, _| !k.starts_with("volatile."));
        if req.put.profiles.is_empty() {
            req.put.profiles = src.put.profiles.clone();
        }
        let (ec, ed) = self.validate_put(project, &req.put)?;
        let root_devices = ed.clone();
        let src_pool = instance_pool(&src).to_string();
        let pool = root_pool(&ed).unwrap_or_default();
        let target_driver = self.pool_driver(&pool)?;
        if config::is_true(&ec, "security.privileged")
            != config::is_true(&src.expanded_config, "security.privileged")
        {
            return Err(Error::unsupported(
                "Copies that change security.privileged are not supported yet",
            ));
        }
        let snapshots = if req.source.instance_only {
            Vec::new()
        } else {
            self.list_snapshots(project, &src_name)?
        };
        let mut put = req.put.clone();
        put.architecture = src.put.architecture.clone();
        let base = src.put.config.get("volatile.base_image").cloned();
        let record = new_record(project, &req.name, put, &pool, base);
        let (start, name) = (req.start, req.name.clone());
        Ok(self.locked_op(
            project,
            &name,
            "Copying instance",
            move |host, project, name| async move {
                let (src_driver, src_vol) = host.root_volume(&src)?;
                let driver = target_driver;
                let vol = Volume::new(VolumeType::Container, storage_name(&project, &name));
                let intent = host
                    .claim_volume("copy", &project, &name, &pool, &driver, &vol)
                    .await?;
                let names: Vec<String> = snapshots.iter().map(|s| s.name.clone()).collect();
                let copied = async {
                    if pool == src_pool {
                        driver.copy_volume(&vol, &src_vol, &names).await?;
                    } else {
                        super::custom_volumes::replay_volume(
                            &src_driver,
                            &src_vol,
                            &names,
                            &driver,
                            &vol,
                        )
                        .await?;
                    }
                    host.apply_root_size(&driver, &vol, &root_devices, &pool)
                        .await?;
                    host.inner
                        .db
                        .insert(Table::Instances, &project, &name, &record)?;
                    for snap in &snapshots {
                        let rec = SnapshotRecord {
                            instance: name.clone(),
                            snapshot: snap.clone(),
                        };
                        host.inner.db.insert(
                            Table::Snapshots,
                            &project,
                            &format!("{name}/{}", snap.name),
                            &rec,
                        )?;
                    }
                    Ok::<(), Error>(())
                }
                .await;
                if let Err(e) = copied {
                    let _ = host.inner.db.delete_prefix(
                        Table::Snapshots,
                        &project,
                        &format!("{name}/"),
                    );
                    let _ = host.inner.db.delete(Table::Instances, &project, &name);
                    let _ = driver.delete_volume(&vol).await;
                    return Err(e);
                }
                let shift = (!config::is_true(&record.put.config, "security.privileged"))
                    .then_some(host.inner.idmap);
                host.finish_new_instance(&project, &name, &driver.volume_path(&vol), "copy", shift);
                drop(intent);
                if start {
                    host.start_locked(&project, &name).await?;
                }
                Ok(())
            },
        ))
    }

    fn apply_templates(
        &self,
        project: &str,
        name: &str,
        vol_path: &std::path::Path,
        trigger: &str,
        shift: Option<crate::drivers::IdShift>,
    ) -> Result<()> {
        let meta_path = vol_path.join("metadata.yaml");
        let Ok(text) = std::fs::read(&meta_path) else {
            return Ok(());
        };
        let meta = super::images::parse_metadata(&text)?;
        let root = rustix::fs::open(
            vol_path.join("rootfs"),
            rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::internal(format!("rootfs: {e}")))?;
        for (target, t) in &meta.templates {
            if !t.when.iter().any(|w| w == trigger) {
                continue;
            }
            let tpl_rel = super::archive::safe_relative(std::path::Path::new(&t.template))?;
            let Ok(tpl) = std::fs::read_to_string(vol_path.join("templates").join(tpl_rel)) else {
                continue;
            };
            let rel = super::archive::safe_relative(std::path::Path::new(
                target.trim_start_matches('/'),
            ))?;
            let parent = rel.parent().unwrap_or(std::path::Path::new("."));
            let parent = if parent.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                parent
            };
            let dir = rustix::fs::openat2(
                &root,
                parent,
                rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
                rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(|e| Error::internal(format!("template {target}: {e}")))?;
            let fname = rel.file_name().unwrap_or_default();
            if t.create_only
                && rustix::fs::statat(&dir, fname, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok()
            {
                continue;
            }
            let _ = rustix::fs::unlinkat(&dir, fname, rustix::fs::AtFlags::empty());
            let fd = rustix::fs::openat(
                &dir,
                fname,
                rustix::fs::OFlags::WRONLY
                    | rustix::fs::OFlags::CREATE
                    | rustix::fs::OFlags::EXCL
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::from_raw_mode(0o644),
            )
            .map_err(|e| Error::internal(format!("template {target}: {e}")))?;
            let f = std::fs::File::from(fd);
            use std::io::Write;
            (&f).write_all(templates::render(&tpl, name, project).as_bytes())
                .map_err(|e| Error::internal(format!("template {target}: {e}")))?;
            let base = shift.map(|s| s.base).unwrap_or(0);
            let _ = rustix::fs::fchown(
                &f,
                Some(rustix::process::Uid::from_raw(base)),
                Some(rustix::process::Gid::from_raw(base)),
            );
        }
        Ok(())
    }

    /// The last steps of a new instance: templates for `trigger`, `backup.yaml`, the
    /// `instance-created` event. Template failures are reported as a logging event.
    fn finish_new_instance(
        &self,
        project: &str,
        name: &str,
        vol_path: &std::path::Path,
        trigger: &str,
        shift: Option<crate::drivers::IdShift>,
    ) {
        if let Err(e) = self.apply_templates(project, name, vol_path, trigger, shift) {
            self.inner.events.log(
                "warning",
                &format!("Instance {name:?}: templates not applied: {e}"),
            );
        }
        self.write_backup_yaml(project, name, vol_path);
        self.inner.events.lifecycle(
            "instance-created",
            &instance_url(project, name),
            project,
            None,
        );
    }

    async fn start_locked(&self, project: &str, name: &str) -> Result<()> {
        let (mut inst, mut spec) = self.instance_spec(project, name)?;
        match self.inner.lxc.power_state(&spec).await? {
            PowerState::Stopped => {}
            _ => return Err(Error::busy("The instance is already running")),
        }
        // Nics without a MAC get one, kept in volatile.<nic>.hwaddr across restarts.
        let missing = super::networks::missing_hwaddrs(&inst);
        if !missing.is_empty() {
            let mut rec: api::Instance = self.instance_row(project, name)?;
            for key in missing {
                rec.put.config.insert(key, super::networks::random_hwaddr());
            }
            self.inner
                .db
                .update(Table::Instances, project, name, &rec)?;
            (inst, spec) = self.instance_spec(project, name)?;
        }
        self.prepare_nics(&inst, &mut spec.devices).await?;
        self.inner.lxc.start(&spec).await?;
        let mut rec: api::Instance = self.instance_row(project, name)?;
        rec.last_used_at = chrono::Utc::now();
        rec.put
            .config
            .insert("volatile.last_state.power".into(), "RUNNING".into());
        self.inner
            .db
            .update(Table::Instances, project, name, &rec)?;
        let _ = inst;
        self.inner.events.lifecycle(
            "instance-started",
            &instance_url(project, name),
            project,
            None,
        );
        Ok(())
    }

    async fn stop_locked(
        &self,
        project: &str,
        name: &str,
        force: bool,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let (inst, spec) = self.instance_spec(project, name)?;
        let ps = self.inner.lxc.power_state(&spec).await?;
        if ps == PowerState::Stopped {
            return Err(Error::busy("The instance is already stopped"));
        }
        if force {
            self.inner.lxc.stop(&spec).await?;
        } else {
            if matches!(ps, PowerState::Frozen(_)) {
                self.inner.lxc.unfreeze(&spec).await?;
            }
            self.inner
                .lxc
                .shutdown(&spec, timeout.unwrap_or(DEFAULT_STOP_TIMEOUT))
                .await?;
        }
        let action = if force {
            "instance-stopped"
        } else {
            "instance-shutdown"
        };
        self.inner
            .events
            .lifecycle(action, &instance_url(project, name), project, None);
        if inst.put.ephemeral {
            self.delete_locked(project, name).await?;
        } else if let Some(mut rec) =
            self.inner
                .db
                .get::<api::Instance>(Table::Instances, project, name)?
        {
            rec.put
                .config
                .insert("volatile.last_state.power".into(), "STOPPED".into());
            self.inner
                .db
                .update(Table::Instances, project, name, &rec)?;
        }
        Ok(())
    }

    /// Runs `work` as an operation holding the instance's lock, so lifecycle actions on one
    /// instance never interleave.
    fn locked_op<F, Fut>(&self, project: &str, name: &str, description: &str, work: F) -> Operation
    where
        F: FnOnce(Host, String, String) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let host = self.clone();
        let (p, n) = (project.to_string(), name.to_string());
        self.inner.ops.spawn(
            project,
            description,
            resources(project, name),
            false,
            move |_| async move {
                let lock = host.instance_lock(&p, &n);
                let _guard = lock.lock().await;
                work(host.clone(), p, n).await.map(|_| None)
            },
        )
    }

    /// Changes the power state (`PUT /1.0/instances/<name>/state`).
    pub async fn update_instance_state(
        &self,
        project: &str,
        name: &str,
        req: api::InstanceStatePut,
    ) -> Result<Operation> {
        self.get_instance_record(project, name)?;
        let timeout = (req.timeout >= 0)
            .then(|| Duration::from_secs(u64::try_from(req.timeout).unwrap_or(0)));
        let action = req.action.clone();
        let desc = match action.as_str() {
            "start" => "Starting instance",
            "stop" => "Stopping instance",
            "restart" => "Restarting instance",
            "freeze" => "Freezing instance",
            "unfreeze" => "Unfreezing instance",
            other => return Err(Error::invalid(format!("Unknown action {other:?}"))),
        };
        if req.stateful {
            return Err(Error::unsupported(
                "Stateful start and stop are not supported",
            ));
        }
        Ok(self.locked_op(project, name, desc, move |host, project, name| async move {
            match action.as_str() {
                "start" => host.start_locked(&project, &name).await?,
                "stop" => host.stop_locked(&project, &name, req.force, timeout).await?,
                "restart" => {
                    let (inst, _) = host.instance_spec(&project, &name)?;
                    if inst.put.ephemeral {
                        return Err(Error::busy("Ephemeral instances cannot be restarted: they are deleted when they stop"));
                    }
                    host.stop_locked(&project, &name, req.force, timeout).await?;
                    host.start_locked(&project, &name).await?;
                    host.inner.events.lifecycle("instance-restarted", &instance_url(&project, &name), &project, None);
                }
                "freeze" | "unfreeze" => {
                    let (_, spec) = host.instance_spec(&project, &name)?;
                    let ps = host.inner.lxc.power_state(&spec).await?;
                    if action == "freeze" {
                        if !matches!(ps, PowerState::Running(_)) {
                            return Err(Error::busy("The instance isn't running"));
                        }
                        host.inner.lxc.freeze(&spec).await?;
                        host.inner.events.lifecycle("instance-paused", &instance_url(&project, &name), &project, None);
                    } else {
                        if !matches!(ps, PowerState::Frozen(_)) {
                            return Err(Error::busy("The instance isn't frozen"));
                        }
                        host.inner.lxc.unfreeze(&spec).await?;
                        host.inner.events.lifecycle("instance-resumed", &instance_url(&project, &name), &project, None);
                    }
                }
                _ => {}
            }
            Ok(())
        }))
    }

    async fn delete_locked(&self, project: &str, name: &str) -> Result<()> {
        let (inst, spec) = self.instance_spec(project, name)?;
        if self.inner.lxc.power_state(&spec).await? != PowerState::Stopped {
            return Err(Error::busy(
                "The instance is currently running, stop it first",
            ));
        }
        if config::is_true(&inst.expanded_config, "security.protection.delete") {
            return Err(Error::busy(
                "The instance is protected from deletion (security.protection.delete)",
            ));
        }
        let (driver, vol) = self.root_volume(&inst)?;
        // Storage first: a failure leaves the record (and a retry possible), never orphans;
        // a crash is finished on the next start.
        let _intent = self.begin(
            "delete",
            Unsettled::Instance {
                project: project.into(),
                name: name.into(),
                pool: instance_pool(&inst).into(),
            },
        )?;
        driver.delete_volume(&vol).await?;
        self.inner
            .db
            .delete_prefix(Table::Snapshots, project, &format!("{name}/"))?;
        self.inner.db.delete(Table::Instances, project, name)?;
        self.release_nics(&inst).await;
        let _ = std::fs::remove_dir_all(&spec.log_dir);
        let _ = std::fs::remove_dir_all(self.backups_dir(project, name));
        self.inner.events.lifecycle(
            "instance-deleted",
            &instance_url(project, name),
            project,
            None,
        );
        Ok(())
    }

    /// Deletes a stopped instance, its snapshots and its volume.
    pub async fn delete_instance(&self, project: &str, name: &str) -> Result<Operation> {
        let (inst, spec) = self.instance_spec(project, name)?;
        if self.inner.lxc.power_state(&spec).await? != PowerState::Stopped {
            return Err(Error::busy(
                "The instance is currently running, stop it first",
            ));
        }
        let _ = inst;
        Ok(self.locked_op(
            project,
            name,
            "Deleting instance",
            move |host, project, name| async move { host.delete_locked(&project, &name).await },
        ))
    }

    /// Renames a stopped instance (`POST /1.0/instances/<name>` with a new `name`).
    pub async fn rename_instance(
        &self,
        project: &str,
        name: &str,
        new_name: &str,
    ) -> Result<Operation> {
        config::validate_instance_name(new_name)?;
        let (inst, spec) = self.instance_spec(project, name)?;
        if self.inner.lxc.power_state(&spec).await? != PowerState::Stopped {
            return Err(Error::busy("Renaming of running instance not allowed"));
        }
        if self
            .inner
            .db
            .get::<api::Instance>(Table::Instances, project, new_name)?
            .is_some()
        {
            return Err(Error::already_exists(format!(
                "Instance {new_name:?} already exists"
            )));
        }
        let new_name = new_name.to_string();
        Ok(self.locked_op(
            project,
            name,
            "Renaming instance",
            move |host, project, name| async move {
                let (driver, old_vol) = host.root_volume(&inst)?;
                let _intent = host.begin(
                    "rename",
                    Unsettled::InstanceRename {
                        project: project.clone(),
                        from: name.clone(),
                        to: new_name.clone(),
                        pool: instance_pool(&inst).to_string(),
                    },
                )?;
                driver
                    .rename_volume(&old_vol, &storage_name(&project, &new_name))
                    .await?;
                let mut rec: api::Instance = host.instance_row(&project, &name)?;
                rec.name = new_name.clone();
                let snapshots = host.inner.db.list_prefix::<SnapshotRecord>(
                    Table::Snapshots,
                    &project,
                    &format!("{name}/"),
                )?;
                // The record and its snapshots' records change together or not at all.
                let r = host.inner.db.atomically(|w| {
                    w.rename(Table::Instances, &project, &name, &new_name)?;
                    w.update(Table::Instances, &project, &new_name, &rec)?;
                    w.rename_prefix(
                        Table::Snapshots,
                        &project,
                        &format!("{name}/"),
                        &format!("{new_name}/"),
                    )?;
                    for mut s in snapshots {
                        s.instance = new_name.clone();
                        w.update(
                            Table::Snapshots,
                            &project,
                            &format!("{new_name}/{}", s.snapshot.name),
                            &s,
                        )?;
                    }
                    Ok(())
                });
                if let Err(e) = r {
                    let _ = driver
                        .rename_volume(
                            &Volume::new(VolumeType::Container, storage_name(&project, &new_name)),
                            &storage_name(&project, &name),
                        )
                        .await;
                    return Err(e);
                }
                let old_logs = host
                    .inner
                    .dir
                    .join("logs")
                    .join(storage_name(&project, &name));
                let _ = std::fs::rename(
                    &old_logs,
                    host.inner
                        .dir
                        .join("logs")
                        .join(storage_name(&project, &new_name)),
                );
                let _ = std::fs::rename(
                    host.backups_dir(&project, &name),
                    host.backups_dir(&project, &new_name),
                );
                host.inner.events.lifecycle(
                    "instance-renamed",
                    &instance_url(&project, &new_name),
                    &project,
                    ctx(&[("old_name", serde_json::json!(name))]),
                );
                Ok(())
            },
        ))
    }

    /// Replaces the writable fields (`PUT /1.0/instances/<name>`); a non-empty `restore`
    /// restores that snapshot instead. Changes to a running container apply at its next start.
    pub async fn update_instance(
        &self,
        project: &str,
        name: &str,
        mut put: api::InstancePut,
    ) -> Result<Option<Operation>> {
        let current = self.get_instance_record(project, name)?;
        if !put.restore.is_empty() {
            // Clients send either `snap` or `instance/snap`.
            let prefix = format!("{name}/");
            let snap = put.restore.strip_prefix(&prefix).unwrap_or(&put.restore);
            return self.restore_snapshot(project, name, snap).await.map(Some);
        }
        // A GET-then-PUT round trip sends the volatile keys back: unchanged ones are fine,
        // changed ones are refused.
        for (k, v) in &put.config {
            if k.starts_with("volatile.") && current.put.config.get(k) != Some(v) {
                return Err(Error::invalid(format!(
                    "Invalid config key {k:?}: volatile keys are set by the engine only"
                )));
            }
        }
        put.config.retain(|k, _| !k.starts_with("volatile."));
        let (_, ed) = self.validate_put(project, &put)?;
        // Serialised with start, stop and other changes of this instance: nics are applied
        // to a running instance below.
        let lock = self.instance_lock(project, name);
        let _guard = lock.lock().await;
        // Read again under the lock: what the nic changes are computed against.
        let current = self.get_instance_record(project, name)?;
        let old_pool = instance_pool(&current).to_string();
        let new_pool = root_pool(&ed).unwrap_or_default();
        if new_pool != old_pool {
            return Err(Error::invalid(
                "Changing the root disk's pool requires moving the instance",
            ));
        }
        if root_size(&ed) != root_size(&current.expanded_devices) {
            // Applied before the record changes: a refused size changes nothing.
            let (driver, vol) = self.root_volume(&current)?;
            driver
                .set_volume_quota(&vol, root_size(&ed).unwrap_or(0))
                .await?;
        }
        let mut rec: api::Instance = self.instance_row(project, name)?;
        let previous = rec.clone();
        let volatile: ConfigMap = volatile_keys(&rec.put.config);
        rec.put = api::InstancePut {
            architecture: rec.put.architecture.clone(),
            restore: String::new(),
            ..put
        };
        rec.put.config.extend(volatile);
        self.inner
            .db
            .update(Table::Instances, project, name, &rec)?;
        // Nics of a running instance are hot-plugged; a failure restores the old record.
        let (_, spec) = self.instance_spec(project, name)?;
        if let PowerState::Running(pid) | PowerState::Frozen(pid) =
            self.inner.lxc.power_state(&spec).await?
            && let Err(e) = self.hotplug_nics(&current, pid).await
        {
            let mut back: api::Instance = self.instance_row(project, name)?;
            let volatile_now = volatile_keys(&back.put.config);
            back.put = previous.put;
            back.put.config.extend(volatile_now);
            self.inner
                .db
                .update(Table::Instances, project, name, &back)?;
            return Err(e);
        }
        self.inner.events.lifecycle(
            "instance-updated",
            &instance_url(project, name),
            project,
            None,
        );
        Ok(None)
    }

    /// Live state: status, init pid, processes, memory, CPU, network interfaces, root disk.
    pub async fn instance_state(&self, project: &str, name: &str) -> Result<api::InstanceState> {
        let inst = self.get_instance_record(project, name)?;
        self.state_of(&inst).await
    }

    /// Live state of an instance already loaded and expanded (no database access).
    async fn state_of(&self, inst: &api::Instance) -> Result<api::InstanceState> {
        let spec = self.spec_for(inst)?;
        let ps = self.inner.lxc.power_state(&spec).await?;
        let st = status_of(ps);
        let mut state = api::InstanceState {
            status: st.as_str().into(),
            status_code: st.code(),
            processes: -1,
            ..Default::default()
        };
        if let PowerState::Running(pid) | PowerState::Frozen(pid) = ps {
            state.pid = i64::from(pid);
            let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let u = super::cgroup::usage(
                std::path::Path::new("/sys/fs/cgroup"),
                self.inner.lxc.cgroup_layout(),
                &cg,
            );
            state.memory = api::InstanceStateMemory {
                usage: u.memory,
                usage_peak: u.memory_peak,
                total: u.memory_limit,
                ..Default::default()
            };
            state.cpu = api::InstanceStateCpu {
                usage: u.cpu_ns,
                allocated_time: 0,
            };
            state.processes = u.processes;
            state.network = if matches!(ps, PowerState::Running(_)) {
                state::network(pid)
            } else {
                None
            };
            state.started_at = inst.last_used_at;
        }
        Ok(state)
    }

    /// Names of the instance's log files (`lxc.log`, `lxc.conf`, `console.log`).
    pub fn instance_log_files(&self, project: &str, name: &str) -> Result<Vec<String>> {
        let (_, spec) = self.instance_spec(project, name)?;
        let mut names: Vec<String> = std::fs::read_dir(&spec.log_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".log") || n == "lxc.conf")
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    /// One log file of the instance, by a name from [`Host::instance_log_files`].
    pub fn instance_log(&self, project: &str, name: &str, file: &str) -> Result<Vec<u8>> {
        if !self
            .instance_log_files(project, name)?
            .iter()
            .any(|f| f == file)
        {
            return Err(Error::not_found(format!("Log file {file:?} not found")));
        }
        let (_, spec) = self.instance_spec(project, name)?;
        let path = spec.log_dir.join(file);
        std::fs::read(&path).map_err(|e| Error::io(path.display(), e))
    }

    /// The console log (what init wrote on the console).
    pub fn console_log(&self, project: &str, name: &str) -> Result<String> {
        let (_, spec) = self.instance_spec(project, name)?;
        Ok(std::fs::read(spec.log_dir.join("console.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default())
    }

    /// Empties the console log.
    pub fn clear_console_log(&self, project: &str, name: &str) -> Result<()> {
        let (_, spec) = self.instance_spec(project, name)?;
        let path = spec.log_dir.join("console.log");
        match std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    /// Attaches to a running instance's console (`type` `console`; one holder at a time),
    /// sized `cols` x `rows` when both are non-zero.
    pub async fn console(
        &self,
        project: &str,
        name: &str,
        cols: u16,
        rows: u16,
    ) -> Result<crate::drivers::ConsoleAttach> {
        let (_, spec) = self.instance_spec(project, name)?;
        if !matches!(
            self.inner.lxc.power_state(&spec).await?,
            PowerState::Running(_)
        ) {
            return Err(Error::busy("Instance is not running"));
        }
        let console = self.inner.lxc.console(&spec).await?;
        if cols > 0 && rows > 0 {
            console.control.resize(cols, rows)?;
        }
        Ok(console)
    }

    /// Runs a command in a running instance with Incus's defaults: `PATH`, `LANG=C.UTF-8`,
    /// `HOME` and `USER` for root, the instance's `environment.*` keys, then the request's
    /// environment; uid and gid 0 and cwd `/root` unless given.
    pub async fn exec(
        &self,
        project: &str,
        name: &str,
        req: &api::InstanceExecPost,
    ) -> Result<ExecProcess> {
        if req.command.is_empty() {
            return Err(Error::invalid("The command is empty"));
        }
        if req.interactive && req.record_output {
            return Err(Error::invalid(
                "record-output cannot be used with interactive",
            ));
        }
        let (inst, spec) = self.instance_spec(project, name)?;
        if !matches!(
            self.inner.lxc.power_state(&spec).await?,
            PowerState::Running(_)
        ) {
            return Err(Error::busy("Instance is not running"));
        }
        let uid = req.user.unwrap_or(0);
        let gid = req.group.unwrap_or(0);
        let mut env = ConfigMap::new();
        env.insert(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
        env.insert("LANG".into(), "C.UTF-8".into());
        if uid == 0 {
            env.insert("HOME".into(), "/root".into());
            env.insert("USER".into(), "root".into());
        }
        if req.interactive {
            env.insert("TERM".into(), "xterm".into());
        }
        for (k, v) in &inst.expanded_config {
            if let Some(var) = k.strip_prefix("environment.") {
                env.insert(var.into(), v.clone());
            }
        }
        env.extend(req.environment.clone());
        let cwd = req
            .cwd
            .clone()
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| if uid == 0 { "/root".into() } else { "/".into() });
        let stdio = if req.interactive {
            ExecStdio::Pty(
                u16::try_from(req.width).unwrap_or(80).max(1),
                u16::try_from(req.height).unwrap_or(24).max(1),
            )
        } else {
            ExecStdio::Pipes
        };
        let p = self
            .inner
            .lxc
            .exec(
                &spec,
                ExecRequest {
                    command: req.command.clone(),
                    environment: env,
                    cwd,
                    uid,
                    gid,
                    stdio,
                },
            )
            .await?;
        self.inner.events.lifecycle(
            "instance-exec",
            &instance_url(project, name),
            project,
            ctx(&[("command", serde_json::json!(req.command))]),
        );
        Ok(p)
    }

    /// Runs a command to completion, feeding `stdin`; returns (exit status, stdout, stderr).
    pub async fn exec_output(
        &self,
        project: &str,
        name: &str,
        command: &[&str],
        stdin: &[u8],
    ) -> Result<(i32, Vec<u8>, Vec<u8>)> {
        let req = api::InstanceExecPost {
            command: command.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let mut p = self.exec(project, name, &req).await?;
        let (out, err) = crate::drivers::feed_and_collect(
            p.stdin.take(),
            stdin.to_vec(),
            p.stdout.take(),
            p.stderr.take(),
        )
        .await;
        let code = p.control.wait().await?;
        Ok((code, out, err))
    }

    // ---- snapshots ----

    /// Snapshots of an instance, oldest first (one query).
    pub fn list_snapshots(&self, project: &str, name: &str) -> Result<Vec<api::InstanceSnapshot>> {
        self.get_instance_record(project, name)?;
        Ok(self
            .inner
            .db
            .list_prefix::<SnapshotRecord>(Table::Snapshots, project, &format!("{name}/"))?
            .into_iter()
            .map(|s| s.snapshot)
            .collect())
    }

    /// One snapshot.
    pub fn get_snapshot(
        &self,
        project: &str,
        name: &str,
        snapshot: &str,
    ) -> Result<api::InstanceSnapshot> {
        self.inner
            .db
            .get::<SnapshotRecord>(Table::Snapshots, project, &format!("{name}/{snapshot}"))?
            .map(|s| s.snapshot)
            .ok_or_else(|| Error::not_found("Snapshot not found"))
    }

    /// Takes a snapshot; the name defaults to `snap<N>` as in Incus.
    pub async fn create_snapshot(
        &self,
        project: &str,
        name: &str,
        req: api::InstanceSnapshotsPost,
    ) -> Result<Operation> {
        let inst = self.get_instance_record(project, name)?;
        if req.stateful {
            return Err(Error::unsupported("Stateful snapshots are not supported"));
        }
        let existing = self.list_snapshots(project, name)?;
        let snap_name = if req.name.is_empty() {
            let pattern = inst
                .expanded_config
                .get("snapshots.pattern")
                .map_or("", String::as_str);
            config::next_snapshot_name(pattern, |n| existing.iter().any(|s| s.name == n))
        } else {
            req.name.clone()
        };
        // No expiry asked: `snapshots.expiry` decides (the zero time asks for none).
        let expires_at = match req.expires_at {
            Some(t) => t,
            None => match inst.expanded_config.get("snapshots.expiry") {
                Some(e) if !e.is_empty() => chrono::Utc::now() + config::parse_expiry(e)?,
                _ => api::zero_time(),
            },
        };
        config::validate_snapshot_name(&snap_name)?;
        if existing.iter().any(|s| s.name == snap_name) {
            return Err(Error::already_exists(format!(
                "Snapshot {snap_name:?} already exists"
            )));
        }
        Ok(self.locked_op(
            project,
            name,
            "Snapshotting instance",
            move |host, project, name| async move {
                let (driver, vol) = host.root_volume(&inst)?;
                // Checked again under the lock: settling a crash removes what the intent
                // names, so it must never name a snapshot another create completed.
                if host.get_snapshot(&project, &name, &snap_name).is_ok() {
                    return Err(Error::already_exists(format!(
                        "Snapshot {snap_name:?} already exists"
                    )));
                }
                let _intent = host.begin("create", snapshot_object(&inst, &project, &snap_name))?;
                driver
                    .create_snapshot(&vol, &snap_name)
                    .await
                    .map_err(|e| e.context(format!("Failed creating snapshot {snap_name:?}")))?;
                let now = chrono::Utc::now();
                let rec = SnapshotRecord {
                    instance: name.clone(),
                    snapshot: api::InstanceSnapshot {
                        expires_at,
                        architecture: inst.put.architecture.clone(),
                        config: inst.put.config.clone(),
                        created_at: now,
                        description: inst.put.description.clone(),
                        devices: inst.put.devices.clone(),
                        ephemeral: inst.put.ephemeral,
                        expanded_config: inst.expanded_config.clone(),
                        expanded_devices: inst.expanded_devices.clone(),
                        last_used_at: api::zero_time(),
                        name: snap_name.clone(),
                        profiles: inst.put.profiles.clone(),
                        stateful: false,
                        size: -1,
                    },
                };
                if let Err(e) = host.inner.db.insert(
                    Table::Snapshots,
                    &project,
                    &format!("{name}/{snap_name}"),
                    &rec,
                ) {
                    let _ = driver.delete_snapshot(&vol, &snap_name).await;
                    return Err(e);
                }
                host.refresh_backup_yaml(&project, &name);
                host.inner.events.lifecycle(
                    "instance-snapshot-created",
                    &format!("{}/snapshots/{snap_name}", instance_url(&project, &name)),
                    &project,
                    None,
                );
                Ok(())
            },
        ))
    }

    /// Deletes a snapshot.
    pub async fn delete_snapshot(
        &self,
        project: &str,
        name: &str,
        snapshot: &str,
    ) -> Result<Operation> {
        let inst = self.get_instance_record(project, name)?;
        self.get_snapshot(project, name, snapshot)?;
        let snapshot = snapshot.to_string();
        Ok(self.locked_op(
            project,
            name,
            "Deleting snapshot",
            move |host, project, name| async move {
                let (driver, vol) = host.root_volume(&inst)?;
                host.get_snapshot(&project, &name, &snapshot)?;
                let _intent = host.begin("delete", snapshot_object(&inst, &project, &snapshot))?;
                driver.delete_snapshot(&vol, &snapshot).await?;
                host.inner
                    .db
                    .delete(Table::Snapshots, &project, &format!("{name}/{snapshot}"))?;
                host.refresh_backup_yaml(&project, &name);
                host.inner.events.lifecycle(
                    "instance-snapshot-deleted",
                    &format!("{}/snapshots/{snapshot}", instance_url(&project, &name)),
                    &project,
                    None,
                );
                Ok(())
            },
        ))
    }

    /// Renames a snapshot.
    pub async fn rename_snapshot(
        &self,
        project: &str,
        name: &str,
        snapshot: &str,
        new_name: &str,
    ) -> Result<Operation> {
        let inst = self.get_instance_record(project, name)?;
        config::validate_snapshot_name(new_name)?;
        let mut rec = self
            .inner
            .db
            .get::<SnapshotRecord>(Table::Snapshots, project, &format!("{name}/{snapshot}"))?
            .ok_or_else(|| Error::not_found("Snapshot not found"))?;
        if self.get_snapshot(project, name, new_name).is_ok() {
            return Err(Error::already_exists(format!(
                "Snapshot {new_name:?} already exists"
            )));
        }
        let (snapshot, new_name) = (snapshot.to_string(), new_name.to_string());
        Ok(self.locked_op(
            project,
            name,
            "Renaming snapshot",
            move |host, project, name| async move {
                let (driver, vol) = host.root_volume(&inst)?;
                driver.rename_snapshot(&vol, &snapshot, &new_name).await?;
                rec.snapshot.name = new_name.clone();
                host.inner.db.rename(
                    Table::Snapshots,
                    &project,
                    &format!("{name}/{snapshot}"),
                    &format!("{name}/{new_name}"),
                )?;
                host.inner.db.update(
                    Table::Snapshots,
                    &project,
                    &format!("{name}/{new_name}"),
                    &rec,
                )?;
                host.refresh_backup_yaml(&project, &name);
                host.inner.events.lifecycle(
                    "instance-snapshot-renamed",
                    &format!("{}/snapshots/{new_name}", instance_url(&project, &name)),
                    &project,
                    ctx(&[("old_name", serde_json::json!(snapshot))]),
                );
                Ok(())
            },
        ))
    }

    /// Restores a snapshot: content and config. A running instance is stopped first and
    /// started again after, as Incus does.
    pub async fn restore_snapshot(
        &self,
        project: &str,
        name: &str,
        snapshot: &str,
    ) -> Result<Operation> {
        self.get_instance_record(project, name)?;
        let snap = self.get_snapshot(project, name, snapshot)?;
        let snapshot = snapshot.to_string();
        Ok(self.locked_op(
            project,
            name,
            "Restoring snapshot",
            move |host, project, name| async move {
                let (inst, spec) = host.instance_spec(&project, &name)?;
                let was_running = host.inner.lxc.power_state(&spec).await? != PowerState::Stopped;
                if was_running {
                    host.inner.lxc.stop(&spec).await?;
                }
                let (driver, vol) = host.root_volume(&inst)?;
                driver.restore_snapshot(&vol, &snapshot).await?;
                let mut rec: api::Instance = host.instance_row(&project, &name)?;
                let volatile: ConfigMap = volatile_keys(&rec.put.config);
                rec.put.config = snap
                    .config
                    .iter()
                    .filter(|(k, _)| !k.starts_with("volatile."))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                rec.put.config.extend(volatile);
                rec.put.devices = snap.devices.clone();
                rec.put.profiles = snap.profiles.clone();
                host.inner
                    .db
                    .update(Table::Instances, &project, &name, &rec)?;
                if was_running {
                    host.start_locked(&project, &name).await?;
                }
                host.inner.events.lifecycle(
                    "instance-restored",
                    &instance_url(&project, &name),
                    &project,
                    ctx(&[("snapshot", serde_json::json!(snapshot))]),
                );
                Ok(())
            },
        ))
    }

    /// Starts every stopped instance with `boot.autostart=true`, highest
    /// `boot.autostart.priority` first, waiting `boot.autostart.delay` seconds after each.
    /// Returns the names it started; failures are logged as events and skipped.
    pub async fn autostart(&self) -> Result<Vec<String>> {
        let mut todo: Vec<api::Instance> = self
            .list_instances(None)
            .await?
            .into_iter()
            .filter(|i| {
                i.status_code == StatusCode::Stopped.code()
                    && config::is_true(&i.expanded_config, "boot.autostart")
            })
            .collect();
        let num = |i: &api::Instance, k: &str| {
            i.expanded_config
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        todo.sort_by_key(|i| std::cmp::Reverse(num(i, "boot.autostart.priority")));
        let mut started = Vec::new();
        for inst in todo {
            let req = api::InstanceStatePut {
                action: "start".into(),
                ..Default::default()
            };
            let r = match self
                .update_instance_state(&inst.project, &inst.name, req)
                .await
            {
                Ok(op) => op.wait().await.map(|_| ()),
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => started.push(inst.name.clone()),
                Err(e) => self.inner.events.log(
                    "error",
                    &format!("Autostart of {:?} failed: {e}", inst.name),
                ),
            }
            let delay = num(&inst, "boot.autostart.delay");
            if delay > 0 {
                tokio::time::sleep(Duration::from_secs(delay.unsigned_abs())).await;
            }
        }
        Ok(started)
    }

    /// Stops every running instance (host shutdown): gracefully within
    /// `boot.host_shutdown_timeout` seconds (default 30), then by force; lowest
    /// `boot.stop.priority` last. Instances of equal priority stop concurrently.
    pub async fn stop_all(&self) -> Result<()> {
        let running: Vec<api::Instance> = self
            .list_instances(None)
            .await?
            .into_iter()
            .filter(|i| i.status_code != StatusCode::Stopped.code())
            .collect();
        let num = |i: &api::Instance, k: &str, d: i64| {
            i.expanded_config
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(d)
        };
        let mut by_priority: BTreeMap<std::cmp::Reverse<i64>, Vec<api::Instance>> = BTreeMap::new();
        for i in running {
            by_priority
                .entry(std::cmp::Reverse(num(&i, "boot.stop.priority", 0)))
                .or_default()
                .push(i);
        }
        for (_, group) in by_priority {
            let mut ops = Vec::new();
            for i in group {
                let timeout = num(&i, "boot.host_shutdown_timeout", 30);
                let req = api::InstanceStatePut {
                    action: "stop".into(),
                    timeout,
                    ..Default::default()
                };
                if let Ok(op) = self.update_instance_state(&i.project, &i.name, req).await {
                    ops.push((i, op));
                }
            }
            for (i, op) in ops {
                if op.wait().await.is_err() {
                    let force = api::InstanceStatePut {
                        action: "stop".into(),
                        force: true,
                        ..Default::default()
                    };
                    if let Ok(op) = self.update_instance_state(&i.project, &i.name, force).await {
                        let _ = op.wait().await;
                    }
                }
            }
        }
        Ok(())
    }

    /// The root filesystem path of an instance on the host.
    pub fn instance_rootfs(&self, project: &str, name: &str) -> Result<PathBuf> {
        Ok(self.instance_spec(project, name)?.1.rootfs)
    }
}

/// A snapshot row: the snapshot and its instance's name.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct SnapshotRecord {
    pub(super) instance: String,
    pub(super) snapshot: api::InstanceSnapshot,
}
