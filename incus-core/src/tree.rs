//! Tree copies that keep everything a container root filesystem needs: ownership (optionally
//! shifted into an id range), modes including setuid bits, symlinks, hard links, device nodes,
//! FIFOs and sockets, extended attributes (file capabilities, POSIX ACLs, user attributes;
//! ids inside them shifted too), holes of sparse files, and modification times. Shared by the
//! storage drivers and the engine (copies between pools of different drivers).
//!
//! A copy walks the source once, creating directories, links and special files and an empty
//! file for each regular file; file contents are then copied by several threads
//! (`copy_file_range` between the data extents, so that holes stay holes and filesystems that
//! can share extents, like btrfs, reflink them); directory metadata is applied last, deepest
//! first, so that their times stick.

use crate::drivers::IdShift;
use crate::error::{Error, Result};
use crate::xattrs;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

fn err(what: &Path, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{}: {e}", what.display()))
}

/// Copies the tree `src` to `dst` (which must not exist). With `shift`, every uid and gid is
/// mapped to host ids (`id + base`); ids outside the range become `base + 65534` (nobody).
pub fn copy_tree(src: &Path, dst: &Path, shift: Option<IdShift>) -> Result<()> {
    let mut plan = Plan::default();
    plan.walk(src, dst, shift)?;
    plan.finish(shift)
}

fn map_id(id: u32, shift: Option<IdShift>) -> u32 {
    match shift {
        None => id,
        Some(s) => s.to_host(id).unwrap_or(s.base + 65534),
    }
}

/// What is left to do after the walk: file contents, then directory metadata.
#[derive(Default)]
struct Plan {
    /// Regular files created empty: (source, destination, source metadata).
    files: Vec<(PathBuf, PathBuf, fs::Metadata)>,
    /// Directories in walk order (parents before children).
    dirs: Vec<(PathBuf, PathBuf, fs::Metadata)>,
    /// First destination of each multiply linked source inode.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Plan {
    fn walk(&mut self, src: &Path, dst: &Path, shift: Option<IdShift>) -> Result<()> {
        let md = fs::symlink_metadata(src).map_err(|e| err(src, e))?;
        let ft = md.file_type();
        if ft.is_dir() {
            fs::create_dir(dst).map_err(|e| err(dst, e))?;
            for entry in fs::read_dir(src).map_err(|e| err(src, e))? {
                let entry = entry.map_err(|e| err(src, e))?;
                self.walk(&entry.path(), &dst.join(entry.file_name()), shift)?;
            }
            self.dirs.push((src.to_path_buf(), dst.to_path_buf(), md));
            return Ok(());
        }
        if ft.is_symlink() {
            let target = fs::read_link(src).map_err(|e| err(src, e))?;
            std::os::unix::fs::symlink(&target, dst).map_err(|e| err(dst, e))?;
            return apply_metadata(src, dst, &md, shift);
        }
        if md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key) {
                return fs::hard_link(first, dst).map_err(|e| err(dst, e));
            }
            self.links.insert(key, dst.to_path_buf());
        }
        if ft.is_file() {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dst)
                .map_err(|e| err(dst, e))?;
            self.files.push((src.to_path_buf(), dst.to_path_buf(), md));
            return Ok(());
        }
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
        apply_metadata(src, dst, &md, shift)
    }

    /// Copies the file contents (in parallel for large trees), then applies directory
    /// metadata deepest first.
    fn finish(self, shift: Option<IdShift>) -> Result<()> {
        let files = &self.files;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let threads = if files.len() < 64 { 1 } else { threads };
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let work = || {
            let mut buf = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((src, dst, md)) = files.get(i) else {
                    return;
                };
                let r = copy_data(src, dst, &mut buf)
                    .and_then(|()| apply_metadata(src, dst, md, shift));
                if let Err(e) = r {
                    // Stop every worker at its next file.
                    next.store(files.len(), Ordering::Relaxed);
                    if let Ok(mut f) = failure.lock() {
                        f.get_or_insert(e);
                    }
                    return;
                }
            }
        };
        if threads == 1 {
            work();
        } else {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(work);
                }
            });
        }
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        for (src, dst, md) in self.dirs.iter().rev() {
            apply_metadata(src, dst, md, shift)?;
        }
        Ok(())
    }
}

