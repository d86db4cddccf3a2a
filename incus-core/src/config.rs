//! Instance configuration: the key catalogue with one validator per key, device validation,
//! name validation, and profile expansion into `expanded_config` / `expanded_devices`.
//!
//! Invariants: a key is accepted only if the catalogue knows it or it lies in a free namespace
//! (`user.*`, `environment.*`, `image.*`); `volatile.*` keys are owned by the engine and
//! refused from users.

use crate::api::{ConfigMap, DevicesMap};
use crate::error::{Error, Result};

/// How a key's value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    /// A byte size (`512MiB`, `1GB`, `1048576`) or a percentage (`50%`).
    MemorySize,
    /// A CPU count (`2`) or a set (`0-1,3`).
    CpuSet,
    /// A CPU allowance (`50%`, `25ms/100ms`).
    CpuAllowance,
    /// Free text.
    Text,
    /// A snapshot schedule (`snapshots.schedule`).
    Schedule,
    /// An expiry (`snapshots.expiry`).
    Expiry,
}

/// The instance keys this engine knows and applies.
const INSTANCE_KEYS: &[(&str, Kind)] = &[
    ("boot.autostart", Kind::Bool),
    ("boot.autostart.delay", Kind::Int),
    ("boot.autostart.priority", Kind::Int),
    ("boot.host_shutdown_timeout", Kind::Int),
    ("boot.stop.priority", Kind::Int),
    ("limits.cpu", Kind::CpuSet),
    ("limits.cpu.allowance", Kind::CpuAllowance),
    ("limits.memory", Kind::MemorySize),
    ("limits.processes", Kind::Int),
    ("security.privileged", Kind::Bool),
    ("security.protection.delete", Kind::Bool),
    ("raw.lxc", Kind::Text),
    ("snapshots.expiry", Kind::Expiry),
    ("snapshots.pattern", Kind::Text),
    ("snapshots.schedule", Kind::Schedule),
    ("snapshots.schedule.stopped", Kind::Bool),
];

/// Free namespaces: anything under these prefixes is accepted as is.
const FREE_PREFIXES: &[&str] = &["user.", "environment.", "image."];

/// Validates one instance config key and value.
pub fn validate_instance_key(key: &str, value: &str) -> Result<()> {
    if FREE_PREFIXES
        .iter()
        .any(|p| key.starts_with(p) && key.len() > p.len())
    {
        return Ok(());
    }
    if key.starts_with("volatile.") {
        return Err(Error::invalid(format!(
            "Invalid config key {key:?}: volatile keys are set by the engine only"
        )));
    }
    let Some((_, kind)) = INSTANCE_KEYS.iter().find(|(k, _)| *k == key) else {
        return Err(Error::invalid(format!("Unknown configuration key: {key}")));
    };
    check_value(*kind, value)
        .map_err(|why| Error::invalid(format!("Invalid value for config key {key:?}: {why}")))
}

/// Validates a whole instance config map. `allow_volatile` lets the engine pass its own keys.
pub fn validate_instance_config(config: &ConfigMap, allow_volatile: bool) -> Result<()> {
    for (k, v) in config {
        if allow_volatile && k.starts_with("volatile.") {
            continue;
        }
        validate_instance_key(k, v)?;
    }
    Ok(())
}

