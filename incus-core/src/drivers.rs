//! The driver traits: [`StorageDriver`], [`NetworkDriver`] and [`InstanceDriver`], their
//! capability records, and [`DriverRegistry`], the one factory from a `driver` name to a
//! trait object.
//!
//! The engine never depends on the driver crates: whoever builds a `Host` registers the
//! drivers it wants (`incus_storage::register_all` for the storage drivers). Optional
//! operations have a default body that returns a clear `Unsupported` error.

use crate::api::{ConfigMap, DevicesMap};
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

/// The kind of content a storage volume holds, named as Incus names the pool sub-directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VolumeType {
    /// A container's root filesystem (`containers/`).
    Container,
    /// A virtual machine's disk (`virtual-machines/`).
    VirtualMachine,
    /// An unpacked image kept to create instances from (`images/`).
    Image,
    /// A user-created volume (`custom/`).
    Custom,
}

impl VolumeType {
    /// The directory name of this type inside a pool (`containers`, `images`, ...).
    pub fn dir_name(self) -> &'static str {
        match self {
            VolumeType::Container => "containers",
            VolumeType::VirtualMachine => "virtual-machines",
            VolumeType::Image => "images",
            VolumeType::Custom => "custom",
        }
    }

    /// The API name of this type (`container`, `image`, ...).
    pub fn api_name(self) -> &'static str {
        match self {
            VolumeType::Container => "container",
            VolumeType::VirtualMachine => "virtual-machine",
            VolumeType::Image => "image",
            VolumeType::Custom => "custom",
        }
    }
}

/// A volume as a driver sees it: its type and its storage name (for instances in projects
/// other than `default`, `<project>_<name>`, as Incus lays them out).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Volume {
    /// What the volume holds.
    pub kind: VolumeType,
    /// Storage name.
    pub name: String,
}

impl Volume {
    /// A new volume reference.
    pub fn new(kind: VolumeType, name: impl Into<String>) -> Self {
        Volume {
            kind,
            name: name.into(),
        }
    }
}

/// A uid/gid shift applied while copying a tree: host id = id + `base` for ids below `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdShift {
    /// First host uid and gid of the range.
    pub base: u32,
    /// Number of ids in the range.
    pub size: u32,
}

impl IdShift {
    /// The host id of container id `id`, or `None` when it falls outside the range.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        (id < self.size).then(|| self.base + id)
    }

    /// The container id of host id `id`, or `None` when it falls outside the range.
    pub fn to_container(&self, id: u32) -> Option<u32> {
        (id >= self.base && id - self.base < self.size).then(|| id - self.base)
    }
}

/// What a storage driver can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageDriverInfo {
    /// Driver name (`dir`).
    pub name: &'static str,
    /// Version of the backend tools or kernel feature.
    pub version: String,
    /// Whether the storage is shared between hosts.
    pub remote: bool,
    /// Whether image volumes are cloned cheaply (copy-on-write).
    pub optimized_images: bool,
    /// Whether `size` quotas can be enforced on this host.
    pub quotas: bool,
    /// Volume types supported.
    pub volume_types: Vec<VolumeType>,
}

/// What a storage driver is built from.
#[derive(Debug, Clone)]
pub struct StoragePoolSpec {
    /// Pool name.
    pub name: String,
    /// Pool config (`source`, `size`, ...).
    pub config: ConfigMap,
    /// Where the pool's volumes are mounted: `$INCUS_DIR/storage-pools/<name>`.
    pub mount_root: PathBuf,
}

/// A storage backend: pools, volumes and snapshots on one kind of storage.
///
/// Contract for every method: volumes are addressed by [`Volume`]; the pool backend in the
/// engine owns database rows, refcounts and the image cache, the driver only touches storage.
/// Calls for one volume are serialised by the engine; calls for different volumes may run
/// concurrently.
#[async_trait]
pub trait StorageDriver: Send + Sync {
    /// The capability record.
    fn info(&self) -> StorageDriverInfo;

    /// Checks pool config keys and values; unknown keys are refused.
    fn validate_pool_config(&self, config: &ConfigMap) -> Result<()>;

    /// Creates the pool's storage. Idempotent on an existing empty pool.
    async fn create_pool(&self) -> Result<()>;

    /// Removes the pool's storage. The engine refuses this while volumes exist.
    async fn delete_pool(&self) -> Result<()>;

