//! `GET /1.0`: the server and its environment.

use super::ConfigMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The writable part of the server (`ServerPut`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerPut {
    /// Server configuration keys (`core.https_address`, `images.*`, ...).
    #[serde(deserialize_with = "super::null_default")]
    pub config: ConfigMap,
}

/// What an untrusted client may see of the server (`ServerUntrusted`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerUntrusted {
    /// Writable fields.
    #[serde(flatten)]
    pub put: ServerPut,
    /// API extensions this server implements.
    #[serde(deserialize_with = "super::null_default")]
    pub api_extensions: Vec<String>,
    /// `stable` or `development`.
    pub api_status: String,
    /// Always `1.0`.
    pub api_version: String,
    /// `trusted` or `untrusted`.
    pub auth: String,
    /// Whether the server is a public image server.
    pub public: bool,
    /// Supported authentication methods (`tls`, `oidc`).
    #[serde(deserialize_with = "super::null_default")]
    pub auth_methods: Vec<String>,
}

/// The full server object (`Server`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Server {
    /// Untrusted view fields.
    #[serde(flatten)]
    pub untrusted: ServerUntrusted,
    /// The authenticated user name.
    pub auth_user_name: String,
    /// How the user authenticated (`unix`, `tls`, `oidc`).
    pub auth_user_method: String,
    /// Host environment.
    pub environment: ServerEnvironment,
}

/// One storage driver as listed in the server environment. The keys are capitalised on the
/// wire because the Go struct has no JSON tags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerStorageDriverInfo {
    /// Driver name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Driver version.
    #[serde(rename = "Version")]
    pub version: String,
    /// Whether the driver is remote (ceph-like).
    #[serde(rename = "Remote")]
    pub remote: bool,
}

/// Host environment (`ServerEnvironment`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerEnvironment {
    /// Addresses the API listens on.
    #[serde(deserialize_with = "super::null_default")]
    pub addresses: Vec<String>,
    /// Supported architectures.
    #[serde(deserialize_with = "super::null_default")]
    pub architectures: Vec<String>,
    /// Server certificate (PEM).
    pub certificate: String,
    /// SHA-256 fingerprint of the certificate.
    pub certificate_fingerprint: String,
    /// Instance drivers (`lxc | qemu`).
    pub driver: String,
    /// Their versions.
    pub driver_version: String,
    /// Firewall driver (`nftables`).
    pub firewall: String,
    /// Kernel name.
    pub kernel: String,
    /// Kernel architecture.
    pub kernel_architecture: String,
    /// Kernel features detected.
    #[serde(deserialize_with = "super::null_default")]
    pub kernel_features: ConfigMap,
    /// Kernel version.
    pub kernel_version: String,
    /// liblxc features detected.
    #[serde(deserialize_with = "super::null_default")]
    pub lxc_features: ConfigMap,
    /// Host OS name.
    pub os_name: String,
    /// Host OS version.
    pub os_version: String,
    /// Current project.
    pub project: String,
    /// Always `incus`.
    pub server: String,
    /// Whether the server is clustered.
    pub server_clustered: bool,
    /// Event distribution mode.
    pub server_event_mode: String,
    /// Server name.
    pub server_name: String,
    /// Server process id.
    pub server_pid: i64,
    /// Server version.
    pub server_version: String,
    /// Storage drivers in use.
    pub storage: String,
    /// Their versions.
    pub storage_version: String,
    /// Storage drivers supported.
    #[serde(deserialize_with = "super::null_default")]
    pub storage_supported_drivers: Vec<ServerStorageDriverInfo>,
}

/// Free-form extra data some objects carry.
pub type Extra = BTreeMap<String, serde_json::Value>;
