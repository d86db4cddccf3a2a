//! Instance commands: launch/create, start/stop/restart/pause, delete, rename, copy, list,
//! info, console and snapshots.

use super::{Ctx, key_values};
use crate::CliError;
use crate::args::{CreateArgs, SnapshotCmd};
use crate::format::{Format, render, to_yaml};
use incus_client::escape;
use incus_core::api;
use std::io::IsTerminal;

/// A random-enough default name (`incus launch busybox` without a name).
fn generated_name() -> String {
    const ADJ: [&str; 8] = [
        "brave", "calm", "eager", "fond", "kind", "merry", "proud", "witty",
    ];
    const NOUN: [&str; 8] = [
        "otter", "lynx", "heron", "marten", "ibex", "badger", "crane", "mole",
    ];
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as usize ^ std::process::id() as usize)
        .unwrap_or(0);
    format!("{}-{}", ADJ[n % 8], NOUN[(n / 8) % 8])
}

pub async fn create(ctx: &Ctx, a: CreateArgs, start: bool) -> Result<i32, CliError> {
    if a.vm {
        return Err(CliError::msg("Virtual machines are not supported yet"));
    }
    if !a.device.is_empty() {
        return Err(CliError::msg(
            "--device overrides are not supported yet; use `incus config device` after create",
        ));
    }
    let (remote, image) = ctx.conf.split(&a.image);
    let client = ctx.client_for(&remote)?;
    let (client, name) = match &a.name {
        Some(n) => {
            let (c, n) = ctx.resolve(n)?;
            (c, n.to_string())
        }
        None => (client, generated_name()),
    };
    let mut put = api::InstancePut {
        config: key_values(&a.config)?,
        ephemeral: a.ephemeral,
        description: a.description.clone().unwrap_or_default(),
        ..Default::default()
    };
    put.profiles = if a.no_profiles {
        Vec::new()
    } else if a.profile.is_empty() {
        vec!["default".into()]
    } else {
        a.profile.clone()
    };
    if let Some(pool) = &a.storage {
        put.devices.insert(
            "root".into(),
            [
                ("type".to_string(), "disk".to_string()),
                ("path".to_string(), "/".to_string()),
                ("pool".to_string(), pool.clone()),
            ]
            .into_iter()
            .collect(),
        );
    }
    let req = api::InstancesPost {
        put,
        name: name.clone(),
        source: api::InstanceSource {
            kind: "image".into(),
            alias: image.to_string(),
            ..Default::default()
        },
        kind: "container".into(),
        start,
        ..Default::default()
    };
    if !ctx.quiet {
        println!("{} {name}", if start { "Launching" } else { "Creating" });
    }
    let line = std::sync::Arc::new(crate::progress::ProgressLine::new(ctx.quiet));
    if line.enabled() {
        // On a terminal: the operation's progress (image unpack) on one line.
        let shown = line.clone();
        let r = client
            .create_instance_with_progress(&req, std::sync::Arc::new(move |t| shown.text(t)))
            .await;
        line.done();
        r?;
    } else {
        client.create_instance(&req).await?;
    }
    if !ctx.quiet && !start && a.name.is_none() {
        println!("The instance you are starting doesn't have any network attached to it.");
    }
    Ok(0)
}

pub async fn state(
    ctx: &Ctx,
    names: &[String],
    action: &str,
    force: bool,
    timeout: i64,
) -> Result<i32, CliError> {
    for n in names {
        let (c, name) = ctx.resolve(n)?;
        // `incus start` on a frozen instance resumes it, as Incus does.
        let action = if action == "start" {
            let (inst, _) = c.instance(name).await?;
            if inst.status == "Frozen" {
                "unfreeze"
            } else {
                action
            }
        } else {
            action
        };
        c.set_state(name, action, force, timeout).await?;
    }
    Ok(0)
}

