//! Read-only host facts for the API: network interfaces (listed as unmanaged networks, as
//! Incus lists them) and a small resource inventory.

use super::Host;
use crate::api;
use crate::error::Result;
use std::path::Path;

/// The type Incus shows for an unmanaged interface under `root` (`/sys/class/net/<name>`).
fn interface_type(root: &Path) -> &'static str {
    let link_type = std::fs::read_to_string(root.join("type")).unwrap_or_default();
    if link_type.trim() == "772" {
        "loopback"
    } else if root.join("bridge").is_dir() {
        "bridge"
    } else if root.join("bonding").is_dir() {
        "bond"
    } else if root.join("device").exists() {
        "physical"
    } else {
        "unknown"
    }
}

/// Unmanaged networks from a `/sys/class/net`-shaped directory (a seam for tests).
pub fn interfaces_in(sys_class_net: &Path) -> Vec<api::Network> {
    let mut out: Vec<api::Network> = std::fs::read_dir(sys_class_net)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| api::Network {
                    name: e.file_name().to_string_lossy().into_owned(),
                    kind: interface_type(&e.path()).into(),
                    managed: false,
                    locations: vec!["none".into()],
                    ..Default::default()
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

impl Host {
    /// The host inventory: CPU topology, memory, block devices and network cards.
    pub fn resources(&self) -> Result<api::Resources> {
        Ok(super::resources::host_resources())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_interfaces() {
        let t = tempfile::tempdir().expect("tempdir");
        let mk = |name: &str, ty: &str, sub: Option<&str>| {
            let d = t.path().join(name);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("type"), ty).expect("write");
            if let Some(s) = sub {
                std::fs::create_dir_all(d.join(s)).expect("mkdir");
            }
        };
        mk("lo", "772\n", None);
        mk("br0", "1\n", Some("bridge"));
        mk("eth0", "1\n", Some("device"));
        mk("veth1", "1\n", None);
        let nets = interfaces_in(t.path());
        let kinds: Vec<(&str, &str)> = nets
            .iter()
            .map(|n| (n.name.as_str(), n.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("br0", "bridge"),
                ("eth0", "physical"),
                ("lo", "loopback"),
                ("veth1", "unknown")
            ]
        );
        assert!(nets.iter().all(|n| !n.managed));
    }
}
