//! The engine: [`Host`], which any Rust program can use to manage real system containers.
//!
//! A `Host` owns a state directory laid out like Incus's (`database/`, `storage-pools/`,
//! `images/`, `containers/`, `logs/`, `devices/`). Its methods mirror the REST API object by
//! object, with [`crate::api`] types in and out; long actions return an [`Operation`].
//! One engine per state directory at a time (an exclusive `flock` on `.engine.lock`; a second
//! `Host::open` fails with `Busy`); a new `Host` on a directory whose previous owner exited
//! (or was killed) finds its running containers again.

pub mod archive;
mod backups;
pub mod cgroup;
mod custom_volumes;
pub mod db;
mod exec_record;
mod files;
mod hostinfo;
mod idmap;
mod images;
mod instance_move;
mod instances;
mod intents;
pub mod lxc;
mod metadata;
mod networks;
pub mod ops;
mod resources;
mod sftp;
mod state;
mod tasks;
mod templates;
pub mod trust;
mod volume_backups;
mod volumes;

pub use crate::file::{FileAttrs, FileContent, FilePut};
pub use hostinfo::interfaces_in;
pub use images::{ImageImport, parse_metadata};
pub use ops::{Events, OpContext, Operation};
pub use sftp::SftpSession;
pub use tasks::TaskReport;

use crate::api::{self, ConfigMap};
use crate::drivers::{DriverRegistry, IdShift, StorageDriver, StoragePoolSpec};
use crate::error::{Error, Result};
use db::{Db, Table};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How to open a [`Host`].
#[derive(Clone)]
pub struct HostConfig {
    /// The state directory (`INCUS_DIR`; `/var/lib/incus` for a system-wide engine).
    pub state_dir: PathBuf,
    /// The `incus-helper` binary; by default next to the current executable, then its parent
    /// directory (for test and example binaries), then `PATH`.
    pub helper: Option<PathBuf>,
    /// Arguments put before every helper action (for a binary that hosts the helper as a
    /// subcommand, as `incusd forklxc` does).
    pub helper_args: Vec<String>,
    /// The storage and network drivers this engine may use.
    pub drivers: DriverRegistry,
    /// Create a `dir` pool named `default` (and point the default profile's root disk at it)
    /// when the state directory is new. On by default.
    pub default_dir_pool: bool,
    /// The host id range for unprivileged containers; by default root's range from
    /// `/etc/subuid` and `/etc/subgid` (created if absent).
    pub idmap: Option<IdShift>,
}

impl HostConfig {
    /// A config for `state_dir` with the given drivers and every default.
    pub fn new(state_dir: impl Into<PathBuf>, drivers: DriverRegistry) -> Self {
        HostConfig {
            state_dir: state_dir.into(),
            helper: None,
            helper_args: Vec::new(),
            drivers,
            default_dir_pool: true,
            idmap: None,
        }
    }
}

pub(crate) struct Inner {
    /// Held for the engine's lifetime: one engine per state directory.
    _lock: nix::fcntl::Flock<std::fs::File>,
    pub(crate) dir: PathBuf,
    pub(crate) db: Db,
    pub(crate) registry: DriverRegistry,
    pools: Mutex<HashMap<String, Arc<dyn StorageDriver>>>,
    pub(crate) lxc: lxc::LxcDriver,
    pub(crate) ops: ops::Operations,
    pub(crate) events: Events,
    pub(crate) idmap: IdShift,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) image_lock: tokio::sync::Mutex<()>,
    pub(crate) trust: trust::Trust,
}

/// The engine handle. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<Inner>,
}

/// The name of the default project.
pub const DEFAULT_PROJECT: &str = "default";

/// Whether an engine (in this process or another) holds the state directory `dir`: its
/// `.engine.lock` cannot be taken. A directory that was never opened is not in use. For an
/// embedding program that drops its [`Host`] and wants to know when the work still in flight
/// in it (operations finishing, exec sessions ending) has let go.
pub fn engine_in_use(dir: &Path) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(".engine.lock"))
    else {
        return false;
    };
    // Dropping the lock at once releases it again.
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
}

fn find_helper(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("INCUS_HELPER") {
        return Ok(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(3) {
            let c = dir.join("incus-helper");
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let c = dir.join("incus-helper");
            if c.is_file() {
                return Ok(c);
            }
        }
    }
    Err(Error::internal(
        "incus-helper not found (next to the executable, in INCUS_HELPER or on PATH)",
    ))
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p).map_err(|e| Error::io(p.display(), e))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(p.display(), e))
}