fn check_value(kind: Kind, value: &str) -> std::result::Result<(), String> {
    // An empty value unsets a key, which is always allowed.
    if value.is_empty() {
        return Ok(());
    }
    match kind {
        Kind::Bool => parse_bool(value).map(|_| ()),
        Kind::Int => value
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| format!("{value:?} is not an integer")),
        Kind::MemorySize => {
            if let Some(p) = value.strip_suffix('%') {
                return match p.parse::<u8>() {
                    Ok(n) if (1..=100).contains(&n) => Ok(()),
                    _ => Err(format!("{value:?} is not a percentage from 1% to 100%")),
                };
            }
            parse_size(value).map(|_| ())
        }
        Kind::CpuSet => parse_cpu_limit(value).map(|_| ()),
        Kind::CpuAllowance => {
            if let Some(p) = value.strip_suffix('%') {
                return p
                    .parse::<u32>()
                    .map(|_| ())
                    .map_err(|_| format!("{value:?} is not a percentage"));
            }
            let (a, b) = value
                .split_once('/')
                .ok_or_else(|| format!("{value:?} is neither N% nor Nms/Mms"))?;
            for part in [a, b] {
                part.strip_suffix("ms")
                    .and_then(|n| n.parse::<u32>().ok())
                    .ok_or_else(|| format!("{value:?} is neither N% nor Nms/Mms"))?;
            }
            Ok(())
        }
        Kind::Text => Ok(()),
        Kind::Schedule => Schedule::parse(value)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Kind::Expiry => parse_expiry(value).map(|_| ()).map_err(|e| e.to_string()),
    }
}

/// The name of a new snapshot from `snapshots.pattern` (`snap%d` when empty): `%d` becomes
/// the first number giving a free name; a pattern without `%d` is used as is, then with
/// `-1`, `-2`... appended while taken.
pub fn next_snapshot_name(pattern: &str, taken: impl Fn(&str) -> bool) -> String {
    let pattern = if pattern.is_empty() {
        "snap%d"
    } else {
        pattern
    };
    if pattern.contains("%d") {
        return (0u64..)
            .map(|i| pattern.replace("%d", &i.to_string()))
            .find(|n| !taken(n))
            .unwrap_or_default();
    }
    if !taken(pattern) {
        return pattern.to_string();
    }
    (1u64..)
        .map(|i| format!("{pattern}-{i}"))
        .find(|n| !taken(n))
        .unwrap_or_default()
}

/// A snapshot schedule (`snapshots.schedule`): a cron expression (`<minute> <hour> <day of
/// month> <month> <day of week>`) or a comma-separated list of `@hourly`, `@daily`,
/// `@midnight`, `@weekly`, `@monthly`, `@annually`, `@yearly`, as Incus accepts.
#[derive(Debug, Clone)]
pub struct Schedule(Vec<croner::Cron>);

