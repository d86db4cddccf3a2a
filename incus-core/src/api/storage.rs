//! Storage pools and volumes.

use super::{ConfigMap, Timestamp, zero_time};
use serde::{Deserialize, Serialize};

/// Writable pool fields (`StoragePoolPut`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoragePoolPut {
    /// Pool configuration (`source`, `size`, `volume.*`).
    #[serde(deserialize_with = "super::null_default")]
    pub config: ConfigMap,
    /// Description.
    pub description: String,
}

/// A storage pool (`StoragePool`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoragePool {
    /// Writable fields.
    #[serde(flatten)]
    pub put: StoragePoolPut,
    /// Name.
    pub name: String,
    /// Driver (`dir`, `btrfs`, `zfs`, `lvm`).
    pub driver: String,
    /// URLs of what uses it.
    #[serde(deserialize_with = "super::null_default")]
    pub used_by: Vec<String>,
    /// `Created`, `Pending`, `Errored`, `Unavailable`.
    pub status: String,
    /// Cluster members.
    #[serde(deserialize_with = "super::null_default")]
    pub locations: Vec<String>,
}

/// Pool creation request (`StoragePoolsPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoragePoolsPost {
    /// Writable fields.
    #[serde(flatten)]
    pub put: StoragePoolPut,
    /// Name.
    pub name: String,
    /// Driver.
    pub driver: String,
}

/// Writable volume fields (`StorageVolumePut`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumePut {
    /// Volume configuration.
    #[serde(deserialize_with = "super::null_default")]
    pub config: ConfigMap,
    /// Description.
    pub description: String,
    /// Snapshot to restore.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub restore: String,
}

/// A storage volume (`StorageVolume`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolume {
    /// Writable fields.
    #[serde(flatten)]
    pub put: StorageVolumePut,
    /// Name.
    pub name: String,
    /// `container`, `virtual-machine`, `image` or `custom`.
    #[serde(rename = "type")]
    pub kind: String,
    /// URLs of what uses it.
    #[serde(deserialize_with = "super::null_default")]
    pub used_by: Vec<String>,
    /// Cluster member.
    pub location: String,
    /// `filesystem`, `block` or `iso`.
    pub content_type: String,
    /// Project.
    pub project: String,
    /// Creation time.
    pub created_at: Timestamp,
}

impl Default for StorageVolume {
    fn default() -> Self {
        StorageVolume {
            put: StorageVolumePut::default(),
            name: String::new(),
            kind: String::new(),
            used_by: Vec::new(),
            location: "none".into(),
            content_type: "filesystem".into(),
            project: "default".into(),
            created_at: zero_time(),
        }
    }
}

/// Volume usage (`StorageVolumeStateUsage`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumeStateUsage {
    /// Bytes used.
    pub used: u64,
    /// Bytes available in total (0 when unlimited).
    pub total: i64,
}

/// Volume state (`StorageVolumeState`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumeState {
    /// Usage.
    pub usage: Option<StorageVolumeStateUsage>,
}

/// Space or inode counts of a pool (`ResourcesStoragePoolSpace`, `...Inodes`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoragePoolUsage {
    /// Used.
    pub used: u64,
    /// In all.
    pub total: u64,
}

/// A pool's usage (`ResourcesStoragePool`, `GET /1.0/storage-pools/<name>/resources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoragePoolResources {
    /// Bytes.
    pub space: StoragePoolUsage,
    /// Inodes.
    pub inodes: StoragePoolUsage,
}
