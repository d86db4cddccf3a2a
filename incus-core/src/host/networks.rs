//! Managed networks: records in the database, their drivers' host objects, and what
//! instance nics need from them (the parent interface, a stable MAC, DHCP/DNS entries).
//! Host interfaces nobody manages are listed beside them, as Incus lists them.

use super::db::Table;
use super::{Host, instance_url, with_project};
use crate::api::{self, ConfigMap, DevicesMap};
use crate::drivers::{HotNic, NetworkDriver, NetworkSpec, NicRegistration};
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// Whether a device is a nic on the managed network `network`.
fn uses_network(dev: &ConfigMap, network: &str) -> bool {
    dev.get("type").map(String::as_str) == Some("nic")
        && dev.get("network").map(String::as_str) == Some(network)
}

/// A MAC address in Incus's range (`00:16:3e:xx:xx:xx`).
pub(crate) fn random_hwaddr() -> String {
    let b = uuid::Uuid::new_v4().into_bytes();
    format!("00:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// The nic devices of an instance that need a generated MAC: the volatile key to keep it in.
pub(crate) fn missing_hwaddrs(inst: &api::Instance) -> Vec<String> {
    inst.expanded_devices
        .iter()
        .filter(|(_, d)| d.get("type").map(String::as_str) == Some("nic"))
        .filter(|(_, d)| d.get("hwaddr").is_none_or(|h| h.is_empty()))
        .map(|(name, _)| format!("volatile.{name}.hwaddr"))
        .filter(|key| !inst.put.config.contains_key(key))
        .collect()
}

/// The key naming a nic's DHCP host entry.
fn nic_key(inst: &api::Instance, device: &str) -> String {
    format!("{}_{}.{device}", inst.project, inst.name)
}

fn sys_value(name: &str, file: &str) -> String {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join(file))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Host {
    fn network_spec(&self, name: &str, config: ConfigMap) -> NetworkSpec {
        NetworkSpec {
            name: name.to_string(),
            config,
            state_dir: self.inner.dir.join("networks").join(name),
        }
    }

    fn driver_of(&self, net: &api::Network) -> Result<Arc<dyn NetworkDriver>> {
        self.inner.registry.network(
            &net.kind,
            self.network_spec(&net.name, net.put.config.clone()),
        )
    }

    fn managed_network(&self, name: &str) -> Result<api::Network> {
        self.inner
            .db
            .get::<api::Network>(Table::Networks, "", name)?
            .ok_or_else(|| Error::not_found(format!("Network {name:?} not found")))
    }

    /// What uses each of `names`: instances and profiles with a nic on it, read in one query
    /// per table whatever the number of networks.
    fn network_users(&self, names: &[&str]) -> Result<Vec<Vec<String>>> {
        let instances = self
            .inner
            .db
            .list::<api::Instance>(Table::Instances, None)?;
        let profiles = self.inner.db.list::<api::Profile>(Table::Profiles, None)?;
        Ok(names
            .iter()
            .map(|name| {
                let uses = |d: &DevicesMap| d.values().any(|d| uses_network(d, name));
                profiles
                    .iter()
                    .filter(|(_, p)| uses(&p.put.devices))
                    .map(|(proj, p)| with_project(&format!("/1.0/profiles/{}", p.name), proj))
                    .chain(
                        instances
                            .iter()
                            .filter(|(_, i)| uses(&i.put.devices))
                            .map(|(proj, i)| instance_url(proj, &i.name)),
                    )
                    .collect()
            })
            .collect())
    }

    fn in_use(&self, name: &str) -> Result<bool> {
        Ok(self
            .network_users(&[name])?
            .first()
            .is_some_and(|u| !u.is_empty()))
    }

    /// Networks: the managed ones, then the host's other interfaces (unmanaged).
    pub fn list_networks(&self) -> Result<Vec<api::Network>> {
        let mut managed: Vec<api::Network> = self
            .inner
            .db
            .list::<api::Network>(Table::Networks, Some(""))?
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        let names: Vec<&str> = managed.iter().map(|n| n.name.as_str()).collect();
        let users = self.network_users(&names)?;
        for (n, used_by) in managed.iter_mut().zip(users) {
            n.used_by = used_by;
            n.managed = true;
            n.status = "Created".into();
            n.locations = vec!["none".into()];
        }
        let mut out = super::hostinfo::interfaces_in(Path::new("/sys/class/net"));
        out.retain(|i| !managed.iter().any(|m| m.name == i.name));
        out.extend(managed);
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether a network (managed, or a host interface) has this name.
    fn network_exists(&self, name: &str) -> Result<bool> {
        Ok(self
            .inner
            .db
            .get::<api::Network>(Table::Networks, "", name)?
            .is_some()
            || Path::new("/sys/class/net").join(name).exists())
    }

    /// One network by name.
    pub fn get_network(&self, name: &str) -> Result<api::Network> {
        self.list_networks()?
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::not_found(format!("Network {name:?} not found")))
    }

    /// Creates a managed network (type `bridge` when empty) and brings it up.
    pub async fn create_network(&self, req: api::NetworksPost) -> Result<()> {
        crate::config::validate_entity_name("network", &req.name)?;
        let kind = if req.kind.is_empty() {
            "bridge".to_string()
        } else {
            req.kind.clone()
        };
        if self.network_exists(&req.name)? {
            return Err(Error::already_exists(format!(
                "Network {:?} already exists",
                req.name
            )));
        }
        let driver = self
            .inner
            .registry
            .network(&kind, self.network_spec(&req.name, req.put.config.clone()))?;
        driver.validate_config(&req.put.config)?;
        let mut put = req.put;
        driver.fill_defaults(&mut put.config).await?;
        let net = api::Network {
            put,
            name: req.name.clone(),
            kind,
            managed: true,
            ..Default::default()
        };
        let driver = self.driver_of(&net)?;
        let up = async {
            driver.create().await?;
            driver.start().await
        };
        if let Err(e) = up.await {
            let _ = driver.delete().await;
            return Err(e);
        }
        if let Err(e) = self.inner.db.insert(Table::Networks, "", &net.name, &net) {
            let _ = driver.delete().await;
            return Err(e);
        }
        self.inner.events.lifecycle(
            "network-created",
            &format!("/1.0/networks/{}", net.name),
            "default",
            None,
        );
        Ok(())
    }

    /// Replaces a managed network's config and description and applies them live: the
    /// bridge keeps existing (instances stay attached), its addresses, rules and dnsmasq are
    /// redone.
    pub async fn update_network(&self, name: &str, put: api::NetworkPut) -> Result<()> {
        let mut net = self.managed_network(name)?;
        let probe = self
            .inner
            .registry
            .network(&net.kind, self.network_spec(name, put.config.clone()))?;
        probe.validate_config(&put.config)?;
        let mut put = put;
        probe.fill_defaults(&mut put.config).await?;
        let old = self.driver_of(&net)?;
        net.put = put;
        let new = self.driver_of(&net)?;
        old.stop().await?;
        new.create().await?;
        new.start().await?;
        self.inner.db.update(Table::Networks, "", name, &net)?;
        self.inner.events.lifecycle(
            "network-updated",
            &format!("/1.0/networks/{name}"),
            "default",
            None,
        );
        Ok(())
    }

    /// Renames an unused managed network (its bridge is recreated under the new name).
    pub async fn rename_network(&self, name: &str, new_name: &str) -> Result<()> {
        crate::config::validate_entity_name("network", new_name)?;
        let mut net = self.managed_network(name)?;
        if self.in_use(name)? {
            return Err(Error::busy(format!(
                "Network {name:?} is in use and cannot be renamed"
            )));
        }
        if self.network_exists(new_name)? {
            return Err(Error::already_exists(format!(
                "Network {new_name:?} already exists"
            )));
        }
        let old = self.driver_of(&net)?;
        net.name = new_name.to_string();
        let new = self.driver_of(&net)?;
        new.validate_config(&net.put.config)?;
        old.delete().await?;
        new.create().await?;
        new.start().await?;
        self.inner.db.rename(Table::Networks, "", name, new_name)?;
        self.inner.db.update(Table::Networks, "", new_name, &net)?;
        self.inner.events.lifecycle(
            "network-renamed",
            &format!("/1.0/networks/{new_name}"),
            "default",
            None,
        );
        Ok(())
    }

    /// Deletes a managed network nothing uses, with every host object it made.
    pub async fn delete_network(&self, name: &str) -> Result<()> {
        let net = self.managed_network(name)?;
        if self.in_use(name)? {
            return Err(Error::busy(format!("Network {name:?} is currently in use")));
        }
        self.driver_of(&net)?.delete().await?;
        self.inner.db.delete(Table::Networks, "", name)?;
        self.inner.events.lifecycle(
            "network-deleted",
            &format!("/1.0/networks/{name}"),
            "default",
            None,
        );
        Ok(())
    }

    /// The live state of a network's interface (managed or not).
    pub fn network_state(&self, name: &str) -> Result<api::NetworkState> {
        let iface = match self
            .inner
            .db
            .get::<api::Network>(Table::Networks, "", name)?
        {
            Some(net) => self.driver_of(&net)?.interface(),
            None => name.to_string(),
        };
        if !Path::new("/sys/class/net").join(&iface).exists() {
            return Err(Error::not_found(format!(
                "Interface {iface:?} of network {name:?} does not exist"
            )));
        }
        // IFF_UP is bit 0 of the interface flags.
        let flags = sys_value(&iface, "flags");
        let up = u32::from_str_radix(flags.trim_start_matches("0x"), 16).is_ok_and(|f| f & 1 == 1);
        let pid = std::process::id() as i32;
        let mut all = super::state::network(pid).unwrap_or_default();
        let mut state = all.remove(&iface).unwrap_or_default();
        if state.hwaddr.is_empty() {
            state.hwaddr = sys_value(&iface, "address");
        }
        Ok(api::NetworkState {
            addresses: state.addresses,
            counters: state.counters,
            hwaddr: state.hwaddr,
            mtu: sys_value(&iface, "mtu").parse().unwrap_or(state.mtu),
            state: if up { "up" } else { "down" }.into(),
            kind: if name == "lo" {
                "loopback".into()
            } else {
                "broadcast".into()
            },
        })
    }

    /// The DHCP leases of a managed network.
    pub fn network_leases(&self, name: &str) -> Result<Vec<api::NetworkLease>> {
        let net = self.managed_network(name)?;
        self.driver_of(&net)?.leases()
    }

    /// Brings every managed network up (bridge, rules, dnsmasq); run at daemon start. Returns
    /// the errors of the networks that failed, which stay down.
    pub async fn start_networks(&self) -> Vec<String> {
        let nets = match self
            .inner
            .db
            .list::<api::Network>(Table::Networks, Some(""))
        {
            Ok(n) => n,
            Err(e) => return vec![e.to_string()],
        };
        let mut errors = Vec::new();
        for (_, net) in nets {
            let r = async {
                let d = self.driver_of(&net)?;
                d.create().await?;
                d.start().await
            };
            if let Err(e) = r.await {
                errors.push(format!("network {:?}: {e}", net.name));
            }
        }
        errors
    }

    /// Resolves the nics of an instance about to start: `network=` becomes the network's
    /// interface as `parent` (the network is brought up if it is down), every nic gets its
    /// MAC (`hwaddr` or `volatile.<nic>.hwaddr`) and name, and managed networks learn the nic
    /// for DHCP and DNS.
    pub(crate) async fn prepare_nics(
        &self,
        inst: &api::Instance,
        devices: &mut DevicesMap,
    ) -> Result<()> {
        for (dev_name, dev) in devices.iter_mut() {
            if dev.get("type").map(String::as_str) != Some("nic") {
                continue;
            }
            if dev.get("hwaddr").is_none_or(|h| h.is_empty()) {
                let key = format!("volatile.{dev_name}.hwaddr");
                let mac = inst
                    .expanded_config
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| Error::internal(format!("{key} missing")))?;
                dev.insert("hwaddr".into(), mac);
            }
            dev.entry("name".into()).or_insert_with(|| dev_name.clone());
            let Some(network) = dev.get("network").cloned() else {
                continue;
            };
            let net = self.managed_network(&network).map_err(|_| {
                Error::invalid(format!(
                    "Device {dev_name:?}: network {network:?} does not exist"
                ))
            })?;
            let driver = self.driver_of(&net)?;
            let iface = driver.interface();
            if !Path::new("/sys/class/net").join(&iface).exists() {
                driver.create().await?;
            }
            driver.start().await?;
            dev.insert("parent".into(), iface);
            for (k, v) in driver.nic_settings() {
                if k == "nictype" {
                    dev.insert(k, v);
                } else {
                    dev.entry(k).or_insert(v);
                }
            }
            driver
                .register_nic(&NicRegistration {
                    key: nic_key(inst, dev_name),
                    hostname: inst.name.clone(),
                    hwaddr: dev.get("hwaddr").cloned().unwrap_or_default(),
                    ipv4: dev.get("ipv4.address").filter(|v| !v.is_empty()).cloned(),
                })
                .await?;
        }
        Ok(())
    }

    /// Forgets the DHCP/DNS entries of a deleted instance's nics.
    pub(crate) async fn release_nics(&self, inst: &api::Instance) {
        for (dev_name, dev) in &inst.expanded_devices {
            self.release_nic(inst, dev_name, dev).await;
        }
    }

    /// Forgets the DHCP/DNS entry of one nic (nothing for other devices).
    async fn release_nic(&self, inst: &api::Instance, dev_name: &str, dev: &ConfigMap) {
        let Some(network) = dev
            .get("network")
            .filter(|_| dev.get("type").map(String::as_str) == Some("nic"))
        else {
            return;
        };
        if let Ok(net) = self.managed_network(network)
            && let Ok(driver) = self.driver_of(&net)
        {
            let _ = driver.unregister_nic(&nic_key(inst, dev_name)).await;
        }
    }

    /// Applies the nic changes between `old` and the instance's current record to the running
    /// instance with init `pid`: removed and changed nics are unplugged, added and changed
    /// ones plugged (the caller holds the instance lock). Profile changes are not hot-plugged.
    pub(crate) async fn hotplug_nics(&self, old: &api::Instance, pid: i32) -> Result<()> {
        let nics = |devs: &DevicesMap| -> DevicesMap {
            devs.iter()
                .filter(|(_, d)| d.get("type").map(String::as_str) == Some("nic"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let (project, name) = (old.project.as_str(), old.name.as_str());
        let before = nics(&old.expanded_devices);
        let mut inst = self.get_instance_record(project, name)?;
        let after = nics(&inst.expanded_devices);
        let removed: Vec<&String> = before
            .keys()
            .filter(|k| after.get(*k) != before.get(*k))
            .collect();
        let added: Vec<&String> = after
            .keys()
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        if removed.is_empty() && added.is_empty() {
            return Ok(());
        }
        let plumbing = self.inner.registry.nic_plumbing().ok_or_else(|| {
            Error::unsupported("Nics cannot be changed on a running instance without incus-network")
        })?;
        for dev_name in removed {
            let dev = &before[dev_name];
            let inner = dev
                .get("name")
                .filter(|n| !n.is_empty())
                .unwrap_or(dev_name);
            plumbing.unplug(pid, inner).await?;
            self.release_nic(old, dev_name, dev).await;
        }
        if added.is_empty() {
            return Ok(());
        }
        let missing = missing_hwaddrs(&inst);
        if !missing.is_empty() {
            let mut rec: api::Instance = self.instance_row(project, name)?;
            for key in missing {
                rec.put.config.insert(key, random_hwaddr());
            }
            self.inner
                .db
                .update(Table::Instances, project, name, &rec)?;
            inst = self.get_instance_record(project, name)?;
        }
        let mut devices: DevicesMap = added
            .iter()
            .map(|k| ((*k).clone(), after[*k].clone()))
            .collect();
        self.prepare_nics(&inst, &mut devices).await?;
        for (dev_name, dev) in &devices {
            let get = |k: &str| dev.get(k).cloned().unwrap_or_default();
            let mtu =
                match dev.get("mtu").filter(|m| !m.is_empty()) {
                    Some(m) => Some(m.parse::<u32>().map_err(|_| {
                        Error::invalid(format!("Device {dev_name:?}: bad mtu {m:?}"))
                    })?),
                    None => None,
                };
            let nic = HotNic {
                nictype: get("nictype"),
                parent: get("parent"),
                host_name: get("host_name"),
                name: get("name"),
                hwaddr: get("hwaddr"),
                mtu,
            };
            plumbing.plug(pid, &nic).await?;
        }
        Ok(())
    }
}
