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

/// Where a new volume's content comes from (`StorageVolumeSource`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumeSource {
    /// Source volume name (empty for a new empty volume).
    pub name: String,
    /// `copy` (or `migration`, refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// Source pool.
    pub pool: String,
    /// Source project (empty: the request's project).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub project: String,
    /// Copy without snapshots.
    pub volume_only: bool,
    /// Update an existing copy (refused).
    pub refresh: bool,
}

/// Volume creation request (`StorageVolumesPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumesPost {
    /// Writable fields.
    #[serde(flatten)]
    pub put: StorageVolumePut,
    /// Name.
    pub name: String,
    /// Volume type (`custom`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Content source (copies).
    pub source: StorageVolumeSource,
    /// `filesystem` (default) or `block`.
    pub content_type: String,
}

/// Volume rename or move request (`StorageVolumePost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumePost {
    /// New name.
    pub name: String,
    /// Target pool (a move when it differs).
    pub pool: String,
    /// Target project (a move when it differs).
    pub project: String,
    /// Migration (refused).
    pub migration: bool,
    /// Move without snapshots.
    pub volume_only: bool,
}

/// A volume snapshot (`StorageVolumeSnapshot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumeSnapshot {
    /// Description.
    pub description: String,
    /// Expiry (`null` when none).
    pub expires_at: Option<Timestamp>,
    /// `<volume>/<snapshot>`.
    pub name: String,
    /// The volume's config when the snapshot was taken.
    #[serde(deserialize_with = "super::null_default")]
    pub config: ConfigMap,
    /// Content type.
    pub content_type: String,
    /// Creation time.
    pub created_at: Timestamp,
}

impl Default for StorageVolumeSnapshot {
    fn default() -> Self {
        StorageVolumeSnapshot {
            description: String::new(),
            expires_at: None,
            name: String::new(),
            config: ConfigMap::new(),
            content_type: "filesystem".into(),
            created_at: zero_time(),
        }
    }
}

/// Volume snapshot creation request (`StorageVolumeSnapshotsPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumeSnapshotsPost {
    /// Snapshot name; generated (`snap0`, ...) when empty.
    pub name: String,
    /// Expiry; from `snapshots.expiry` when absent.
    pub expires_at: Option<Timestamp>,
}

/// Writable snapshot fields (`StorageVolumeSnapshotPut`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumeSnapshotPut {
    /// Description.
    pub description: String,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
}

/// A custom volume backup (`StorageVolumeBackup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumeBackup {
    /// Name (`backup0`, ...).
    pub name: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry (the zero time: none).
    pub expires_at: Timestamp,
    /// Without snapshots.
    pub volume_only: bool,
    /// Native storage format (always false here).
    pub optimized_storage: bool,
}

impl Default for StorageVolumeBackup {
    fn default() -> Self {
        StorageVolumeBackup {
            name: String::new(),
            created_at: zero_time(),
            expires_at: zero_time(),
            volume_only: false,
            optimized_storage: false,
        }
    }
}

/// Volume backup creation request (`StorageVolumeBackupsPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageVolumeBackupsPost {
    /// Name; generated (`backup0`, ...) when empty.
    pub name: String,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Without snapshots.
    pub volume_only: bool,
    /// Native storage format (refused: only the portable layout is written).
    pub optimized_storage: bool,
    /// `gzip` (default), `none`, `xz` or `zstd`.
    pub compression_algorithm: String,
}

/// Backup rename request (`InstanceBackupPost`, `StorageVolumeBackupPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupPost {
    /// New name.
    pub name: String,
}
