//! # incus-core
//!
//! The heart of the Rust implementation of Incus, usable as a library by any Rust program:
//!
//! - [`api`]: serde types for every REST object, named exactly as Incus sends them (builds on
//!   every OS);
//! - [`error`]: one error type whose [`error::ErrorKind`] maps to an HTTP status;
//! - [`file`]: what a path inside an instance holds (`FileContent`) and what to write;
//! - [`config`]: config key validation, device validation and profile expansion;
//! - [`drivers`]: the `StorageDriver`, `NetworkDriver` and `InstanceDriver` traits and the
//!   registry that builds them from a `driver` name;
//! - [`host`] (feature `host`, Linux): the engine, [`host::Host`], which manages real system
//!   containers from real images on a state directory laid out like Incus's.
//!
//! See `examples/launch.rs` for a program that launches a busybox container, runs a command
//! in it, snapshots, restores and deletes it.

pub mod api;
pub mod config;
pub mod drivers;
pub mod error;
pub mod file;
pub mod filter;

#[cfg(all(feature = "host", target_os = "linux"))]
pub mod host;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(all(feature = "host", target_os = "linux"))]
pub mod tree;
#[cfg(all(feature = "host", target_os = "linux"))]
pub mod xattrs;

pub use error::{Error, ErrorKind, Result};
