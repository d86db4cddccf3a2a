//! The few link and address operations the bridge driver needs, over rtnetlink (no `ip`
//! command). Every call opens its own netlink connection in the caller's network namespace.

use futures_util::TryStreamExt;
use incus_core::error::{Error, Result};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::{Handle, LinkBridge, LinkUnspec};
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