impl Schedule {
    /// Parses a schedule; an empty one never fires.
    pub fn parse(s: &str) -> Result<Schedule> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build();
        let s = s.trim();
        let parts: Vec<&str> = if s.starts_with('@') {
            s.split(',').map(str::trim).collect()
        } else if s.is_empty() {
            Vec::new()
        } else {
            vec![s]
        };
        let crons = parts
            .into_iter()
            .map(|p| {
                let p = if p.eq_ignore_ascii_case("@midnight") {
                    "@daily"
                } else {
                    p
                };
                parser.parse(p).map_err(|e| {
                    Error::invalid(format!(
                        "Invalid schedule {p:?} ({e}): use a cron expression such as \"0 6 * * *\" or @hourly, @daily, @weekly, @monthly, @yearly"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Schedule(crons))
    }

    /// Whether the schedule fires in `(after, until]` (whole minutes).
    pub fn fires_between(
        &self,
        after: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        self.0.iter().any(|c| {
            c.find_next_occurrence(&after, false)
                .is_ok_and(|next| next <= until)
        })
    }
}

/// Parses an Incus boolean (`true`, `1`, `yes`, `on` and their opposites).
pub fn parse_bool(value: &str) -> std::result::Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{value:?} is not a boolean")),
    }
}

/// Whether a config value is set to a true boolean.
pub fn is_true(config: &ConfigMap, key: &str) -> bool {
    config
        .get(key)
        .map(|v| parse_bool(v).unwrap_or(false))
        .unwrap_or(false)
}

/// Parses a byte size as Incus does: a number with an optional unit (`B`, `kB`/`KB`, `MB`, `GB`,
/// `TB`, `PB`, `EB` in powers of 1000, `KiB` ... `EiB` in powers of 1024).
pub fn parse_size(value: &str) -> std::result::Result<u64, String> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{value:?} is not a size"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "MB" => 1000u64.pow(2),
        "GB" => 1000u64.pow(3),
        "TB" => 1000u64.pow(4),
        "PB" => 1000u64.pow(5),
        "EB" => 1000u64.pow(6),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "PiB" => 1 << 50,
        "EiB" => 1 << 60,
        _ => return Err(format!("{value:?} has an unknown unit")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{value:?} is too large"))
}

/// A byte count in decimal units as Incus prints sizes and rates: `999B`, `12.30MB`.
pub fn byte_size_string(bytes: u64) -> String {
    scaled(bytes, 1000, &["kB", "MB", "GB", "TB", "PB", "EB"])
}

/// A byte count in binary units as Incus prints pool space: `1023B`, `30.30GiB`.
pub fn iec_size_string(bytes: u64) -> String {
    scaled(bytes, 1024, &["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"])
}

fn scaled(bytes: u64, base: u64, units: &[&str]) -> String {
    if bytes < base {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / base as f64;
    let mut i = 0;
    while v >= base as f64 && i + 1 < units.len() {
        v /= base as f64;
        i += 1;
    }
    format!("{v:.2}{}", units[i])
}

/// Parses a listen address as `core.https_address` takes it: `host:port`, `[v6]:port`,
/// `:port` (every address), or a host alone (`default_port`). Returns `ip:port` to bind.
pub fn parse_listen_address(s: &str, default_port: u16) -> Result<std::net::SocketAddr> {
    use std::net::{IpAddr, Ipv6Addr, SocketAddr};
    let bad = |why: &str| Error::invalid(format!("Invalid listen address {s:?}: {why}"));
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
        None => (s, default_port),
    };
    match host {
        "" | "[::]" | "::" => Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)),
        "localhost" => Ok(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port)),
        _ => Err(bad("use an IP address (and port)")),
    }
}

/// Parses an Incus expiry (`snapshots.expiry`): space-separated `<n><unit>` terms with units
/// `M` (minutes), `H` (hours), `d`, `w`, `m` (months) and `y`.
pub fn parse_expiry(s: &str) -> Result<chrono::Duration> {
    let bad = || Error::invalid(format!("Invalid expiry {s:?}: use e.g. \"2d 4H\""));
    let mut total = chrono::Duration::zero();
    for term in s.split_whitespace() {
        let (num, unit) = term.split_at(term.len().saturating_sub(1));
        let n: i64 = num.parse().map_err(|_| bad())?;
        let unit = match unit {
            "M" => chrono::Duration::minutes(1),
            "H" => chrono::Duration::hours(1),
            "d" => chrono::Duration::days(1),
            "w" => chrono::Duration::weeks(1),
            "m" => chrono::Duration::days(30),
            "y" => chrono::Duration::days(365),
            _ => return Err(bad()),
        };
        total += unit * i32::try_from(n).map_err(|_| bad())?;
    }
    Ok(total)
}

/// A CPU limit: a number of CPUs, or an explicit set of CPU ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuLimit {
    /// Any `n` CPUs.
    Count(u32),
    /// These CPU ids.
    Set(Vec<u32>),
}

/// Parses `limits.cpu`: `2` (a count) or `0-1,3` (a set; a single id as `3-3` or `0,3`).
pub fn parse_cpu_limit(value: &str) -> std::result::Result<CpuLimit, String> {
    if let Ok(n) = value.parse::<u32>() {
        if n == 0 {
            return Err("limits.cpu must be at least 1".into());
        }
        return Ok(CpuLimit::Count(n));
    }
    let mut ids = Vec::new();
    for part in value.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = match (a.trim().parse(), b.trim().parse()) {
            (Ok(a), Ok(b)) if a <= b => (a, b),
            _ => return Err(format!("{value:?} is not a CPU count or set")),
        };
        ids.extend(a..=b);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(CpuLimit::Set(ids))
}

