//! `incus network`: list, show, create, delete, rename, info, list-leases, attach and detach
//! (to instances and profiles), and get/set/unset/edit of a network's configuration.

use super::Ctx;
use crate::CliError;
use crate::args::{KeyCmd, NetworkCmd};
use crate::cmd::config::{Object, key_cmd, map_of};
use crate::format::{render, to_yaml};
use incus_client::Client;
use incus_core::api;
use serde_json::{Map, Value};
use std::io::{IsTerminal, Read};

/// Runs one `incus network` subcommand.
pub async fn run(ctx: &Ctx, cmd: NetworkCmd) -> Result<i32, CliError> {
    match cmd {
        NetworkCmd::List { format } => list(&ctx.client()?, format).await?,
        NetworkCmd::Show { name } => {
            let (c, name) = ctx.resolve(&name)?;
            let mut n = c.network(name).await?;
            n.used_by.sort();
            print!("{}", to_yaml(&n)?);
        }
        NetworkCmd::Create { name, config, kind } => {
            let (c, name) = ctx.resolve(&name)?;
            let mut put = stdin_put()?;
            put.config.extend(super::key_values(&config)?);
            let req = api::NetworksPost {
                put,
                name: name.to_string(),
                kind,
            };
            c.create_network(&req).await?;
            if !ctx.quiet {
                println!("Network {name} created");
            }
        }
        NetworkCmd::Delete { name } => {
            let (c, name) = ctx.resolve(&name)?;
            c.delete_network(name).await?;
            if !ctx.quiet {
                println!("Network {name} deleted");
            }
        }
        NetworkCmd::Rename { name, new_name } => {
            let (c, name) = ctx.resolve(&name)?;
            c.rename_network(name, &new_name).await?;
            if !ctx.quiet {
                println!("Network {name} renamed to {new_name}");
            }
        }
        NetworkCmd::Info { name } => {
            let (c, name) = ctx.resolve(&name)?;
            print!("{}", info_text(name, &c.network_state(name).await?));
        }
        NetworkCmd::ListLeases { name, format } => {
            let (c, name) = ctx.resolve(&name)?;
            let leases = c.network_leases(name).await?;
            let mut rows: Vec<Vec<String>> = leases
                .iter()
                .map(|l| {
                    vec![
                        l.hostname.clone(),
                        l.hwaddr.clone(),
                        l.address.clone(),
                        l.kind.to_uppercase(),
                    ]
                })
                .collect();
            rows.sort();
            let header = ["HOSTNAME", "MAC ADDRESS", "IP ADDRESS", "TYPE"].map(String::from);
            print!("{}", render(format, &header, rows, &leases)?);
        }
        NetworkCmd::Attach {
            network,
            instance,
            device,
            interface,
        } => attach(ctx, &network, false, &instance, device, interface).await?,
        NetworkCmd::AttachProfile {
            network,
            profile,
            device,
            interface,
        } => attach(ctx, &network, true, &profile, device, interface).await?,
        NetworkCmd::Detach {
            network,
            instance,
            device,
        } => detach(ctx, &network, false, &instance, device).await?,
        NetworkCmd::DetachProfile {
            network,
            profile,
            device,
        } => detach(ctx, &network, true, &profile, device).await?,
        NetworkCmd::Keys(cmd) => {
            let (c, name) = ctx.resolve(cmd.name())?;
            if !matches!(cmd, KeyCmd::Get { .. }) && !c.network(name).await?.managed {
                return Err(CliError::msg("Only managed networks can be modified"));
            }
            return key_cmd(Object::network(c, name), cmd).await;
        }
    }
    Ok(0)
}

async fn list(c: &Client, format: crate::format::Format) -> Result<(), CliError> {
    let nets = c.networks().await?;
    let mut rows: Vec<Vec<String>> = nets
        .iter()
        .map(|n| {
            let conf = |k: &str| n.put.config.get(k).cloned().unwrap_or_default();
            vec![
                n.name.clone(),
                n.kind.clone(),
                if n.managed { "YES" } else { "NO" }.to_string(),
                conf("ipv4.address"),
                conf("ipv6.address"),
                n.put.description.clone(),
                n.used_by.len().to_string(),
                n.status.to_uppercase(),
            ]
        })
        .collect();
    rows.sort();
    let header = [
        "NAME",
        "TYPE",
        "MANAGED",
        "IPV4",
        "IPV6",
        "DESCRIPTION",
        "USED BY",
        "STATE",
    ]
    .map(String::from);
    print!("{}", render(format, &header, rows, &nets)?);
    Ok(())
}

