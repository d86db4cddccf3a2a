//! Profiles, projects, networks and warnings.

use super::{ConfigMap, DevicesMap, Timestamp, zero_time};
use serde::{Deserialize, Serialize};

/// Writable profile fields (`ProfilePut`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfilePut {
    /// Config applied to instances.
    #[serde(deserialize_with = "super::null_default")]
    pub config: ConfigMap,
    /// Description.
    pub description: String,
    /// Devices applied to instances.
    #[serde(deserialize_with = "super::null_default")]
    pub devices: DevicesMap,
}

/// A profile (`Profile`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// Writable fields.
    #[serde(flatten)]
    pub put: ProfilePut,
    /// Name.
    pub name: String,
    /// URLs of instances using it.
    #[serde(deserialize_with = "super::null_default")]
    pub used_by: Vec<String>,
    /// Project.
    pub project: String,
}

/// Profile creation request (`ProfilesPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfilesPost {
    /// Writable fields.
    #[serde(flatten)]
    pub put: ProfilePut,
    /// Name.
    pub name: String,
}

/// Writable project fields (`ProjectPut`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectPut {
    /// Config (`features.*`, `limits.*`, `restricted.*`).
    #[serde(deserialize_with = "super::null_default")]
    pub config: ConfigMap,
    /// Description.
    pub description: String,
}

/// A project (`Project`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Project {
    /// Writable fields.
    #[serde(flatten)]
    pub put: ProjectPut,
    /// Name.
    pub name: String,
    /// URLs of what it contains.
    #[serde(deserialize_with = "super::null_default")]
    pub used_by: Vec<String>,
}

/// Project creation request (`ProjectsPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectsPost {
    /// Writable fields.
    #[serde(flatten)]
    pub put: ProjectPut,
    /// Name.
    pub name: String,
}

/// Writable network fields (`NetworkPut`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkPut {
    /// Config.
    #[serde(deserialize_with = "super::null_default")]
    pub config: ConfigMap,
    /// Description.
    pub description: String,
}

/// A network (`Network`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    /// Writable fields.
    #[serde(flatten)]
    pub put: NetworkPut,
    /// Name.
    pub name: String,
    /// `bridge`, `macvlan`, `ovn`, `physical`, `loopback`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// URLs of what uses it.
    #[serde(deserialize_with = "super::null_default")]
    pub used_by: Vec<String>,
    /// Whether the engine manages it.
    pub managed: bool,
    /// `Created`, `Pending`, `Errored`, `Unavailable`, `Unknown`.
    pub status: String,
    /// Cluster members.
    #[serde(deserialize_with = "super::null_default")]
    pub locations: Vec<String>,
    /// Project.
    pub project: String,
}

/// `POST /1.0/networks` (`NetworksPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworksPost {
    /// Writable fields.
    #[serde(flatten)]
    pub put: NetworkPut,
    /// Name.
    pub name: String,
    /// Driver (`bridge`, `macvlan`); empty means `bridge`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A DHCP lease of a managed network (`NetworkLease`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkLease {
    /// Host name.
    pub hostname: String,
    /// MAC address.
    pub hwaddr: String,
    /// IP address.
    pub address: String,
    /// `dynamic` or `static`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Cluster member.
    pub location: String,
    /// Project of the instance.
    pub project: String,
}

/// The live state of a network's host interface (`NetworkState`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkState {
    /// Addresses.
    #[serde(deserialize_with = "super::null_default")]
    pub addresses: Vec<super::InstanceStateNetworkAddress>,
    /// Counters.
    pub counters: super::InstanceStateNetworkCounters,
    /// MAC address.
    pub hwaddr: String,
    /// MTU.
    pub mtu: i64,
    /// `up` or `down`.
    pub state: String,
    /// Interface type (`broadcast`, `loopback`).
    #[serde(rename = "type")]
    pub kind: String,
}

/// A warning (`Warning`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Warning {
    /// `new`, `acknowledged`, `resolved`.
    pub status: String,
    /// UUID.
    pub uuid: String,
    /// Cluster member.
    pub location: String,
    /// Project.
    pub project: String,
    /// Warning type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Occurrences.
    pub count: i64,
    /// First occurrence.
    pub first_seen_at: Timestamp,
    /// Last occurrence.
    pub last_seen_at: Timestamp,
    /// Last message.
    pub last_message: String,
    /// `low`, `moderate`, `high`.
    pub severity: String,
    /// URL of the object concerned.
    pub entity_url: String,
}

