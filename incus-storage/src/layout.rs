//! What the file-tree drivers (`dir`, `btrfs`) share: Incus's pool layout, the `source` check,
//! and renames of a volume with its snapshots.

use incus_core::error::{Error, Result};
use std::path::Path;

/// The pool sub-directories, as Incus names them.
pub const LAYOUT: [&str; 5] = [
    "containers",
    "containers-snapshots",
    "images",
    "custom",
    "custom-snapshots",
];

/// `source` must be empty or an absolute path.
pub fn check_source(pool: &str, source: &str) -> Result<()> {
    if !source.is_empty() && !source.starts_with('/') {
        return Err(Error::invalid(format!(
            "Pool {pool:?}: \"source\" must be an absolute path"
        )));
    }
    Ok(())
}

/// Checks the pool keys every driver takes as defaults of new custom volumes
/// (`volume.snapshots.expiry`, `volume.snapshots.pattern`); `false` for any other key.
pub fn volume_default_key(pool: &str, key: &str, value: &str) -> Result<bool> {
    match key {
        "volume.snapshots.expiry" => {
            if !value.is_empty() {
                incus_core::config::parse_expiry(value)
                    .map_err(|e| Error::invalid(format!("Pool {pool:?}: {key}: {e}")))?;
            }
            Ok(true)
        }
        "volume.snapshots.pattern" => Ok(true),
        _ => Ok(false),
    }
}

/// The refusal of a pool option the driver does not know.
pub fn unknown_key(driver: &str, pool: &str, key: &str) -> Error {
    Error::invalid(format!(
        "Pool {pool:?}: unknown {driver} pool option {key:?}"
    ))
}

/// Renames `from` to `to` (a volume or a snapshot); `AlreadyExists` when `to` exists.
pub fn rename_new(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        return Err(Error::already_exists(format!("{} exists", to.display())));
    }
    std::fs::rename(from, to).map_err(|e| Error::io(from.display(), e))
}

/// Renames a volume and, when it has any, its snapshots directory.
pub fn rename_volume(from: &Path, to: &Path, snaps_from: &Path, snaps_to: &Path) -> Result<()> {
    rename_new(from, to)?;
    if snaps_from.exists() {
        std::fs::rename(snaps_from, snaps_to).map_err(|e| Error::io(snaps_from.display(), e))?;
    }
    Ok(())
}
