//! Instances, their state, snapshots, exec and sources.

use super::{ConfigMap, DevicesMap, Timestamp, zero_time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The writable part of an instance (`InstancePut`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[derive(Default)]
pub struct InstancePut {
    /// Architecture name (`x86_64`).
    pub architecture: String,
    /// Instance configuration.
    #[serde(deserialize_with = "super::null_default")]
    pub config: ConfigMap,
    /// Instance devices.
    #[serde(deserialize_with = "super::null_default")]
    pub devices: DevicesMap,
    /// Whether the instance is deleted when it stops.
    pub ephemeral: bool,
    /// Profiles applied, in order.
    #[serde(deserialize_with = "super::null_default")]
    pub profiles: Vec<String>,
    /// A snapshot to restore (PUT only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub restore: String,
    /// Whether the snapshot restore is stateful.
    pub stateful: bool,
    /// Description.
    pub description: String,
}

/// An instance (`Instance`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Instance {
    /// Writable fields.
    #[serde(flatten)]
    pub put: InstancePut,
    /// Creation time.
    pub created_at: Timestamp,
    /// Config after profile expansion.
    #[serde(deserialize_with = "super::null_default")]
    pub expanded_config: ConfigMap,
    /// Devices after profile expansion.
    #[serde(deserialize_with = "super::null_default")]
    pub expanded_devices: DevicesMap,
    /// Name.
    pub name: String,
    /// Status string (`Running`, `Stopped`, `Frozen`, `Error`).
    pub status: String,
    /// Status code.
    pub status_code: i32,
    /// Last start time.
    pub last_used_at: Timestamp,
    /// Cluster member (`none` when standalone).
    pub location: String,
    /// `container` or `virtual-machine`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Project name.
    pub project: String,
}

impl Default for Instance {
    fn default() -> Self {
        Instance {
            put: InstancePut::default(),
            created_at: zero_time(),
            expanded_config: ConfigMap::new(),
            expanded_devices: DevicesMap::new(),
            name: String::new(),
            status: String::new(),
            status_code: 0,
            last_used_at: zero_time(),
            location: "none".into(),
            kind: "container".into(),
            project: "default".into(),
        }
    }
}

/// An instance with its state, snapshots and backups (`InstanceFull`, `recursion=2`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceFull {
    /// The instance.
    #[serde(flatten)]
    pub instance: Instance,
    /// Backups.
    #[serde(deserialize_with = "super::null_default")]
    pub backups: Vec<InstanceBackup>,
    /// Live state.
    pub state: Option<InstanceState>,
    /// Snapshots.
    #[serde(deserialize_with = "super::null_default")]
    pub snapshots: Vec<InstanceSnapshot>,
}

/// Where a new instance comes from (`InstanceSource`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceSource {
    /// `image`, `none`, `migration` or `copy`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Remote server certificate.
    pub certificate: String,
    /// Image alias.
    pub alias: String,
    /// Image fingerprint (or a unique prefix).
    pub fingerprint: String,
    /// Image properties to match.
    #[serde(deserialize_with = "super::null_default")]
    pub properties: ConfigMap,
    /// Remote image server URL.
    pub server: String,
    /// Remote secret.
    pub secret: String,
    /// `incus`, `simplestreams` or `oci`.
    pub protocol: String,
    /// Base image for migrations.
    #[serde(rename = "base-image")]
    pub base_image: String,
    /// `pull` or `push`.
    pub mode: String,
    /// Remote operation URL.
    pub operation: String,
    /// Migration secrets.
    #[serde(deserialize_with = "super::null_default")]
    pub secrets: BTreeMap<String, String>,
    /// Source instance for `copy`.
    pub source: String,
    /// Live migration.
    pub live: bool,
    /// Copy without snapshots.
    pub instance_only: bool,
    /// Refresh an existing copy.
    pub refresh: bool,
    /// Skip newer snapshots on refresh.
    pub refresh_exclude_older: bool,
    /// Source project.
    pub project: String,
    /// Allow inconsistent copies.
    pub allow_inconsistent: bool,
}

/// Request to create an instance (`InstancesPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstancesPost {
    /// Writable fields.
    #[serde(flatten)]
    pub put: InstancePut,
    /// Instance name.
    pub name: String,
    /// Source of the root filesystem.
    pub source: InstanceSource,
    /// Cloud instance type (unsupported, must be empty).
    pub instance_type: String,
    /// `container` (default) or `virtual-machine`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Start the instance once created.
    pub start: bool,
}