impl Default for Warning {
    fn default() -> Self {
        Warning {
            status: "new".into(),
            uuid: String::new(),
            location: "none".into(),
            project: String::new(),
            kind: String::new(),
            count: 0,
            first_seen_at: zero_time(),
            last_seen_at: zero_time(),
            last_message: String::new(),
            severity: "low".into(),
            entity_url: String::new(),
        }
    }
}

/// One hardware thread (`ResourcesCPUThread`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesCpuThread {
    /// Logical CPU number.
    pub id: i64,
    /// NUMA node.
    pub numa_node: u64,
    /// Thread number within the core.
    pub thread: u64,
    /// Whether it is online.
    pub online: bool,
    /// Whether it is isolated from the scheduler.
    pub isolated: bool,
}

/// One core (`ResourcesCPUCore`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesCpuCore {
    /// Core id.
    pub core: u64,
    /// Die id.
    pub die: u64,
    /// Its threads.
    pub threads: Vec<ResourcesCpuThread>,
    /// Current frequency (MHz).
    pub frequency: u64,
}

/// One socket (`ResourcesCPUSocket`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesCpuSocket {
    /// Model name.
    pub name: String,
    /// Vendor.
    pub vendor: String,
    /// Socket number.
    pub socket: u64,
    /// Its cores.
    pub cores: Vec<ResourcesCpuCore>,
    /// Current frequency (MHz).
    pub frequency: u64,
}

/// CPU part of the host inventory (`ResourcesCPU`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesCpu {
    /// Architecture name.
    pub architecture: String,
    /// Sockets with their cores and threads.
    pub sockets: Vec<ResourcesCpuSocket>,
    /// Logical CPUs.
    pub total: u64,
}

/// Memory part of the host inventory (`ResourcesMemory`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesMemory {
    /// Bytes of huge pages in total.
    pub hugepages_total: u64,
    /// Bytes of huge pages in use.
    pub hugepages_used: u64,
    /// Huge page size.
    pub hugepages_size: u64,
    /// Bytes in use.
    pub used: u64,
    /// Bytes in total.
    pub total: u64,
}

/// One block device (`ResourcesStorageDisk`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesStorageDisk {
    /// Kernel name (`vda`).
    pub id: String,
    /// `major:minor`.
    pub device: String,
    /// Model.
    pub model: String,
    /// Bus type when known (`virtio`, `scsi`, `nvme`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Read-only.
    pub read_only: bool,
    /// Size in bytes.
    pub size: u64,
    /// Removable.
    pub removable: bool,
    /// Rotation speed (0 for solid state).
    pub rpm: u64,
    /// Logical block size.
    pub block_size: u64,
    /// Serial number.
    pub serial: String,
}

/// Storage part of the host inventory (`ResourcesStorage`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesStorage {
    /// Disks (loop, ram and device-mapper devices are left out).
    pub disks: Vec<ResourcesStorageDisk>,
    /// Number of disks.
    pub total: u64,
}

/// One port of a network card (`ResourcesNetworkCardPort`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesNetworkCardPort {
    /// Interface name.
    pub id: String,
    /// MAC address.
    pub address: String,
    /// Port number on the card.
    pub port: u64,
    /// `ethernet` or `infiniband`.
    pub protocol: String,
    /// Whether a link is detected.
    pub link_detected: bool,
    /// Link speed (Mbit/s) when known.
    pub link_speed: u64,
}

/// One network card (`ResourcesNetworkCard`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesNetworkCard {
    /// Kernel driver.
    pub driver: String,
    /// Driver version.
    pub driver_version: String,
    /// Ports.
    pub ports: Vec<ResourcesNetworkCardPort>,
    /// PCI address when on PCI.
    pub pci_address: String,
}

/// Network part of the host inventory (`ResourcesNetwork`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesNetwork {
    /// Physical cards.
    pub cards: Vec<ResourcesNetworkCard>,
    /// Number of cards.
    pub total: u64,
}

/// An empty device class (`gpu`, `usb`, `pci` are not inventoried yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesNone {
    /// Always empty.
    pub cards: Vec<serde_json::Value>,
    /// Always 0.
    pub total: u64,
}

/// Host inventory (`GET /1.0/resources`): CPU, memory, storage and network; GPU, USB and PCI
/// are reported empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// CPUs.
    pub cpu: ResourcesCpu,
    /// Memory.
    pub memory: ResourcesMemory,
    /// Block devices.
    pub storage: ResourcesStorage,
    /// Network cards.
    pub network: ResourcesNetwork,
    /// GPUs (not inventoried).
    pub gpu: ResourcesNone,
}

/// A rename request (`ProfilePost`, `ProjectPost`): the new name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProfilePost {
    /// New name.
    pub name: String,
}
