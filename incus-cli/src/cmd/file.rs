//! `incus file push|pull|delete|create|edit` over the `/files` endpoint.

use super::Ctx;
use crate::CliError;
use crate::args::FileCmd;
use incus_client::{Client, FileContent};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Splits `[remote:]instance/path` into the client, instance and absolute path.
fn target<'a>(ctx: &Ctx, arg: &'a str) -> Result<(Client, &'a str, String), CliError> {
    let (c, rest) = ctx.resolve(arg)?;
    let (inst, path) = rest
        .split_once('/')
        .ok_or_else(|| CliError::msg(format!("Invalid target {arg}")))?;
    Ok((c, inst, format!("/{path}")))
}

fn parse_mode(m: &Option<String>) -> Result<Option<u32>, CliError> {
    m.as_ref()
        .map(|m| {
            u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .map_err(|_| CliError::msg(format!("Invalid mode {m}")))
        })
        .transpose()
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// Creates every missing directory of `path` (not `path` itself).
async fn mkdir_parents(c: &Client, inst: &str, path: &str) -> Result<(), CliError> {
    let mut cur = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for p in &parts[..parts.len().saturating_sub(1)] {
        cur = join(&cur, p);
        if c.file_get(inst, &cur).await.is_err() {
            c.file_put(
                inst,
                &cur,
                "directory",
                Vec::new(),
                None,
                None,
                Some(0o755),
                false,
            )
            .await?;
        }
    }
    Ok(())
}

struct PushOpts {
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
}

fn push_one<'a>(
    c: &'a Client,
    inst: &'a str,
    local: &'a Path,
    remote: &'a str,
    o: &'a PushOpts,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CliError>> + 'a>> {
    Box::pin(async move {
        let meta = std::fs::symlink_metadata(local)
            .map_err(|e| CliError::msg(format!("{}: {e}", local.display())))?;
        let mode = o.mode.unwrap_or(meta.permissions().mode() & 0o7777);
        if meta.file_type().is_symlink() {
            let t = std::fs::read_link(local)?;
            c.file_put(
                inst,
                remote,
                "symlink",
                t.to_string_lossy().into_owned().into_bytes(),
                o.uid,
                o.gid,
                None,
                false,
            )
            .await?;
        } else if meta.is_dir() {
            c.file_put(
                inst,
                remote,
                "directory",
                Vec::new(),
                o.uid,
                o.gid,
                Some(mode),
                false,
            )
            .await?;
            let mut entries: Vec<_> = std::fs::read_dir(local)?.flatten().collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                push_one(c, inst, &e.path(), &join(remote, &name), o).await?;
            }
        } else {
            let data = std::fs::read(local)
                .map_err(|e| CliError::msg(format!("{}: {e}", local.display())))?;
            c.file_put(inst, remote, "file", data, o.uid, o.gid, Some(mode), false)
                .await?;
        }
        Ok(())
    })
}

fn pull_one<'a>(
    c: &'a Client,
    inst: &'a str,
    remote: &'a str,
    local: &'a Path,
    recursive: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CliError>> + 'a>> {
    Box::pin(async move {
        match c.file_get(inst, remote).await? {
            FileContent::File { data, mode, .. } => {
                if local == Path::new("-") {
                    use std::io::Write;
                    std::io::stdout().write_all(&data)?;
                } else {
                    std::fs::write(local, data)
                        .map_err(|e| CliError::msg(format!("{}: {e}", local.display())))?;
                    std::fs::set_permissions(local, std::fs::Permissions::from_mode(mode))?;
                }
            }
            FileContent::Symlink { target, .. } => {
                let _ = std::fs::remove_file(local);
                std::os::unix::fs::symlink(target, local)?;
            }
            FileContent::Directory { entries, mode, .. } => {
                if !recursive {
                    return Err(CliError::msg("Can't pull a directory without --recursive"));
                }
                std::fs::create_dir_all(local)?;
                std::fs::set_permissions(local, std::fs::Permissions::from_mode(mode))?;
                for e in entries {
                    pull_one(c, inst, &join(remote, &e), &local.join(&e), true).await?;
                }
            }
        }
        Ok(())
    })
}

fn delete_tree<'a>(
    c: &'a Client,
    inst: &'a str,
    path: &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CliError>> + 'a>> {
    Box::pin(async move {
        if let FileContent::Directory { entries, .. } = c.file_get(inst, path).await? {
            for e in entries {
                delete_tree(c, inst, &join(path, &e)).await?;
            }
        }
        c.file_delete(inst, path).await?;
        Ok(())
    })
}