/// Device types this engine accepts, with their allowed keys.
const DEVICE_KEYS: &[(&str, &[&str])] = &[
    (
        "disk",
        &[
            "path",
            "source",
            "pool",
            "readonly",
            "optional",
            "size",
            "recursive",
            "propagation",
            "shift",
            "boot.priority",
        ],
    ),
    (
        "nic",
        &[
            "nictype",
            "network",
            "name",
            "hwaddr",
            "mtu",
            "parent",
            "host_name",
            "ipv4.address",
            "ipv6.address",
            "limits.ingress",
            "limits.egress",
            "security.mac_filtering",
            "security.ipv4_filtering",
            "security.ipv6_filtering",
            "vlan",
            "boot.priority",
        ],
    ),
    (
        "unix-char",
        &[
            "source", "path", "major", "minor", "uid", "gid", "mode", "required",
        ],
    ),
    (
        "unix-block",
        &[
            "source", "path", "major", "minor", "uid", "gid", "mode", "required",
        ],
    ),
    ("none", &[]),
];

/// Validates a device map. `expanded` requires a root disk (path `/` with a `pool`).
pub fn validate_devices(devices: &DevicesMap, expanded: bool) -> Result<()> {
    let mut roots = 0;
    for (name, dev) in devices {
        validate_device(name, dev)?;
        if dev.get("type").map(String::as_str) == Some("disk")
            && dev.get("path").map(String::as_str) == Some("/")
        {
            roots += 1;
        }
    }
    if roots > 1 {
        return Err(Error::invalid("More than one root disk device"));
    }
    if expanded && roots == 0 {
        return Err(Error::invalid(
            "No root device could be found (add a disk device with path \"/\" and a pool)",
        ));
    }
    Ok(())
}

/// Validates one device.
pub fn validate_device(name: &str, dev: &ConfigMap) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.len() > 64 {
        return Err(Error::invalid(format!("Invalid device name {name:?}")));
    }
    let ty = dev
        .get("type")
        .ok_or_else(|| Error::invalid(format!("Device {name:?}: missing \"type\"")))?;
    let Some((_, allowed)) = DEVICE_KEYS.iter().find(|(t, _)| t == ty) else {
        return Err(Error::invalid(format!(
            "Device {name:?}: unsupported device type {ty:?}"
        )));
    };
    for key in dev.keys() {
        if key != "type" && !allowed.contains(&key.as_str()) && !key.starts_with("user.") {
            return Err(Error::invalid(format!(
                "Device {name:?}: unknown {ty} option {key:?}"
            )));
        }
    }
    let bad = |why: &str| Err(Error::invalid(format!("Device {name:?}: {why}")));
    match ty.as_str() {
        "disk" => {
            let path = dev.get("path").map(String::as_str).unwrap_or("");
            if !path.starts_with('/') {
                return bad("disk devices need an absolute \"path\"");
            }
            if path == "/" {
                if dev.get("pool").is_none_or(|p| p.is_empty()) {
                    return bad("the root disk needs a \"pool\"");
                }
                if dev.contains_key("source") {
                    return bad("the root disk cannot have a \"source\"");
                }
            } else if dev.get("source").is_none_or(|s| s.is_empty()) {
                return bad("disk devices need a \"source\"");
            } else if dev.get("pool").is_some() {
                // A custom volume: `source` is its name (checked against the pool by the
                // engine).
                if dev.get("source").is_some_and(|s| s.contains('/')) {
                    return bad("\"source\" must name a custom volume of the pool");
                }
            } else if dev.get("source").is_some_and(|s| !s.starts_with('/')) {
                return bad("\"source\" must be an absolute host path");
            }
            for k in ["readonly", "shift", "optional", "recursive"] {
                if let Some(v) = dev.get(k) {
                    parse_bool(v).map_err(|e| Error::invalid(format!("Device {name:?}: {e}")))?;
                }
            }
            match dev.get("size") {
                // The root disk's quota; whether the pool can enforce it is checked by the
                // engine, which knows the pool's driver.
                Some(v) if path == "/" => {
                    parse_size(v).map_err(|e| Error::invalid(format!("Device {name:?}: {e}")))?;
                }
                Some(_) => return bad("\"size\" applies to the root disk only"),
                None => {}
            }
        }
        "nic" if dev.get("nictype").is_none() && dev.get("network").is_none() => {
            return bad("nic devices need \"nictype\" or \"network\"");
        }
        "unix-char" | "unix-block" => {
            if dev.get("source").is_none() && dev.get("path").is_none() {
                return bad("need \"source\" or \"path\"");
            }
            for k in ["major", "minor", "uid", "gid"] {
                if let Some(v) = dev.get(k)
                    && v.parse::<u32>().is_err()
                {
                    return bad(&format!("{k:?} must be a number"));
                }
            }
            if let Some(m) = dev.get("mode")
                && u32::from_str_radix(m, 8).is_err()
            {
                return bad("\"mode\" must be octal");
            }
        }
        _ => {}
    }
    Ok(())
}