pub async fn delete(ctx: &Ctx, names: &[String], force: bool) -> Result<i32, CliError> {
    for n in names {
        let (c, name) = ctx.resolve(n)?;
        if force {
            let (inst, _) = c.instance(name).await?;
            if inst.status != "Stopped" {
                c.set_state(name, "stop", true, -1).await?;
            }
        }
        match c.delete_instance(name).await {
            Ok(()) => {}
            // An ephemeral instance is gone once stopped.
            Err(e) if force && e.kind() == incus_client::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(0)
}

pub async fn rename(ctx: &Ctx, old: &str, new: &str) -> Result<i32, CliError> {
    let (c, old) = ctx.resolve(old)?;
    let (_, new) = ctx.conf.split(new);
    c.rename_instance(old, new).await?;
    Ok(0)
}

/// `incus move OLD [NEW] [--storage POOL] [--instance-only]`: a rename, or a move of the
/// stopped instance to another pool (renamed too when NEW is given).
pub async fn move_to(
    ctx: &Ctx,
    old: &str,
    new: Option<&str>,
    storage: Option<&str>,
    instance_only: bool,
) -> Result<i32, CliError> {
    let (c, old) = ctx.resolve(old)?;
    let new = new.map(|n| ctx.conf.split(n).1);
    match (new, storage) {
        (Some(new), None) => {
            c.rename_instance(old, new).await?;
        }
        (new, Some(pool)) => {
            let body = serde_json::json!({
                "name": new.unwrap_or(old),
                "migration": true,
                "pool": pool,
                "instance_only": instance_only,
            });
            c.send(
                "POST",
                &format!("/1.0/instances/{}", escape(old)),
                &body,
                None,
            )
            .await?;
        }
        (None, None) => {
            return Err(CliError::msg(
                "Give a new name or a storage pool (--storage) to move to",
            ));
        }
    }
    Ok(0)
}

/// `incus copy` flags.
pub struct CopyOpts {
    /// `--instance-only`.
    pub instance_only: bool,
    /// `-c key=value`.
    pub config: Vec<String>,
    /// `--ephemeral`.
    pub ephemeral: bool,
    /// `--storage`: a root disk on that pool.
    pub storage: Option<String>,
}

pub async fn copy(ctx: &Ctx, source: &str, target: &str, opts: CopyOpts) -> Result<i32, CliError> {
    let CopyOpts {
        instance_only,
        config,
        ephemeral,
        storage,
    } = opts;
    let (c, source) = ctx.resolve(source)?;
    let (_, target) = ctx.conf.split(target);
    let (inst, _) = c.instance(source).await?;
    let mut put = inst.put.clone();
    put.config.retain(|k, _| !k.starts_with("volatile."));
    put.config.extend(key_values(&config)?);
    put.ephemeral = ephemeral;
    if let Some(pool) = storage {
        // A local root disk on the pool, from the instance's own or its profiles'.
        let is_root = |d: &std::collections::BTreeMap<String, String>| {
            d.get("type").map(String::as_str) == Some("disk")
                && d.get("path").map(String::as_str) == Some("/")
        };
        let name = put
            .devices
            .iter()
            .find(|(_, d)| is_root(d))
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| "root".into());
        let mut disk = inst
            .expanded_devices
            .values()
            .find(|d| is_root(d))
            .cloned()
            .unwrap_or_default();
        disk.insert("type".into(), "disk".into());
        disk.insert("path".into(), "/".into());
        disk.insert("pool".into(), pool);
        put.devices.insert(name, disk);
    }
    let req = api::InstancesPost {
        put,
        name: target.to_string(),
        source: api::InstanceSource {
            kind: "copy".into(),
            source: source.to_string(),
            instance_only,
            ..Default::default()
        },
        kind: inst.kind.clone(),
        ..Default::default()
    };
    c.create_instance(&req).await?;
    Ok(0)
}

fn addresses(state: Option<&api::InstanceState>, family: &str) -> String {
    let mut out = Vec::new();
    if let Some(net) = state.and_then(|s| s.network.as_ref()) {
        for (dev, n) in net {
            if dev == "lo" {
                continue;
            }
            for a in &n.addresses {
                if a.family == family && a.scope == "global" {
                    out.push(format!("{} ({dev})", a.address));
                }
            }
        }
    }
    out.join("\n")
}

fn bytes(n: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", units[i])
    }
}

fn date(t: &api::Timestamp) -> String {
    if *t == api::zero_time() {
        String::new()
    } else {
        t.format("%Y/%m/%d %H:%M %Z").to_string()
    }
}

/// How a `list` column is filled from an instance.
type Cell = Box<dyn Fn(&api::InstanceFull) -> String>;

