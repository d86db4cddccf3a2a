//! `incus storage volume`: list and show every volume type; create, configure, snapshot,
//! copy, move, attach and delete custom volumes. Output follows the Incus 6.0 client.

use crate::CliError;
use crate::args::{VolumeCmd, VolumeSnapshotCmd};
use crate::cmd::config::Object;
use crate::format::{Format, render, to_yaml};
use incus_client::{Client, escape};
use incus_core::api;
use serde_json::{Value, json};

fn date(t: &api::Timestamp) -> String {
    if *t == api::zero_time() {
        String::new()
    } else {
        t.format("%Y/%m/%d %H:%M UTC").to_string()
    }
}

/// `<pool>/<volume>` of copy and move.
fn pool_volume(arg: &str) -> Result<(&str, &str), CliError> {
    arg.split_once('/')
        .filter(|(p, v)| !p.is_empty() && !v.is_empty())
        .ok_or_else(|| CliError::msg(format!("Invalid argument {arg:?}: use <pool>/<volume>")))
}

pub async fn volume(ctx: &super::Ctx, c: &Client, cmd: VolumeCmd) -> Result<i32, CliError> {
    match cmd {
        VolumeCmd::Export {
            pool,
            volume,
            target,
            volume_only,
            compression,
            optimized_storage,
        } => {
            let opts = super::backup::Opts {
                without_snapshots: volume_only,
                compression,
                optimized_storage,
            };
            let what = super::backup::What::Volume(&pool, &volume);
            return super::backup::export(ctx, what, target, opts).await;
        }
        VolumeCmd::Import { pool, file, name } => {
            return super::backup::import_volume(ctx, &pool, &file, name.as_deref()).await;
        }
        VolumeCmd::List { pool, format } => list(c, &pool, format).await?,
        VolumeCmd::Show { pool, volume } => {
            let (kind, name) = match volume.split_once('/') {
                Some((k, rest))
                    if matches!(k, "custom" | "container" | "virtual-machine" | "image") =>
                {
                    (k, rest)
                }
                _ => ("custom", volume.as_str()),
            };
            let v: api::StorageVolume = c
                .get(&format!(
                    "/1.0/storage-pools/{}/volumes/{}/{}",
                    escape(&pool),
                    escape(kind),
                    escape(name)
                ))
                .await?;
            print!("{}", to_yaml(&v)?);
        }
        VolumeCmd::Info { pool, volume } => info(c, &pool, &volume).await?,
        VolumeCmd::Create {
            pool,
            volume,
            config,
            content_type,
            description,
        } => {
            let req = api::StorageVolumesPost {
                put: api::StorageVolumePut {
                    config: super::key_values(&config)?,
                    description: description.unwrap_or_default(),
                    restore: String::new(),
                },
                name: volume.clone(),
                kind: "custom".into(),
                content_type,
                ..Default::default()
            };
            c.create_custom_volume(&pool, &req).await?;
            println!("Storage volume {volume} created");
        }
        VolumeCmd::Delete { pool, volume } => {
            c.delete_custom_volume(&pool, &volume).await?;
            println!("Storage volume {volume} deleted");
        }
        VolumeCmd::Get { pool, volume, key } => {
            Object::volume(c.clone(), &pool, &volume)
                .get_key(&key)
                .await?
        }
        VolumeCmd::Set {
            pool,
            volume,
            settings,
        } => {
            Object::volume(c.clone(), &pool, &volume)
                .set_keys(&settings)
                .await?
        }
        VolumeCmd::Unset { pool, volume, key } => {
            Object::volume(c.clone(), &pool, &volume)
                .unset_key(&key)
                .await?
        }
        VolumeCmd::Edit { pool, volume } => {
            Object::volume(c.clone(), &pool, &volume).edit().await?
        }
        VolumeCmd::Rename {
            pool,
            volume,
            new_name,
        } => {
            let req = api::StorageVolumePost {
                name: new_name.clone(),
                ..Default::default()
            };
            c.post_custom_volume(&pool, &volume, &req).await?;
            println!("Renamed storage volume from \"{volume}\" to \"{new_name}\"");
        }
        VolumeCmd::Copy {
            source,
            target,
            volume_only,
            target_project,
        } => {
            let (sp, sv) = pool_volume(&source)?;
            let (tp, tv) = pool_volume(&target)?;
            let (src, _) = c.storage_volume(sp, "custom", sv).await?;
            let req = api::StorageVolumesPost {
                put: src.put.clone(),
                name: tv.to_string(),
                kind: "custom".into(),
                source: api::StorageVolumeSource {
                    name: sv.to_string(),
                    kind: "copy".into(),
                    pool: sp.to_string(),
                    project: c.project().to_string(),
                    volume_only,
                    refresh: false,
                },
                content_type: src.content_type.clone(),
            };
            let target_client = match &target_project {
                Some(p) => c.clone().with_project(p),
                None => c.clone(),
            };
            target_client.create_custom_volume(tp, &req).await?;
            println!("Storage volume copied successfully!");
        }
        VolumeCmd::Move {
            source,
            target,
            target_project,
        } => {
            let (sp, sv) = pool_volume(&source)?;
            let (tp, tv) = pool_volume(&target)?;
            let req = api::StorageVolumePost {
                name: tv.to_string(),
                pool: tp.to_string(),
                project: target_project.unwrap_or_default(),
                ..Default::default()
            };
            c.post_custom_volume(sp, sv, &req).await?;
            if sp == tp && req.project.is_empty() {
                println!("Renamed storage volume from \"{sv}\" to \"{tv}\"");
            } else {
                println!("Storage volume moved successfully!");
            }
        }
        VolumeCmd::Attach {
            pool,
            volume,
            instance,
            rest,
        } => attach(c, false, &pool, &volume, &instance, &rest).await?,
        VolumeCmd::AttachProfile {
            pool,
            volume,
            profile,
            rest,
        } => attach(c, true, &pool, &volume, &profile, &rest).await?,
        VolumeCmd::Detach {
            pool,
            volume,
            instance,
            device,
        } => detach(c, false, &pool, &volume, &instance, device).await?,
        VolumeCmd::DetachProfile {
            pool,
            volume,
            profile,
            device,
        } => detach(c, true, &pool, &volume, &profile, device).await?,
        VolumeCmd::Snapshot { cmd } => snapshot(c, cmd).await?,
    }
    Ok(0)
}