    /// Makes the pool usable (mounts it). Idempotent.
    async fn mount_pool(&self) -> Result<()>;

    /// Where the volume's filesystem is reachable on the host.
    fn volume_path(&self, vol: &Volume) -> PathBuf;

    /// Where a snapshot's filesystem is (or, for drivers that mount snapshots on demand,
    /// will be) reachable on the host; read it between [`StorageDriver::mount_snapshot`] and
    /// [`StorageDriver::unmount_snapshot`].
    fn snapshot_path(&self, vol: &Volume, snapshot: &str) -> PathBuf;

    /// Whether the volume exists.
    async fn has_volume(&self, vol: &Volume) -> Result<bool>;

    /// Creates an empty filesystem volume. Fails with `AlreadyExists` if present.
    async fn create_volume(&self, vol: &Volume) -> Result<()>;

    /// Creates `vol` as a copy of `src` (typically an image volume), shifting ownership by
    /// `shift` while copying when given. Ownership, modes, symlinks, hard links, device
    /// nodes and times are kept. On failure nothing of `vol` is left behind.
    async fn create_volume_from_copy(
        &self,
        vol: &Volume,
        src: &Volume,
        shift: Option<IdShift>,
    ) -> Result<()>;

    /// Removes a volume and its snapshots. Missing volumes are not an error.
    async fn delete_volume(&self, vol: &Volume) -> Result<()>;

    /// Renames a volume and its snapshots. Fails with `AlreadyExists` if the target exists.
    async fn rename_volume(&self, vol: &Volume, new_name: &str) -> Result<()>;

    /// Completes a [`rename_volume`](Self::rename_volume) of `vol` to `new_name` that a
    /// killed process may have left part-way: whatever is still under the old name moves.
    /// Nothing left to move is not an error. The default renames the volume if it still
    /// exists under the old name (right for drivers whose rename is one step); drivers that
    /// rename in several steps complete each one.
    async fn finish_rename(&self, vol: &Volume, new_name: &str) -> Result<()> {
        if self.has_volume(vol).await? {
            self.rename_volume(vol, new_name).await?;
        }
        Ok(())
    }

    /// Takes a snapshot `snapshot` of the volume.
    async fn create_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()>;

    /// Removes a snapshot. Missing snapshots are not an error.
    async fn delete_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()>;

    /// Renames a snapshot.
    async fn rename_snapshot(&self, vol: &Volume, snapshot: &str, new_name: &str) -> Result<()>;

    /// Creates `vol` as a full, independent copy of `src` with the given snapshots of `src`
    /// (oldest first, kept under the same names), as `incus copy` does within one pool.
    /// Ownership is kept as it is. On failure the caller deletes `vol`.
    async fn copy_volume(&self, vol: &Volume, src: &Volume, snapshots: &[String]) -> Result<()>;

    /// Makes a snapshot's content readable on the host and returns where. Drivers whose
    /// snapshots are always reachable (dir, btrfs) return [`StorageDriver::snapshot_path`];
    /// others (zfs) mount it there. Pair every call with
    /// [`StorageDriver::unmount_snapshot`].
    async fn mount_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<PathBuf> {
        let p = self.snapshot_path(vol, snapshot);
        if !p.is_dir() {
            return Err(Error::not_found(format!(
                "Snapshot {snapshot:?} of volume {:?} not found",
                vol.name
            )));
        }
        Ok(p)
    }

    /// Releases what [`StorageDriver::mount_snapshot`] set up. Idempotent.
    async fn unmount_snapshot(&self, _vol: &Volume, _snapshot: &str) -> Result<()> {
        Ok(())
    }

    /// Replaces the volume's content with the snapshot's. The instance must be stopped.
    async fn restore_snapshot(&self, vol: &Volume, snapshot: &str) -> Result<()>;

    /// Bytes used by the volume (without snapshots).
    async fn volume_usage(&self, vol: &Volume) -> Result<u64>;

    /// Sets a size limit. Drivers that cannot enforce one refuse instead of ignoring it.
    async fn set_volume_quota(&self, _vol: &Volume, _bytes: u64) -> Result<()> {
        Err(Error::unsupported(format!(
            "Storage driver {:?} cannot enforce size limits on this host",
            self.info().name
        )))
    }
}

/// What a network driver can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDriverInfo {
    /// Driver name (`bridge`, `macvlan`, `ovn`).
    pub name: &'static str,
    /// Whether the network is managed by the engine.
    pub managed: bool,
}

