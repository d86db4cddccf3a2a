//! The `bridge` network driver: a Linux bridge made through netlink, its addresses, a
//! dnsmasq for DHCP, router advertisements and DNS, and NAT and filter rules in an nftables
//! table of its own.

use crate::cidr::Cidr;
use crate::{dnsmasq, firewall, netlink};
use async_trait::async_trait;
use incus_core::api::{self, ConfigMap};
use incus_core::config::parse_bool;
use incus_core::drivers::{NetworkDriver, NetworkDriverInfo, NetworkSpec, NicRegistration};
use incus_core::error::{Error, Result};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

/// A managed bridge.
pub struct Bridge {
    spec: NetworkSpec,
}

impl Bridge {
    /// The driver for the network `spec`.
    pub fn new(spec: NetworkSpec) -> Self {
        Bridge { spec }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.spec
            .config
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str, default: bool) -> bool {
        self.get(key)
            .map(|v| parse_bool(v).unwrap_or(default))
            .unwrap_or(default)
    }

    fn address(&self, key: &str) -> Option<Cidr> {
        self.get(key)
            .filter(|v| *v != "none" && *v != "auto")
            .and_then(|v| Cidr::parse(v).ok())
    }

    fn domain(&self) -> String {
        self.get("dns.domain").unwrap_or("incus").to_string()
    }

    fn dhcp_range(&self, net: &Cidr) -> Option<(String, String)> {
        if !self.flag("ipv4.dhcp", true) {
            return None;
        }
        if let Some(r) = self.get("ipv4.dhcp.ranges") {
            let first = r.split(',').next().unwrap_or(r);
            let (a, b) = first.split_once('-')?;
            return Some((a.trim().to_string(), b.trim().to_string()));
        }
        let last = match net.last() {
            IpAddr::V4(v) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v) - 1)),
            v6 => v6,
        };
        Some((net.nth(2).to_string(), last.to_string()))
    }
}

/// 64 random bits: std's hasher keys are randomly seeded per `RandomState`.
fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Picks a subnet of the family of `v6` that overlaps none of `taken`: `10.X.Y.1/24` or
/// `fd42:X:Y:Z::1/64`.
pub fn pick_subnet(v6: bool, taken: &[Cidr]) -> Result<Cidr> {
    for _ in 0..100 {
        let r = random_u64();
        let text = if v6 {
            format!(
                "fd42:{:x}:{:x}:{:x}::1/64",
                r & 0xffff,
                (r >> 16) & 0xffff,
                (r >> 32) & 0xffff
            )
        } else {
            format!("10.{}.{}.1/24", (r & 0xff) as u8, ((r >> 8) & 0xff) as u8)
        };
        let c = Cidr::parse(&text).map_err(Error::internal)?;
        if !taken.iter().any(|t| t.overlaps(&c)) {
            return Ok(c);
        }
    }
    Err(Error::internal(
        "No unused subnet found for an automatic address",
    ))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// Checks one bridge config key.
fn validate_key(key: &str, value: &str) -> std::result::Result<(), String> {
    let bool_key = |v: &str| parse_bool(v).map(|_| ());
    match key {
        "ipv4.address" | "ipv6.address" => {
            if value.is_empty() || value == "none" || value == "auto" {
                return Ok(());
            }
            let c = Cidr::parse(value)?;
            if c.addr.is_ipv4() != (key == "ipv4.address") {
                return Err(format!("{value} is not an address of the {key} family"));
            }
            Ok(())
        }
        "ipv4.nat" | "ipv6.nat" | "ipv4.dhcp" | "ipv6.dhcp" | "ipv4.routing" | "ipv6.routing" => {
            bool_key(value)
        }
        "ipv4.dhcp.ranges" => {
            for r in value.split(',').filter(|r| !r.trim().is_empty()) {
                let (a, b) = r
                    .split_once('-')
                    .ok_or_else(|| format!("{r:?} is not a range FIRST-LAST"))?;
                for ip in [a, b] {
                    ip.trim()
                        .parse::<std::net::Ipv4Addr>()
                        .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
                }
            }
            Ok(())
        }
        "bridge.mtu" => match value.parse::<u32>() {
            Ok(m) if (1280..=9000).contains(&m) || value.is_empty() => Ok(()),
            _ => Err(format!("{value:?} is not an MTU between 1280 and 9000")),
        },
        "bridge.hwaddr" => parse_mac(value)
            .map(|_| ())
            .ok_or_else(|| format!("{value:?} is not a MAC address")),
        "bridge.driver" => match value {
            "" | "native" => Ok(()),
            _ => Err(format!(
                "Only the native bridge driver is supported, not {value:?}"
            )),
        },
        "dns.domain" => {
            if !value.is_empty()
                && value.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
            {
                Ok(())
            } else {
                Err(format!("{value:?} is not a domain name"))
            }
        }
        "dns.mode" => match value {
            "" | "managed" | "dynamic" | "none" => Ok(()),
            _ => Err(format!(
                "dns.mode must be managed, dynamic or none, not {value:?}"
            )),
        },
        "raw.dnsmasq" => Ok(()),
        k if k.starts_with("user.") => Ok(()),
        _ => Err(format!("Invalid option {key:?}")),
    }
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| Error::internal(format!("{path}: {e}")))
}

