//! `incus image` and `incus image alias`.

use super::{Ctx, edit_yaml};
use crate::CliError;
use crate::args::{AliasCmd, ImageCmd};
use crate::format::{render, to_yaml};
use incus_client::escape;
use incus_core::api;
use std::path::Path;

fn date(t: &api::Timestamp) -> String {
    if *t == api::zero_time() {
        String::new()
    } else {
        t.format("%Y/%m/%d %H:%M UTC").to_string()
    }
}

fn description(i: &api::Image) -> String {
    i.put
        .properties
        .get("description")
        .cloned()
        .unwrap_or_default()
}

/// Whether image `i` passes `incus image list` filter `f`: `key=value` on a property, or
/// else a prefix of one of its aliases or of its fingerprint.
fn image_matches(i: &api::Image, f: &str) -> bool {
    match f.split_once('=') {
        Some((k, v)) => i.put.properties.get(k).is_some_and(|p| p == v),
        None => i.fingerprint.starts_with(f) || i.aliases.iter().any(|a| a.name.starts_with(f)),
    }
}

fn image_header(k: char) -> &'static str {
    match k {
        'l' | 'L' => "ALIAS",
        'f' | 'F' => "FINGERPRINT",
        'p' => "PUBLIC",
        'd' => "DESCRIPTION",
        'a' => "ARCHITECTURE",
        't' => "TYPE",
        's' => "SIZE",
        'u' => "UPLOAD DATE",
        _ => "",
    }
}

fn image_column(k: char, i: &api::Image) -> String {
    let names = || i.aliases.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
    match k {
        // `l` shows the shortest alias and how many more there are, as Incus does.
        'l' => {
            let n = names();
            match n.iter().min_by_key(|a| a.len()) {
                None => String::new(),
                Some(short) if n.len() == 1 => short.clone(),
                Some(short) => format!("{short} ({} more)", n.len() - 1),
            }
        }
        'L' => names().join("\n"),
        'f' => i.fingerprint.chars().take(12).collect(),
        'F' => i.fingerprint.clone(),
        'p' => if i.put.public { "yes" } else { "no" }.to_string(),
        'd' => description(i),
        'a' => i.architecture.clone(),
        't' => if i.kind == "virtual-machine" {
            "VIRTUAL-MACHINE"
        } else {
            "CONTAINER"
        }
        .to_string(),
        's' => format!("{:.2}MiB", i.size as f64 / 1048576.0),
        'u' => date(&i.uploaded_at),
        _ => String::new(),
    }
}