/// What a network driver is built from.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    /// Network name.
    pub name: String,
    /// Network config.
    pub config: ConfigMap,
    /// `$INCUS_DIR/networks/<name>`, for the driver's files (dnsmasq leases and config).
    pub state_dir: PathBuf,
}

/// An instance nic a network hands out addresses to: what DHCP and DNS need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicRegistration {
    /// A key unique to the nic (`<project>_<instance>.<device>`), naming its DHCP host entry.
    pub key: String,
    /// The name the instance is known by in DNS.
    pub hostname: String,
    /// The nic's MAC address.
    pub hwaddr: String,
    /// A static IPv4 address (`ipv4.address` on the nic), if any.
    pub ipv4: Option<String>,
}

/// A network backend (`bridge`, `macvlan`, ...), built from a [`NetworkSpec`].
///
/// The engine calls [`NetworkDriver::fill_defaults`] once when the network is created (so
/// `auto` values become concrete and are stored), then [`NetworkDriver::create`] and
/// [`NetworkDriver::start`]; both are idempotent and run again at every daemon start and
/// after each config change.
#[async_trait]
pub trait NetworkDriver: Send + Sync {
    /// The capability record.
    fn info(&self) -> NetworkDriverInfo;

    /// Checks config keys and values; unknown keys are refused.
    fn validate_config(&self, config: &ConfigMap) -> Result<()>;

    /// Replaces `auto` values and fills defaults in a new network's config.
    async fn fill_defaults(&self, _config: &mut ConfigMap) -> Result<()> {
        Ok(())
    }

    /// The host interface instances attach to (`parent` of their nics).
    fn interface(&self) -> String;

    /// What a nic with `network=<this network>` becomes: its `nictype` (`bridged` unless the
    /// driver says otherwise) and defaults for its other keys (a nic's own values win).
    fn nic_settings(&self) -> ConfigMap {
        [("nictype".to_string(), "bridged".to_string())].into()
    }

    /// Creates the network's host objects (bridge, firewall rules). Idempotent.
    async fn create(&self) -> Result<()>;

    /// Starts the network's services (DHCP/DNS). Idempotent.
    async fn start(&self) -> Result<()>;

    /// Stops the network's services, keeping its definition.
    async fn stop(&self) -> Result<()>;

    /// Removes every host object the network created.
    async fn delete(&self) -> Result<()>;

    /// Tells DHCP and DNS about an instance nic (its name, MAC, static address).
    async fn register_nic(&self, _nic: &NicRegistration) -> Result<()> {
        Ok(())
    }

    /// Forgets a nic registered with [`NetworkDriver::register_nic`] (by its key).
    async fn unregister_nic(&self, _key: &str) -> Result<()> {
        Ok(())
    }

    /// The DHCP leases the network handed out.
    fn leases(&self) -> Result<Vec<crate::api::NetworkLease>> {
        Ok(Vec::new())
    }
}

/// One instance nic to hot-plug into a running instance: what its host side needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotNic {
    /// `bridged`, `macvlan` or `p2p`.
    pub nictype: String,
    /// The bridge (`bridged`) or parent interface (`macvlan`); empty for `p2p`.
    pub parent: String,
    /// The host end of a veth (`host_name`); a random `veth…` name when empty.
    pub host_name: String,
    /// The interface name inside the instance.
    pub name: String,
    /// The MAC address inside the instance.
    pub hwaddr: String,
    /// MTU, when set.
    pub mtu: Option<u32>,
}

/// Creates and removes instance nics of running instances (hot-plug), in the network
/// namespace of the instance's init. `incus-network` provides the netlink implementation;
/// without one, nic changes wait for the next start.
#[async_trait]
pub trait NicPlumbing: Send + Sync {
    /// Creates `nic` (veth pair or macvlan) and moves its instance end into the network
    /// namespace of process `pid`, named `nic.name`. Like Incus, the interface arrives down:
    /// the instance's own network configuration brings it up.
    async fn plug(&self, pid: i32, nic: &HotNic) -> Result<()>;

    /// Deletes interface `name` inside the network namespace of process `pid` (a veth's host
    /// end goes with it). Nothing to do when it does not exist.
    async fn unplug(&self, pid: i32, name: &str) -> Result<()>;
}

/// What an instance driver can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDriverInfo {
    /// Driver name (`lxc`, `qemu`).
    pub name: &'static str,
    /// Version of the runtime.
    pub version: String,
    /// `container` or `virtual-machine`.
    pub instance_type: &'static str,
}