/// One `list` column: its header and how to fill it.
fn column(c: char, key: Option<&str>) -> Result<(String, Cell), CliError> {
    if let Some(k) = key {
        let key = k.to_string();
        return Ok((
            k.to_uppercase(),
            Box::new(move |i| {
                i.instance
                    .expanded_config
                    .get(&key)
                    .cloned()
                    .unwrap_or_default()
            }),
        ));
    }
    let col: (&str, Cell) = match c {
        'n' => ("NAME", Box::new(|i| i.instance.name.clone())),
        's' => ("STATE", Box::new(|i| i.instance.status.to_uppercase())),
        '4' => ("IPV4", Box::new(|i| addresses(i.state.as_ref(), "inet"))),
        '6' => ("IPV6", Box::new(|i| addresses(i.state.as_ref(), "inet6"))),
        't' => (
            "TYPE",
            Box::new(|i| {
                let mut t = match i.instance.kind.as_str() {
                    "virtual-machine" => "VIRTUAL-MACHINE".to_string(),
                    _ => "CONTAINER".to_string(),
                };
                if i.instance.put.ephemeral {
                    t.push_str(" (EPHEMERAL)");
                }
                t
            }),
        ),
        'S' => ("SNAPSHOTS", Box::new(|i| i.snapshots.len().to_string())),
        'a' => (
            "ARCHITECTURE",
            Box::new(|i| i.instance.put.architecture.clone()),
        ),
        'c' => ("CREATED AT", Box::new(|i| date(&i.instance.created_at))),
        'l' => ("LAST USED AT", Box::new(|i| date(&i.instance.last_used_at))),
        'd' => (
            "DESCRIPTION",
            Box::new(|i| i.instance.put.description.clone()),
        ),
        'e' => ("PROJECT", Box::new(|i| i.instance.project.clone())),
        'p' => (
            "PID",
            Box::new(|i| match i.state.as_ref().map(|s| s.pid) {
                Some(p) if p > 0 => p.to_string(),
                _ => String::new(),
            }),
        ),
        'P' => ("PROFILES", Box::new(|i| i.instance.put.profiles.join("\n"))),
        'N' => (
            "PROCESSES",
            Box::new(|i| match i.state.as_ref().map(|s| s.processes) {
                Some(p) if p > 0 => p.to_string(),
                _ => String::new(),
            }),
        ),
        'm' => (
            "MEMORY USAGE",
            Box::new(|i| match i.state.as_ref().map(|s| s.memory.usage) {
                Some(m) if m > 0 => bytes(m),
                _ => String::new(),
            }),
        ),
        'b' => (
            "STORAGE POOL",
            Box::new(|i| {
                i.instance
                    .expanded_devices
                    .get("root")
                    .and_then(|d| d.get("pool"))
                    .cloned()
                    .unwrap_or_default()
            }),
        ),
        'L' => ("LOCATION", Box::new(|i| i.instance.location.clone())),
        other => {
            return Err(CliError::msg(format!(
                "Unknown column shorthand char '{other}' in '{other}'"
            )));
        }
    };
    Ok((col.0.to_string(), col.1))
}

/// Parses `-c`: shorthand characters, or comma-separated entries that may be config keys.
fn columns(spec: &str) -> Result<Vec<(String, Cell)>, CliError> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        if part.contains('.') {
            // `config:user.foo`, `user.foo` or `image.os`, optionally `:NAME` / `:NAME:width`.
            let key = part.trim_start_matches("config:");
            let key = key.split(':').next().unwrap_or(key);
            out.push(column(' ', Some(key))?);
        } else {
            for ch in part.chars() {
                out.push(column(ch, None)?);
            }
        }
    }
    Ok(out)
}

/// Whether an instance passes the client-side filters (`name` prefix or `key=value`).
fn matches(i: &api::InstanceFull, filters: &[String]) -> bool {
    filters.iter().all(|f| match f.split_once('=') {
        None => i.instance.name.starts_with(f.as_str()),
        Some((k, v)) => match k {
            "status" | "state" => i.instance.status.eq_ignore_ascii_case(v),
            "type" => i.instance.kind.eq_ignore_ascii_case(v),
            "name" => i.instance.name == v,
            _ => {
                let key = if i.instance.expanded_config.contains_key(k) {
                    k.to_string()
                } else {
                    format!("user.{k}")
                };
                i.instance.expanded_config.get(&key).map(String::as_str) == Some(v)
            }
        },
    })
}

