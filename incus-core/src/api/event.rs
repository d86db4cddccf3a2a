//! Events (`/1.0/events`): lifecycle, operation and logging.

use super::{ConfigMap, Timestamp};
use serde::{Deserialize, Serialize};

/// An event as sent on the events websocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `lifecycle`, `operation` or `logging`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened.
    pub timestamp: Timestamp,
    /// Payload: [`EventLifecycle`], [`super::Operation`] or [`EventLogging`].
    pub metadata: serde_json::Value,
    /// Cluster member (`none`).
    #[serde(default)]
    pub location: String,
    /// Project.
    #[serde(default)]
    pub project: String,
}

/// Who caused a lifecycle event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventLifecycleRequestor {
    /// User name.
    pub username: String,
    /// `unix`, `tls`, `oidc`, or `library` for in-process callers.
    pub protocol: String,
    /// Remote address.
    pub address: String,
}

/// Lifecycle event payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventLifecycle {
    /// `instance-created`, `instance-started`, ...
    pub action: String,
    /// URL of the object.
    pub source: String,
    /// Extra context.
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// Who did it.
    pub requestor: Option<EventLifecycleRequestor>,
    /// Object name.
    pub name: String,
    /// Project.
    pub project: String,
}

/// Logging event payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventLogging {
    /// Message.
    pub message: String,
    /// `debug`, `info`, `warning`, `error`.
    pub level: String,
    /// Structured context.
    #[serde(deserialize_with = "super::null_default")]
    pub context: ConfigMap,
}
