//! Server info, projects, storage, operations, monitor, query, remotes, admin and
//! version.

use super::Ctx;
use crate::CliError;
use crate::args::{AdminCmd, OperationCmd, ProjectCmd, StorageCmd};
use crate::cmd::config::{Object, key_cmd};
use crate::format::{render, to_yaml};
use incus_client::escape;
use incus_core::api;
use serde_json::json;

pub async fn server_info(ctx: &Ctx, resources: bool) -> Result<i32, CliError> {
    let c = ctx.client()?;
    if resources {
        let r: serde_json::Value = c.get("/1.0/resources").await?;
        print!("{}", to_yaml(&r)?);
        return Ok(0);
    }
    let (s, _) = c.server().await?;
    print!("{}", to_yaml(&s)?);
    Ok(0)
}

pub async fn project(mut ctx: Ctx, cmd: ProjectCmd) -> Result<i32, CliError> {
    match cmd {
        ProjectCmd::List { format } => {
            let c = ctx.client()?;
            let current = c.project().to_string();
            let projects: Vec<api::Project> = c.get("/1.0/projects?recursion=1").await?;
            let flag = |p: &api::Project, k: &str| {
                if p.put.config.get(k).map(String::as_str) == Some("true") {
                    "YES"
                } else {
                    "NO"
                }
                .to_string()
            };
            let rows = projects
                .iter()
                .map(|p| {
                    let name = if p.name == current {
                        format!("{} (current)", p.name)
                    } else {
                        p.name.clone()
                    };
                    vec![
                        name,
                        flag(p, "features.images"),
                        flag(p, "features.profiles"),
                        flag(p, "features.storage.volumes"),
                        flag(p, "features.storage.buckets"),
                        flag(p, "features.networks"),
                        flag(p, "features.networks.zones"),
                        p.put.description.clone(),
                        p.used_by.len().to_string(),
                    ]
                })
                .collect();
            let header = [
                "NAME",
                "IMAGES",
                "PROFILES",
                "STORAGE VOLUMES",
                "STORAGE BUCKETS",
                "NETWORKS",
                "NETWORK ZONES",
                "DESCRIPTION",
                "USED BY",
            ]
            .map(String::from);
            print!("{}", render(format, &header, rows, &projects)?);
        }
        ProjectCmd::Create { name, config } => {
            let c = ctx.client()?;
            let conf = super::key_values(&config)?;
            c.send(
                "POST",
                "/1.0/projects",
                &json!({"name": name, "config": conf, "description": ""}),
                None,
            )
            .await?;
            println!("Project {name} created");
        }
        ProjectCmd::Delete { names } => {
            let c = ctx.client()?;
            for n in names {
                c.send_empty("DELETE", &format!("/1.0/projects/{}", escape(&n)))
                    .await?;
                println!("Project {n} deleted");
            }
        }
        ProjectCmd::Show { name } => {
            let c = ctx.client()?;
            let p: api::Project = c.get(&format!("/1.0/projects/{}", escape(&name))).await?;
            print!("{}", to_yaml(&p)?);
        }
        ProjectCmd::Keys(cmd) => {
            let obj = Object::project(ctx.client()?, cmd.name());
            return key_cmd(obj, cmd).await;
        }
        ProjectCmd::Rename { old, new } => {
            ctx.client()?
                .send(
                    "POST",
                    &format!("/1.0/projects/{}", escape(&old)),
                    &json!({ "name": new }),
                    None,
                )
                .await?;
            println!("Project {old} renamed to {new}");
        }
        ProjectCmd::Switch { name } => {
            let c = ctx.client()?;
            // It must exist.
            let _: api::Project = c.get(&format!("/1.0/projects/{}", escape(&name))).await?;
            let remote = ctx.conf.default_remote.clone();
            if let Some(r) = ctx.conf.remotes.get_mut(&remote) {
                r.project = name;
            }
            ctx.conf.save()?;
        }
    }
    Ok(0)
}