async fn list(c: &Client, pool: &str, format: Format) -> Result<(), CliError> {
    let vols: Vec<api::StorageVolume> = c
        .get(&format!(
            "/1.0/storage-pools/{}/volumes?recursion=1",
            escape(pool)
        ))
        .await?;
    let rows = vols
        .iter()
        .map(|v| {
            let kind = if v.name.contains('/') {
                format!("{} (snapshot)", v.kind)
            } else {
                v.kind.clone()
            };
            vec![
                kind,
                v.name.clone(),
                v.put.description.clone(),
                v.content_type.clone(),
                v.used_by.len().to_string(),
            ]
        })
        .collect();
    let header = ["TYPE", "NAME", "DESCRIPTION", "CONTENT-TYPE", "USED BY"].map(String::from);
    print!("{}", render(format, &header, rows, &vols)?);
    Ok(())
}

async fn info(c: &Client, pool: &str, volume: &str) -> Result<(), CliError> {
    let (v, _) = c.storage_volume(pool, "custom", volume).await?;
    let state = c.custom_volume_state(pool, volume).await?;
    let snaps = c.custom_volume_snapshots(pool, volume).await?;
    println!("Name: {}", v.name);
    if !v.put.description.is_empty() {
        println!("Description: {}", v.put.description);
    }
    println!("Type: {}", v.kind);
    println!("Content type: {}", v.content_type);
    if let Some(u) = state.usage {
        println!("Usage: {}", incus_core::config::iec_size_string(u.used));
        if u.total > 0 {
            println!(
                "Total: {}",
                incus_core::config::iec_size_string(u.total.unsigned_abs())
            );
        }
    }
    println!("Created: {}", date(&v.created_at));
    if !snaps.is_empty() {
        println!("\nSnapshots:");
        let rows = snaps
            .iter()
            .map(|s| {
                vec![
                    snap_name(&s.name).to_string(),
                    s.description.clone(),
                    s.expires_at.as_ref().map(date).unwrap_or_default(),
                ]
            })
            .collect();
        let header = ["NAME", "DESCRIPTION", "EXPIRES AT"].map(String::from);
        print!("{}", render(Format::Table, &header, rows, &snaps)?);
    }
    Ok(())
}

fn snap_name(full: &str) -> &str {
    full.rsplit_once('/').map(|(_, n)| n).unwrap_or(full)
}

