//! The few link and address operations the bridge driver needs, and nic hot-plug
//! ([`NetlinkPlumbing`]), over rtnetlink (no `ip` command). Every call opens its own netlink
//! connection in the caller's network namespace (or, for hot-plug, the instance's).

use futures_util::TryStreamExt;
use incus_core::drivers::{HotNic, NicPlumbing};
use incus_core::error::{Error, Result};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::MacVlanMode;
use rtnetlink::{Handle, LinkBridge, LinkMacVlan, LinkUnspec, LinkVeth};
use std::net::IpAddr;

fn nl(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what}: {e}"))
}

fn handle() -> Result<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| nl("netlink socket", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The index of the interface `name`, if it exists.
pub async fn link_index(name: &str) -> Result<Option<u32>> {
    index_of(&handle()?, name).await
}

async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        // ENODEV: no such interface.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -19 => Ok(None),
        Err(e) => Err(nl(&format!("looking up {name}"), e)),
    }
}

/// Creates the bridge `name` unless it exists, sets its MTU and MAC when given, and brings it
/// up. Returns its index.
pub async fn ensure_bridge(name: &str, mtu: Option<u32>, hwaddr: Option<[u8; 6]>) -> Result<u32> {
    let h = handle()?;
    let index = match index_of(&h, name).await? {
        Some(i) => i,
        None => {
            h.link()
                .add(LinkBridge::new(name).build())
                .execute()
                .await
                .map_err(|e| nl(&format!("creating bridge {name}"), e))?;
            index_of(&h, name)
                .await?
                .ok_or_else(|| Error::internal(format!("bridge {name} vanished")))?
        }
    };
    let mut set = LinkUnspec::new_with_index(index).up();
    if let Some(m) = mtu {
        set = set.mtu(m);
    }
    if let Some(mac) = hwaddr {
        set = set.address(mac.to_vec());
    }
    h.link()
        .set(set.build())
        .execute()
        .await
        .map_err(|e| nl(&format!("configuring {name}"), e))?;
    Ok(index)
}

/// Makes the global addresses of interface `index` exactly `want` (link-local ones stay).
pub async fn set_addresses(index: u32, want: &[(IpAddr, u8)]) -> Result<()> {
    let h = handle()?;
    let current: Vec<_> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| nl("listing addresses", e))?;
    let mut have = Vec::new();
    for msg in current {
        let Some(ip) = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        }) else {
            continue;
        };
        if let IpAddr::V6(v6) = ip
            && v6.segments()[0] & 0xffc0 == 0xfe80
        {
            continue;
        }
        let prefix = msg.header.prefix_len;
        if want.contains(&(ip, prefix)) {
            have.push((ip, prefix));
        } else {
            h.address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| nl(&format!("removing {ip}/{prefix}"), e))?;
        }
    }
    for (ip, prefix) in want {
        if !have.contains(&(*ip, *prefix)) {
            h.address()
                .add(index, *ip, *prefix)
                .execute()
                .await
                .map_err(|e| nl(&format!("adding {ip}/{prefix}"), e))?;
        }
    }
    Ok(())
}

/// Every address configured in this network namespace: (interface index, address, prefix).
pub async fn all_addresses() -> Result<Vec<(u32, IpAddr, u8)>> {
    let h = handle()?;
    let msgs: Vec<_> = h
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| nl("listing addresses", e))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| {
            let (index, prefix) = (m.header.index, m.header.prefix_len);
            m.attributes.into_iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some((index, ip, prefix)),
                _ => None,
            })
        })
        .collect())
}

/// Deletes the interface `name` if it exists.
pub async fn delete_link(name: &str) -> Result<()> {
    let h = handle()?;
    if let Some(index) = index_of(&h, name).await? {
        h.link()
            .del(index)
            .execute()
            .await
            .map_err(|e| nl(&format!("deleting {name}"), e))?;
    }
    Ok(())
}

/// A netlink handle bound to the network namespace of process `pid`: the socket is opened by
/// a short-lived thread that first joins that namespace (a socket keeps the namespace it was
/// made in), so no thread of the caller ever changes namespace.
async fn handle_in(pid: i32) -> Result<Handle> {
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&ns_path).map_err(|e| nl(&ns_path, e))?;
    let runtime = tokio::runtime::Handle::current();
    let opened = std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| nl("joining the instance's network namespace", e))?;
        // The connection registers with the caller's runtime, from this thread.
        let _enter = runtime.enter();
        rtnetlink::new_connection().map_err(|e| nl("netlink socket", e))
    })
    .join()
    .map_err(|_| Error::internal("the netlink namespace thread panicked"))?;
    let (conn, handle, _) = opened?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A random interface name with `prefix` (at most 15 bytes in all).
