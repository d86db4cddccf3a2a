//! # incus-storage
//!
//! Storage drivers implementing [`incus_core::drivers::StorageDriver`]: `dir`
//! ([`dir::DirDriver`]), `btrfs` ([`btrfs::BtrfsDriver`]), `zfs` ([`zfs::ZfsDriver`]) and
//! `lvm` ([`lvm::LvmDriver`]). Drivers that shell out through [`command::Runner`] can be tested
//! against transcripts.
//! Register them all with [`register_all`]:
//!
//! ```
//! let mut registry = incus_core::drivers::DriverRegistry::new();
//! incus_storage::register_all(&mut registry);
//! assert!(registry.storage_drivers().contains(&"dir"));
//! ```

pub mod btrfs;
pub mod command;
pub mod dir;
pub mod layout;
pub mod lvm;
pub mod zfs;

/// Tree copies, shifts and usage (now in `incus_core::tree`, shared with the engine).
pub use incus_core::tree as copy;

use incus_core::drivers::DriverRegistry;
use std::sync::Arc;

/// Registers every storage driver of this crate in `registry`.
pub fn register_all(registry: &mut DriverRegistry) {
    registry.add_storage("dir", |spec| Ok(Arc::new(dir::DirDriver::new(spec)?)));
    registry.add_storage("btrfs", |spec| Ok(Arc::new(btrfs::BtrfsDriver::new(spec)?)));
    registry.add_storage("lvm", |spec| Ok(Arc::new(lvm::LvmDriver::new(spec)?)));
    registry.add_storage("zfs", |spec| Ok(Arc::new(zfs::ZfsDriver::new(spec)?)));
}