/// Everything an instance driver needs to run one instance.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Instance name.
    pub name: String,
    /// Project.
    pub project: String,
    /// Unique runtime name (`<project>_<name>` outside the default project).
    pub runtime_name: String,
    /// Root filesystem on the host.
    pub rootfs: PathBuf,
    /// Config after profile expansion.
    pub config: ConfigMap,
    /// Devices after profile expansion.
    pub devices: DevicesMap,
    /// Id map for unprivileged instances (`None` when privileged).
    pub idmap: Option<IdShift>,
    /// Directory for the instance's logs (`$INCUS_DIR/logs/<runtime name>`).
    pub log_dir: PathBuf,
}

/// The runtime state of an instance as the driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// Not running.
    Stopped,
    /// Running with init at this host pid.
    Running(i32),
    /// Frozen with init at this host pid.
    Frozen(i32),
}

/// How an exec'd command's standard streams are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecStdio {
    /// Three separate pipes.
    Pipes,
    /// One pseudo-terminal of this size (columns, rows).
    Pty(u16, u16),
}

/// A command to run inside an instance.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Complete environment of the command.
    pub environment: ConfigMap,
    /// Working directory inside the instance.
    pub cwd: String,
    /// User id inside the instance.
    pub uid: u32,
    /// Group id inside the instance.
    pub gid: u32,
    /// Stream set-up.
    pub stdio: ExecStdio,
}

/// A boxed async reader.
pub type BoxReader = Pin<Box<dyn tokio::io::AsyncRead + Send>>;
/// A boxed async writer.
pub type BoxWriter = Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// Feeds `input` to a command's standard input (then closes it) while reading its standard
/// output and error to their ends; returns both outputs. Streams that are `None` are skipped.
pub async fn feed_and_collect(
    stdin: Option<BoxWriter>,
    input: Vec<u8>,
    stdout: Option<BoxReader>,
    stderr: Option<BoxReader>,
) -> (Vec<u8>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let feed = async move {
        if let Some(mut w) = stdin {
            if !input.is_empty() {
                let _ = w.write_all(&input).await;
            }
            let _ = w.shutdown().await;
        }
    };
    let read = |r: Option<BoxReader>| async move {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf).await;
        }
        buf
    };
    let ((), out, err) = tokio::join!(feed, read(stdout), read(stderr));
    (out, err)
}

/// Controls a running exec'd command.
#[async_trait]
pub trait ExecControl: Send + Sync {
    /// Sends a signal to the command.
    fn signal(&self, signal: i32) -> Result<()>;
    /// Resizes the command's terminal (pty mode only).
    fn resize(&self, cols: u16, rows: u16) -> Result<()>;
    /// Waits for the command to end; returns its exit status (128 + signal when killed).
    async fn wait(&mut self) -> Result<i32>;
}

/// A running command: its streams and its control handle. In pty mode `stdout` carries the
/// terminal output, `stdin` the input, and `stderr` is `None`.
pub struct ExecProcess {
    /// Standard input.
    pub stdin: Option<BoxWriter>,
    /// Standard output (or the terminal).
    pub stdout: Option<BoxReader>,
    /// Standard error (pipes mode).
    pub stderr: Option<BoxReader>,
    /// Signals, resize and wait.
    pub control: Box<dyn ExecControl>,
}

/// Resizes an attached console's terminal.
pub trait ConsoleControl: Send + Sync {
    /// Sets the terminal size (columns, rows).
    fn resize(&self, cols: u16, rows: u16) -> Result<()>;
}

/// An attached instance console. The console stays allocated to this holder until the whole
/// value is dropped; `output` then reaches its end.
pub struct ConsoleAttach {
    /// Keyboard input to the console.
    pub input: BoxWriter,
    /// What the instance writes on its console.
    pub output: BoxReader,
    /// Window size, and the console's allocation.
    pub control: Box<dyn ConsoleControl>,
}

/// An instance runtime: starts, stops and enters instances.
///
/// Contract: every method is safe to call from a multi-threaded async runtime; drivers that
/// need a single-threaded process (liblxc) run their work in a helper process. A running
/// instance keeps running when the process that owns the driver exits.
#[async_trait]
pub trait InstanceDriver: Send + Sync {
    /// The capability record.
    fn info(&self) -> InstanceDriverInfo;

