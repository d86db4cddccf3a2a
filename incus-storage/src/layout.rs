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
/// (`volume.snapshots.expiry`, `volume.snapshots.pattern`, `volume.snapshots.schedule`);
/// `false` for any other key.
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
        "volume.snapshots.schedule" => {
            incus_core::config::Schedule::parse(value)
                .map_err(|e| Error::invalid(format!("Pool {pool:?}: {key}: {e}")))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Checks a pool key every driver shares: `user.*`, the `volume.snapshots.*` defaults and,
/// for drivers that enforce sizes (`sizes` = whether the pool is on a loop file), `size` and
/// `volume.size`. Any other key is refused as unknown to `driver`.
pub fn shared_key(
    driver: &str,
    pool: &str,
    key: &str,
    value: &str,
    sizes: Option<bool>,
) -> Result<()> {
    if let Some(loop_file) = sizes
        && size_key(pool, key, value, loop_file)?
    {
        return Ok(());
    }
    if key.starts_with("user.") || volume_default_key(pool, key, value)? {
        return Ok(());
    }
    Err(unknown_key(driver, pool, key))
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

/// Whether something is mounted at `path`.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp.replace("\\040", " ") == want)
}

/// The loop file of a pool without `source`: `$INCUS_DIR/disks/<pool>.img`, found from the
/// pool's mount root `$INCUS_DIR/storage-pools/<pool>`.
pub fn loop_file(spec: &incus_core::drivers::StoragePoolSpec) -> Result<std::path::PathBuf> {
    let base = spec
        .mount_root
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| Error::invalid("The pool has no state directory"))?;
    Ok(base.join("disks").join(format!("{}.img", spec.name)))
}

/// Creates the sparse loop file `file` of the pool's `size` (or `default`); it must not exist.
pub fn create_loop_file(
    file: &Path,
    config: &incus_core::api::ConfigMap,
    default: &str,
) -> Result<()> {
    let size = config.get("size").map(String::as_str).unwrap_or(default);
    let bytes = incus_core::config::parse_size(size).map_err(Error::invalid)?;
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
    }
    let f = std::fs::File::create_new(file).map_err(|e| Error::io(file.display(), e))?;
    f.set_len(bytes).map_err(|e| Error::io(file.display(), e))
}

/// Checks the `size` and `volume.size` keys; `false` for any other key. `size` is only for
/// pools on a loop file.
pub fn size_key(pool: &str, key: &str, value: &str, loop_file: bool) -> Result<bool> {
    if key != "size" && key != "volume.size" {
        return Ok(false);
    }
    incus_core::config::parse_size(value)
        .map_err(|e| Error::invalid(format!("Pool {pool:?}: {key}: {e}")))?;
    if key == "size" && !loop_file {
        return Err(Error::invalid(format!(
            "Pool {pool:?}: \"size\" applies to loop-file pools only"
        )));
    }
    Ok(true)
}

/// A pool spec for unit tests: pool `p` under `state` with `config`.
#[cfg(test)]
pub fn test_spec(state: &Path, config: &[(&str, &str)]) -> incus_core::drivers::StoragePoolSpec {
    incus_core::drivers::StoragePoolSpec {
        name: "p".into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        mount_root: state.join("storage-pools/p"),
    }
}
