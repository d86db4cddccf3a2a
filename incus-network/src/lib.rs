//! # incus-network
//!
//! Network drivers for incus-core, behind [`incus_core::drivers::NetworkDriver`]:
//!
//! - `bridge` ([`bridge::Bridge`]): a Linux bridge created through netlink, its IPv4 and IPv6
//!   addresses (`auto` picks unused private subnets), a dnsmasq per network for DHCP, router
//!   advertisements and DNS (`<instance>.<dns.domain>`), and NAT plus filter rules in an
//!   nftables table of its own (`inet incus_<network>`).
//!
//! - `macvlan` ([`macvlan::Macvlan`]): a named parent interface; nics on the network become
//!   macvlan interfaces (mode `bridge`) on it. Nothing is created on the host.
//!
//! Nic hot-plug into running instances ([`netlink::NetlinkPlumbing`]) is registered too.
//! `ovn` networks are not implemented yet.
//!
//! ```no_run
//! # async fn demo() -> incus_core::Result<()> {
//! use incus_core::drivers::{DriverRegistry, NetworkSpec};
//! let mut registry = DriverRegistry::new();
//! incus_network::register_all(&mut registry);
//! let net = registry.network(
//!     "bridge",
//!     NetworkSpec {
//!         name: "labbr0".into(),
//!         config: [("ipv4.address".to_string(), "10.42.0.1/24".to_string())].into(),
//!         state_dir: "/tmp/labbr0".into(),
//!     },
//! )?;
//! net.create().await?;
//! net.start().await?;
//! net.delete().await?;
//! # Ok(())
//! # }
//! ```

pub mod bridge;
pub mod cidr;
pub mod dnsmasq;
pub mod firewall;
pub mod macvlan;
pub mod netlink;

use incus_core::drivers::DriverRegistry;
use std::sync::Arc;

/// Registers every network driver of this crate (`bridge`, `macvlan`) and nic hot-plug over netlink.
pub fn register_all(registry: &mut DriverRegistry) {
    registry.add_network("bridge", |spec| Ok(Arc::new(bridge::Bridge::new(spec))));
    registry.add_network("macvlan", |spec| Ok(Arc::new(macvlan::Macvlan::new(spec))));
    registry.set_nic_plumbing(Arc::new(netlink::NetlinkPlumbing));
}
