//! # incus-storage
//!
//! Storage drivers implementing [`incus_core::drivers::StorageDriver`]. This release has the
//! `dir` driver ([`dir::DirDriver`]); btrfs, zfs and lvm come with the storage issue.
//! Register them all with [`register_all`]:
//!
//! ```
//! let mut registry = incus_core::drivers::DriverRegistry::new();
//! incus_storage::register_all(&mut registry);
//! assert!(registry.storage_drivers().contains(&"dir"));
//! ```

pub mod copy;
pub mod dir;

use incus_core::drivers::DriverRegistry;
use std::sync::Arc;

/// Registers every storage driver of this crate in `registry`.
pub fn register_all(registry: &mut DriverRegistry) {
    registry.add_storage("dir", |spec| Ok(Arc::new(dir::DirDriver::new(spec)?)));
}
