//! The dnsmasq instance serving DHCP and DNS on one bridge. Its files live in the network's
//! state directory: `dnsmasq.pid`, `dnsmasq.leases`, `dnsmasq.raw` (`raw.dnsmasq`) and
//! `dnsmasq.hosts/` (one file per instance nic: `MAC[,IPv4],NAME`, read by dnsmasq as they
//! change). dnsmasq daemonizes once it listens, so a successful start means it serves; it
//! keeps running across daemon restarts and is found again through its pid file.

use incus_core::api;
use incus_core::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the dnsmasq of one bridge serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Setup {
    /// The bridge interface.
    pub bridge: String,
    /// The bridge's IPv4 address and DHCP range (first, last), when DHCPv4 is on.
    pub ipv4: Option<(String, Option<(String, String)>)>,
    /// The bridge's IPv6 address, when IPv6 is configured (router advertisements and SLAAC).
    pub ipv6: Option<String>,
    /// DNS domain (`dns.domain`).
    pub domain: String,
    /// Extra configuration (`raw.dnsmasq`).
    pub raw: String,
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("dnsmasq.pid")
}

/// The directory of per-nic host entries.
pub fn hosts_dir(dir: &Path) -> PathBuf {
    dir.join("dnsmasq.hosts")
}

/// The leases file.
pub fn leases_file(dir: &Path) -> PathBuf {
    dir.join("dnsmasq.leases")
}

/// The command line for `setup` with its files in `dir`.
pub fn args(dir: &Path, s: &Setup) -> Vec<String> {
    let mut a = vec![
        "--strict-order".to_string(),
        "--bind-interfaces".into(),
        format!("--pid-file={}", pid_file(dir).display()),
        "--except-interface=lo".into(),
        "--no-ping".into(),
        "--no-hosts".into(),
        format!("--interface={}", s.bridge),
        "--dhcp-rapid-commit".into(),
        "--quiet-dhcp".into(),
        "--quiet-dhcp6".into(),
        "--quiet-ra".into(),
        format!("--dhcp-leasefile={}", leases_file(dir).display()),
        format!("--dhcp-hostsdir={}", hosts_dir(dir).display()),
        "--dhcp-no-override".into(),
        "--dhcp-authoritative".into(),
    ];
    if let Some((addr, range)) = &s.ipv4 {
        a.push(format!("--listen-address={addr}"));
        if let Some((first, last)) = range {
            a.push(format!("--dhcp-range={first},{last},1h"));
        }
    }
    if let Some(addr) = &s.ipv6 {
        a.push(format!("--listen-address={addr}"));
        a.push("--enable-ra".into());
        a.push(format!(
            "--dhcp-range=::,constructor:{},ra-stateless,ra-names",
            s.bridge
        ));
    }
    a.push(format!("--domain={}", s.domain));
    a.push(format!("--local=/{}/", s.domain));
    a.push(format!(
        "--interface-name=_gateway.{},{}",
        s.domain, s.bridge
    ));
    a.push(format!("--conf-file={}", dir.join("dnsmasq.raw").display()));
    a.push("--user=nobody".into());
    a.push("--group=nogroup".into());
    a
}

/// The pid of the dnsmasq serving `dir`, if it runs (checked against its command line, so a
/// recycled pid is never taken for it).
pub fn running(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let want = format!("--pid-file={}", pid_file(dir).display());
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == want.as_bytes())
        .then_some(pid)
}

