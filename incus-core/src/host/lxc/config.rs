//! Generation of the liblxc configuration of one container from its [`InstanceSpec`].
//!
//! The output is a complete config file (no `lxc.include` of distribution files), written
//! anew before every start, so config and device changes apply at the next start.

use crate::config::{CpuLimit, is_true, parse_cpu_limit, parse_size};
use crate::drivers::InstanceSpec;
use crate::error::{Error, Result};
use crate::host::cgroup::Layout;
use std::fmt::Write as _;
use std::path::Path;

/// Host facts the config depends on, gathered once.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// cgroup layout carrying the controllers.
    pub cgroup: Layout,
    /// Online CPU count.
    pub cpus: u32,
    /// Total memory in bytes.
    pub memory: u64,
    /// A short tag unique to the state directory, for cgroup names.
    pub tag: String,
}

/// A device node a unix-char/unix-block device resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// `c` or `b`.
    pub kind: char,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Host path to bind mount.
    pub host_path: String,
}

/// Renders the config. `resolve_node` turns a unix device's config into a host node (a seam:
/// tests pass a fake, the driver stats or creates the node).
pub fn render(
    spec: &InstanceSpec,
    facts: &HostFacts,
    seccomp_file: &Path,
    resolve_node: &dyn Fn(&str, &crate::api::ConfigMap) -> Result<DeviceNode>,
) -> Result<String> {
    let mut out = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(out, "{k} = {v}");
    };
    let cg = match facts.cgroup {
        Layout::V1 => "lxc.cgroup",
        Layout::V2 => "lxc.cgroup2",
    };
    line("lxc.uts.name", &spec.name);
    line("lxc.rootfs.path", &format!("dir:{}", spec.rootfs.display()));
    line("lxc.autodev", "1");
    line("lxc.pty.max", "1024");
    line("lxc.tty.max", "0");
    line("lxc.mount.auto", "proc:mixed sys:mixed cgroup:mixed");
    line("lxc.apparmor.profile", "unconfined");
    line("lxc.seccomp.profile", &seccomp_file.display().to_string());
    let nics = render_nics(spec)?;
    if nics.is_empty() {
        line("lxc.net.0.type", "empty");
    }
    for (k, v) in &nics {
        line(k, v);
    }
    line(
        "lxc.console.logfile",
        &spec.log_dir.join("console.log").display().to_string(),
    );
    line(
        "lxc.cgroup.dir.container",
        &format!("incus.{}.payload.{}", facts.tag, spec.runtime_name),
    );
    line(
        "lxc.cgroup.dir.monitor",
        &format!("incus.{}.monitor.{}", facts.tag, spec.runtime_name),
    );
    match &spec.idmap {
        Some(map) => {
            line("lxc.idmap", &format!("u 0 {} {}", map.base, map.size));
            line("lxc.idmap", &format!("g 0 {} {}", map.base, map.size));
        }
        None => line(
            "lxc.cap.drop",
            "mac_admin mac_override sys_time sys_module sys_rawio",
        ),
    }
    for (k, v) in &spec.config {
        if let Some(var) = k.strip_prefix("environment.") {
            line("lxc.environment", &format!("{var}={v}"));
        }
    }

    // Resource limits.
    if let Some(v) = spec.config.get("limits.memory").filter(|v| !v.is_empty()) {
        let bytes = match v.strip_suffix('%') {
            Some(p) => {
                let pct: u64 = p.parse().map_err(|_| Error::invalid("bad limits.memory"))?;
                facts.memory.saturating_mul(pct) / 100
            }
            None => parse_size(v).map_err(Error::invalid)?,
        };
        match facts.cgroup {
            Layout::V1 => line("lxc.cgroup.memory.limit_in_bytes", &bytes.to_string()),
            Layout::V2 => line("lxc.cgroup2.memory.max", &bytes.to_string()),
        }
    }
    if let Some(v) = spec
        .config
        .get("limits.processes")
        .filter(|v| !v.is_empty())
    {
        line(&format!("{cg}.pids.max"), v);
    }
    if let Some(v) = spec.config.get("limits.cpu").filter(|v| !v.is_empty()) {
        let ids = match parse_cpu_limit(v).map_err(Error::invalid)? {
            CpuLimit::Count(n) => (0..n.min(facts.cpus.max(1))).collect::<Vec<_>>(),
            CpuLimit::Set(ids) => ids,
        };
        let set = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        line(&format!("{cg}.cpuset.cpus"), &set);
    }
    if let Some(v) = spec
        .config
        .get("limits.cpu.allowance")
        .filter(|v| !v.is_empty())
    {
        if let Some(pct) = v.strip_suffix('%') {
            let pct: u64 = pct
                .parse()
                .map_err(|_| Error::invalid("bad limits.cpu.allowance"))?;
            match facts.cgroup {
                Layout::V1 => line(
                    "lxc.cgroup.cpu.shares",
                    &(1024 * pct / 100).max(2).to_string(),
                ),
                Layout::V2 => line("lxc.cgroup2.cpu.weight", &pct.clamp(1, 10000).to_string()),
            }
        } else if let Some((q, p)) = v.split_once('/') {
            let ms = |s: &str| -> Result<u64> {
                s.trim_end_matches("ms")
                    .parse::<u64>()
                    .map(|n| n * 1000)
                    .map_err(|_| Error::invalid("bad limits.cpu.allowance"))
            };
            let (q, p) = (ms(q)?, ms(p)?);
            match facts.cgroup {
                Layout::V1 => {
                    line("lxc.cgroup.cpu.cfs_period_us", &p.to_string());
                    line("lxc.cgroup.cpu.cfs_quota_us", &q.to_string());
                }
                Layout::V2 => line("lxc.cgroup2.cpu.max", &format!("{q} {p}")),
            }
        }
    }

    // Devices, in name order for a stable file.
    for (name, dev) in &spec.devices {
        match dev.get("type").map(String::as_str) {
            Some("disk") => {
                let path = dev.get("path").map(String::as_str).unwrap_or("");
                if path == "/" {
                    continue;
                }
                let Some(src) = dev.get("source") else {
                    continue;
                };
                let src_path = Path::new(src);
                if !src_path.exists() {
                    if is_true(dev, "optional") {
                        continue;
                    }
                    return Err(Error::invalid(format!(
                        "Device {name:?}: source {src:?} does not exist"
                    )));
                }
                let create = if src_path.is_dir() { "dir" } else { "file" };
                let mut opts = format!("bind,create={create}");
                if is_true(dev, "recursive") {
                    opts = format!("r{opts}");
                }
                if is_true(dev, "readonly") {
                    opts.push_str(",ro");
                }
                // `shift`: an idmapped mount, so an unprivileged container sees the source's
                // ids unshifted (custom volumes are stored that way).
                if is_true(dev, "shift") && spec.idmap.is_some() {
                    opts.push_str(",idmap=container");
                }
                line(
                    "lxc.mount.entry",
                    &format!("{src} {} none {opts} 0 0", mount_target(path)?),
                );
            }
            Some("unix-char") | Some("unix-block") => {
                let node = resolve_node(name, dev)?;
                let target = dev
                    .get("path")
                    .or_else(|| dev.get("source"))
                    .map(String::as_str)
                    .unwrap_or("");
                line(
                    &format!("{cg}.devices.allow"),
                    &format!("{} {}:{} rwm", node.kind, node.major, node.minor),
                );
                line(
                    "lxc.mount.entry",
                    &format!(
                        "{} {} none bind,create=file 0 0",
                        node.host_path,
                        mount_target(target)?
                    ),
                );
            }
            _ => {}
        }
    }

    if let Some(raw) = spec.config.get("raw.lxc") {
        out.push_str(raw);
        if !raw.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// The `lxc.net.N.*` lines of the instance's nics, in device name order. Nics must be
/// resolved first (the engine turns `network=` into `parent` and fills `hwaddr` and `name`):
/// `bridged` nics are veth pairs on their parent bridge, `macvlan` nics macvlan interfaces
/// on their parent, `p2p` nics veth pairs left unattached on the host.
pub fn render_nics(spec: &InstanceSpec) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut n = 0;
    for (name, dev) in &spec.devices {
        if dev.get("type").map(String::as_str) != Some("nic") {
            continue;
        }
        let get = |k: &str| dev.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let nictype = get("nictype").unwrap_or("");
        let mut add = |k: &str, v: &str| out.push((format!("lxc.net.{n}.{k}"), v.to_string()));
        match nictype {
            "bridged" | "macvlan" => {
                let parent = get("parent").ok_or_else(|| {
                    Error::invalid(format!("Device {name:?}: a {nictype} nic needs a parent"))
                })?;
                if nictype == "bridged" {
                    add("type", "veth");
                    if let Some(h) = get("host_name") {
                        add("veth.pair", h);
                    }
                } else {
                    add("type", "macvlan");
                    add("macvlan.mode", "bridge");
                }
                add("link", parent);
            }
            "p2p" => {
                add("type", "veth");
                if let Some(h) = get("host_name") {
                    add("veth.pair", h);
                }
            }
            other => {
                return Err(Error::invalid(format!(
                    "Device {name:?}: nictype {other:?} is not supported"
                )));
            }
        }
        add("name", get("name").unwrap_or(name));
        if let Some(mac) = get("hwaddr") {
            add("hwaddr", mac);
        }
        if let Some(mtu) = get("mtu") {
            mtu.parse::<u32>()
                .map_err(|_| Error::invalid(format!("Device {name:?}: bad mtu {mtu:?}")))?;
            add("mtu", mtu);
        }
        add("flags", "up");
        n += 1;
    }
    Ok(out)
}