async fn attach(
    c: &Client,
    profile: bool,
    pool: &str,
    volume: &str,
    target: &str,
    rest: &[String],
) -> Result<(), CliError> {
    // Checks the volume exists before touching the instance or profile.
    c.storage_volume(pool, "custom", volume).await?;
    let (device, path) = match rest {
        [path] => (volume.to_string(), path.clone()),
        [device, path] => (device.clone(), path.clone()),
        _ => return Err(CliError::msg("Missing the mount path")),
    };
    let obj = Object::device_holder(c.clone(), profile, target);
    obj.modify(|b| {
        let devices = b
            .entry("devices")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| CliError::msg("Invalid devices"))?;
        if devices.contains_key(&device) {
            return Err(CliError::msg(format!(
                "The device already exists: {device}"
            )));
        }
        devices.insert(
            device.clone(),
            json!({"type": "disk", "pool": pool, "source": volume, "path": path}),
        );
        Ok(())
    })
    .await
}

async fn detach(
    c: &Client,
    profile: bool,
    pool: &str,
    volume: &str,
    target: &str,
    device: Option<String>,
) -> Result<(), CliError> {
    let obj = Object::device_holder(c.clone(), profile, target);
    obj.modify(|b| {
        let devices = b
            .get_mut("devices")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| CliError::msg("No device found for this storage volume"))?;
        let name = match device {
            Some(d) => d,
            None => devices
                .iter()
                .find(|(_, d)| {
                    d.get("type").and_then(Value::as_str) == Some("disk")
                        && d.get("pool").and_then(Value::as_str) == Some(pool)
                        && d.get("source").and_then(Value::as_str) == Some(volume)
                })
                .map(|(n, _)| n.clone())
                .ok_or_else(|| CliError::msg("No device found for this storage volume"))?,
        };
        if devices.remove(&name).is_none() {
            return Err(CliError::msg("The specified device doesn't exist"));
        }
        Ok(())
    })
    .await
}

async fn snapshot(c: &Client, cmd: VolumeSnapshotCmd) -> Result<(), CliError> {
    match cmd {
        VolumeSnapshotCmd::Create {
            pool,
            volume,
            snapshot,
            expiry,
            no_expiry,
        } => {
            let expires_at = match (&expiry, no_expiry) {
                (Some(e), _) => Some(chrono::Utc::now() + incus_core::config::parse_expiry(e)?),
                // An explicit zero time: no expiry even with `snapshots.expiry` set.
                (None, true) => Some(api::zero_time()),
                (None, false) => None,
            };
            let req = api::StorageVolumeSnapshotsPost {
                name: snapshot.unwrap_or_default(),
                expires_at,
            };
            c.create_custom_volume_snapshot(&pool, &volume, &req)
                .await?;
        }
        VolumeSnapshotCmd::List {
            pool,
            volume,
            format,
        } => {
            let snaps = c.custom_volume_snapshots(&pool, &volume).await?;
            let rows = snaps
                .iter()
                .map(|s| {
                    vec![
                        snap_name(&s.name).to_string(),
                        date(&s.created_at),
                        s.expires_at.as_ref().map(date).unwrap_or_default(),
                    ]
                })
                .collect();
            let header = ["NAME", "TAKEN AT", "EXPIRES AT"].map(String::from);
            print!("{}", render(format, &header, rows, &snaps)?);
        }
        VolumeSnapshotCmd::Delete {
            pool,
            volume,
            snapshot,
        } => {
            c.delete_custom_volume_snapshot(&pool, &volume, &snapshot)
                .await?;
            println!("Storage volume snapshot {snapshot} deleted from {volume}");
        }
        VolumeSnapshotCmd::Rename {
            pool,
            volume,
            snapshot,
            new_name,
        } => {
            c.rename_custom_volume_snapshot(&pool, &volume, &snapshot, &new_name)
                .await?;
        }
        VolumeSnapshotCmd::Restore {
            pool,
            volume,
            snapshot,
        } => {
            let (v, etag) = c.storage_volume(&pool, "custom", &volume).await?;
            let put = api::StorageVolumePut {
                config: v.put.config,
                description: v.put.description,
                restore: snapshot,
            };
            c.update_custom_volume(&pool, &volume, &put, Some(&etag))
                .await?;
        }
        VolumeSnapshotCmd::Show {
            pool,
            volume,
            snapshot,
        } => {
            let s: api::StorageVolumeSnapshot = c
                .get(&format!(
                    "/1.0/storage-pools/{}/volumes/custom/{}/snapshots/{}",
                    escape(&pool),
                    escape(&volume),
                    escape(&snapshot)
                ))
                .await?;
            print!("{}", to_yaml(&s)?);
        }
    }
    Ok(())
}