    /// Starts the instance and returns the host pid of its init.
    async fn start(&self, spec: &InstanceSpec) -> Result<i32>;

    /// Asks init to shut down and waits up to `timeout`; `Busy` if it did not stop in time.
    async fn shutdown(&self, spec: &InstanceSpec, timeout: std::time::Duration) -> Result<()>;

    /// Kills the instance. Idempotent on a stopped instance.
    async fn stop(&self, spec: &InstanceSpec) -> Result<()>;

    /// Freezes every process of the instance.
    async fn freeze(&self, spec: &InstanceSpec) -> Result<()>;

    /// Thaws a frozen instance.
    async fn unfreeze(&self, spec: &InstanceSpec) -> Result<()>;

    /// The current power state, cheaply (no helper process).
    async fn power_state(&self, spec: &InstanceSpec) -> Result<PowerState>;

    /// Runs a command inside the running instance.
    async fn exec(&self, spec: &InstanceSpec, req: ExecRequest) -> Result<ExecProcess>;

    /// Attaches to the running instance's console (one holder at a time).
    async fn console(&self, spec: &InstanceSpec) -> Result<ConsoleAttach> {
        Err(Error::invalid(format!(
            "The {} driver has no console for {:?}",
            self.info().name,
            spec.name
        )))
    }
}

/// Builds a storage driver for a pool.
pub type StorageFactory = fn(StoragePoolSpec) -> Result<Arc<dyn StorageDriver>>;
/// Builds a network driver for a network.
pub type NetworkFactory = fn(NetworkSpec) -> Result<Arc<dyn NetworkDriver>>;

/// The drivers available to a `Host`, by `driver` name.
#[derive(Default, Clone)]
pub struct DriverRegistry {
    storage: BTreeMap<&'static str, StorageFactory>,
    network: BTreeMap<&'static str, NetworkFactory>,
    nic_plumbing: Option<Arc<dyn NicPlumbing>>,
}

impl DriverRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        DriverRegistry::default()
    }

    /// Registers a storage driver under `name`.
    pub fn add_storage(&mut self, name: &'static str, factory: StorageFactory) -> &mut Self {
        self.storage.insert(name, factory);
        self
    }

    /// Registers a network driver under `name`.
    pub fn add_network(&mut self, name: &'static str, factory: NetworkFactory) -> &mut Self {
        self.network.insert(name, factory);
        self
    }

    /// Sets what hot-plugs nics into running instances.
    pub fn set_nic_plumbing(&mut self, plumbing: Arc<dyn NicPlumbing>) -> &mut Self {
        self.nic_plumbing = Some(plumbing);
        self
    }

    /// What hot-plugs nics, when registered.
    pub fn nic_plumbing(&self) -> Option<Arc<dyn NicPlumbing>> {
        self.nic_plumbing.clone()
    }

    /// Names of the registered storage drivers.
    pub fn storage_drivers(&self) -> Vec<&'static str> {
        self.storage.keys().copied().collect()
    }

    /// Builds the storage driver `driver` for a pool.
    pub fn storage(&self, driver: &str, spec: StoragePoolSpec) -> Result<Arc<dyn StorageDriver>> {
        let f = self
            .storage
            .get(driver)
            .ok_or_else(|| Error::invalid(format!("Unknown storage driver {driver:?}")))?;
        f(spec)
    }

    /// Builds the network driver `driver` for a network.
    pub fn network(&self, driver: &str, spec: NetworkSpec) -> Result<Arc<dyn NetworkDriver>> {
        let f = self
            .network
            .get(driver)
            .ok_or_else(|| Error::invalid(format!("Unknown network driver {driver:?}")))?;
        f(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_maps_both_ways() {
        let s = IdShift {
            base: 100000,
            size: 65536,
        };
        assert_eq!(s.to_host(0), Some(100000));
        assert_eq!(s.to_host(65535), Some(165535));
        assert_eq!(s.to_host(65536), None);
        assert_eq!(s.to_container(100005), Some(5));
        assert_eq!(s.to_container(99999), None);
        assert_eq!(s.to_container(165536), None);
    }

    #[test]
    fn unknown_driver_is_invalid_input() {
        let r = DriverRegistry::new();
        let spec = StoragePoolSpec {
            name: "p".into(),
            config: ConfigMap::new(),
            mount_root: PathBuf::from("/nonexistent"),
        };
        let e = r.storage("nope", spec).err().expect("no driver registered");
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidInput);
    }
}