pub async fn list(
    ctx: &Ctx,
    filters: &[String],
    spec: &str,
    format: Format,
    all_projects: bool,
) -> Result<i32, CliError> {
    // A leading `remote:` argument selects the remote.
    let mut filters = filters.to_vec();
    let client = match filters.first() {
        Some(f) if f.ends_with(':') && ctx.conf.remotes.contains_key(f.trim_end_matches(':')) => {
            let r = f.trim_end_matches(':').to_string();
            filters.remove(0);
            ctx.client_for(&r)?
        }
        _ => ctx.client()?,
    };
    let mut spec = spec.to_string();
    if all_projects && spec == "ns46tS" {
        spec = "ens46tS".into();
    }
    let path = if all_projects {
        "/1.0/instances?recursion=2&all-projects=true"
    } else {
        "/1.0/instances?recursion=2"
    };
    let mut items: Vec<api::InstanceFull> = client.get(path).await?;
    items.retain(|i| matches(i, &filters));
    items.sort_by(|a, b| {
        (&a.instance.project, &a.instance.name).cmp(&(&b.instance.project, &b.instance.name))
    });
    let cols = columns(&spec)?;
    let header: Vec<String> = cols.iter().map(|(h, _)| h.clone()).collect();
    let rows = items
        .iter()
        .map(|i| cols.iter().map(|(_, f)| f(i)).collect())
        .collect();
    print!("{}", render(format, &header, rows, &items)?);
    Ok(0)
}

pub async fn info(ctx: &Ctx, name: &str, show_log: bool) -> Result<i32, CliError> {
    let (c, name) = ctx.resolve(name)?;
    let (inst, _) = c.instance(name).await?;
    let state = c.instance_state(name).await?;
    let mut out = String::new();
    out.push_str(&format!("Name: {}\n", inst.name));
    out.push_str(&format!("Description: {}\n", inst.put.description));
    out.push_str(&format!("Status: {}\n", inst.status.to_uppercase()));
    out.push_str(&format!(
        "Type: {}{}\n",
        if inst.kind == "virtual-machine" {
            "virtual-machine"
        } else {
            "container"
        },
        if inst.put.ephemeral {
            " (ephemeral)"
        } else {
            ""
        }
    ));
    out.push_str(&format!("Architecture: {}\n", inst.put.architecture));
    if state.pid > 0 {
        out.push_str(&format!("PID: {}\n", state.pid));
    }
    out.push_str(&format!("Created: {}\n", date(&inst.created_at)));
    out.push_str(&format!("Last Used: {}\n", date(&inst.last_used_at)));
    if inst.status == "Running" || inst.status == "Frozen" {
        out.push_str("\nResources:\n");
        out.push_str(&format!("  Processes: {}\n", state.processes));
        out.push_str(&format!(
            "  CPU usage:\n    CPU usage (in seconds): {}\n",
            state.cpu.usage / 1_000_000_000
        ));
        out.push_str(&format!(
            "  Memory usage:\n    Memory (current): {}\n",
            bytes(state.memory.usage)
        ));
        if let Some(net) = &state.network {
            out.push_str("  Network usage:\n");
            for (dev, n) in net {
                out.push_str(&format!(
                    "    {dev}:\n      Type: {}\n      State: {}\n",
                    n.kind,
                    n.state.to_uppercase()
                ));
                if !n.hwaddr.is_empty() {
                    out.push_str(&format!("      MAC address: {}\n", n.hwaddr));
                }
                out.push_str(&format!("      MTU: {}\n", n.mtu));
                out.push_str(&format!(
                    "      Bytes received: {}\n      Bytes sent: {}\n",
                    bytes(n.counters.bytes_received),
                    bytes(n.counters.bytes_sent)
                ));
                if !n.addresses.is_empty() {
                    out.push_str("      IP addresses:\n");
                    for a in &n.addresses {
                        out.push_str(&format!(
                            "        {}:  {}/{} ({})\n",
                            a.family, a.address, a.netmask, a.scope
                        ));
                    }
                }
            }
        }
    }
    let snaps = c.snapshots(name).await?;
    if !snaps.is_empty() {
        out.push_str("\nSnapshots:\n");
        out.push_str(&snapshot_table(Format::Table, &snaps)?);
    }
    if show_log {
        let (_, log) = c
            .get_raw(&format!("/1.0/instances/{}/logs/lxc.log", escape(name)))
            .await?;
        out.push_str("\nLog:\n\n");
        out.push_str(&String::from_utf8_lossy(&log));
    }
    print!("{out}");
    Ok(0)
}

