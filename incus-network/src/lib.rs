//! # incus-network
//!
//! Network drivers for incus-core: `bridge` (netlink, nftables, dnsmasq), `macvlan` and `ovn`
//! will implement [`incus_core::drivers::NetworkDriver`] here. None is implemented yet (see
//! the networking issue); [`register_all`] registers nothing so far, and instances run with
//! loopback only.

use incus_core::drivers::DriverRegistry;

/// Registers every network driver of this crate. There are none yet.
pub fn register_all(_registry: &mut DriverRegistry) {}
