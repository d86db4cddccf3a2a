//! Tree copies that keep everything a container root filesystem needs: ownership (optionally
//! shifted into an id range), modes including setuid bits, symlinks, hard links, device nodes,
//! FIFOs and sockets, and modification times. Shared by the storage drivers and the engine
//! (copies between pools of different drivers). Extended attributes and ACLs are not copied yet.

use crate::drivers::IdShift;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

fn err(what: &Path, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{}: {e}", what.display()))
}

/// Copies the tree `src` to `dst` (which must not exist). With `shift`, every uid and gid is
/// mapped to host ids (`id + base`); ids outside the range become `base + 65534` (nobody).
pub fn copy_tree(src: &Path, dst: &Path, shift: Option<IdShift>) -> Result<()> {
    let mut links: HashMap<(u64, u64), std::path::PathBuf> = HashMap::new();
    copy_entry(src, dst, shift, &mut links)
}

fn map_id(id: u32, shift: Option<IdShift>) -> u32 {
    match shift {
        None => id,
        Some(s) => s.to_host(id).unwrap_or(s.base + 65534),
    }
}

fn copy_entry(
    src: &Path,
    dst: &Path,
    shift: Option<IdShift>,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> Result<()> {
    let md = fs::symlink_metadata(src).map_err(|e| err(src, e))?;
    let ft = md.file_type();
    let (uid, gid) = (map_id(md.uid(), shift), map_id(md.gid(), shift));
    if ft.is_dir() {
        fs::create_dir(dst).map_err(|e| err(dst, e))?;
        for entry in fs::read_dir(src).map_err(|e| err(src, e))? {
            let entry = entry.map_err(|e| err(src, e))?;
            copy_entry(&entry.path(), &dst.join(entry.file_name()), shift, links)?;
        }
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(|e| err(src, e))?;
        std::os::unix::fs::symlink(&target, dst).map_err(|e| err(dst, e))?;
        std::os::unix::fs::lchown(dst, Some(uid), Some(gid)).map_err(|e| err(dst, e))?;
        return Ok(());
    } else {
        if md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = links.get(&key) {
                fs::hard_link(first, dst).map_err(|e| err(dst, e))?;
                return Ok(());
            }
            links.insert(key, dst.to_path_buf());
        }
        if ft.is_file() {
            // std::fs::copy uses copy_file_range, which reflinks where the filesystem can.
            fs::copy(src, dst).map_err(|e| err(dst, e))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket() {
            let kind = if ft.is_char_device() {
                nix::sys::stat::SFlag::S_IFCHR
            } else if ft.is_block_device() {
                nix::sys::stat::SFlag::S_IFBLK
            } else if ft.is_fifo() {
                nix::sys::stat::SFlag::S_IFIFO
            } else {
                nix::sys::stat::SFlag::S_IFSOCK
            };
            nix::sys::stat::mknod(
                dst,
                kind,
                nix::sys::stat::Mode::from_bits_truncate(md.mode() & 0o7777),
                md.rdev(),
            )
            .map_err(|e| err(dst, e))?;
        }
    }
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid)).map_err(|e| err(dst, e))?;
    // chown clears setuid/setgid bits: set the mode after it.
    fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(|e| err(dst, e))?;
    let mtime = nix::sys::time::TimeSpec::new(md.mtime(), md.mtime_nsec());
    let atime = nix::sys::time::TimeSpec::new(md.atime(), md.atime_nsec());
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        dst,
        &atime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| err(dst, e))?;
    Ok(())
}

/// Shifts the ownership of the tree at `path` in place (`id + base`; ids outside the range
/// become `base + 65534`), keeping modes (setuid bits included) and times. Each inode is
/// shifted once, whatever its number of hard links. For copy-on-write snapshots of an image.
pub fn shift_tree(path: &Path, shift: IdShift) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).map_err(|e| err(&p, e))?;
        if !seen.insert(md.ino()) {
            continue;
        }
        let (uid, gid) = (map_id(md.uid(), Some(shift)), map_id(md.gid(), Some(shift)));
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(|e| err(&p, e))?;
        let ft = md.file_type();
        if !ft.is_symlink() {
            // chown clears setuid/setgid bits: put the mode back.
            fs::set_permissions(&p, fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(|e| err(&p, e))?;
        }
        if ft.is_dir() {
            for entry in fs::read_dir(&p).map_err(|e| err(&p, e))? {
                stack.push(entry.map_err(|e| err(&p, e))?.path());
            }
        }
    }
    Ok(())
}