/// The writable fields given as YAML on stdin (none when stdin is a terminal or empty).
fn stdin_put() -> Result<api::NetworkPut, CliError> {
    if std::io::stdin().is_terminal() {
        return Ok(api::NetworkPut::default());
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    if text.trim().is_empty() {
        return Ok(api::NetworkPut::default());
    }
    serde_saphyr::from_str(&text).map_err(|e| CliError::msg(e.to_string()))
}

/// `incus network info` as Incus prints it.
fn info_text(name: &str, state: &api::NetworkState) -> String {
    let mut out = format!(
        "Name: {name}\nMAC address: {}\nMTU: {}\nState: {}\nType: {}\n",
        state.hwaddr, state.mtu, state.state, state.kind
    );
    if !state.addresses.is_empty() {
        out.push_str("\nIP addresses:\n");
        for a in &state.addresses {
            out.push_str(&format!(
                "  {}\t{}/{} ({})\n",
                a.family, a.address, a.netmask, a.scope
            ));
        }
    }
    let k = &state.counters;
    out.push_str(&format!(
        "\nNetwork usage:\n  Bytes received: {}\n  Bytes sent: {}\n  Packets received: {}\n  \
         Packets sent: {}\n",
        incus_core::config::byte_size_string(k.bytes_received.max(0) as u64),
        incus_core::config::byte_size_string(k.bytes_sent.max(0) as u64),
        k.packets_received,
        k.packets_sent
    ));
    out
}

/// The nic device Incus makes for `network attach`: `network=` for a managed network, else a
/// `bridged` nic on an unmanaged bridge and a `macvlan` nic on any other interface.
fn nic_for(net: &api::Network, interface: Option<String>) -> Map<String, Value> {
    let mut dev = Map::new();
    dev.insert("type".into(), "nic".into());
    if net.managed {
        dev.insert("network".into(), net.name.clone().into());
    } else {
        let nictype = if net.kind == "bridge" {
            "bridged"
        } else {
            "macvlan"
        };
        dev.insert("nictype".into(), nictype.into());
        dev.insert("parent".into(), net.name.clone().into());
    }
    if let Some(i) = interface {
        dev.insert("name".into(), i.into());
    }
    dev
}

async fn attach(
    ctx: &Ctx,
    network: &str,
    profile: bool,
    target: &str,
    device: Option<String>,
    interface: Option<String>,
) -> Result<(), CliError> {
    let (c, network) = ctx.resolve(network)?;
    let net = c.network(network).await?;
    let dev_name = device.unwrap_or_else(|| network.to_string());
    let dev = nic_for(&net, interface);
    Object::device_holder(c, profile, target)
        .modify(|body| {
            let devices = map_of(body, "devices");
            if devices.contains_key(&dev_name) {
                return Err(CliError::msg(format!(
                    "The device already exists: {dev_name}"
                )));
            }
            devices.insert(dev_name.clone(), Value::Object(dev));
            Ok(())
        })
        .await
}

/// Whether device `d` is a nic on `network` (by `network=` or `parent=`).
fn is_nic_on(d: &Value, network: &str) -> bool {
    let field = |k: &str| d.get(k).and_then(Value::as_str);
    field("type") == Some("nic")
        && (field("network") == Some(network) || field("parent") == Some(network))
}

async fn detach(
    ctx: &Ctx,
    network: &str,
    profile: bool,
    target: &str,
    device: Option<String>,
) -> Result<(), CliError> {
    let (c, network) = ctx.resolve(network)?;
    Object::device_holder(c, profile, target)
        .modify(|body| {
            let devices = map_of(body, "devices");
            let name = match device {
                Some(d) => d,
                None => {
                    let mut matching = devices.iter().filter(|(_, d)| is_nic_on(d, network));
                    let first = matching.next().map(|(n, _)| n.clone());
                    if matching.next().is_some() {
                        return Err(CliError::msg(
                            "More than one device matches, specify the device name",
                        ));
                    }
                    first.ok_or_else(|| CliError::msg("No device found for this network"))?
                }
            };
            match devices.get(&name) {
                None => Err(CliError::msg("The specified device doesn't exist")),
                Some(d) if !is_nic_on(d, network) => Err(CliError::msg(
                    "The specified device doesn't match the network",
                )),
                Some(_) => {
                    devices.remove(&name);
                    Ok(())
                }
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, kind: &str, managed: bool) -> api::Network {
        api::Network {
            name: name.into(),
            kind: kind.into(),
            managed,
            ..Default::default()
        }
    }

    #[test]
    fn attach_makes_the_nic_incus_makes() {
        let managed = Value::Object(nic_for(&net("incusbr0", "bridge", true), None));
        assert_eq!(
            managed,
            serde_json::json!({"type": "nic", "network": "incusbr0"})
        );
        let bridge = Value::Object(nic_for(&net("br9", "bridge", false), Some("eth1".into())));
        assert_eq!(
            bridge,
            serde_json::json!({"type": "nic", "nictype": "bridged", "parent": "br9", "name": "eth1"})
        );
        let phys = Value::Object(nic_for(&net("enp1", "physical", false), None));
        assert_eq!(
            phys,
            serde_json::json!({"type": "nic", "nictype": "macvlan", "parent": "enp1"})
        );
        assert!(is_nic_on(&managed, "incusbr0"));
        assert!(is_nic_on(&phys, "enp1"));
        assert!(!is_nic_on(&phys, "incusbr0"));
        assert!(!is_nic_on(
            &serde_json::json!({"type": "disk", "parent": "enp1"}),
            "enp1"
        ));
    }

    #[test]
    fn info_prints_like_incus() {
        let state = api::NetworkState {
            addresses: vec![api::InstanceStateNetworkAddress {
                family: "inet".into(),
                address: "10.1.2.1".into(),
                netmask: "24".into(),
                scope: "global".into(),
            }],
            counters: api::InstanceStateNetworkCounters {
                bytes_received: 2500,
                packets_received: 3,
                ..Default::default()
            },
            hwaddr: "00:16:3e:00:00:01".into(),
            mtu: 1500,
            state: "up".into(),
            kind: "broadcast".into(),
        };
        let text = info_text("br0", &state);
        assert!(text.starts_with("Name: br0\nMAC address: 00:16:3e:00:00:01\nMTU: 1500\n"));
        assert!(text.contains("\nIP addresses:\n  inet\t10.1.2.1/24 (global)\n"));
        assert!(text.contains("  Bytes received: 2.50kB\n"), "{text}");
        assert!(text.contains("  Packets received: 3\n"));
    }
}
