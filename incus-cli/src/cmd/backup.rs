//! `incus export`, `incus import`, `incus storage volume export` and `import`.

use super::Ctx;
use crate::CliError;
use incus_client::BackupOptions;
use std::path::Path;
use std::sync::Arc;

/// What to export.
pub enum What<'a> {
    /// An instance (`[remote:]name`).
    Instance(&'a str),
    /// A custom volume (`[remote:]pool`, volume).
    Volume(&'a str, &'a str),
}

/// Export flags.
pub struct Opts {
    /// `--instance-only` / `--volume-only`.
    pub without_snapshots: bool,
    /// `--compression`.
    pub compression: Option<String>,
    /// `--optimized-storage`.
    pub optimized_storage: bool,
}

/// Exports into `target` (default `backup.tar.gz`, as the Incus client).
pub async fn export(
    ctx: &Ctx,
    what: What<'_>,
    target: Option<String>,
    opts: Opts,
) -> Result<i32, CliError> {
    if opts.optimized_storage {
        return Err(CliError::msg(
            "Optimized (native storage) backups are not supported yet",
        ));
    }
    let target = target.unwrap_or_else(|| "backup.tar.gz".into());
    let backup = BackupOptions {
        without_snapshots: opts.without_snapshots,
        compression: opts.compression.unwrap_or_default(),
    };
    let line = Arc::new(crate::progress::ProgressLine::new(ctx.quiet));
    let shown = line.clone();
    let progress: incus_client::Progress =
        Arc::new(move |done, total| shown.transfer("Exporting the backup", done, total));
    let r = match what {
        What::Instance(arg) => {
            let (c, name) = ctx.resolve(arg)?;
            c.export_instance(name, Path::new(&target), &backup, Some(progress))
                .await
        }
        What::Volume(pool_arg, volume) => {
            let (c, pool) = ctx.resolve(pool_arg)?;
            c.export_volume(pool, volume, Path::new(&target), &backup, Some(progress))
                .await
        }
    };
    line.done();
    r?;
    if !ctx.quiet {
        println!("Backup exported successfully!");
    }
    Ok(0)
}

/// `incus import FILE [NAME] [--storage POOL]`.
pub async fn import_instance(
    ctx: &Ctx,
    file: &str,
    name: Option<&str>,
    pool: Option<&str>,
) -> Result<i32, CliError> {
    let c = ctx.client()?;
    let line = Arc::new(crate::progress::ProgressLine::new(ctx.quiet));
    let shown = line.clone();
    let progress: incus_client::Progress =
        Arc::new(move |done, total| shown.transfer("Importing instance", done, total));
    let r = c
        .import_instance(Path::new(file), name, pool, Some(progress))
        .await;
    line.done();
    r?;
    Ok(0)
}

/// `incus storage volume import POOL FILE [NAME]`.
pub async fn import_volume(
    ctx: &Ctx,
    pool_arg: &str,
    file: &str,
    name: Option<&str>,
) -> Result<i32, CliError> {
    let (c, pool) = ctx.resolve(pool_arg)?;
    let line = Arc::new(crate::progress::ProgressLine::new(ctx.quiet));
    let shown = line.clone();
    let progress: incus_client::Progress =
        Arc::new(move |done, total| shown.transfer("Importing custom volume", done, total));
    let r = c
        .import_volume(pool, Path::new(file), name, Some(progress))
        .await;
    line.done();
    r?;
    Ok(0)
}