pub async fn console(ctx: &Ctx, name: &str, show_log: bool, kind: &str) -> Result<i32, CliError> {
    let (c, name) = ctx.resolve(name)?;
    if show_log {
        print!("{}", c.console_log(name).await?);
        return Ok(0);
    }
    if kind != "console" {
        return Err(CliError::msg(format!(
            "Unknown console type {kind:?} (containers have a \"console\" console)"
        )));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let resizes = tokio::spawn(forward_resizes(tx));
    // Keyboard input until <ctrl>+a q.
    let (keys, input) = tokio::io::duplex(4096);
    let keyboard = tokio::spawn(read_keys(keys));
    print!("To detach from the console, press: <ctrl>+a q\n\r");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let raw = std::io::stdin()
        .is_terminal()
        .then(super::exec::RawMode::enable);
    let (cols, rows) = super::exec::window_size();
    let io = incus_client::ConsoleIo {
        input: Box::new(input),
        output: Box::new(tokio::io::stdout()),
        resize: Some(rx),
    };
    let r = c.console(name, cols, rows, io).await;
    drop(raw);
    resizes.abort();
    keyboard.abort();
    r?;
    Ok(0)
}

/// Copies the keyboard to `keys` until <ctrl>+a q (<ctrl>+a <ctrl>+a sends one <ctrl>+a).
async fn read_keys(mut keys: tokio::io::DuplexStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 1024];
    let mut escape = false;
    loop {
        let n = match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n);
        for &b in &buf[..n] {
            if escape {
                escape = false;
                match b {
                    b'q' => {
                        let _ = keys.write_all(&out).await;
                        return;
                    }
                    0x01 => out.push(0x01),
                    other => out.extend([0x01, other]),
                }
            } else if b == 0x01 {
                escape = true;
            } else {
                out.push(b);
            }
        }
        if keys.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn forward_resizes(tx: tokio::sync::mpsc::Sender<(u16, u16)>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut winch) = signal(SignalKind::window_change()) else {
        return;
    };
    while winch.recv().await.is_some() {
        if tx.send(super::exec::window_size()).await.is_err() {
            return;
        }
    }
}

/// The snapshot list as `info` and `snapshot list` show it.
fn snapshot_table(format: Format, snaps: &[api::InstanceSnapshot]) -> Result<String, CliError> {
    let rows = snaps
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                date(&s.created_at),
                date(&s.expires_at),
                if s.stateful { "YES" } else { "NO" }.to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "TAKEN AT", "EXPIRES AT", "STATEFUL"].map(String::from);
    render(format, &header, rows, &snaps)
}

pub async fn snapshot(ctx: &Ctx, cmd: SnapshotCmd) -> Result<i32, CliError> {
    match cmd {
        SnapshotCmd::Create { name, snapshot } => {
            let (c, name) = ctx.resolve(&name)?;
            let snap = match snapshot {
                Some(s) => s,
                None => {
                    let existing = c.snapshots(name).await?;
                    (0..)
                        .map(|i| format!("snap{i}"))
                        .find(|n| !existing.iter().any(|s| &s.name == n))
                        .unwrap_or_else(|| "snap0".into())
                }
            };
            c.create_snapshot(name, &snap).await?;
        }
        SnapshotCmd::List { name, format } => {
            let (c, name) = ctx.resolve(&name)?;
            let snaps = c.snapshots(name).await?;
            print!("{}", snapshot_table(format, &snaps)?);
        }
        SnapshotCmd::Restore { name, snapshot } => {
            let (c, name) = ctx.resolve(&name)?;
            c.restore_snapshot(name, &snapshot).await?;
        }
        SnapshotCmd::Rename { name, old, new } => {
            let (c, name) = ctx.resolve(&name)?;
            c.send(
                "POST",
                &format!("/1.0/instances/{}/snapshots/{}", escape(name), escape(&old)),
                &serde_json::json!({ "name": new }),
                None,
            )
            .await?;
        }
        SnapshotCmd::Delete { name, snapshot } => {
            let (c, name) = ctx.resolve(&name)?;
            c.send_empty(
                "DELETE",
                &format!(
                    "/1.0/instances/{}/snapshots/{}",
                    escape(name),
                    escape(&snapshot)
                ),
            )
            .await?;
        }
        SnapshotCmd::Show { name, snapshot } => {
            let (c, name) = ctx.resolve(&name)?;
            let s: api::InstanceSnapshot = c
                .get(&format!(
                    "/1.0/instances/{}/snapshots/{}",
                    escape(name),
                    escape(&snapshot)
                ))
                .await?;
            print!("{}", to_yaml(&s)?);
        }
    }
    Ok(0)
}
