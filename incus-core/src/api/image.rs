//! Images and aliases.

use super::{ConfigMap, Timestamp, zero_time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Writable image fields (`ImagePut`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImagePut {
    /// Auto-update from its source.
    pub auto_update: bool,
    /// Properties (`os`, `release`, `description`, ...).
    #[serde(deserialize_with = "super::null_default")]
    pub properties: ConfigMap,
    /// Visible to untrusted clients.
    pub public: bool,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Profiles applied to new instances.
    #[serde(deserialize_with = "super::null_default")]
    pub profiles: Vec<String>,
}

impl Default for ImagePut {
    fn default() -> Self {
        ImagePut {
            auto_update: false,
            properties: ConfigMap::new(),
            public: false,
            expires_at: zero_time(),
            profiles: vec!["default".into()],
        }
    }
}

/// An alias as listed inside an image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageAlias {
    /// Alias name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// Where an image came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageSource {
    /// Alias on the source.
    pub alias: String,
    /// Source certificate.
    pub certificate: String,
    /// Protocol.
    pub protocol: String,
    /// Server URL.
    pub server: String,
    /// Image type.
    pub image_type: String,
}

/// An image (`Image`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Image {
    /// Writable fields.
    #[serde(flatten)]
    pub put: ImagePut,
    /// Aliases pointing at it.
    #[serde(deserialize_with = "super::null_default")]
    pub aliases: Vec<ImageAlias>,
    /// Architecture.
    pub architecture: String,
    /// Whether it was cached from a remote.
    pub cached: bool,
    /// Original file name.
    pub filename: String,
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// Size in bytes of the image files.
    pub size: i64,
    /// Source for auto-update.
    pub update_source: Option<ImageSource>,
    /// `container` or `virtual-machine`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Creation time from its metadata.
    pub created_at: Timestamp,
    /// Last use.
    pub last_used_at: Timestamp,
    /// Upload time.
    pub uploaded_at: Timestamp,
    /// Project.
    pub project: String,
}

impl Default for Image {
    fn default() -> Self {
        Image {
            put: ImagePut::default(),
            aliases: Vec::new(),
            architecture: String::new(),
            cached: false,
            filename: String::new(),
            fingerprint: String::new(),
            size: 0,
            update_source: None,
            kind: "container".into(),
            created_at: zero_time(),
            last_used_at: zero_time(),
            uploaded_at: zero_time(),
            project: "default".into(),
        }
    }
}

/// Source of a new image (`ImagesPostSource`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImagesPostSource {
    /// Remote source fields.
    #[serde(flatten)]
    pub source: ImageSource,
    /// `pull` or `push`.
    pub mode: String,
    /// `image`, `url`, `instance`, `snapshot`.
    #[serde(rename = "type")]
    pub kind: String,
    /// URL.
    pub url: String,
    /// Instance or snapshot name.
    pub name: String,
    /// Fingerprint.
    pub fingerprint: String,
    /// Secret.
    pub secret: String,
    /// Project.
    pub project: String,
}

/// An alias to create with an image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageAliasesPostEntry {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// Image creation request (`ImagesPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImagesPost {
    /// Writable fields.
    #[serde(flatten)]
    pub put: ImagePut,
    /// Original file name.
    pub filename: String,
    /// Source.
    pub source: Option<ImagesPostSource>,
    /// Compression for images made from instances.
    pub compression_algorithm: String,
    /// `unified` or `split`.
    pub format: String,
    /// Aliases to create.
    #[serde(deserialize_with = "super::null_default")]
    pub aliases: Vec<ImageAliasesPostEntry>,
}

/// Writable alias fields (`ImageAliasesEntryPut`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageAliasesEntryPut {
    /// Description.
    pub description: String,
    /// Target fingerprint.
    pub target: String,
}

/// An image alias (`ImageAliasesEntry`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageAliasesEntry {
    /// Writable fields.
    #[serde(flatten)]
    pub put: ImageAliasesEntryPut,
    /// Name.
    pub name: String,
    /// `container` or `virtual-machine`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Alias creation request (`ImageAliasesPost`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageAliasesPost {
    /// The alias.
    #[serde(flatten)]
    pub entry: ImageAliasesEntry,
}

/// One template of an image (`ImageMetadataTemplate`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageMetadataTemplate {
    /// Triggers: `create`, `copy`, `start`, `rename`.
    #[serde(deserialize_with = "super::null_default")]
    pub when: Vec<String>,
    /// Only create the file if missing.
    pub create_only: bool,
    /// Template file under `templates/`.
    pub template: String,
    /// Template properties.
    #[serde(deserialize_with = "super::null_default")]
    pub properties: ConfigMap,
    /// Owner uid (as a string in the YAML).
    pub uid: String,
    /// Owner gid.
    pub gid: String,
    /// Mode (octal string).
    pub mode: String,
}

/// `metadata.yaml` of an image (`ImageMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageMetadata {
    /// Architecture.
    pub architecture: String,
    /// Unix creation time.
    pub creation_date: i64,
    /// Unix expiry time.
    pub expiry_date: i64,
    /// Properties.
    #[serde(deserialize_with = "super::null_default")]
    pub properties: ConfigMap,
    /// Templates by target path.
    #[serde(deserialize_with = "super::null_default")]
    pub templates: BTreeMap<String, ImageMetadataTemplate>,
}