impl Host {
    /// Opens (or initialises) the engine on `config.state_dir`.
    pub async fn open(config: HostConfig) -> Result<Host> {
        let dir = config.state_dir.clone();
        mkdir(&dir, 0o711)?;
        for (sub, mode) in [
            ("containers", 0o711),
            ("containers-snapshots", 0o711),
            ("images", 0o700),
            ("logs", 0o700),
            ("storage-pools", 0o711),
            ("database", 0o700),
            ("backups", 0o700),
        ] {
            mkdir(&dir.join(sub), mode)?;
        }
        let lock_path = dir.join(".engine.lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(lock_path.display(), e))?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| {
                Error::busy(format!(
                    "State directory {} is in use by another engine",
                    dir.display()
                ))
            })?;
        let helper = find_helper(config.helper.as_deref())?;
        let idmap = match config.idmap {
            Some(m) => m,
            None => idmap::host_idmap()?,
        };
        let db = Db::open(&dir.join("database"))?;
        let tag = short_hash(&dir.display().to_string());
        let events = Events::default();
        let inner = Inner {
            _lock: lock,
            lxc: lxc::LxcDriver::new(
                helper,
                config.helper_args.clone(),
                dir.join("containers"),
                tag,
            ),
            dir: dir.clone(),
            db,
            registry: config.drivers.clone(),
            pools: Mutex::new(HashMap::new()),
            ops: ops::Operations::new(events.clone()),
            events,
            idmap,
            locks: Mutex::new(HashMap::new()),
            image_lock: tokio::sync::Mutex::new(()),
            trust: Default::default(),
        };
        let host = Host {
            inner: Arc::new(inner),
        };
        host.seed_defaults(config.default_dir_pool).await?;
        host.load_trust()?;
        for (_, pool) in host
            .inner
            .db
            .list::<api::StoragePool>(Table::StoragePools, None)?
        {
            let d = host.pool_driver(&pool.name)?;
            d.mount_pool().await?;
        }
        host.settle_intents().await?;
        host.sweep_image_files()?;
        Ok(host)
    }

    async fn seed_defaults(&self, default_pool: bool) -> Result<()> {
        let db = &self.inner.db;
        if db
            .get::<api::Project>(Table::Projects, "", DEFAULT_PROJECT)?
            .is_some()
        {
            return Ok(());
        }
        let mut features = ConfigMap::new();
        for f in [
            "features.images",
            "features.profiles",
            "features.storage.volumes",
            "features.storage.buckets",
            "features.networks",
        ] {
            features.insert(f.into(), "true".into());
        }
        let project = api::Project {
            put: api::ProjectPut {
                config: features,
                description: "Default Incus project".into(),
            },
            name: DEFAULT_PROJECT.into(),
            used_by: vec![],
        };
        let mut devices = api::DevicesMap::new();
        if default_pool && self.inner.registry.storage_drivers().contains(&"dir") {
            self.create_storage_pool(api::StoragePoolsPost {
                put: api::StoragePoolPut::default(),
                name: "default".into(),
                driver: "dir".into(),
            })
            .await?;
            devices.insert(
                "root".into(),
                [("type", "disk"), ("path", "/"), ("pool", "default")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        let profile = api::Profile {
            put: api::ProfilePut {
                config: ConfigMap::new(),
                description: "Default Incus profile".into(),
                devices,
            },
            name: "default".into(),
            used_by: vec![],
            project: DEFAULT_PROJECT.into(),
        };
        db.insert(Table::Profiles, DEFAULT_PROJECT, "default", &profile)?;
        db.insert(Table::Projects, "", DEFAULT_PROJECT, &project)?;
        Ok(())
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The event bus: subscribe to lifecycle, operation and logging events.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// The operation `id`.
    pub fn operation(&self, id: &str) -> Result<Operation> {
        self.inner.ops.get(id)
    }

    /// Starts an operation of `class` whose work is supplied by the caller (the daemon uses this
    /// for websocket operations such as exec: the work waits for the client's streams).
    pub fn spawn_operation<F, Fut>(
        &self,
        project: &str,
        class: &str,
        description: &str,
        resources: std::collections::BTreeMap<String, Vec<String>>,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
        work: F,
    ) -> Operation
    where
        F: FnOnce(OpContext) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Option<serde_json::Map<String, serde_json::Value>>>>
            + Send
            + 'static,
    {
        self.inner.ops.spawn_class(
            project,
            class,
            description,
            resources,
            metadata,
            false,
            work,
        )
    }

    /// Every known operation of `project` (every project with `None`).
    pub fn operations(&self, project: Option<&str>) -> Vec<api::Operation> {
        self.inner.ops.list(project)
    }

    pub(crate) fn instance_lock(&self, project: &str, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let key = format!("{project}/{name}");
        match self.inner.locks.lock() {
            Ok(mut m) => m.entry(key).or_default().clone(),
            Err(p) => p.into_inner().entry(key).or_default().clone(),
        }
    }

    // ---- server ----

    /// Server config (`GET /1.0` `config`).
    pub fn server_config(&self) -> Result<ConfigMap> {
        self.inner.db.server_config()
    }

    /// Replaces the server config. Keys known: `user.*`, `core.https_address` (where the
    /// daemon listens for HTTPS; the engine only stores it) and `core.remote_token_expiry`.
    pub fn update_server_config(&self, config: ConfigMap) -> Result<()> {
        for (k, v) in &config {
            match k.as_str() {
                k if k.starts_with("user.") => {}
                "core.https_address" => {
                    if !v.is_empty() {
                        crate::config::parse_listen_address(v, 8443)?;
                    }
                }
                trust::TOKEN_EXPIRY_KEY => {
                    crate::config::parse_expiry(v)?;
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "Unknown server configuration key: {k}"
                    )));
                }
            }
        }
        self.inner.db.set_server_config(&config)?;
        self.inner
            .events
            .lifecycle("config-updated", "/1.0", "", None);
        Ok(())
    }

    // ---- projects ----

    /// All projects.
    pub fn list_projects(&self) -> Result<Vec<api::Project>> {
        Ok(self
            .inner
            .db
            .list::<api::Project>(Table::Projects, Some(""))?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// One project.
    pub fn get_project(&self, name: &str) -> Result<api::Project> {
        self.inner
            .db
            .get(Table::Projects, "", name)?
            .ok_or_else(|| Error::not_found(format!("Project {name:?} not found")))
    }

    /// The project whose images (`features.images`) or profiles (`features.profiles`)
    /// `project` uses: itself when the feature is on, else `default`, as in Incus.
    pub(crate) fn feature_project(&self, project: &str, feature: &str) -> String {
        if project.is_empty() || project == DEFAULT_PROJECT {
            return DEFAULT_PROJECT.into();
        }
        match self.get_project(project) {
            Ok(p) if p.put.config.get(feature).map(String::as_str) != Some("true") => {
                DEFAULT_PROJECT.into()
            }
            _ => project.into(),
        }
    }

    /// Creates a project with its own `default` profile. Like Incus, a new project has its
    /// own images, profiles, storage volumes and buckets unless the request says otherwise.
    pub fn create_project(&self, mut req: api::ProjectsPost) -> Result<()> {
        for f in [
            "features.images",
            "features.profiles",
            "features.storage.volumes",
            "features.storage.buckets",
        ] {
            req.put
                .config
                .entry(f.to_string())
                .or_insert_with(|| "true".into());
        }
        crate::config::validate_entity_name("project", &req.name)?;
        if req.name.contains('_') || req.name.contains(' ') {
            return Err(Error::invalid(format!(
                "Invalid project name {:?}: no spaces or underscores",
                req.name
            )));
        }
        validate_project_config(&req.put.config)?;
        let project = api::Project {
            put: req.put,
            name: req.name.clone(),
            used_by: vec![],
        };
        self.inner
            .db
            .insert(Table::Projects, "", &req.name, &project)?;
        let profile = api::Profile {
            put: api::ProfilePut {
                description: format!("Default Incus profile for project {}", req.name),
                ..Default::default()
            },
            name: "default".into(),
            used_by: vec![],
            project: req.name.clone(),
        };
        self.inner
            .db
            .insert(Table::Profiles, &req.name, "default", &profile)?;
        self.inner.events.lifecycle(
            "project-created",
            &format!("/1.0/projects/{}", req.name),
            &req.name,
            None,
        );
        Ok(())
    }

    /// Replaces a project's writable fields. `features.*` can only change while the project
    /// holds no instances, images or profiles besides its `default` one (as in Incus), and
    /// never on the `default` project.
    pub fn update_project(&self, name: &str, put: api::ProjectPut) -> Result<()> {
        let mut p = self.get_project(name)?;
        validate_project_config(&put.config)?;
        let features = |c: &api::ConfigMap| -> Vec<(String, String)> {
            c.iter()
                .filter(|(k, _)| k.starts_with("features."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        if features(&p.put.config) != features(&put.config) {
            if name == DEFAULT_PROJECT {
                return Err(Error::invalid(
                    "The features of the default project cannot be changed",
                ));
            }
            if !self.project_is_empty(name)? {
                return Err(Error::invalid(
                    "Features can only be changed on empty projects",
                ));
            }
        }
        p.put = put;
        self.inner.db.update(Table::Projects, "", name, &p)?;
        self.inner.events.lifecycle(
            "project-updated",
            &format!("/1.0/projects/{name}"),
            name,
            None,
        );
        Ok(())
    }

    /// Deletes an empty project.
    pub fn delete_project(&self, name: &str) -> Result<()> {
        if name == DEFAULT_PROJECT {
            return Err(Error::invalid("The default project cannot be deleted"));
        }
        self.get_project(name)?;
        if !self.project_is_empty(name)? {
            return Err(Error::busy(format!("Project {name:?} is not empty")));
        }
        self.inner.db.delete(Table::Profiles, name, "default")?;
        self.inner.db.delete(Table::Projects, "", name)?;
        self.inner.events.lifecycle(
            "project-deleted",
            &format!("/1.0/projects/{name}"),
            name,
            None,
        );
        Ok(())
    }

    /// Whether a project holds nothing but its own `default` profile.
    fn project_is_empty(&self, name: &str) -> Result<bool> {
        let db = &self.inner.db;
        Ok(db
            .list::<api::Instance>(Table::Instances, Some(name))?
            .is_empty()
            && db.list::<api::Image>(Table::Images, Some(name))?.is_empty()
            && db.list::<api::Profile>(Table::Profiles, Some(name))?.len() <= 1
            && self.project_volume_count(name)? == 0)
    }

    /// Renames an empty project (as Incus, which refuses to rename one in use). Checked at
    /// once; the rename itself is an operation, as in Incus.
    pub fn rename_project(&self, name: &str, new_name: &str) -> Result<Operation> {
        self.check_project_rename(name, new_name)?;
        let host = self.clone();
        let (name, new_name) = (name.to_string(), new_name.to_string());
        let resources = [(
            "projects".to_string(),
            vec![format!("/1.0/projects/{name}")],
        )]
        .into_iter()
        .collect();
        Ok(self.inner.ops.spawn(
            DEFAULT_PROJECT,
            "Renaming project",
            resources,
            false,
            move |_| async move {
                host.rename_project_now(&name, &new_name)?;
                Ok(None)
            },
        ))
    }

    fn check_project_rename(&self, name: &str, new_name: &str) -> Result<()> {
        if name == DEFAULT_PROJECT {
            return Err(Error::invalid("The default project cannot be renamed"));
        }
        crate::config::validate_entity_name("project", new_name)?;
        if new_name.contains('_') || new_name.contains(' ') {
            return Err(Error::invalid(format!(
                "Invalid project name {new_name:?}: no spaces or underscores"
            )));
        }
        self.get_project(name)?;
        if self.get_project(new_name).is_ok() {
            return Err(Error::already_exists(format!(
                "Project {new_name:?} already exists"
            )));
        }
        if !self.project_is_empty(name)? {
            return Err(Error::busy(format!(
                "Only empty projects can be renamed ({name:?} is not)"
            )));
        }
        Ok(())
    }

    fn rename_project_now(&self, name: &str, new_name: &str) -> Result<()> {
        self.check_project_rename(name, new_name)?;
        let mut p = self.get_project(name)?;
        p.name = new_name.to_string();
        self.inner.db.insert(Table::Projects, "", new_name, &p)?;
        if let Some(mut prof) =
            self.inner
                .db
                .get::<api::Profile>(Table::Profiles, name, "default")?
        {
            prof.project = new_name.to_string();
            self.inner
                .db
                .insert(Table::Profiles, new_name, "default", &prof)?;
            self.inner.db.delete(Table::Profiles, name, "default")?;
        }
        self.inner.db.delete(Table::Projects, "", name)?;
        self.inner.events.lifecycle(
            "project-renamed",
            &format!("/1.0/projects/{new_name}"),
            new_name,
            None,
        );
        Ok(())
    }

    // ---- profiles ----

    /// Renames a profile and every instance's reference to it (not `default`).
    pub fn rename_profile(&self, project: &str, name: &str, new_name: &str) -> Result<()> {
        let project = &self.feature_project(project, "features.profiles");
        if name == "default" {
            return Err(Error::invalid("The default profile cannot be renamed"));
        }
        crate::config::validate_entity_name("profile", new_name)?;
        let mut p = self.get_profile(project, name)?;
        if self.get_profile(project, new_name).is_ok() {
            return Err(Error::already_exists(format!(
                "Profile {new_name:?} already exists"
            )));
        }
        self.inner
            .db
            .rename(Table::Profiles, project, name, new_name)?;
        p.name = new_name.to_string();
        p.used_by.clear();
        self.inner
            .db
            .update(Table::Profiles, project, new_name, &p)?;
        for (_, mut inst) in self
            .inner
            .db
            .list::<api::Instance>(Table::Instances, None)?
        {
            let ip = if inst.project.is_empty() {
                DEFAULT_PROJECT.to_string()
            } else {
                inst.project.clone()
            };
            if self.feature_project(&ip, "features.profiles") != *project
                || !inst.put.profiles.iter().any(|n| n == name)
            {
                continue;
            }
            for n in inst.put.profiles.iter_mut() {
                if n == name {
                    *n = new_name.to_string();
                }
            }
            self.inner
                .db
                .update(Table::Instances, &ip, &inst.name.clone(), &inst)?;
        }
        self.inner.events.lifecycle(
            "profile-renamed",
            &format!("/1.0/profiles/{new_name}"),
            project,
            None,
        );
        Ok(())
    }

    /// All profiles of a project, with `used_by` (two queries whatever the numbers).
    pub fn list_profiles(&self, project: &str) -> Result<Vec<api::Profile>> {
        self.get_project(project)?;
        let project = &self.feature_project(project, "features.profiles");
        // Instances of projects without their own profiles use these too (one project
        // lookup per project, not per instance).
        let mut uses: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        let instances: Vec<(String, api::Instance)> = self
            .inner
            .db
            .list::<api::Instance>(Table::Instances, None)?
            .into_iter()
            .filter(|(_, i)| {
                let ip = if i.project.is_empty() {
                    DEFAULT_PROJECT
                } else {
                    &i.project
                };
                *uses
                    .entry(ip.to_string())
                    .or_insert_with(|| self.feature_project(ip, "features.profiles") == *project)
            })
            .collect();
        let mut profiles: Vec<api::Profile> = self
            .inner
            .db
            .list::<api::Profile>(Table::Profiles, Some(project))?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        for p in &mut profiles {
            p.used_by = instances
                .iter()
                .filter(|(_, i)| i.put.profiles.contains(&p.name))
                .map(|(_, i)| instance_url(&i.project, &i.name))
                .collect();
        }
        Ok(profiles)
    }

    /// One profile.
    pub fn get_profile(&self, project: &str, name: &str) -> Result<api::Profile> {
        let project = &self.feature_project(project, "features.profiles");
        self.list_profiles(project)?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::not_found(format!("Profile {name:?} not found")))
    }

    /// Creates a profile.
    pub fn create_profile(&self, project: &str, req: api::ProfilesPost) -> Result<()> {
        let project = &self.feature_project(project, "features.profiles");
        self.get_project(project)?;
        crate::config::validate_entity_name("profile", &req.name)?;
        crate::config::validate_instance_config(&req.put.config, false)?;
        crate::config::validate_devices(&req.put.devices, false)?;
        self.check_pools(project, &req.put.devices)?;
        let p = api::Profile {
            put: req.put,
            name: req.name.clone(),
            used_by: vec![],
            project: project.into(),
        };
        self.inner
            .db
            .insert(Table::Profiles, project, &req.name, &p)?;
        self.inner.events.lifecycle(
            "profile-created",
            &format!("/1.0/profiles/{}", req.name),
            project,
            None,
        );
        Ok(())
    }

    /// Replaces a profile's writable fields. Instances using it see the change in their
    /// expanded config; running ones apply it at their next start.
    pub fn update_profile(&self, project: &str, name: &str, put: api::ProfilePut) -> Result<()> {
        let project = &self.feature_project(project, "features.profiles");
        let mut p = self.get_profile(project, name)?;
        crate::config::validate_instance_config(&put.config, false)?;
        crate::config::validate_devices(&put.devices, false)?;
        self.check_pools(project, &put.devices)?;
        p.put = put;
        p.used_by.clear();
        self.inner.db.update(Table::Profiles, project, name, &p)?;
        self.inner.events.lifecycle(
            "profile-updated",
            &format!("/1.0/profiles/{name}"),
            project,
            None,
        );
        Ok(())
    }

    /// Deletes an unused profile.
    pub fn delete_profile(&self, project: &str, name: &str) -> Result<()> {
        let project = &self.feature_project(project, "features.profiles");
        let p = self.get_profile(project, name)?;
        if name == "default" {
            return Err(Error::invalid("The default profile cannot be deleted"));
        }
        if !p.used_by.is_empty() {
            return Err(Error::busy(format!("Profile {name:?} is currently in use")));
        }
        self.inner.db.delete(Table::Profiles, project, name)?;
        self.inner.events.lifecycle(
            "profile-deleted",
            &format!("/1.0/profiles/{name}"),
            project,
            None,
        );
        Ok(())
    }

    /// Checks that the pools and custom volumes named by disk devices exist.
    fn check_pools(&self, project: &str, devices: &api::DevicesMap) -> Result<()> {
        for d in devices.values() {
            if let Some(pool) = d.get("pool") {
                self.get_storage_pool(pool)?;
            }
        }
        self.check_custom_volumes(project, devices)
    }

    // ---- storage pools ----

    /// All storage pools.
    pub fn list_storage_pools(&self) -> Result<Vec<api::StoragePool>> {
        let instances = self
            .inner
            .db
            .list::<api::Instance>(Table::Instances, None)?;
        let profiles = self.inner.db.list::<api::Profile>(Table::Profiles, None)?;
        let mut pools: Vec<api::StoragePool> = self
            .inner
            .db
            .list::<api::StoragePool>(Table::StoragePools, Some(""))?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let mut volumes = self.volume_urls_by_pool()?;
        for pool in &mut pools {
            let uses = |d: &api::DevicesMap| d.values().any(|d| d.get("pool") == Some(&pool.name));
            pool.used_by = profiles
                .iter()
                .filter(|(_, p)| uses(&p.put.devices))
                .map(|(proj, p)| with_project(&format!("/1.0/profiles/{}", p.name), proj))
                .chain(
                    instances
                        .iter()
                        .filter(|(_, i)| instances::instance_pool(i) == pool.name)
                        .map(|(proj, i)| instance_url(proj, &i.name)),
                )
                .chain(volumes.remove(&pool.name).unwrap_or_default())
                .collect();
            pool.status = "Created".into();
            pool.locations = vec!["none".into()];
        }
        Ok(pools)
    }

    /// One storage pool.
    pub fn get_storage_pool(&self, name: &str) -> Result<api::StoragePool> {
        self.list_storage_pools()?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::not_found(format!("Storage pool {name:?} not found")))
    }

    /// Replaces a pool's writable fields (description and driver keys). `source` cannot
    /// change once the pool exists; the driver validates the rest (the dir driver refuses
    /// `size`, which it cannot enforce).
    pub fn update_storage_pool(&self, name: &str, put: api::StoragePoolPut) -> Result<()> {
        let mut pool = self.get_storage_pool(name)?;
        if pool.put.config.get("source") != put.config.get("source") {
            return Err(Error::invalid(
                "The source of an existing storage pool cannot be changed",
            ));
        }
        let spec = StoragePoolSpec {
            name: name.to_string(),
            config: put.config.clone(),
            mount_root: self.inner.dir.join("storage-pools").join(name),
        };
        let driver = self.inner.registry.storage(&pool.driver, spec)?;
        driver.validate_pool_config(&put.config)?;
        pool.put = put;
        pool.used_by.clear();
        self.inner.db.update(Table::StoragePools, "", name, &pool)?;
        if let Ok(mut m) = self.inner.pools.lock() {
            m.insert(name.to_string(), driver);
        }
        self.inner.events.lifecycle(
            "storage-pool-updated",
            &format!("/1.0/storage-pools/{name}"),
            "",
            None,
        );
        Ok(())
    }

    /// Creates a storage pool with a registered driver.
    pub async fn create_storage_pool(&self, req: api::StoragePoolsPost) -> Result<()> {
        crate::config::validate_entity_name("storage pool", &req.name)?;
        if self
            .inner
            .db
            .get::<api::StoragePool>(Table::StoragePools, "", &req.name)?
            .is_some()
        {
            return Err(Error::already_exists(format!(
                "Storage pool {:?} already exists",
                req.name
            )));
        }
        let spec = StoragePoolSpec {
            name: req.name.clone(),
            config: req.put.config.clone(),
            mount_root: self.inner.dir.join("storage-pools").join(&req.name),
        };
        let driver = self.inner.registry.storage(&req.driver, spec)?;
        driver.create_pool().await?;
        let pool = api::StoragePool {
            put: req.put,
            name: req.name.clone(),
            driver: req.driver,
            ..Default::default()
        };
        if let Err(e) = self
            .inner
            .db
            .insert(Table::StoragePools, "", &req.name, &pool)
        {
            let _ = driver.delete_pool().await;
            return Err(e);
        }
        if let Ok(mut m) = self.inner.pools.lock() {
            m.insert(req.name.clone(), driver);
        }
        self.inner.events.lifecycle(
            "storage-pool-created",
            &format!("/1.0/storage-pools/{}", req.name),
            "",
            None,
        );
        Ok(())
    }

    /// Deletes an unused storage pool and its storage.
    pub async fn delete_storage_pool(&self, name: &str) -> Result<()> {
        let pool = self.get_storage_pool(name)?;
        if !pool.used_by.is_empty() {
            return Err(Error::busy(format!(
                "Storage pool {name:?} is currently in use"
            )));
        }
        let driver = self.pool_driver(name)?;
        // Cached image volumes are not users: remove them with the pool.
        driver.delete_pool().await?;
        self.inner.db.delete(Table::StoragePools, "", name)?;
        if let Ok(mut m) = self.inner.pools.lock() {
            m.remove(name);
        }
        self.inner.events.lifecycle(
            "storage-pool-deleted",
            &format!("/1.0/storage-pools/{name}"),
            "",
            None,
        );
        Ok(())
    }

    pub(crate) fn pool_driver(&self, name: &str) -> Result<Arc<dyn StorageDriver>> {
        if let Some(d) = self
            .inner
            .pools
            .lock()
            .ok()
            .and_then(|m| m.get(name).cloned())
        {
            return Ok(d);
        }
        let pool: api::StoragePool = self
            .inner
            .db
            .get(Table::StoragePools, "", name)?
            .ok_or_else(|| Error::not_found(format!("Storage pool {name:?} not found")))?;
        let spec = StoragePoolSpec {
            name: name.into(),
            config: pool.put.config.clone(),
            mount_root: self.inner.dir.join("storage-pools").join(name),
        };
        let d = self.inner.registry.storage(&pool.driver, spec)?;
        if let Ok(mut m) = self.inner.pools.lock() {
            m.insert(name.into(), d.clone());
        }
        Ok(d)
    }
}

/// `/1.0/instances/<name>` with `?project=` outside the default project.
pub(crate) fn instance_url(project: &str, name: &str) -> String {
    with_project(&format!("/1.0/instances/{name}"), project)
}

pub(crate) fn with_project(url: &str, project: &str) -> String {
    if project == DEFAULT_PROJECT || project.is_empty() {
        url.to_string()
    } else {
        format!("{url}?project={project}")
    }
}

fn short_hash(s: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(s.as_bytes())[..4])
}

/// Project keys this engine implements: the `features.*` switches (`true`/`false`) and
/// `user.*`. Limits and restrictions are refused rather than ignored.
fn validate_project_config(config: &api::ConfigMap) -> Result<()> {
    const FEATURES: [&str; 6] = [
        "features.images",
        "features.profiles",
        "features.storage.volumes",
        "features.storage.buckets",
        "features.networks",
        "features.networks.zones",
    ];
    for (k, v) in config {
        if FEATURES.contains(&k.as_str()) {
            if v != "true" && v != "false" {
                return Err(Error::invalid(format!(
                    "Invalid value for {k}: {v:?} (true or false)"
                )));
            }
        } else if !k.starts_with("user.") {
            return Err(Error::invalid(format!(
                "Unknown project configuration key: {k}"
            )));
        }
    }
    Ok(())
}
