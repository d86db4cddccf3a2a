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

/// CPU part of the host inventory (`ResourcesCPU`, reduced).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesCpu {
    /// Architecture name.
    pub architecture: String,
    /// Logical CPUs.
    pub total: u64,
}

/// Memory part of the host inventory (`ResourcesMemory`, reduced).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourcesMemory {
    /// Bytes in use.
    pub used: u64,
    /// Bytes in total.
    pub total: u64,
}

/// Host inventory (`GET /1.0/resources`): the CPU and memory parts so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// CPUs.
    pub cpu: ResourcesCpu,
    /// Memory.
    pub memory: ResourcesMemory,
}
