//! The `macvlan` network: a name for a parent interface. Nothing is created on the host; a
//! nic with `network=<this network>` becomes a macvlan interface (mode `bridge`) on the parent,
//! with the network's `mtu` unless the nic sets its own. No DHCP or DNS: addresses come from
//! whatever serves the parent's segment.

use crate::netlink;
use async_trait::async_trait;
use incus_core::api::ConfigMap;
use incus_core::drivers::{NetworkDriver, NetworkDriverInfo, NetworkSpec};
use incus_core::error::{Error, Result};

/// A managed `macvlan` network.
#[derive(Debug, Clone)]
pub struct Macvlan {
    spec: NetworkSpec,
}

impl Macvlan {
    /// The driver for one network.
    pub fn new(spec: NetworkSpec) -> Self {
        Macvlan { spec }
    }

    fn parent(&self) -> String {
        self.spec.config.get("parent").cloned().unwrap_or_default()
    }
}

/// Whether `name` can name a Linux interface.
fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(['/', ':', ' ', '\t', '\n'])
}

fn validate_key(key: &str, value: &str) -> std::result::Result<(), String> {
    match key {
        "parent" if valid_interface_name(value) => Ok(()),
        "parent" => Err(format!("invalid interface name {value:?}")),
        "mtu" => match value.parse::<u32>() {
            Ok(m) if (1280..=16384).contains(&m) => Ok(()),
            _ => Err(format!("invalid MTU {value:?} (1280-16384)")),
        },
        k if k.starts_with("user.") => Ok(()),
        "vlan" | "gvrp" => Err("VLANs on macvlan networks are not supported yet".into()),
        _ => Err("unknown configuration key".into()),
    }
}

#[async_trait]
impl NetworkDriver for Macvlan {
    fn info(&self) -> NetworkDriverInfo {
        NetworkDriverInfo {
            name: "macvlan",
            managed: true,
        }
    }

    fn validate_config(&self, config: &ConfigMap) -> Result<()> {
        for (k, v) in config {
            validate_key(k, v).map_err(|e| Error::invalid(format!("{k}: {e}")))?;
        }
        if !config.contains_key("parent") {
            return Err(Error::invalid(
                "parent: a macvlan network needs a parent interface",
            ));
        }
        Ok(())
    }

    fn interface(&self) -> String {
        self.parent()
    }

    fn nic_settings(&self) -> ConfigMap {
        let mut s: ConfigMap = [("nictype".to_string(), "macvlan".to_string())].into();
        if let Some(mtu) = self.spec.config.get("mtu") {
            s.insert("mtu".into(), mtu.clone());
        }
        s
    }

    /// Checks that the parent exists; nothing is made.
    async fn create(&self) -> Result<()> {
        let parent = self.parent();
        if netlink::link_index(&parent).await?.is_none() {
            return Err(Error::invalid(format!(
                "parent: interface {parent:?} does not exist"
            )));
        }
        Ok(())
    }

    async fn start(&self) -> Result<()> {
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        Ok(())
    }

    /// The parent is not ours: nothing to remove.
    async fn delete(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(config: &[(&str, &str)]) -> Macvlan {
        Macvlan::new(NetworkSpec {
            name: "mv0".into(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state_dir: "/nonexistent".into(),
        })
    }

    #[test]
    fn validates_and_fills_nics() {
        let ok = net(&[("parent", "eth0"), ("mtu", "1400"), ("user.x", "y")]);
        ok.validate_config(&ok.spec.config).expect("valid");
        assert_eq!(ok.interface(), "eth0");
        let nic = ok.nic_settings();
        assert_eq!(nic.get("nictype").map(String::as_str), Some("macvlan"));
        assert_eq!(nic.get("mtu").map(String::as_str), Some("1400"));
        for bad in [
            vec![],
            vec![("parent", "")],
            vec![("parent", "a/b")],
            vec![("parent", "a-name-longer-than-15")],
            vec![("parent", "eth0"), ("mtu", "99")],
            vec![("parent", "eth0"), ("vlan", "10")],
            vec![("parent", "eth0"), ("ipv4.address", "10.0.0.1/24")],
        ] {
            let n = net(&bad);
            assert!(n.validate_config(&n.spec.config).is_err(), "{bad:?}");
        }
    }
}