fn base(p: &str) -> String {
    Path::new(p.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub async fn run(ctx: &Ctx, cmd: FileCmd) -> Result<i32, CliError> {
    match cmd {
        FileCmd::Push {
            paths,
            recursive,
            create_dirs,
            uid,
            gid,
            mode,
        } => {
            let (sources, dest) = paths.split_at(paths.len() - 1);
            let (c, inst, dest_path) = target(ctx, &dest[0])?;
            let dir_target = dest[0].ends_with('/') || sources.len() > 1 || recursive;
            let o = PushOpts {
                uid,
                gid,
                mode: parse_mode(&mode)?,
            };
            for s in sources {
                let local = PathBuf::from(s);
                let meta = std::fs::symlink_metadata(&local)
                    .map_err(|e| CliError::msg(format!("{s}: {e}")))?;
                if meta.is_dir() && !recursive {
                    return Err(CliError::msg(format!(
                        "{s}: is a directory (use --recursive)"
                    )));
                }
                let remote = if dir_target {
                    join(&dest_path, &base(s))
                } else {
                    dest_path.clone()
                };
                if create_dirs {
                    mkdir_parents(&c, inst, &remote).await?;
                }
                push_one(&c, inst, &local, &remote, &o).await?;
                if !ctx.quiet
                    && meta.is_file()
                    && std::io::IsTerminal::is_terminal(&std::io::stdout())
                {
                    println!("Pushed {s} to {remote} ({} bytes)", meta.size());
                }
            }
        }
        FileCmd::Pull {
            paths,
            recursive,
            create_dirs,
        } => {
            let (sources, dest) = paths.split_at(paths.len() - 1);
            let dest = PathBuf::from(&dest[0]);
            let dest_is_dir =
                dest.is_dir() || dest.to_string_lossy().ends_with('/') || sources.len() > 1;
            if dest_is_dir && !dest.exists() {
                std::fs::create_dir_all(&dest)?;
            } else if create_dirs && let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            for s in sources {
                let (c, inst, path) = target(ctx, s)?;
                // A directory pulled recursively lands inside the target, which is created.
                let is_dir = recursive
                    && matches!(
                        c.file_get(inst, &path).await?,
                        FileContent::Directory { .. }
                    );
                if is_dir {
                    std::fs::create_dir_all(&dest)?;
                }
                let local = if (dest_is_dir || is_dir) && dest != Path::new("-") {
                    dest.join(base(&path))
                } else {
                    dest.clone()
                };
                pull_one(&c, inst, &path, &local, recursive).await?;
            }
        }
        FileCmd::Delete { paths, force } => {
            for p in paths {
                let (c, inst, path) = target(ctx, &p)?;
                if force {
                    delete_tree(&c, inst, &path).await?;
                } else {
                    c.file_delete(inst, &path).await?;
                }
            }
        }
        FileCmd::Create {
            path,
            target: link,
            kind,
            create_dirs,
            force,
            uid,
            gid,
            mode,
        } => {
            let kind = if path.ends_with('/') {
                "directory".to_string()
            } else {
                kind
            };
            if !["file", "directory", "symlink"].contains(&kind.as_str()) {
                return Err(CliError::msg(format!("Invalid type {kind:?}")));
            }
            if link.is_some() != (kind == "symlink") {
                return Err(CliError::msg(
                    "A symlink target path is needed for, and only for, type \"symlink\"",
                ));
            }
            let (c, inst, p) = target(ctx, &path)?;
            if create_dirs {
                mkdir_parents(&c, inst, &p).await?;
            }
            if !force && kind == "file" && c.file_get(inst, &p).await.is_ok() {
                return Err(CliError::msg(format!("{p} already exists (use --force)")));
            }
            let data = link.map(String::into_bytes).unwrap_or_default();
            let mode = parse_mode(&mode)?.or(match kind.as_str() {
                "directory" => Some(0o755),
                "file" => Some(0o644),
                _ => None,
            });
            c.file_put(inst, &p, &kind, data, uid, gid, mode, false)
                .await?;
        }
        FileCmd::Edit { path } => {
            let (c, inst, p) = target(ctx, &path)?;
            let (data, mode) = match c.file_get(inst, &p).await? {
                FileContent::File { data, mode, .. } => (data, mode),
                _ => return Err(CliError::msg(format!("{p} is not a regular file"))),
            };
            let current = String::from_utf8_lossy(&data).into_owned();
            super::edit_yaml(current, |text| {
                let c = c.clone();
                let p = p.clone();
                async move {
                    c.file_put(
                        inst,
                        &p,
                        "file",
                        text.into_bytes(),
                        None,
                        None,
                        Some(mode),
                        false,
                    )
                    .await?;
                    Ok(())
                }
            })
            .await?;
        }
    }
    Ok(0)
}