/// Merges profiles (in order) and the instance's own config and devices, as Incus does:
/// later profiles override earlier ones, the instance overrides all, and a device of type
/// `none` removes an inherited device of that name.
pub fn expand(
    profiles: &[(&ConfigMap, &DevicesMap)],
    config: &ConfigMap,
    devices: &DevicesMap,
) -> (ConfigMap, DevicesMap) {
    let mut ec = ConfigMap::new();
    let mut ed = DevicesMap::new();
    for (pc, pd) in profiles {
        ec.extend(pc.iter().map(|(k, v)| (k.clone(), v.clone())));
        ed.extend(pd.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    ec.extend(config.iter().map(|(k, v)| (k.clone(), v.clone())));
    ed.extend(devices.iter().map(|(k, v)| (k.clone(), v.clone())));
    ed.retain(|_, d| d.get("type").map(String::as_str) != Some("none"));
    (ec, ed)
}

/// Validates an instance name: a valid host name label (1-63 of letters, digits and `-`, not
/// starting with a digit or `-`, not ending with `-`).
pub fn validate_instance_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid instance name {name:?}: use 1 to 63 letters, digits and dashes, starting \
             with a letter and not ending with a dash"
        )))
    }
}

/// Validates a snapshot name (no `/`, not `.` or `..`, no leading or trailing space).
pub fn validate_snapshot_name(name: &str) -> Result<()> {
    validate_entity_name("snapshot", name)
}

