//! Live state of a running container: cgroup usage and the network interfaces seen from
//! inside its network namespace.

use crate::api;
use std::collections::BTreeMap;

/// Interfaces of the network namespace of `pid`: addresses through `getifaddrs` on a short-lived
/// thread that joined the namespace (setns of a network namespace is per thread), counters from
/// `/proc/<pid>/net/dev`, MTU and MAC from the container's own sysfs.
pub fn network(pid: i32) -> Option<BTreeMap<String, api::InstanceStateNetwork>> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).ok()?;
    let addrs = std::thread::spawn(
        move || -> Option<Vec<(String, api::InstanceStateNetworkAddress)>> {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
            let mut out = Vec::new();
            for ifa in nix::ifaddrs::getifaddrs().ok()? {
                let Some(addr) = ifa.address else { continue };
                let (family, address, scope) = if let Some(v4) = addr.as_sockaddr_in() {
                    let ip = v4.ip();
                    (
                        "inet",
                        ip.to_string(),
                        if ip.is_loopback() { "local" } else { "global" },
                    )
                } else if let Some(v6) = addr.as_sockaddr_in6() {
                    let ip = v6.ip();
                    let scope = if ip.is_loopback() {
                        "local"
                    } else if ip.segments()[0] & 0xffc0 == 0xfe80 {
                        "link"
                    } else {
                        "global"
                    };
                    ("inet6", ip.to_string(), scope)
                } else {
                    continue;
                };
                let netmask = ifa
                    .netmask
                    .and_then(|m| {
                        m.as_sockaddr_in()
                            .map(|v| u32::from(v.ip()).count_ones())
                            .or_else(|| {
                                m.as_sockaddr_in6().map(|v| u128::from(v.ip()).count_ones())
                            })
                    })
                    .unwrap_or(0);
                out.push((
                    ifa.interface_name,
                    api::InstanceStateNetworkAddress {
                        family: family.into(),
                        address,
                        netmask: netmask.to_string(),
                        scope: scope.into(),
                    },
                ));
            }
            Some(out)
        },
    )
    .join()
    .ok()??;

    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let mut nets = BTreeMap::new();
    for line in dev.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_string();
        let n: Vec<i64> = rest
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if n.len() < 16 {
            continue;
        }
        let sys = format!("/proc/{pid}/root/sys/class/net/{name}");
        let read = |f: &str| {
            std::fs::read_to_string(format!("{sys}/{f}"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let flags = i64::from_str_radix(read("flags").trim_start_matches("0x"), 16).unwrap_or(0);
        nets.insert(
            name.clone(),
            api::InstanceStateNetwork {
                addresses: addrs
                    .iter()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, a)| a.clone())
                    .collect(),
                counters: api::InstanceStateNetworkCounters {
                    bytes_received: n[0],
                    packets_received: n[1],
                    errors_received: n[2],
                    packets_dropped_inbound: n[3],
                    bytes_sent: n[8],
                    packets_sent: n[9],
                    errors_sent: n[10],
                    packets_dropped_outbound: n[11],
                },
                hwaddr: read("address"),
                host_name: String::new(),
                mtu: read("mtu").parse().unwrap_or(0),
                state: if flags & 1 == 1 {
                    "up".into()
                } else {
                    "down".into()
                },
                kind: if name == "lo" {
                    "loopback".into()
                } else {
                    "broadcast".into()
                },
            },
        );
    }
    Some(nets)
}
