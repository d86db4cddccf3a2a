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
    if !from.exists() {
        return Err(Error::not_found(format!("{} not found", from.display())));
    }
    // Refuse before moving anything, so a refusal leaves no half-renamed volume.
    let occupied = |p: &Path| std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some());
    if to.exists() || (snaps_from.exists() && occupied(snaps_to)) {
        return Err(Error::already_exists(format!("{} exists", to.display())));
    }
    finish_rename(from, to, snaps_from, snaps_to)
}

/// Completes [`rename_volume`] from wherever a killed process left it: the volume and the
/// snapshots directory each move if still under the old name (a target in the way is
/// `AlreadyExists`, but for an empty snapshots directory, which is replaced).
pub fn finish_rename(from: &Path, to: &Path, snaps_from: &Path, snaps_to: &Path) -> Result<()> {
    if from.exists() {
        rename_new(from, to)?;
    }
    if snaps_from.exists() {
        // An empty snapshots directory under the new name holds nothing to keep.
        let _ = std::fs::remove_dir(snaps_to);
        rename_new(snaps_from, snaps_to)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_rename_is_finished_from_any_step() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = |s: &str| t.path().join(s);
        for d in ["vols/a", "snaps/a/s1"] {
            std::fs::create_dir_all(p(d)).expect("mkdir");
        }
        let (from, to, sfrom, sto) = (p("vols/a"), p("vols/b"), p("snaps/a"), p("snaps/b"));
        // Killed after the volume moved, before its snapshots did.
        std::fs::rename(&from, &to).expect("mv");
        finish_rename(&from, &to, &sfrom, &sto).expect("finish");
        assert!(to.exists() && sto.join("s1").exists());
        assert!(!from.exists() && !sfrom.exists());
        // Finished already: nothing to do, and no error.
        finish_rename(&from, &to, &sfrom, &sto).expect("again");
        // A plain rename of a volume that is not there is refused.
        assert_eq!(
            rename_volume(&from, &to, &sfrom, &sto)
                .expect_err("missing")
                .kind(),
            incus_core::ErrorKind::NotFound
        );
        // An empty snapshots directory in the way is replaced; a full one is not.
        std::fs::create_dir_all(p("snaps/b/s2")).expect("mkdir");
        std::fs::create_dir_all(p("snaps/c")).expect("mkdir");
        rename_volume(&to, &p("vols/c"), &sto, &p("snaps/c")).expect("into an empty one");
        assert!(p("snaps/c/s1").exists() && p("snaps/c/s2").exists());
        std::fs::create_dir_all(p("vols/d")).expect("mkdir");
        std::fs::create_dir_all(p("snaps/d/x")).expect("mkdir");
        let err = rename_volume(&p("vols/d"), &p("vols/e"), &p("snaps/d"), &p("snaps/c"))
            .expect_err("full target");
        assert_eq!(err.kind(), incus_core::ErrorKind::AlreadyExists);
        assert!(p("vols/d").exists(), "a refused rename moves nothing");
    }
}