/// Makes the existing directory `dst` hold exactly what `src` holds (for copies between pools
/// of different drivers, where `dst` is a freshly created volume): `dst`'s entries are
/// removed, `src`'s copied in with [`copy_tree`] (ids shifted with `shift`), and `dst` takes
/// `src`'s (shifted) owner and mode.
pub fn replace_contents(src: &Path, dst: &Path, shift: Option<IdShift>) -> Result<()> {
    for entry in fs::read_dir(dst).map_err(|e| err(dst, e))? {
        let p = entry.map_err(|e| err(dst, e))?.path();
        let md = fs::symlink_metadata(&p).map_err(|e| err(&p, e))?;
        if md.is_dir() {
            fs::remove_dir_all(&p).map_err(|e| err(&p, e))?;
        } else {
            fs::remove_file(&p).map_err(|e| err(&p, e))?;
        }
    }
    let mut links = HashMap::new();
    for entry in fs::read_dir(src).map_err(|e| err(src, e))? {
        let entry = entry.map_err(|e| err(src, e))?;
        copy_entry(
            &entry.path(),
            &dst.join(entry.file_name()),
            shift,
            &mut links,
        )?;
    }
    let md = fs::metadata(src).map_err(|e| err(src, e))?;
    let (uid, gid) = (map_id(md.uid(), shift), map_id(md.gid(), shift));
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid)).map_err(|e| err(dst, e))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(|e| err(dst, e))
}

/// Bytes used by the tree at `path` (allocated blocks, hard links counted once).
pub fn disk_usage(path: &Path) -> Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = match fs::symlink_metadata(&p) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(&p, e)),
        };
        if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        total += md.blocks() * 512;
        if md.is_dir() {
            for entry in fs::read_dir(&p).map_err(|e| err(&p, e))? {
                stack.push(entry.map_err(|e| err(&p, e))?.path());
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_links_modes_and_times() {
        let t = tempfile::tempdir().expect("tempdir");
        let src = t.path().join("src");
        fs::create_dir_all(src.join("d")).expect("mkdir");
        fs::write(src.join("d/f"), b"hello").expect("write");
        fs::set_permissions(src.join("d/f"), fs::Permissions::from_mode(0o4750)).expect("chmod");
        fs::hard_link(src.join("d/f"), src.join("hl")).expect("link");
        std::os::unix::fs::symlink("/d/f", src.join("sl")).expect("symlink");
        let dst = t.path().join("dst");
        copy_tree(&src, &dst, None).expect("copy");
        assert_eq!(fs::read(dst.join("d/f")).expect("read"), b"hello");
        let md = fs::metadata(dst.join("d/f")).expect("stat");
        assert_eq!(md.mode() & 0o7777, 0o4750);
        assert_eq!(md.ino(), fs::metadata(dst.join("hl")).expect("stat").ino());
        assert_eq!(
            fs::read_link(dst.join("sl")).expect("readlink"),
            Path::new("/d/f")
        );
        assert_eq!(
            md.mtime(),
            fs::metadata(src.join("d/f")).expect("stat").mtime()
        );
        assert!(disk_usage(&dst).expect("usage") > 0);
    }

    #[test]
    fn replaces_contents() {
        let t = tempfile::tempdir().expect("tempdir");
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        fs::create_dir_all(src.join("d")).expect("mkdir");
        fs::write(src.join("d/f"), b"new").expect("write");
        fs::create_dir_all(dst.join("old/deep")).expect("mkdir");
        fs::write(dst.join("stale"), b"old").expect("write");
        fs::set_permissions(&src, fs::Permissions::from_mode(0o711)).expect("chmod");
        replace_contents(&src, &dst, None).expect("replace");
        assert_eq!(fs::read(dst.join("d/f")).expect("read"), b"new");
        assert!(!dst.join("old").exists() && !dst.join("stale").exists());
        assert_eq!(fs::metadata(&dst).expect("stat").mode() & 0o7777, 0o711);
    }

    #[test]
    fn shifts_in_place_once_per_inode() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED shifts_in_place_once_per_inode: needs root (chown)");
            return;
        }
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("r");
        fs::create_dir_all(root.join("d")).expect("mkdir");
        fs::write(root.join("d/f"), b"x").expect("write");
        fs::set_permissions(root.join("d/f"), fs::Permissions::from_mode(0o4755)).expect("chmod");
        fs::hard_link(root.join("d/f"), root.join("hl")).expect("link");
        std::os::unix::fs::lchown(root.join("d"), Some(5), Some(6)).expect("chown");
        let shift = IdShift {
            base: 1_000_000,
            size: 65536,
        };
        shift_tree(&root, shift).expect("shift");
        let f = fs::metadata(root.join("d/f")).expect("stat");
        assert_eq!((f.uid(), f.gid()), (1_000_000, 1_000_000));
        assert_eq!(f.mode() & 0o7777, 0o4755);
        let d = fs::metadata(root.join("d")).expect("stat");
        assert_eq!((d.uid(), d.gid()), (1_000_005, 1_000_006));
    }
}