/// Validates the name of a profile, project, pool or alias: non-empty, at most 255 bytes, no
/// `/`, no control characters, not `.` or `..`, no surrounding white space.
pub fn validate_entity_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(|c| c.is_control())
        && name.trim() == name;
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("Invalid {what} name {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_as_incus_takes_them() {
        let p = |s| parse_listen_address(s, 8443).map(|a| a.to_string());
        assert_eq!(p("127.0.0.1:9000").unwrap(), "127.0.0.1:9000");
        assert_eq!(p("127.0.0.1").unwrap(), "127.0.0.1:8443");
        assert_eq!(p(":8443").unwrap(), "[::]:8443");
        assert_eq!(p("[::1]:7000").unwrap(), "[::1]:7000");
        assert_eq!(p("[::1]").unwrap(), "[::1]:8443");
        assert_eq!(p("::").unwrap(), "[::]:8443");
        assert!(p("example.com:80").is_err());
        assert!(p("127.0.0.1:99999").is_err());
        assert!(p("not an address").is_err());
    }

    #[test]
    fn snapshot_names_and_schedules() {
        let taken = |n: &str| ["snap0", "snap1", "daily"].contains(&n);
        assert_eq!(next_snapshot_name("", taken), "snap2");
        assert_eq!(next_snapshot_name("auto-%d", taken), "auto-0");
        assert_eq!(next_snapshot_name("daily", taken), "daily-1");
        assert_eq!(next_snapshot_name("weekly", taken), "weekly");
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&chrono::Utc))
                .expect("time")
        };
        let hourly = Schedule::parse("@hourly").expect("parse");
        assert!(hourly.fires_between(t("2026-01-01T09:59:00Z"), t("2026-01-01T10:00:00Z")));
        assert!(!hourly.fires_between(t("2026-01-01T10:00:00Z"), t("2026-01-01T10:59:00Z")));
        let both = Schedule::parse("@midnight, @hourly").expect("parse");
        assert!(both.fires_between(t("2026-01-01T10:30:00Z"), t("2026-01-01T11:00:00Z")));
        let cron = Schedule::parse("30 6 * * 1").expect("parse");
        // 2026-01-05 is a Monday.
        assert!(cron.fires_between(t("2026-01-05T06:29:00Z"), t("2026-01-05T06:30:00Z")));
        assert!(!cron.fires_between(t("2026-01-06T06:29:00Z"), t("2026-01-06T06:30:00Z")));
        assert!(
            !Schedule::parse("")
                .expect("empty")
                .fires_between(t("2026-01-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
        );
        for bad in ["61 * * * *", "@sometimes", "* * *", "0 0 * * * *"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiries() {
        assert_eq!(parse_expiry("2d").expect("2d"), chrono::Duration::days(2));
        assert_eq!(
            parse_expiry("1H 30M").expect("1H 30M"),
            chrono::Duration::minutes(90)
        );
        assert!(parse_expiry("3x").is_err());
        assert!(parse_expiry("d").is_err());
    }

    #[test]
    fn sizes_print_as_incus_prints_them() {
        assert_eq!(byte_size_string(999), "999B");
        assert_eq!(byte_size_string(12_300_000), "12.30MB");
        assert_eq!(iec_size_string(1023), "1023B");
        assert_eq!(iec_size_string(32_538_497_024), "30.30GiB");
    }

    fn map(kv: &[(&str, &str)]) -> ConfigMap {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_keys_refused_free_namespaces_accepted() {
        assert!(validate_instance_key("user.foo", "x").is_ok());
        assert!(validate_instance_key("environment.FOO", "x").is_ok());
        assert!(validate_instance_key("image.os", "x").is_ok());
        let e = validate_instance_key("limits.bogus", "1").unwrap_err();
        assert!(e.message().contains("Unknown configuration key"));
        assert!(validate_instance_key("user.", "x").is_err());
        let e = validate_instance_key("volatile.base_image", "x").unwrap_err();
        assert!(e.message().contains("volatile"));
        assert!(validate_instance_config(&map(&[("volatile.x", "1")]), true).is_ok());
    }

    #[test]
    fn values_checked() {
        assert!(validate_instance_key("limits.memory", "256MiB").is_ok());
        assert!(validate_instance_key("limits.memory", "50%").is_ok());
        assert!(validate_instance_key("limits.memory", "lots").is_err());
        assert!(validate_instance_key("limits.memory", "200%").is_err());
        assert!(validate_instance_key("limits.cpu", "2").is_ok());
        assert!(validate_instance_key("limits.cpu", "0-1,3").is_ok());
        assert!(validate_instance_key("limits.cpu", "0").is_err());
        assert!(validate_instance_key("limits.cpu", "3-1").is_err());
        assert!(validate_instance_key("security.privileged", "maybe").is_err());
        assert!(validate_instance_key("limits.processes", "100").is_ok());
        assert!(validate_instance_key("limits.processes", "x").is_err());
        assert!(validate_instance_key("limits.cpu.allowance", "25ms/100ms").is_ok());
        assert!(validate_instance_key("limits.cpu.allowance", "25/100").is_err());
    }

    #[test]
    fn sizes_parse_like_incus() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("1kB").unwrap(), 1000);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("99999999999EiB").is_err());
    }

    #[test]
    fn cpu_sets_parse() {
        assert_eq!(parse_cpu_limit("2").unwrap(), CpuLimit::Count(2));
        assert_eq!(
            parse_cpu_limit("0-2,1,5").unwrap(),
            CpuLimit::Set(vec![0, 1, 2, 5])
        );
    }

    #[test]
    fn devices_validated() {
        let mut d = DevicesMap::new();
        d.insert(
            "root".into(),
            map(&[("type", "disk"), ("path", "/"), ("pool", "default")]),
        );
        assert!(validate_devices(&d, true).is_ok());
        d.insert(
            "data".into(),
            map(&[("type", "disk"), ("path", "/mnt"), ("source", "/srv")]),
        );
        assert!(validate_devices(&d, true).is_ok());
        d.insert(
            "bad".into(),
            map(&[("type", "disk"), ("path", "/x"), ("bogus", "1")]),
        );
        assert!(validate_devices(&d, true).is_err());
        d.remove("bad");
        d.insert(
            "tty".into(),
            map(&[
                ("type", "unix-char"),
                ("source", "/dev/null"),
                ("mode", "0999"),
            ]),
        );
        assert!(validate_devices(&d, true).is_err());
        d.insert(
            "tty".into(),
            map(&[
                ("type", "unix-char"),
                ("source", "/dev/null"),
                ("mode", "0666"),
            ]),
        );
        assert!(validate_devices(&d, true).is_ok());
        d.insert("gpu".into(), map(&[("type", "gpu")]));
        assert!(validate_devices(&d, true).is_err());
        let mut no_root = DevicesMap::new();
        no_root.insert("x".into(), map(&[("type", "none")]));
        assert!(validate_devices(&no_root, false).is_ok());
        assert!(validate_devices(&no_root, true).is_err());
    }

    #[test]
    fn expansion_orders_and_removes() {
        let p1c = map(&[("limits.cpu", "1"), ("user.a", "p1")]);
        let mut p1d = DevicesMap::new();
        p1d.insert(
            "root".into(),
            map(&[("type", "disk"), ("path", "/"), ("pool", "p1")]),
        );
        p1d.insert("eth0".into(), map(&[("type", "nic"), ("nictype", "p2p")]));
        let p2c = map(&[("user.a", "p2")]);
        let mut p2d = DevicesMap::new();
        p2d.insert(
            "root".into(),
            map(&[("type", "disk"), ("path", "/"), ("pool", "p2")]),
        );
        let ic = map(&[("limits.cpu", "2")]);
        let mut id = DevicesMap::new();
        id.insert("eth0".into(), map(&[("type", "none")]));
        let (ec, ed) = expand(&[(&p1c, &p1d), (&p2c, &p2d)], &ic, &id);
        assert_eq!(ec["limits.cpu"], "2");
        assert_eq!(ec["user.a"], "p2");
        assert_eq!(ed["root"]["pool"], "p2");
        assert!(!ed.contains_key("eth0"));
    }

    #[test]
    fn names() {
        assert!(validate_instance_name("c1").is_ok());
        assert!(validate_instance_name("my-container-2").is_ok());
        for bad in [
            "",
            "1abc",
            "-a",
            "a-",
            "a_b",
            "a/b",
            "../x",
            &"a".repeat(64),
        ] {
            assert!(validate_instance_name(bad).is_err(), "{bad}");
        }
        assert!(validate_snapshot_name("snap0").is_ok());
        for bad in ["", ".", "..", "a/b", " a", "a\n"] {
            assert!(validate_snapshot_name(bad).is_err(), "{bad:?}");
        }
    }
}