/// Gives `dst` the (shifted) owner, mode, extended attributes and times of `src`. The owner
/// goes first: `chown` clears setuid bits and file capabilities.
fn apply_metadata(src: &Path, dst: &Path, md: &fs::Metadata, shift: Option<IdShift>) -> Result<()> {
    let (uid, gid) = (map_id(md.uid(), shift), map_id(md.gid(), shift));
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid)).map_err(|e| err(dst, e))?;
    let symlink = md.file_type().is_symlink();
    if !symlink {
        fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))
            .map_err(|e| err(dst, e))?;
    }
    for (name, value) in xattrs::read_all(src)? {
        let value = match shift {
            Some(_) => xattrs::map_ids(&name, &value, |id| map_id(id, shift)),
            None => value,
        };
        xattrs::write_one(dst, &name, &value)?;
    }
    let mtime = nix::sys::time::TimeSpec::new(md.mtime(), md.mtime_nsec());
    let atime = nix::sys::time::TimeSpec::new(md.atime(), md.atime_nsec());
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        dst,
        &atime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| err(dst, e))
}

/// Copies the contents of the regular file `src` into the existing empty file `dst`, data
/// extent by data extent, so that holes stay holes.
fn copy_data(src: &Path, dst: &Path, buf: &mut Vec<u8>) -> Result<()> {
    use nix::unistd::{Whence, lseek};
    let from = fs::File::open(src).map_err(|e| err(src, e))?;
    let len = from.metadata().map_err(|e| err(src, e))?.len();
    if len == 0 {
        return Ok(());
    }
    let to = fs::OpenOptions::new()
        .write(true)
        .open(dst)
        .map_err(|e| err(dst, e))?;
    to.set_len(len).map_err(|e| err(dst, e))?;
    let len = len as i64;
    let mut fast = true;
    let mut off = 0i64;
    while off < len {
        let start = match lseek(&from, off, Whence::SeekData) {
            Ok(start) => start,
            // Nothing but a hole up to the end.
            Err(nix::errno::Errno::ENXIO) => break,
            // No SEEK_DATA here: everything is data.
            Err(_) => off,
        };
        let end = lseek(&from, start, Whence::SeekHole)
            .unwrap_or(len)
            .min(len);
        if end <= start {
            break;
        }
        copy_range(&from, &to, start, end, &mut fast, buf).map_err(|e| err(dst, e))?;
        off = end;
    }
    Ok(())
}

