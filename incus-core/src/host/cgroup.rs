//! cgroup layout detection and reads of a running instance's usage.
//!
//! Limits are written by liblxc from the `lxc.cgroup.*` (v1) or `lxc.cgroup2.*` (v2) keys that
//! [`super::lxc::config`] generates; this module decides which family applies and reads usage
//! back. Every function takes the cgroupfs root, so tests use a fake tree.

use std::path::{Path, PathBuf};

/// Which cgroup hierarchy carries the resource controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Legacy or hybrid: per-controller hierarchies (`memory/`, `pids/`, `cpuset/` ...).
    V1,
    /// Unified hierarchy with the controllers.
    V2,
}

/// Detects the layout under `root` (normally `/sys/fs/cgroup`).
pub fn detect(root: &Path) -> Layout {
    if root.join("memory").join("memory.limit_in_bytes").exists() {
        Layout::V1
    } else {
        Layout::V2
    }
}

/// The cgroup path of `pid` for `controller` (v1), or the unified path (v2), read from
/// `/proc/<pid>/cgroup`-formatted `content`.
pub fn path_for(content: &str, layout: Layout, controller: &str) -> Option<String> {
    content.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match layout {
            Layout::V1 => ctrls.split(',').any(|c| c == controller),
            Layout::V2 => ctrls.is_empty(),
        };
        hit.then(|| path.to_string())
    })
}

/// Usage figures of one cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Memory in use, bytes.
    pub memory: i64,
    /// Peak memory, bytes.
    pub memory_peak: i64,
    /// Memory limit, bytes (0 when unlimited).
    pub memory_limit: i64,
    /// CPU time used, nanoseconds.
    pub cpu_ns: i64,
    /// Number of processes.
    pub processes: i64,
}

fn read_i64(p: PathBuf) -> Option<i64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Reads the usage of the cgroups `proc_cgroup` (a `/proc/<pid>/cgroup` content) points at.
pub fn usage(root: &Path, layout: Layout, proc_cgroup: &str) -> Usage {
    let rel = |ctrl: &str| {
        path_for(proc_cgroup, layout, ctrl).map(|p| p.trim_start_matches('/').to_string())
    };
    let mut u = Usage::default();
    match layout {
        Layout::V1 => {
            if let Some(p) = rel("memory") {
                let d = root.join("memory").join(p);
                u.memory = read_i64(d.join("memory.usage_in_bytes")).unwrap_or(0);
                u.memory_peak = read_i64(d.join("memory.max_usage_in_bytes")).unwrap_or(0);
                let limit = read_i64(d.join("memory.limit_in_bytes")).unwrap_or(0);
                // v1 reports "unlimited" as a huge page-aligned number.
                u.memory_limit = if limit >= (1i64 << 60) { 0 } else { limit };
            }
            if let Some(p) = rel("cpuacct") {
                u.cpu_ns =
                    read_i64(root.join("cpuacct").join(p).join("cpuacct.usage")).unwrap_or(0);
            }
            if let Some(p) = rel("pids") {
                u.processes = read_i64(root.join("pids").join(p).join("pids.current")).unwrap_or(0);
            }
        }
        Layout::V2 => {
            if let Some(p) = rel("") {
                let d = root.join(p);
                u.memory = read_i64(d.join("memory.current")).unwrap_or(0);
                u.memory_peak = read_i64(d.join("memory.peak")).unwrap_or(0);
                u.memory_limit = read_i64(d.join("memory.max")).unwrap_or(0);
                u.processes = read_i64(d.join("pids.current")).unwrap_or(0);
                if let Ok(stat) = std::fs::read_to_string(d.join("cpu.stat")) {
                    u.cpu_ns = stat
                        .lines()
                        .find_map(|l| l.strip_prefix("usage_usec "))
                        .and_then(|v| v.trim().parse::<i64>().ok())
                        .map(|us| us * 1000)
                        .unwrap_or(0);
                }
            }
        }
    }
    u
}

/// Whether the freezer says the cgroup is frozen.
pub fn is_frozen(root: &Path, layout: Layout, proc_cgroup: &str) -> bool {
    match layout {
        Layout::V1 => path_for(proc_cgroup, layout, "freezer")
            .and_then(|p| {
                std::fs::read_to_string(
                    root.join("freezer")
                        .join(p.trim_start_matches('/'))
                        .join("freezer.state"),
                )
                .ok()
            })
            .is_some_and(|s| s.trim() == "FROZEN"),
        Layout::V2 => path_for(proc_cgroup, layout, "")
            .and_then(|p| {
                std::fs::read_to_string(root.join(p.trim_start_matches('/')).join("cgroup.freeze"))
                    .ok()
            })
            .is_some_and(|s| s.trim() == "1"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "9:name=systemd:/\n8:pids:/lxc.payload.c1\n4:memory:/lxc.payload.c1\n6:freezer:/lxc.payload.c1\n2:cpuacct,cpu:/lxc.payload.c1\n0::/\n";

    #[test]
    fn detects_layout_on_fake_trees() {
        let t = tempfile::tempdir().expect("tempdir");
        assert_eq!(detect(t.path()), Layout::V2);
        std::fs::create_dir_all(t.path().join("memory")).expect("mkdir");
        std::fs::write(t.path().join("memory/memory.limit_in_bytes"), "1").expect("write");
        assert_eq!(detect(t.path()), Layout::V1);
    }

    #[test]
    fn reads_v1_usage() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        for (f, v) in [
            ("memory/lxc.payload.c1/memory.usage_in_bytes", "4096"),
            ("memory/lxc.payload.c1/memory.max_usage_in_bytes", "8192"),
            (
                "memory/lxc.payload.c1/memory.limit_in_bytes",
                "9223372036854771712",
            ),
            ("cpuacct/lxc.payload.c1/cpuacct.usage", "123"),
            ("pids/lxc.payload.c1/pids.current", "3"),
            ("freezer/lxc.payload.c1/freezer.state", "FROZEN"),
        ] {
            let p = r.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, v).expect("write");
        }
        let u = usage(r, Layout::V1, V1);
        assert_eq!(
            u,
            Usage {
                memory: 4096,
                memory_peak: 8192,
                memory_limit: 0,
                cpu_ns: 123,
                processes: 3
            }
        );
        assert!(is_frozen(r, Layout::V1, V1));
    }

    #[test]
    fn reads_v2_usage() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = t.path().join("lxc.payload.c1");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("memory.current"), "100").expect("write");
        std::fs::write(d.join("memory.max"), "max").expect("write");
        std::fs::write(d.join("pids.current"), "2").expect("write");
        std::fs::write(d.join("cpu.stat"), "usage_usec 5\nuser_usec 4\n").expect("write");
        std::fs::write(d.join("cgroup.freeze"), "0").expect("write");
        let u = usage(t.path(), Layout::V2, "0::/lxc.payload.c1\n");
        assert_eq!(u.memory, 100);
        assert_eq!(u.memory_limit, 0);
        assert_eq!(u.processes, 2);
        assert_eq!(u.cpu_ns, 5000);
        assert!(!is_frozen(t.path(), Layout::V2, "0::/lxc.payload.c1\n"));
    }
}
