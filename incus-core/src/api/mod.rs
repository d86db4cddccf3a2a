//! Serde types for the Incus REST API 1.0 objects.
//!
//! Field names are exactly those Incus sends on the wire, including its quirks (for example
//! the capitalised `Config`/`Devices`/`Profiles` of [`InstancePost`] and the `Name`/`Version`/
//! `Remote` keys of [`ServerStorageDriverInfo`]). Every struct defaults missing fields, because
//! real clients omit many of them. This module has no platform-specific code: it builds on
//! Linux, macOS and Windows.

mod event;
mod image;
mod instance;
mod misc;
mod operation;
mod response;
mod server;
mod storage;

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

/// The zero time Incus uses for "never" (`0001-01-01T00:00:00Z`).
pub fn zero_time() -> Timestamp {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .expect("year 1 is a valid UTC date")
}