/// Copies bytes `start..end` of `from` to the same offsets of `to`: `copy_file_range` while the
/// kernel takes it, reads and writes otherwise.
fn copy_range(
    from: &fs::File,
    to: &fs::File,
    start: i64,
    end: i64,
    fast: &mut bool,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    use rustix::io::Errno;
    let mut pos = start;
    while pos < end {
        if *fast {
            let (mut i, mut o) = (pos as u64, pos as u64);
            match rustix::fs::copy_file_range(
                from,
                Some(&mut i),
                to,
                Some(&mut o),
                (end - pos) as usize,
            ) {
                // The source shrank meanwhile.
                Ok(0) => return Ok(()),
                Ok(n) => {
                    pos += n as i64;
                    continue;
                }
                Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                    *fast = false;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if buf.is_empty() {
            buf.resize(1 << 20, 0);
        }
        let want = ((end - pos) as usize).min(buf.len());
        let n = from.read_at(&mut buf[..want], pos as u64)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all_at(&buf[..n], pos as u64)?;
        pos += n as i64;
    }
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
        let ft = md.file_type();
        // chown drops file capabilities: keep the id-holding attributes to write back.
        let attrs = if ft.is_symlink() {
            Vec::new()
        } else {
            xattrs::read_all(&p)?
                .into_iter()
                .filter(|(name, _)| xattrs::holds_ids(name))
                .collect()
        };
        let (uid, gid) = (map_id(md.uid(), Some(shift)), map_id(md.gid(), Some(shift)));
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(|e| err(&p, e))?;
        if !ft.is_symlink() {
            // chown clears setuid/setgid bits: put the mode back.
            fs::set_permissions(&p, fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(|e| err(&p, e))?;
        }
        for (name, value) in attrs {
            let value = xattrs::map_ids(&name, &value, |id| map_id(id, Some(shift)));
            xattrs::write_one(&p, &name, &value)?;
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
    let mut plan = Plan::default();
    for entry in fs::read_dir(src).map_err(|e| err(src, e))? {
        let entry = entry.map_err(|e| err(src, e))?;
        plan.walk(&entry.path(), &dst.join(entry.file_name()), shift)?;
    }
    plan.finish(shift)?;
    let md = fs::metadata(src).map_err(|e| err(src, e))?;
    apply_metadata(src, dst, &md, shift)
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

    fn v2_capability() -> Vec<u8> {
        // cap_net_raw (bit 13) permitted and effective.
        let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
        v.extend_from_slice(&(1u32 << 13).to_le_bytes());
        v.extend_from_slice(&[0; 12]);
        v
    }

    fn acl_with_user(id: u32) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (0x01u16, 6u16, u32::MAX),
            (0x02, 4, id),
            (0x04, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 4, u32::MAX),
        ] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn keeps_holes_attributes_and_capabilities_in_parallel_copies() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED keeps_holes_attributes_and_capabilities: needs root");
            return;
        }
        let t = tempfile::tempdir().expect("tempdir");
        let src = t.path().join("src");
        fs::create_dir_all(src.join("many")).expect("mkdir");
        // Enough files for the parallel path.
        for i in 0..200 {
            fs::write(src.join(format!("many/f{i}")), format!("file {i}")).expect("write");
        }
        let sparse = src.join("sparse");
        let f = fs::File::create(&sparse).expect("create");
        f.set_len(64 << 20).expect("truncate");
        f.write_all_at(b"middle", 32 << 20).expect("write");
        f.write_all_at(b"end", (64 << 20) - 3).expect("write");
        drop(f);
        let ping = src.join("ping");
        fs::write(&ping, b"#!/bin/true").expect("write");
        fs::set_permissions(&ping, fs::Permissions::from_mode(0o755)).expect("chmod");
        xattr::set(&ping, xattrs::CAPABILITY, &v2_capability()).expect("setcap");
        xattr::set(&ping, "user.note", b"kept").expect("user xattr");
        xattr::set(&ping, "trusted.overlay.x", b"t").expect("trusted xattr");
        xattr::set(
            src.join("many"),
            "system.posix_acl_access",
            &acl_with_user(1000),
        )
        .expect("acl");

        let dst = t.path().join("dst");
        copy_tree(&src, &dst, None).expect("copy");
        for i in [0, 99, 199] {
            assert_eq!(
                fs::read_to_string(dst.join(format!("many/f{i}"))).expect("read"),
                format!("file {i}")
            );
        }
        let data = fs::read(dst.join("sparse")).expect("read");
        assert_eq!(data.len(), 64 << 20);
        assert_eq!(&data[32 << 20..(32 << 20) + 6], b"middle");
        assert_eq!(&data[data.len() - 3..], b"end");
        let blocks = fs::metadata(dst.join("sparse")).expect("stat").blocks() * 512;
        assert!(
            blocks < 4 << 20,
            "sparse file filled in: {blocks} bytes allocated"
        );
        let get = |p: &Path, n: &str| xattr::get(p, n).expect("getxattr");
        assert_eq!(
            get(&dst.join("ping"), xattrs::CAPABILITY),
            Some(v2_capability())
        );
        assert_eq!(get(&dst.join("ping"), "user.note"), Some(b"kept".to_vec()));
        assert_eq!(
            get(&dst.join("ping"), "trusted.overlay.x"),
            Some(b"t".to_vec())
        );
        assert_eq!(
            get(&dst.join("many"), "system.posix_acl_access"),
            Some(acl_with_user(1000))
        );

        // Shifted copies and in-place shifts move the ids inside ACLs and keep capabilities
        // (which chown drops).
        let shift = IdShift {
            base: 1_000_000,
            size: 65536,
        };
        let shifted = t.path().join("shifted");
        copy_tree(&src, &shifted, Some(shift)).expect("shifted copy");
        assert_eq!(
            get(&shifted.join("many"), "system.posix_acl_access"),
            Some(acl_with_user(1_001_000))
        );
        assert_eq!(
            get(&shifted.join("ping"), xattrs::CAPABILITY),
            Some(v2_capability())
        );
        shift_tree(&dst, shift).expect("shift");
        assert_eq!(
            fs::metadata(dst.join("ping")).expect("stat").uid(),
            1_000_000
        );
        assert_eq!(
            get(&dst.join("ping"), xattrs::CAPABILITY),
            Some(v2_capability())
        );
        assert_eq!(
            get(&dst.join("many"), "system.posix_acl_access"),
            Some(acl_with_user(1_001_000))
        );
    }
}
