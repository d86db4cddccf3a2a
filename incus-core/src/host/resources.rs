//! The host inventory behind `GET /1.0/resources`: CPU topology, memory, block devices and
//! network cards, read from `/proc` and `/sys`. Each reader takes its root so that tests can
//! point it at a fake tree.

use crate::api;
use std::collections::BTreeMap;
use std::path::Path;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn num(p: &Path) -> u64 {
    read(p).parse().unwrap_or(0)
}

/// CPU sockets, cores and threads from `sys` (`/sys/devices/system/cpu`) and the text of
/// `/proc/cpuinfo`.
pub fn cpu_in(sys: &Path, cpuinfo: &str) -> api::ResourcesCpu {
    // Per logical CPU: vendor, model name and MHz from cpuinfo.
    let mut info: BTreeMap<i64, (String, String, u64)> = BTreeMap::new();
    let mut cur: Option<i64> = None;
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => cur = v.parse().ok(),
            "vendor_id" | "model name" | "cpu MHz" => {
                if let Some(c) = cur {
                    let e = info.entry(c).or_default();
                    match k {
                        "vendor_id" => e.0 = v.to_string(),
                        "model name" => e.1 = v.to_string(),
                        _ => e.2 = v.parse::<f64>().map(|f| f as u64).unwrap_or(0),
                    }
                }
            }
            _ => {}
        }
    }
    let mut sockets: BTreeMap<u64, api::ResourcesCpuSocket> = BTreeMap::new();
    let mut total = 0;
    let mut ids: Vec<i64> = std::fs::read_dir(sys)
        .map(|r| {
            r.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix("cpu")?
                        .parse::<i64>()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    for id in ids {
        let dir = sys.join(format!("cpu{id}"));
        total += 1;
        let topo = dir.join("topology");
        let socket = num(&topo.join("physical_package_id"));
        let core = num(&topo.join("core_id"));
        let die = num(&topo.join("die_id"));
        // cpu0 often has no `online` file: it is always online.
        let online = !dir.join("online").exists() || read(&dir.join("online")) == "1";
        let (vendor, name, mhz) = info.get(&id).cloned().unwrap_or_default();
        let s = sockets
            .entry(socket)
            .or_insert_with(|| api::ResourcesCpuSocket {
                name,
                vendor,
                socket,
                frequency: mhz,
                ..Default::default()
            });
        let c = match s.cores.iter().position(|c| c.core == core && c.die == die) {
            Some(i) => &mut s.cores[i],
            None => {
                s.cores.push(api::ResourcesCpuCore {
                    core,
                    die,
                    frequency: mhz,
                    ..Default::default()
                });
                let last = s.cores.len() - 1;
                &mut s.cores[last]
            }
        };
        let thread = c.threads.len() as u64;
        c.threads.push(api::ResourcesCpuThread {
            id,
            numa_node: 0,
            thread,
            online,
            isolated: false,
        });
    }
    api::ResourcesCpu {
        architecture: std::env::consts::ARCH.into(),
        sockets: sockets.into_values().collect(),
        total,
    }
}

/// Memory and huge pages from the text of `/proc/meminfo`.
pub fn memory_from(meminfo: &str) -> api::ResourcesMemory {
    let val = |key: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total = val("MemTotal:") * 1024;
    let page = val("Hugepagesize:") * 1024;
    api::ResourcesMemory {
        hugepages_total: val("HugePages_Total:") * page,
        hugepages_used: val("HugePages_Total:").saturating_sub(val("HugePages_Free:")) * page,
        hugepages_size: page,
        used: total.saturating_sub(val("MemAvailable:") * 1024),
        total,
    }
}

/// The entry names of `dir`, sorted (none when it cannot be read).
fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Block devices from `block` (`/sys/block`), without loop, ram, zram and device-mapper
/// devices.
pub fn disks_in(block: &Path) -> api::ResourcesStorage {
    let mut disks = Vec::new();
    for id in sorted_names(block) {
        if ["loop", "ram", "zram", "dm-", "nbd"]
            .iter()
            .any(|p| id.starts_with(p))
        {
            continue;
        }
        let d = block.join(&id);
        let kind = if id.starts_with("vd") {
            "virtio"
        } else if id.starts_with("nvme") {
            "nvme"
        } else if id.starts_with("sd") {
            "scsi"
        } else {
            ""
        };
        let rotational = read(&d.join("queue/rotational")) == "1";
        disks.push(api::ResourcesStorageDisk {
            device: read(&d.join("dev")),
            model: read(&d.join("device/model")),
            kind: kind.into(),
            read_only: read(&d.join("ro")) == "1",
            size: num(&d.join("size")) * 512,
            removable: read(&d.join("removable")) == "1",
            rpm: if rotational { 1 } else { 0 },
            block_size: num(&d.join("queue/logical_block_size")),
            serial: read(&d.join("device/serial")),
            id,
        });
    }
    api::ResourcesStorage {
        total: disks.len() as u64,
        disks,
    }
}

/// Physical network cards (interfaces backed by a device) from `net` (`/sys/class/net`),
/// one port per interface, grouped by device.
pub fn nics_in(net: &Path) -> api::ResourcesNetwork {
    let mut cards: BTreeMap<String, api::ResourcesNetworkCard> = BTreeMap::new();
    for name in sorted_names(net) {
        let d = net.join(&name);
        let Ok(dev) = std::fs::canonicalize(d.join("device")) else {
            continue;
        };
        let key = dev.display().to_string();
        let driver = std::fs::read_link(d.join("device/driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let pci = dev
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.matches(':').count() == 2)
            .unwrap_or_default();
        let card = cards
            .entry(key)
            .or_insert_with(|| api::ResourcesNetworkCard {
                driver,
                pci_address: pci,
                ..Default::default()
            });
        let port = card.ports.len() as u64;
        card.ports.push(api::ResourcesNetworkCardPort {
            address: read(&d.join("address")),
            port,
            protocol: if read(&d.join("type")) == "32" {
                "infiniband".into()
            } else {
                "ethernet".into()
            },
            link_detected: read(&d.join("carrier")) == "1",
            link_speed: read(&d.join("speed")).parse::<i64>().unwrap_or(0).max(0) as u64,
            id: name,
        });
    }
    api::ResourcesNetwork {
        total: cards.len() as u64,
        cards: cards.into_values().collect(),
    }
}

/// The whole inventory of this host.
pub fn host_resources() -> api::Resources {
    api::Resources {
        cpu: cpu_in(
            Path::new("/sys/devices/system/cpu"),
            &std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
        ),
        memory: memory_from(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default()),
        storage: disks_in(Path::new("/sys/block")),
        network: nics_in(Path::new("/sys/class/net")),
        gpu: api::ResourcesNone::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, s).expect("write");
    }

    #[test]
    fn cpu_topology() {
        let t = tempfile::tempdir().expect("tempdir");
        for (id, core) in [(0, 0), (1, 0), (2, 1), (3, 1)] {
            let d = t.path().join(format!("cpu{id}/topology"));
            write(&d.join("physical_package_id"), "0\n");
            write(&d.join("core_id"), &format!("{core}\n"));
        }
        write(&t.path().join("cpu3/online"), "0\n");
        std::fs::create_dir_all(t.path().join("cpufreq")).expect("mkdir");
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\ncpu MHz\t\t: 2400.000\n";
        let cpu = cpu_in(t.path(), info);
        assert_eq!(cpu.total, 4);
        assert_eq!(cpu.sockets.len(), 1);
        assert_eq!(cpu.sockets[0].name, "Test CPU");
        assert_eq!(cpu.sockets[0].vendor, "GenuineIntel");
        assert_eq!(cpu.sockets[0].cores.len(), 2);
        assert_eq!(cpu.sockets[0].cores[1].threads.len(), 2);
        assert!(!cpu.sockets[0].cores[1].threads[1].online);
    }

    #[test]
    fn memory_and_hugepages() {
        let m = memory_from(
            "MemTotal:  1000 kB\nMemAvailable:  400 kB\nHugePages_Total: 4\nHugePages_Free: 1\nHugepagesize: 2048 kB\n",
        );
        assert_eq!((m.total, m.used), (1_024_000, 614_400));
        assert_eq!(m.hugepages_size, 2048 * 1024);
        assert_eq!(m.hugepages_total, 4 * 2048 * 1024);
        assert_eq!(m.hugepages_used, 3 * 2048 * 1024);
    }

    #[test]
    fn disks_skip_virtual_devices() {
        let t = tempfile::tempdir().expect("tempdir");
        write(&t.path().join("vda/size"), "2048\n");
        write(&t.path().join("vda/dev"), "254:0\n");
        write(&t.path().join("vda/ro"), "0\n");
        write(&t.path().join("vda/queue/rotational"), "0\n");
        write(&t.path().join("loop0/size"), "8\n");
        write(&t.path().join("dm-0/size"), "8\n");
        let s = disks_in(t.path());
        assert_eq!(s.total, 1);
        assert_eq!(s.disks[0].id, "vda");
        assert_eq!(s.disks[0].size, 1_048_576);
        assert_eq!(s.disks[0].kind, "virtio");
        assert_eq!(s.disks[0].device, "254:0");
    }

    #[test]
    fn nics_are_interfaces_with_a_device() {
        let t = tempfile::tempdir().expect("tempdir");
        let devs = t.path().join("devices/0000:00:03.0");
        std::fs::create_dir_all(devs.join("driver-dir/virtio_net")).expect("mkdir");
        std::os::unix::fs::symlink(devs.join("driver-dir/virtio_net"), devs.join("driver"))
            .expect("symlink");
        let net = t.path().join("net");
        write(&net.join("eth0/address"), "52:54:00:12:34:56\n");
        write(&net.join("eth0/carrier"), "1\n");
        std::os::unix::fs::symlink(&devs, net.join("eth0/device")).expect("symlink");
        write(&net.join("lo/address"), "00:00:00:00:00:00\n");
        let n = nics_in(&net);
        assert_eq!(n.total, 1);
        assert_eq!(n.cards[0].driver, "virtio_net");
        assert_eq!(n.cards[0].pci_address, "0000:00:03.0");
        assert_eq!(n.cards[0].ports[0].id, "eth0");
        assert!(n.cards[0].ports[0].link_detected);
    }
}