/// A mount target relative to the rootfs, refusing `..` and empty paths.
fn mount_target(path: &str) -> Result<String> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty()
        || rel.split('/').any(|c| c == ".." || c == ".")
        || rel.contains(char::is_whitespace)
    {
        return Err(Error::invalid(format!("Invalid device path {path:?}")));
    }
    Ok(rel.to_string())
}

/// The seccomp policy written next to the config: Incus's default denylist.
pub const SECCOMP_POLICY: &str = "2\ndenylist\nreject_force_umount\n[all]\nkexec_load errno 38\nopen_by_handle_at errno 38\ninit_module errno 38\nfinit_module errno 38\ndelete_module errno 38\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ConfigMap, DevicesMap};
    use crate::drivers::IdShift;
    use std::path::PathBuf;

    fn spec(config: &[(&str, &str)], devices: DevicesMap) -> InstanceSpec {
        InstanceSpec {
            name: "c1".into(),
            project: "default".into(),
            runtime_name: "c1".into(),
            rootfs: PathBuf::from("/var/lib/incus/storage-pools/default/containers/c1/rootfs"),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            devices,
            idmap: Some(IdShift {
                base: 100000,
                size: 65536,
            }),
            log_dir: PathBuf::from("/var/lib/incus/logs/c1"),
        }
    }

    fn facts(cgroup: Layout) -> HostFacts {
        HostFacts {
            cgroup,
            cpus: 2,
            memory: 1 << 30,
            tag: "abcd".into(),
        }
    }

    fn no_nodes(_: &str, _: &ConfigMap) -> Result<DeviceNode> {
        Ok(DeviceNode {
            kind: 'c',
            major: 1,
            minor: 3,
            host_path: "/dev/null".into(),
        })
    }

    #[test]
    fn renders_limits_for_v1_and_v2() {
        let s = spec(
            &[
                ("limits.memory", "50%"),
                ("limits.processes", "20"),
                ("limits.cpu", "4"),
                ("environment.FOO", "bar"),
            ],
            DevicesMap::new(),
        );
        let v1 = render(&s, &facts(Layout::V1), Path::new("/s"), &no_nodes).expect("render");
        assert!(v1.contains("lxc.cgroup.memory.limit_in_bytes = 536870912\n"));
        assert!(v1.contains("lxc.cgroup.pids.max = 20\n"));
        assert!(
            v1.contains("lxc.cgroup.cpuset.cpus = 0,1\n"),
            "count capped at host CPUs"
        );
        assert!(v1.contains("lxc.idmap = u 0 100000 65536\n"));
        assert!(v1.contains("lxc.environment = FOO=bar\n"));
        assert!(v1.contains("lxc.cgroup.dir.container = incus.abcd.payload.c1\n"));
        let v2 = render(&s, &facts(Layout::V2), Path::new("/s"), &no_nodes).expect("render");
        assert!(v2.contains("lxc.cgroup2.memory.max = 536870912\n"));
        assert!(v2.contains("lxc.cgroup2.pids.max = 20\n"));
    }

    #[test]
    fn renders_devices_and_refuses_bad_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = DevicesMap::new();
        let m = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<ConfigMap>()
        };
        d.insert(
            "data".into(),
            m(&[
                ("type", "disk"),
                ("path", "/mnt/data"),
                ("source", &dir.path().display().to_string()),
                ("readonly", "true"),
            ]),
        );
        d.insert(
            "null".into(),
            m(&[
                ("type", "unix-char"),
                ("path", "/dev/mynull"),
                ("source", "/dev/null"),
            ]),
        );
        let out = render(
            &spec(&[], d.clone()),
            &facts(Layout::V1),
            Path::new("/s"),
            &no_nodes,
        )
        .expect("render");
        assert!(out.contains(&format!(
            "lxc.mount.entry = {} mnt/data none bind,create=dir,ro 0 0\n",
            dir.path().display()
        )));
        assert!(out.contains("lxc.cgroup.devices.allow = c 1:3 rwm\n"));
        assert!(out.contains("lxc.mount.entry = /dev/null dev/mynull none bind,create=file 0 0\n"));
        d.insert(
            "evil".into(),
            m(&[("type", "disk"), ("path", "/../etc"), ("source", "/tmp")]),
        );
        assert!(
            render(
                &spec(&[], d),
                &facts(Layout::V1),
                Path::new("/s"),
                &no_nodes
            )
            .is_err()
        );
    }

    #[test]
    fn privileged_drops_capabilities() {
        let mut s = spec(&[], DevicesMap::new());
        s.idmap = None;
        let out = render(&s, &facts(Layout::V1), Path::new("/s"), &no_nodes).expect("render");
        assert!(out.contains("lxc.cap.drop"));
        assert!(!out.contains("lxc.idmap"));
    }
}