/// Rename or move request (`InstancePost`). `Config`, `Devices` and `Profiles` are
/// capitalised on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstancePost {
    /// New name.
    pub name: String,
    /// Whether this is a migration.
    pub migration: bool,
    /// Live migration.
    pub live: bool,
    /// Refresh.
    pub refresh: bool,
    /// Without snapshots.
    pub instance_only: bool,
    /// Migration target.
    pub target: Option<serde_json::Value>,
    /// Target pool.
    pub pool: String,
    /// Target project.
    pub project: String,
    /// Allow inconsistent copies.
    pub allow_inconsistent: bool,
    /// Config override on move.
    #[serde(rename = "Config")]
    pub config: Option<ConfigMap>,
    /// Devices override on move.
    #[serde(rename = "Devices")]
    pub devices: Option<DevicesMap>,
    /// Profiles override on move.
    #[serde(rename = "Profiles")]
    pub profiles: Option<Vec<String>>,
}

/// State change request (`InstanceStatePut`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceStatePut {
    /// `start`, `stop`, `restart`, `freeze` or `unfreeze`.
    pub action: String,
    /// Seconds to wait for a graceful stop; -1 means the default (600 s in Incus).
    pub timeout: i64,
    /// Force the action (kill instead of a graceful stop).
    pub force: bool,
    /// Stateful stop/start.
    pub stateful: bool,
}

impl Default for InstanceStatePut {
    fn default() -> Self {
        InstanceStatePut {
            action: String::new(),
            timeout: -1,
            force: false,
            stateful: false,
        }
    }
}

/// Disk usage of one device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceStateDisk {
    /// Bytes used.
    pub usage: i64,
    /// Bytes available in total (0 when unlimited).
    pub total: i64,
}

/// Memory usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceStateMemory {
    /// Bytes in use.
    pub usage: i64,
    /// Peak bytes.
    pub usage_peak: i64,
    /// Limit in bytes (0 when unlimited).
    pub total: i64,
    /// Swap in use.
    pub swap_usage: i64,
    /// Peak swap.
    pub swap_usage_peak: i64,
}

/// CPU usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceStateCpu {
    /// Nanoseconds of CPU time used.
    pub usage: i64,
    /// Nanoseconds of CPU time allocated per second.
    pub allocated_time: i64,
}

/// One address of a network interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceStateNetworkAddress {
    /// `inet` or `inet6`.
    pub family: String,
    /// The address.
    pub address: String,
    /// Prefix length as a string.
    pub netmask: String,
    /// `global`, `link` or `local`.
    pub scope: String,
}

/// Network counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceStateNetworkCounters {
    /// Bytes received.
    pub bytes_received: i64,
    /// Bytes sent.
    pub bytes_sent: i64,
    /// Packets received.
    pub packets_received: i64,
    /// Packets sent.
    pub packets_sent: i64,
    /// Receive errors.
    pub errors_received: i64,
    /// Send errors.
    pub errors_sent: i64,
    /// Outbound drops.
    pub packets_dropped_outbound: i64,
    /// Inbound drops.
    pub packets_dropped_inbound: i64,
}

/// One network interface inside the instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceStateNetwork {
    /// Addresses.
    #[serde(deserialize_with = "super::null_default")]
    pub addresses: Vec<InstanceStateNetworkAddress>,
    /// Counters.
    pub counters: InstanceStateNetworkCounters,
    /// MAC address.
    pub hwaddr: String,
    /// Host-side interface name.
    pub host_name: String,
    /// MTU.
    pub mtu: i64,
    /// `up` or `down`.
    pub state: String,
    /// Interface type (`broadcast`, `loopback`, `point-to-point`).
    #[serde(rename = "type")]
    pub kind: String,
}

/// Guest OS information.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceStateOsInfo {
    /// OS name.
    pub os: String,
    /// OS version.
    pub os_version: String,
    /// Kernel version.
    pub kernel_version: String,
    /// Host name.
    pub hostname: String,
    /// FQDN.
    pub fqdn: String,
}

/// Live state of an instance (`InstanceState`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceState {
    /// Status string.
    pub status: String,
    /// Status code.
    pub status_code: i32,
    /// Disk usage per disk device.
    #[serde(deserialize_with = "super::null_default")]
    pub disk: BTreeMap<String, InstanceStateDisk>,
    /// Memory usage.
    pub memory: InstanceStateMemory,
    /// Network interfaces.
    pub network: Option<BTreeMap<String, InstanceStateNetwork>>,
    /// PID of init on the host (0 when stopped).
    pub pid: i64,
    /// Number of processes (-1 when stopped).
    pub processes: i64,
    /// CPU usage.
    pub cpu: InstanceStateCpu,
    /// Start time.
    pub started_at: Timestamp,
    /// Guest OS information (VMs with an agent).
    pub os_info: Option<InstanceStateOsInfo>,
}

impl Default for InstanceState {
    fn default() -> Self {
        InstanceState {
            status: String::new(),
            status_code: 0,
            disk: BTreeMap::new(),
            memory: InstanceStateMemory::default(),
            network: None,
            pid: 0,
            processes: 0,
            cpu: InstanceStateCpu::default(),
            started_at: zero_time(),
            os_info: None,
        }
    }
}