pub fn random_name(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{prefix}{:08x}", h.finish() as u32)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(mac: &str) -> Result<[u8; 6]> {
    let bytes: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::invalid(format!("Invalid MAC address {mac:?}")))?;
    bytes
        .try_into()
        .map_err(|_| Error::invalid(format!("Invalid MAC address {mac:?}")))
}

/// Creates the interface `nic` describes in this namespace, its instance end named `inner`
/// (MAC and MTU set), and returns that end's index. A veth's host end joins the bridge and is
/// brought up.
async fn create_nic(h: &Handle, nic: &HotNic, inner: &str) -> Result<u32> {
    let what = |e| nl(&format!("creating nic {}", nic.name), e);
    let parent_index = |p: &str| {
        let p = p.to_string();
        async move {
            index_of(h, &p)
                .await?
                .ok_or_else(|| Error::invalid(format!("Parent interface {p:?} does not exist")))
        }
    };
    match nic.nictype.as_str() {
        "bridged" | "p2p" => {
            let host = if nic.host_name.is_empty() {
                random_name("veth")
            } else {
                nic.host_name.clone()
            };
            let bridge = if nic.nictype == "bridged" {
                Some(parent_index(&nic.parent).await?)
            } else {
                None
            };
            h.link()
                .add(LinkVeth::new(&host, inner).build())
                .execute()
                .await
                .map_err(what)?;
            let host_index = index_of(h, &host)
                .await?
                .ok_or_else(|| Error::internal(format!("veth {host} vanished")))?;
            let mut set = LinkUnspec::new_with_index(host_index).up();
            if let Some(b) = bridge {
                set = set.controller(b);
            }
            if let Some(m) = nic.mtu {
                set = set.mtu(m);
            }
            if let Err(e) = h.link().set(set.build()).execute().await {
                let _ = h.link().del(host_index).execute().await;
                return Err(what(e));
            }
        }
        "macvlan" => {
            let parent = parent_index(&nic.parent).await?;
            h.link()
                .add(LinkMacVlan::new(inner, parent, MacVlanMode::Bridge).build())
                .execute()
                .await
                .map_err(what)?;
        }
        other => {
            return Err(Error::invalid(format!(
                "nictype {other:?} cannot be hot-plugged"
            )));
        }
    }
    let index = index_of(h, inner)
        .await?
        .ok_or_else(|| Error::internal(format!("nic {inner} vanished")))?;
    let mut set = LinkUnspec::new_with_index(index).address(parse_mac(&nic.hwaddr)?.to_vec());
    if let Some(m) = nic.mtu {
        set = set.mtu(m);
    }
    if let Err(e) = h.link().set(set.build()).execute().await {
        let _ = h.link().del(index).execute().await;
        return Err(what(e));
    }
    Ok(index)
}

/// Hot-plugs instance nics over netlink ([`NicPlumbing`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct NetlinkPlumbing;

#[async_trait::async_trait]
impl NicPlumbing for NetlinkPlumbing {
    async fn plug(&self, pid: i32, nic: &HotNic) -> Result<()> {
        let h = handle()?;
        let inner = random_name("inc");
        let index = create_nic(&h, nic, &inner).await?;
        let pid_u32 = u32::try_from(pid).map_err(|_| Error::invalid("bad pid"))?;
        if let Err(e) = h
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .setns_by_pid(pid_u32)
                    .build(),
            )
            .execute()
            .await
        {
            let _ = h.link().del(index).execute().await;
            return Err(nl(&format!("moving nic {} into the instance", nic.name), e));
        }
        // Inside: rename to the wanted name (it arrives down, as with Incus).
        let inside = handle_in(pid).await?;
        let moved = index_of(&inside, &inner).await?.ok_or_else(|| {
            Error::internal(format!("nic {inner} did not arrive in the instance"))
        })?;
        if let Err(e) = inside
            .link()
            .set(
                LinkUnspec::new_with_index(moved)
                    .name(nic.name.clone())
                    .build(),
            )
            .execute()
            .await
        {
            let _ = inside.link().del(moved).execute().await;
            return Err(nl(&format!("naming nic {} in the instance", nic.name), e));
        }
        Ok(())
    }

    async fn unplug(&self, pid: i32, name: &str) -> Result<()> {
        let inside = handle_in(pid).await?;
        if let Some(index) = index_of(&inside, name).await? {
            inside
                .link()
                .del(index)
                .execute()
                .await
                .map_err(|e| nl(&format!("removing nic {name} from the instance"), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_names() {
        assert_eq!(
            parse_mac("00:16:3e:0A:fd:5d").expect("mac"),
            [0, 0x16, 0x3e, 0x0a, 0xfd, 0x5d]
        );
        for bad in [
            "00:16:3e:0a:fd",
            "00:16:3e:0a:fd:5d:00",
            "zz:16:3e:0a:fd:5d",
            "",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        let (a, b) = (random_name("veth"), random_name("veth"));
        assert!(a.len() <= 15 && a.starts_with("veth"), "{a}");
        assert_ne!(a, b);
    }
}