pub async fn run(ctx: &Ctx, cmd: ImageCmd) -> Result<i32, CliError> {
    match cmd {
        ImageCmd::Import {
            files,
            alias,
            public,
        } => {
            let c = ctx.client()?;
            let meta = Path::new(&files[0]);
            let rootfs = files.get(1).map(Path::new);
            let line = std::sync::Arc::new(crate::progress::ProgressLine::new(ctx.quiet));
            let shown = line.clone();
            let progress: incus_client::Progress = std::sync::Arc::new(move |done, total| {
                shown.transfer("Transferring image", done, total)
            });
            let fp = c
                .import_image_with_progress(meta, rootfs, public, Some(progress))
                .await;
            line.done();
            let fp = fp?;
            for a in &alias {
                c.create_alias(a, &fp, "").await?;
            }
            if !ctx.quiet {
                println!("Image imported with fingerprint: {fp}");
            }
        }
        ImageCmd::List {
            mut filters,
            columns,
            format,
        } => {
            // A first argument naming a remote (`pub:`, `pub:debian`) picks the server.
            let (c, first) = match filters.first() {
                Some(f) if f.contains(':') => {
                    let (c, rest) = ctx.resolve(f)?;
                    (c, Some(rest.to_string()))
                }
                _ => (ctx.client()?, None),
            };
            if let Some(rest) = first {
                filters.remove(0);
                if !rest.is_empty() {
                    filters.insert(0, rest);
                }
            }
            let mut images = c.images().await?;
            images.retain(|i| filters.iter().all(|f| image_matches(i, f)));
            images.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
            let cols: Vec<char> = columns.chars().filter(|c| *c != ',').collect();
            if let Some(bad) = cols.iter().find(|&&k| image_header(k).is_empty()) {
                return Err(CliError::msg(format!(
                    "Unknown column shorthand char '{bad}' in '{columns}'"
                )));
            }
            let rows = images
                .iter()
                .map(|i| cols.iter().map(|&k| image_column(k, i)).collect())
                .collect();
            let header: Vec<String> = cols.iter().map(|&k| image_header(k).to_string()).collect();
            print!("{}", render(format, &header, rows, &images)?);
        }
        ImageCmd::Info { image } => {
            let c = ctx.client()?;
            let fp = c.resolve_image(&image).await?;
            let i: api::Image = c.get(&format!("/1.0/images/{}", escape(&fp))).await?;
            let mut out = format!(
                "Fingerprint: {}\nSize: {:.2}MiB\nArchitecture: {}\nType: {}\nPublic: {}\nTimestamps:\n    Created: {}\n    Uploaded: {}\n    Expires: never\n    Last used: {}\nProperties:\n",
                i.fingerprint,
                i.size as f64 / 1048576.0,
                i.architecture,
                if i.kind.is_empty() {
                    "container"
                } else {
                    &i.kind
                },
                if i.put.public { "yes" } else { "no" },
                date(&i.created_at),
                date(&i.uploaded_at),
                Some(date(&i.last_used_at))
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "never".into()),
            );
            for (k, v) in &i.put.properties {
                out.push_str(&format!("    {k}: {v}\n"));
            }
            out.push_str("Aliases:\n");
            for a in &i.aliases {
                out.push_str(&format!("    - {}\n", a.name));
            }
            out.push_str(&format!(
                "Cached: {}\nAuto update: disabled\nProfiles:\n",
                if i.cached { "yes" } else { "no" }
            ));
            for p in &i.put.profiles {
                out.push_str(&format!("    - {p}\n"));
            }
            print!("{out}");
        }
        ImageCmd::Show { image } => {
            let c = ctx.client()?;
            let fp = c.resolve_image(&image).await?;
            let i: api::Image = c.get(&format!("/1.0/images/{}", escape(&fp))).await?;
            print!("{}", to_yaml(&i)?);
        }
        ImageCmd::Edit { image } => {
            let c = ctx.client()?;
            let fp = c.resolve_image(&image).await?;
            let path = format!("/1.0/images/{}", escape(&fp));
            let (i, etag): (api::Image, String) = c.get_with_etag(&path).await?;
            edit_yaml(to_yaml(&i.put)?, |text| {
                let (c, path, etag) = (c.clone(), path.clone(), etag.clone());
                async move {
                    let put: api::ImagePut =
                        serde_saphyr::from_str(&text).map_err(|e| CliError::msg(e.to_string()))?;
                    c.send("PUT", &path, &put, Some(&etag)).await?;
                    Ok(())
                }
            })
            .await?;
        }
        ImageCmd::Delete { images } => {
            let c = ctx.client()?;
            for image in images {
                let fp = c.resolve_image(&image).await?;
                c.send_empty("DELETE", &format!("/1.0/images/{}", escape(&fp)))
                    .await?;
            }
        }
        ImageCmd::Export { image, target } => {
            let c = ctx.client()?;
            let fp = c.resolve_image(&image).await?;
            let (headers, data) = c
                .get_raw(&format!("/1.0/images/{}/export", escape(&fp)))
                .await?;
            let ctype = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if ctype.starts_with("multipart/") {
                return Err(CliError::msg(
                    "Exporting split images is not supported by this client yet",
                ));
            }
            let fname = headers
                .get("content-disposition")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split("filename=").nth(1))
                .map(|f| f.trim_matches('"').to_string())
                .unwrap_or_else(|| format!("{fp}.tar.xz"));
            let target = target.unwrap_or_else(|| ".".into());
            let dest = if Path::new(&target).is_dir() {
                Path::new(&target).join(fname)
            } else {
                Path::new(&target).to_path_buf()
            };
            std::fs::write(&dest, data)?;
            if !ctx.quiet {
                println!("Image exported successfully!");
            }
        }
        ImageCmd::Alias { cmd } => alias(ctx, cmd).await?,
    }
    Ok(0)
}

async fn alias(ctx: &Ctx, cmd: AliasCmd) -> Result<(), CliError> {
    let c = ctx.client()?;
    match cmd {
        AliasCmd::Create { alias, fingerprint } => {
            let fp = c.resolve_image(&fingerprint).await?;
            c.create_alias(&alias, &fp, "").await?;
        }
        AliasCmd::Delete { alias } => {
            c.send_empty("DELETE", &format!("/1.0/images/aliases/{}", escape(&alias)))
                .await?;
        }
        AliasCmd::List { format } => {
            let aliases: Vec<api::ImageAliasesEntry> =
                c.get("/1.0/images/aliases?recursion=1").await?;
            let rows = aliases
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.put.target.chars().take(12).collect(),
                        a.kind.to_uppercase(),
                        a.put.description.clone(),
                    ]
                })
                .collect();
            let header = ["ALIAS", "FINGERPRINT", "TYPE", "DESCRIPTION"].map(String::from);
            print!("{}", render(format, &header, rows, &aliases)?);
        }
    }
    Ok(())
}