pub async fn storage(ctx: &Ctx, cmd: StorageCmd) -> Result<i32, CliError> {
    let c = ctx.client()?;
    match cmd {
        StorageCmd::List { format } => {
            let pools: Vec<api::StoragePool> = c.get("/1.0/storage-pools?recursion=1").await?;
            let rows = pools
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        p.driver.clone(),
                        p.put.description.clone(),
                        p.used_by.len().to_string(),
                        p.status.to_uppercase(),
                    ]
                })
                .collect();
            let header = ["NAME", "DRIVER", "DESCRIPTION", "USED BY", "STATE"].map(String::from);
            print!("{}", render(format, &header, rows, &pools)?);
        }
        StorageCmd::Show { name } => {
            let p: api::StoragePool = c
                .get(&format!("/1.0/storage-pools/{}", escape(&name)))
                .await?;
            print!("{}", to_yaml(&p)?);
        }
        StorageCmd::Info { name, bytes } => {
            let (pool, _) = c.storage_pool(&name).await?;
            let res: api::StoragePoolResources = c
                .get(&format!("/1.0/storage-pools/{}/resources", escape(&name)))
                .await?;
            let size = |n: u64| {
                if bytes {
                    n.to_string()
                } else {
                    incus_core::config::iec_size_string(n)
                }
            };
            let mut used_by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for url in &pool.used_by {
                let (path, query) = url.split_once('?').unwrap_or((url, ""));
                let mut parts = path.trim_start_matches("/1.0/").splitn(2, '/');
                let (kind, item) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let project = query.strip_prefix("project=").unwrap_or("");
                let item = if project.is_empty() || project == "default" {
                    item.to_string()
                } else {
                    format!("{item} (project: {project})")
                };
                used_by.entry(kind.to_string()).or_default().push(item);
            }
            let out = json!({
                "info": {
                    "description": pool.put.description,
                    "driver": pool.driver,
                    "name": pool.name,
                    "space used": size(res.space.used),
                    "total space": size(res.space.total),
                },
                "used by": used_by,
            });
            print!("{}", to_yaml(&out)?);
        }
        StorageCmd::Create {
            name,
            driver,
            config,
        } => {
            let conf = super::key_values(&config)?;
            c.send(
                "POST",
                "/1.0/storage-pools",
                &json!({"name": name, "driver": driver, "config": conf, "description": ""}),
                None,
            )
            .await?;
            println!("Storage pool {name} created");
        }
        StorageCmd::Volume { cmd } => return super::volume::volume(ctx, &c, cmd).await,
        StorageCmd::Keys(cmd) => {
            let obj = Object::pool(c, cmd.name());
            return key_cmd(obj, cmd).await;
        }
        StorageCmd::Delete { name } => {
            c.send_empty("DELETE", &format!("/1.0/storage-pools/{}", escape(&name)))
                .await?;
            println!("Storage pool {name} deleted");
        }
    }
    Ok(0)
}

pub async fn operation(ctx: &Ctx, cmd: OperationCmd) -> Result<i32, CliError> {
    let c = ctx.client()?;
    match cmd {
        OperationCmd::List { format } => {
            let ops: std::collections::BTreeMap<String, Vec<api::Operation>> =
                c.get("/1.0/operations?recursion=1").await?;
            let all: Vec<&api::Operation> = ops.values().flatten().collect();
            let rows = all
                .iter()
                .map(|o| {
                    vec![
                        o.id.clone(),
                        o.class.to_uppercase(),
                        o.description.clone(),
                        o.status.to_uppercase(),
                        if o.may_cancel { "YES" } else { "NO" }.to_string(),
                        o.created_at.format("%Y/%m/%d %H:%M %Z").to_string(),
                    ]
                })
                .collect();
            let header = [
                "ID",
                "TYPE",
                "DESCRIPTION",
                "STATUS",
                "CANCELABLE",
                "CREATED",
            ]
            .map(String::from);
            print!("{}", render(format, &header, rows, &all)?);
        }
        OperationCmd::Show { id } => {
            let o: api::Operation = c.get(&format!("/1.0/operations/{}", escape(&id))).await?;
            print!("{}", to_yaml(&o)?);
        }
        OperationCmd::Delete { id } => {
            c.request(
                "DELETE",
                &format!("/1.0/operations/{}", escape(&id)),
                None,
                None,
            )
            .await?;
            println!("Operation {id} deleted");
        }
    }
    Ok(0)
}

pub async fn monitor(ctx: &Ctx, kinds: &[String]) -> Result<i32, CliError> {
    let c = ctx.client()?;
    let mut path = "/1.0/events".to_string();
    if !kinds.is_empty() {
        path.push_str(&format!("?type={}", escape(&kinds.join(","))));
    }
    let mut events = c.events(&path).await?;
    while let Some(ev) = events.next().await {
        println!("{}", to_yaml(&ev?)?);
    }
    Ok(0)
}