#[async_trait]
impl NetworkDriver for Bridge {
    fn info(&self) -> NetworkDriverInfo {
        NetworkDriverInfo {
            name: "bridge",
            managed: true,
        }
    }

    fn validate_config(&self, config: &ConfigMap) -> Result<()> {
        let name = &self.spec.name;
        if name.len() > 15 {
            return Err(Error::invalid(format!(
                "Network name {name:?} is longer than 15 characters (an interface name)"
            )));
        }
        for (k, v) in config {
            validate_key(k, v).map_err(|e| Error::invalid(format!("{k}: {e}")))?;
        }
        Ok(())
    }

    async fn fill_defaults(&self, config: &mut ConfigMap) -> Result<()> {
        // Subnets on other interfaces (this bridge's own, when it exists, do not count).
        let own = netlink::link_index(&self.spec.name).await?;
        let mut taken: Vec<Cidr> = netlink::all_addresses()
            .await?
            .into_iter()
            .filter(|(index, ip, _)| !ip.is_loopback() && Some(*index) != own)
            .filter(
                |(_, ip, _)| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80),
            )
            .filter_map(|(_, ip, p)| Cidr::parse(&format!("{ip}/{p}")).ok())
            .collect();
        for (key, v6) in [("ipv4.address", false), ("ipv6.address", true)] {
            let nat = if v6 { "ipv6.nat" } else { "ipv4.nat" };
            let value = config.get(key).cloned().unwrap_or_default();
            if let Ok(c) = Cidr::parse(&value) {
                if let Some(t) = taken.iter().find(|t| t.overlaps(&c)) {
                    return Err(Error::invalid(format!(
                        "{key}: subnet {} overlaps {} already in use on this host",
                        c.subnet(),
                        t.subnet()
                    )));
                }
                taken.push(c);
            } else if value.is_empty() || value == "auto" {
                let c = pick_subnet(v6, &taken)?;
                taken.push(c);
                config.insert(key.into(), c.to_string());
                config.entry(nat.into()).or_insert_with(|| "true".into());
            }
        }
        Ok(())
    }

    fn interface(&self) -> String {
        self.spec.name.clone()
    }

    async fn create(&self) -> Result<()> {
        let name = &self.spec.name;
        let mtu = self.get("bridge.mtu").and_then(|m| m.parse().ok());
        let mac = self.get("bridge.hwaddr").and_then(parse_mac);
        let index = netlink::ensure_bridge(name, mtu, mac).await?;
        let v4 = self.address("ipv4.address");
        let v6 = self.address("ipv6.address");
        let conf = format!("/proc/sys/net/ipv6/conf/{name}");
        if std::path::Path::new(&conf).exists() {
            write_sysctl(
                &format!("{conf}/disable_ipv6"),
                if v6.is_some() { "0" } else { "1" },
            )?;
            if v6.is_some() {
                // The bridge owns its address: no duplicate detection (it would delay
                // dnsmasq's bind), no autoconfiguration from others' advertisements.
                write_sysctl(&format!("{conf}/accept_dad"), "0")?;
                write_sysctl(&format!("{conf}/autoconf"), "0")?;
                write_sysctl(&format!("{conf}/accept_ra"), "0")?;
            }
        }
        let want: Vec<(IpAddr, u8)> = v4
            .iter()
            .chain(v6.iter())
            .map(|c| (c.addr, c.prefix))
            .collect();
        netlink::set_addresses(index, &want).await?;
        let nat4 = v4
            .filter(|_| self.flag("ipv4.nat", false))
            .map(|c| c.subnet());
        let nat6 = v6
            .filter(|_| self.flag("ipv6.nat", false))
            .map(|c| c.subnet());
        if v4.is_some() && (nat4.is_some() || self.flag("ipv4.routing", true)) {
            write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        }
        if v6.is_some() && (nat6.is_some() || self.flag("ipv6.routing", true)) {
            write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
        }
        firewall::apply(
            name,
            &firewall::Rules {
                bridge: name.clone(),
                nat4,
                nat6,
            },
        )
        .await
    }

    async fn start(&self) -> Result<()> {
        let v4 = self.address("ipv4.address");
        let v6 = self.address("ipv6.address");
        if v4.is_none() && v6.is_none() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.spec.state_dir)
            .map_err(|e| Error::internal(format!("{}: {e}", self.spec.state_dir.display())))?;
        let setup = dnsmasq::Setup {
            bridge: self.spec.name.clone(),
            ipv4: v4.map(|c| (c.addr.to_string(), self.dhcp_range(&c))),
            ipv6: v6.map(|c| c.addr.to_string()),
            domain: self.domain(),
            raw: self.get("raw.dnsmasq").unwrap_or("").to_string(),
        };
        dnsmasq::start(&self.spec.state_dir, &setup).await
    }

    async fn stop(&self) -> Result<()> {
        dnsmasq::stop(&self.spec.state_dir).await
    }

    async fn delete(&self) -> Result<()> {
        dnsmasq::stop(&self.spec.state_dir).await?;
        firewall::remove(&self.spec.name).await?;
        netlink::delete_link(&self.spec.name).await?;
        match std::fs::remove_dir_all(&self.spec.state_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::internal(format!(
                "{}: {e}",
                self.spec.state_dir.display()
            ))),
        }
    }

    async fn register_nic(&self, nic: &NicRegistration) -> Result<()> {
        if let Some(ip) = &nic.ipv4 {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| Error::invalid(format!("{ip:?} is not an IPv4 address")))?;
            if let Some(c) = self.address("ipv4.address")
                && !c.contains(ip)
            {
                return Err(Error::invalid(format!(
                    "{ip} is not in the subnet {} of network {:?}",
                    c.subnet(),
                    self.spec.name
                )));
            }
        }
        dnsmasq::write_host(
            &self.spec.state_dir,
            &nic.key,
            &nic.hwaddr,
            nic.ipv4.as_deref(),
            &nic.hostname,
        )
    }

    async fn unregister_nic(&self, key: &str) -> Result<()> {
        dnsmasq::remove_host(&self.spec.state_dir, key)
    }

    fn leases(&self) -> Result<Vec<api::NetworkLease>> {
        let dir = &self.spec.state_dir;
        let text = std::fs::read_to_string(dnsmasq::leases_file(dir)).unwrap_or_default();
        Ok(dnsmasq::parse_leases(&text, &dnsmasq::host_entries(dir)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(name: &str) -> Bridge {
        Bridge::new(NetworkSpec {
            name: name.into(),
            config: ConfigMap::new(),
            state_dir: "/nonexistent".into(),
        })
    }

    #[test]
    fn validates_keys_and_values() {
        let b = bridge("br0");
        let cfg = |pairs: &[(&str, &str)]| -> ConfigMap {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        b.validate_config(&cfg(&[
            ("ipv4.address", "10.5.0.1/24"),
            ("ipv4.nat", "true"),
            ("ipv6.address", "none"),
            ("dns.domain", "lab.example"),
            ("bridge.mtu", "1400"),
            ("user.owner", "me"),
        ]))
        .expect("valid");
        for bad in [
            ("ipv4.address", "10.5.0.0/24"),
            ("ipv4.address", "fd00::1/64"),
            ("ipv4.address", "300.1.1.1/24"),
            ("ipv4.nat", "maybe"),
            ("bridge.hwaddr", "00:16:3e"),
            ("dns.mode", "loud"),
            ("bogus.key", "1"),
        ] {
            assert!(b.validate_config(&cfg(&[bad])).is_err(), "{bad:?} accepted");
        }
        assert!(
            bridge("a-name-longer-than-15")
                .validate_config(&ConfigMap::new())
                .is_err()
        );
    }

    #[test]
    fn picks_subnets_that_do_not_overlap() {
        let taken = vec![Cidr::parse("10.0.0.1/8").expect("parse")];
        // Every 10.x subnet overlaps 10/8: nothing to pick.
        assert!(pick_subnet(false, &taken).is_err());
        let v6 = pick_subnet(true, &taken).expect("v6");
        assert!(v6.to_string().starts_with("fd42:") && v6.prefix == 64);
        let v4 = pick_subnet(false, &[]).expect("v4");
        assert_eq!(v4.prefix, 24);
    }
}