/// Starts dnsmasq for `setup` unless one already serves `dir`.
pub async fn start(dir: &Path, setup: &Setup) -> Result<()> {
    if running(dir).is_some() {
        return Ok(());
    }
    let io = |e: std::io::Error| Error::internal(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(hosts_dir(dir)).map_err(io)?;
    std::fs::write(dir.join("dnsmasq.raw"), &setup.raw).map_err(io)?;
    let leases = leases_file(dir);
    if !leases.exists() {
        std::fs::write(&leases, b"").map_err(io)?;
    }
    // dnsmasq drops to nobody before it rewrites the leases file.
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .map(|u| u.uid);
    std::os::unix::fs::chown(&leases, nobody.map(|u| u.as_raw()), None).map_err(io)?;
    let out = tokio::process::Command::new("dnsmasq")
        .args(args(dir, setup))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::internal(format!("Running dnsmasq: {e}")))?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "dnsmasq failed to start: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Stops the dnsmasq serving `dir`, if any, and waits for it to go.
pub async fn stop(dir: &Path) -> Result<()> {
    let Some(pid) = running(dir) else {
        return Ok(());
    };
    let raw = pid;
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    // Until it is gone or a zombie: only then are its sockets closed (its command line
    // empties earlier, while it still holds them).
    let exited = || {
        std::fs::read_to_string(format!("/proc/{raw}/stat")).map_or(true, |st| {
            st.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
    };
    for i in 0..200 {
        if exited() {
            break;
        }
        if i == 100 {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_file(pid_file(dir));
    Ok(())
}

/// Writes the host entry of one nic (dnsmasq picks it up by itself).
pub fn write_host(
    dir: &Path,
    key: &str,
    hwaddr: &str,
    ipv4: Option<&str>,
    name: &str,
) -> Result<()> {
    let hosts = hosts_dir(dir);
    let io = |e: std::io::Error| Error::internal(format!("{}: {e}", hosts.display()));
    std::fs::create_dir_all(&hosts).map_err(io)?;
    let line = match ipv4 {
        Some(ip) => format!("{hwaddr},{ip},{name}\n"),
        None => format!("{hwaddr},{name}\n"),
    };
    let tmp = hosts.join(format!(".{key}.tmp"));
    std::fs::write(&tmp, line).map_err(io)?;
    std::fs::rename(&tmp, hosts.join(key)).map_err(io)
}

/// Removes the host entry of one nic.
pub fn remove_host(dir: &Path, key: &str) -> Result<()> {
    match std::fs::remove_file(hosts_dir(dir).join(key)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::internal(format!("Removing host entry {key}: {e}"))),
    }
}

/// One entry of the hosts directory: a nic's MAC, its static IPv4 address if any, its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// MAC address, lower case.
    pub hwaddr: String,
    /// Static IPv4 address (`ipv4.address` on the nic).
    pub ipv4: Option<String>,
    /// Instance name.
    pub name: String,
}

/// The leases of dnsmasq's lease file `text`, as Incus lists them: a lease is `static` when
/// it holds the static address of its nic, else `dynamic`; static addresses not leased yet
/// are listed too.
pub fn parse_leases(text: &str, hosts: &[HostEntry]) -> Vec<api::NetworkLease> {
    let lease = |hostname: &str, hwaddr: &str, address: &str, kind: &str| api::NetworkLease {
        hostname: hostname.into(),
        hwaddr: hwaddr.into(),
        address: address.into(),
        kind: kind.into(),
        location: "none".into(),
        project: "default".into(),
    };
    let mut out: Vec<api::NetworkLease> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || f[0] == "duid" || !f[1].contains(':') {
            continue;
        }
        let hwaddr = f[1].to_ascii_lowercase();
        let is_static = hosts
            .iter()
            .any(|h| h.hwaddr == hwaddr && h.ipv4.as_deref() == Some(f[2]));
        let hostname = if f[3] == "*" { "" } else { f[3] };
        let kind = if is_static { "static" } else { "dynamic" };
        out.push(lease(hostname, &hwaddr, f[2], kind));
    }
    for h in hosts {
        if let Some(ip) = &h.ipv4
            && !out.iter().any(|l| l.address == *ip)
        {
            out.push(lease(&h.name, &h.hwaddr, ip, "static"));
        }
    }
    out
}

/// Every host entry in `dir`.
pub fn host_entries(dir: &Path) -> Vec<HostEntry> {
    let Ok(entries) = std::fs::read_dir(hosts_dir(dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| {
            let f: Vec<&str> = t.trim().split(',').collect();
            let (hwaddr, ipv4, name) = match f.as_slice() {
                [mac, ip, name] => (mac, Some(ip.to_string()), name),
                [mac, name] => (mac, None, name),
                _ => return None,
            };
            Some(HostEntry {
                hwaddr: hwaddr.to_ascii_lowercase(),
                ipv4,
                name: name.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_leases() {
        let s = Setup {
            bridge: "br9".into(),
            ipv4: Some((
                "10.9.0.1".into(),
                Some(("10.9.0.2".into(), "10.9.0.254".into())),
            )),
            ipv6: None,
            domain: "incus".into(),
            raw: String::new(),
        };
        let a = args(Path::new("/st"), &s);
        assert!(a.contains(&"--dhcp-range=10.9.0.2,10.9.0.254,1h".to_string()));
        assert!(a.contains(&"--listen-address=10.9.0.1".to_string()));
        assert!(a.contains(&"--pid-file=/st/dnsmasq.pid".to_string()));
        assert!(!a.iter().any(|x| x == "--enable-ra"));
        let text = "1700000000 00:16:3e:aa:bb:cc 10.9.0.57 c1 01:00:16:3e:aa:bb:cc\n\
                    1700000000 00:16:3e:11:22:33 10.9.0.58 * *\n\
                    duid 00:01:00:01\n\
                    1700000000 1234 fd42::5 c2 00:01\n";
        let host = |mac: &str, ip: Option<&str>, name: &str| HostEntry {
            hwaddr: mac.into(),
            ipv4: ip.map(String::from),
            name: name.into(),
        };
        let hosts = [
            host("00:16:3e:aa:bb:cc", Some("10.9.0.57"), "c1"),
            host("00:16:3e:11:22:33", None, "c3"),
            host("00:16:3e:44:55:66", Some("10.9.0.80"), "c4"),
        ];
        let leases = parse_leases(text, &hosts);
        assert_eq!(leases.len(), 3);
        assert_eq!(leases[0].hostname, "c1");
        assert_eq!(leases[0].kind, "static");
        // A nic without a static address leases dynamically.
        assert_eq!(leases[1].hostname, "");
        assert_eq!(leases[1].kind, "dynamic");
        // A static address not leased yet is listed, as Incus lists it.
        assert_eq!(
            (leases[2].hostname.as_str(), leases[2].address.as_str()),
            ("c4", "10.9.0.80")
        );
        assert_eq!(leases[2].kind, "static");
    }
}
