//! Serde types for the Incus REST API 1.0 objects.
//!
//! Field names are exactly those Incus sends on the wire, including its quirks (for example
//! the capitalised `Config`/`Devices`/`Profiles` of [`InstancePost`] and the `Name`/`Version`/
//! `Remote` keys of [`ServerStorageDriverInfo`]). Every struct defaults missing fields, because
//! real clients omit many of them. This module has no platform-specific code: it builds on
//! Linux, macOS and Windows.

mod certificate;
mod event;
mod image;
mod instance;
mod misc;
mod operation;
mod response;
mod server;
mod storage;

pub use certificate::*;
pub use event::*;
pub use image::*;
pub use instance::*;
pub use misc::*;
pub use operation::*;
pub use response::*;
pub use server::*;
pub use storage::*;

use std::collections::BTreeMap;

/// A string-to-string configuration map as Incus uses everywhere (`config`, `properties`).
pub type ConfigMap = BTreeMap<String, String>;

/// A map of device name to the device's configuration.
pub type DevicesMap = BTreeMap<String, ConfigMap>;

/// A timestamp as Incus renders it (RFC 3339 with nanoseconds, UTC).
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Deserialises `null` as the type's default: Go clients send `null` for empty lists and maps.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The zero time Incus uses for "never" (`0001-01-01T00:00:00Z`).
pub fn zero_time() -> Timestamp {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .expect("year 1 is a valid UTC date")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_the_incus_client_sends() {
        // POST /1.0/instances from `incus launch` 6.0.4 (shared/reference/incus-client-traces.md).
        let body = r#"{"architecture":"","config":{},"devices":{},"ephemeral":false,"profiles":null,"stateful":false,"description":"","name":"trace-c1","source":{"type":"image","certificate":"","fingerprint":"152bd7a7","allow_inconsistent":false},"instance_type":"","type":"container","start":true}"#;
        let req: InstancesPost = serde_json::from_str(body).expect("parse");
        assert_eq!(req.name, "trace-c1");
        assert!(req.put.profiles.is_empty());
        assert!(req.start);
        assert_eq!(req.source.fingerprint, "152bd7a7");
        let exec = r#"{"command":["sh","-c","exit 3"],"wait-for-websocket":true,"interactive":false,"environment":{"TERM":"xterm"},"width":0,"height":0,"record-output":false,"user":0,"group":0,"cwd":""}"#;
        let e: InstanceExecPost = serde_json::from_str(exec).expect("parse exec");
        assert!(e.wait_for_websocket);
        assert_eq!(e.user, Some(0));
        // pylxd sends nulls for user, group and cwd.
        let e: InstanceExecPost = serde_json::from_str(
            r#"{"command":["true"],"user":null,"group":null,"cwd":null,"environment":null}"#,
        )
        .expect("pylxd");
        assert_eq!((e.user, e.cwd), (None, None));
    }

    #[test]
    fn quirky_field_names() {
        let post = InstancePost {
            config: Some(ConfigMap::new()),
            ..Default::default()
        };
        let v = serde_json::to_value(&post).expect("json");
        assert!(
            v.get("Config").is_some() && v.get("Devices").is_some() && v.get("Profiles").is_some()
        );
        let info = serde_json::to_value(ServerStorageDriverInfo::default()).expect("json");
        assert!(info.get("Name").is_some() && info.get("Remote").is_some());
        let raw = ResponseRaw::error(404, "Instance not found");
        assert_eq!(serde_json::to_value(&raw).expect("json")["type"], "error");
        assert_eq!(StatusCode::try_from(103), Ok(StatusCode::Running));
    }
}