/// A snapshot of an instance (`InstanceSnapshot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceSnapshot {
    /// Expiry time.
    pub expires_at: Timestamp,
    /// Architecture.
    pub architecture: String,
    /// Config at snapshot time.
    #[serde(deserialize_with = "super::null_default")]
    pub config: ConfigMap,
    /// Creation time.
    pub created_at: Timestamp,
    /// Description.
    pub description: String,
    /// Devices at snapshot time.
    #[serde(deserialize_with = "super::null_default")]
    pub devices: DevicesMap,
    /// Ephemeral flag at snapshot time.
    pub ephemeral: bool,
    /// Expanded config.
    #[serde(deserialize_with = "super::null_default")]
    pub expanded_config: ConfigMap,
    /// Expanded devices.
    #[serde(deserialize_with = "super::null_default")]
    pub expanded_devices: DevicesMap,
    /// Last used time.
    pub last_used_at: Timestamp,
    /// Snapshot name (without the instance name).
    pub name: String,
    /// Profiles at snapshot time.
    #[serde(deserialize_with = "super::null_default")]
    pub profiles: Vec<String>,
    /// Whether the snapshot holds runtime state.
    pub stateful: bool,
    /// Size in bytes (-1 when unknown).
    pub size: i64,
}

impl Default for InstanceSnapshot {
    fn default() -> Self {
        InstanceSnapshot {
            expires_at: zero_time(),
            architecture: String::new(),
            config: ConfigMap::new(),
            created_at: zero_time(),
            description: String::new(),
            devices: DevicesMap::new(),
            ephemeral: false,
            expanded_config: ConfigMap::new(),
            expanded_devices: DevicesMap::new(),
            last_used_at: zero_time(),
            name: String::new(),
            profiles: Vec::new(),
            stateful: false,
            size: -1,
        }
    }
}

/// Snapshot creation request (`InstanceSnapshotsPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceSnapshotsPost {
    /// Snapshot name; generated (`snap0`, `snap1`, ...) when empty.
    pub name: String,
    /// Stateful snapshot (unsupported).
    pub stateful: bool,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
}

/// Snapshot rename request (`InstanceSnapshotPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceSnapshotPost {
    /// New name.
    pub name: String,
    /// Migration.
    pub migration: bool,
    /// Migration target.
    pub target: Option<serde_json::Value>,
    /// Live.
    pub live: bool,
}

/// Exec request (`InstanceExecPost`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[derive(Default)]
pub struct InstanceExecPost {
    /// Command and arguments.
    #[serde(deserialize_with = "super::null_default")]
    pub command: Vec<String>,
    /// Wait for the websockets before starting.
    #[serde(rename = "wait-for-websocket")]
    pub wait_for_websocket: bool,
    /// Allocate a pty.
    pub interactive: bool,
    /// Extra environment.
    #[serde(deserialize_with = "super::null_default")]
    pub environment: ConfigMap,
    /// Terminal width.
    pub width: i64,
    /// Terminal height.
    pub height: i64,
    /// Record stdout/stderr to log files.
    #[serde(rename = "record-output")]
    pub record_output: bool,
    /// User id (pylxd sends null).
    pub user: Option<u32>,
    /// Group id (pylxd sends null).
    pub group: Option<u32>,
    /// Working directory (pylxd sends null).
    pub cwd: Option<String>,
}

/// Console attach request (`InstanceConsolePost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceConsolePost {
    /// Terminal width.
    pub width: i64,
    /// Terminal height.
    pub height: i64,
    /// `console` (text console) or `vga` (virtual machines' screen); empty means `console`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Take the console over from another holder.
    pub force: bool,
}

/// Exec control message (`InstanceExecControl`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceExecControl {
    /// `window-resize` or `signal`.
    pub command: String,
    /// Arguments (`width`, `height`).
    #[serde(deserialize_with = "super::null_default")]
    pub args: BTreeMap<String, String>,
    /// Signal number.
    pub signal: i32,
}

/// An instance backup (`InstanceBackup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceBackup {
    /// Name (`backup0`, ...).
    pub name: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry (the zero time: none).
    pub expires_at: Timestamp,
    /// Without snapshots.
    pub instance_only: bool,
    /// Native storage format (always false here).
    pub optimized_storage: bool,
}

impl Default for InstanceBackup {
    fn default() -> Self {
        InstanceBackup {
            name: String::new(),
            created_at: super::zero_time(),
            expires_at: super::zero_time(),
            instance_only: false,
            optimized_storage: false,
        }
    }
}

/// Backup creation request (`InstanceBackupsPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceBackupsPost {
    /// Name; generated (`backup0`, ...) when empty.
    pub name: String,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Without snapshots.
    pub instance_only: bool,
    /// Native storage format (refused: only the portable layout is written).
    pub optimized_storage: bool,
    /// `gzip` (default), `none`, `xz` or `zstd`.
    pub compression_algorithm: String,
}
