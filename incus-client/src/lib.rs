//! # incus-client
//!
//! The Rust client for the Incus REST API (unix socket and HTTPS). Not written yet: it comes
//! with the daemon issue. It will build on Linux, macOS and Windows, using only
//! [`incus_core::api`] types, which already do.

/// The API version this client will speak.
pub const API_VERSION: &str = "1.0";