pub async fn query(
    ctx: &Ctx,
    path: &str,
    method: &str,
    data: Option<&str>,
    wait: bool,
    raw: bool,
) -> Result<i32, CliError> {
    let (c, path) = ctx.resolve(path)?;
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let body = data
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
        .map_err(|e| CliError::msg(format!("Invalid JSON in --data: {e}")))?;
    let r = c.request(method, &path, body.as_ref(), None).await?;
    let out = if wait && r.raw.kind == "async" {
        serde_json::to_value(c.wait_operation(&r.raw.operation).await?)?
    } else if raw {
        serde_json::to_value(&r.raw)?
    } else {
        r.raw.metadata
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

pub async fn admin(ctx: &Ctx, cmd: AdminCmd) -> Result<i32, CliError> {
    let c = ctx.client()?;
    match cmd {
        AdminCmd::Waitready { timeout } => {
            let start = std::time::Instant::now();
            loop {
                if c.request("GET", "/internal/ready", None, None)
                    .await
                    .is_ok()
                {
                    return Ok(0);
                }
                if timeout > 0 && start.elapsed().as_secs() >= timeout {
                    return Err(CliError::msg(format!(
                        "Daemon still not running after {timeout}s timeout"
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        AdminCmd::Init {
            auto,
            preseed,
            storage_backend,
            network_address,
            network_port,
        } => {
            if (network_address.is_some() || network_port.is_some()) && !auto {
                return Err(CliError::msg("Configuration flags require --auto"));
            }
            if preseed {
                use std::io::Read;
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                let seed: serde_json::Value = serde_saphyr::from_str(&text)
                    .map_err(|e| CliError::msg(format!("Invalid preseed YAML: {e}")))?;
                apply_preseed(&c, &seed).await?;
                return Ok(0);
            }
            if !auto {
                return Err(CliError::msg(
                    "Interactive init is not supported yet; use --auto or --preseed",
                ));
            }
            let backend = storage_backend.unwrap_or_else(|| "dir".into());
            let pools: Vec<api::StoragePool> = c.get("/1.0/storage-pools?recursion=1").await?;
            if !pools.iter().any(|p| p.name == "default") {
                c.send(
                    "POST",
                    "/1.0/storage-pools",
                    &json!({"name": "default", "driver": backend, "config": {}}),
                    None,
                )
                .await?;
            }
            ensure_root_disk(&c, "default").await?;
            ensure_default_network(&c).await?;
            if let Some(addr) = network_address {
                // As Incus: an IPv6 address is bracketed, the port defaults to 8443.
                let host = if addr.contains(':') && !addr.starts_with('[') {
                    format!("[{addr}]")
                } else {
                    addr
                };
                let listen = format!("{host}:{}", network_port.unwrap_or(8443));
                let (_, etag) = c.server().await?;
                c.send(
                    "PATCH",
                    "/1.0",
                    &json!({"config": {"core.https_address": listen}}),
                    Some(&etag),
                )
                .await?;
            } else if network_port.is_some() {
                return Err(CliError::msg(
                    "--network-port can't be used without --network-address",
                ));
            }
        }
    }
    Ok(0)
}

/// As Incus's `init --auto`: when there is no managed network and the default profile has no
/// nic, creates `incusbrN` (the first free N; `auto` addresses, so NAT on) and gives the
/// default profile an `eth0` on it.
async fn ensure_default_network(c: &incus_client::Client) -> Result<(), CliError> {
    let nets = c.networks().await?;
    let (profile, _) = c.profile("default").await?;
    let has_nic = profile
        .put
        .devices
        .values()
        .any(|d| d.get("type").map(String::as_str) == Some("nic"));
    if nets.iter().any(|n| n.managed) || has_nic {
        return Ok(());
    }
    let name = (0..)
        .map(|i| format!("incusbr{i}"))
        .find(|n| !nets.iter().any(|net| net.name == *n))
        .unwrap_or_else(|| "incusbr0".into());
    c.create_network(&api::NetworksPost {
        name: name.clone(),
        ..Default::default()
    })
    .await?;
    let eth0: std::collections::BTreeMap<String, String> = [
        ("type".to_string(), "nic".to_string()),
        ("network".to_string(), name),
        ("name".to_string(), "eth0".to_string()),
    ]
    .into();
    let (mut profile, etag) = c.profile("default").await?;
    profile.put.devices.insert("eth0".into(), eth0);
    c.update_profile("default", &profile.put, Some(&etag))
        .await?;
    Ok(())
}

/// Gives the default profile a root disk on `pool` when it has none.
async fn ensure_root_disk(c: &incus_client::Client, pool: &str) -> Result<(), CliError> {
    let (mut p, etag): (serde_json::Value, String) =
        c.get_with_etag("/1.0/profiles/default").await?;
    let has_root = p["devices"]
        .as_object()
        .is_some_and(|d| d.values().any(|v| v["type"] == "disk" && v["path"] == "/"));
    if !has_root {
        p["devices"]["root"] = json!({"type": "disk", "path": "/", "pool": pool});
        let body = json!({"config": p["config"], "description": p["description"], "devices": p["devices"]});
        c.send("PUT", "/1.0/profiles/default", &body, Some(&etag))
            .await?;
    }
    Ok(())
}

/// Applies the parts of a preseed this daemon supports: `config`, `storage_pools`,
/// `networks`, `profiles` and `projects`. A cluster section is refused.
async fn apply_preseed(c: &incus_client::Client, seed: &serde_json::Value) -> Result<(), CliError> {
    if seed.get("cluster").is_some_and(|v| !v.is_null()) {
        return Err(CliError::msg(
            "Preseed section \"cluster\" is not supported yet",
        ));
    }
    if let Some(conf) = seed.get("config").and_then(|v| v.as_object()) {
        let (_, etag) = c.server().await?;
        c.send("PATCH", "/1.0", &json!({ "config": conf }), Some(&etag))
            .await?;
    }
    if let Some(pools) = seed.get("storage_pools").and_then(|v| v.as_array()) {
        let existing: Vec<api::StoragePool> = c.get("/1.0/storage-pools?recursion=1").await?;
        for p in pools {
            let name = p["name"].as_str().unwrap_or("");
            if !existing.iter().any(|e| e.name == name) {
                c.send("POST", "/1.0/storage-pools", p, None).await?;
            }
        }
    }
    // Networks before profiles, whose nics may use them; existing ones get the given keys
    // merged into their config, as Incus does.
    if let Some(networks) = seed.get("networks").and_then(|v| v.as_array()) {
        for n in networks {
            let req: api::NetworksPost = serde_json::from_value(n.clone())
                .map_err(|e| CliError::msg(format!("Invalid preseed network: {e}")))?;
            match c.network_with_etag(&req.name).await {
                Ok((existing, etag)) if existing.managed => {
                    let mut put = existing.put;
                    put.config.extend(req.put.config);
                    if !req.put.description.is_empty() {
                        put.description = req.put.description;
                    }
                    c.update_network(&req.name, &put, Some(&etag)).await?;
                }
                _ => c.create_network(&req).await?,
            }
        }
    }
    if let Some(projects) = seed.get("projects").and_then(|v| v.as_array()) {
        for p in projects {
            let name = p["name"].as_str().unwrap_or("");
            if c.get::<serde_json::Value>(&format!("/1.0/projects/{}", escape(name)))
                .await
                .is_err()
            {
                c.send("POST", "/1.0/projects", p, None).await?;
            }
        }
    }
    if let Some(profiles) = seed.get("profiles").and_then(|v| v.as_array()) {
        for p in profiles {
            let name = p["name"].as_str().unwrap_or("");
            let path = format!("/1.0/profiles/{}", escape(name));
            match c.get_with_etag::<serde_json::Value>(&path).await {
                Ok((current, etag)) => {
                    // Given keys and devices are merged into the existing profile, as Incus
                    // does.
                    let mut body = json!({"config": current["config"], "description": current["description"], "devices": current["devices"]});
                    for field in ["config", "devices"] {
                        if let (Some(into), Some(from)) = (
                            body[field].as_object_mut(),
                            p.get(field).and_then(|v| v.as_object()),
                        ) {
                            into.extend(from.clone());
                        } else if let Some(from) = p.get(field).filter(|v| v.is_object()) {
                            body[field] = from.clone();
                        }
                    }
                    if let Some(d) = p
                        .get("description")
                        .filter(|d| d.as_str().is_some_and(|d| !d.is_empty()))
                    {
                        body["description"] = d.clone();
                    }
                    c.send("PUT", &path, &body, Some(&etag)).await?;
                }
                Err(_) => {
                    c.send("POST", "/1.0/profiles", p, None).await?;
                }
            }
        }
    }
    Ok(())
}

pub async fn version(ctx: &Ctx) -> Result<i32, CliError> {
    println!("Client version: {}", env!("CARGO_PKG_VERSION"));
    let server = match ctx.client() {
        Ok(c) => match c.server().await {
            Ok((s, _)) => s.environment.server_version,
            Err(_) => "unreachable".into(),
        },
        Err(_) => "unreachable".into(),
    };
    println!("Server version: {server}");
    Ok(0)
}
