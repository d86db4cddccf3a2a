//! Background operations (`Operation`).

use super::{StatusCode, Timestamp, zero_time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A background operation as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Operation {
    /// UUID.
    pub id: String,
    /// `task`, `websocket` or `token`.
    pub class: String,
    /// Human description (`Creating instance`).
    pub description: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update.
    pub updated_at: Timestamp,
    /// Status string.
    pub status: String,
    /// Status code.
    pub status_code: i32,
    /// Affected resources by type (`instances`: [URLs]).
    pub resources: BTreeMap<String, Vec<String>>,
    /// Progress and results.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Whether `DELETE` cancels it.
    pub may_cancel: bool,
    /// Error message when failed.
    pub err: String,
    /// Cluster member (`none`).
    pub location: String,
}

impl Default for Operation {
    fn default() -> Self {
        Operation {
            id: String::new(),
            class: "task".into(),
            description: String::new(),
            created_at: zero_time(),
            updated_at: zero_time(),
            status: StatusCode::Pending.as_str().into(),
            status_code: StatusCode::Pending.code(),
            resources: BTreeMap::new(),
            metadata: None,
            may_cancel: false,
            err: String::new(),
            location: "none".into(),
        }
    }
}
