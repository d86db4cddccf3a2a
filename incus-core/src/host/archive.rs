//! Safe extraction of (compressed) tarballs into a directory.
//!
//! Invariants: no entry is ever created outside the destination. Entry names and hard-link
//! targets that are absolute or contain `..` are refused with a clear error before anything is
//! written for them; every parent directory is resolved with `openat2(RESOLVE_IN_ROOT)`, so a
//! symlink inside the archive (say `rootfs/etc -> /etc`) is followed as the container would
//! follow it, inside the destination, never on the host. Extended attributes travel as PAX
//! `SCHILY.xattr.<name>` records (GNU tar's and Incus's form), both ways.

use crate::error::{Error, Result};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Wraps `r` in the decompressor its first bytes call for (gzip, xz, zstd, bzip2 refused, or
/// plain tar).
pub fn decompress<'a>(r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(1 << 16, r);
    let head = br
        .fill_buf()
        .map_err(|e| Error::invalid(format!("Failed reading archive: {e}")))?;
    let head: Vec<u8> = head.iter().take(6).copied().collect();
    Ok(match head.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(br)),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => {
            Box::new(liblzma::read::XzDecoder::new_multi_decoder(br))
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(
            zstd::stream::read::Decoder::with_buffer(br)
                .map_err(|e| Error::invalid(format!("Bad zstd stream: {e}")))?,
        ),
        [b'B', b'Z', b'h', ..] => return Err(Error::invalid("bzip2 archives are not supported")),
        _ => Box::new(br),
    })
}

/// Normalises an entry name (`./rootfs/bin` -> `rootfs/bin`), refusing escapes.
pub fn safe_relative(name: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Error::invalid(format!(
                    "Archive entry {:?} escapes its root",
                    name.display().to_string()
                )));
            }
        }
    }
    Ok(out)
}

/// An extraction failure: the host's fault (out of space, I/O error, read-only, out of
/// descriptors or memory) is internal; anything else is what the archive asked for that
/// cannot be (a hard link to a missing file or to a directory, a name too long, ...), so the
/// archive is invalid.
fn os(what: &Path, e: rustix::io::Errno) -> Error {
    use rustix::io::Errno;
    let text = format!("Failed extracting {}: {e}", what.display());
    match e {
        Errno::NOSPC
        | Errno::DQUOT
        | Errno::IO
        | Errno::ROFS
        | Errno::NOMEM
        | Errno::MFILE
        | Errno::NFILE => Error::internal(text),
        _ => Error::invalid(text),
    }
}

fn open_in_root(root: &OwnedFd, rel: &Path) -> Result<OwnedFd> {
    let p = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rustix::fs::openat2(
        root,
        p,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| os(rel, e))
}

/// Creates every missing directory of `rel` inside `root` (0755, root-owned) and opens it.
fn mkdir_all_in_root(root: &OwnedFd, rel: &Path) -> Result<OwnedFd> {
    let mut cur = PathBuf::new();
    for c in rel.components() {
        cur.push(c);
        if open_in_root(root, &cur).is_err() {
            let parent = open_in_root(root, cur.parent().unwrap_or(Path::new("")))?;
            let name = cur.file_name().unwrap_or_default();
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => {
                    // A symlink (or file) whose in-root target does not exist or is no
                    // directory: refuse rather than guess.
                    return Err(Error::invalid(format!(
                        "Archive entries under {} go through a link that leads nowhere inside the archive",
                        cur.display()
                    )));
                }
                Err(e) => return Err(os(&cur, e)),
            }
        }
    }
    open_in_root(root, rel)
}

/// Extracts the tar stream `r` (already decompressed) into `dest`, which must exist. `prefix`,
/// when given, is prepended to every entry name (used to put a split image's rootfs tarball
/// under `rootfs/`). Returns the number of entries written.
pub fn extract(r: impl Read, dest: &Path, prefix: Option<&Path>) -> Result<usize> {
    let root: OwnedFd = rustix::fs::open(
        dest,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| os(dest, e))?;
    let mut ar = tar::Archive::new(r);
    let mut count = 0;
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    for entry in ar
        .entries()
        .map_err(|e| Error::invalid(format!("Bad archive: {e}")))?
    {
        let mut entry = entry.map_err(|e| Error::invalid(format!("Bad archive entry: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| Error::invalid(format!("Bad archive entry name: {e}")))?
            .into_owned();
        let mut rel = safe_relative(&raw)?;
        if let Some(p) = prefix {
            rel = p.join(rel);
        }
        let Some(name) = rel.file_name().map(|n| n.to_owned()) else {
            continue;
        };
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let parent = mkdir_all_in_root(&root, &parent_rel)?;
        let attrs = entry_xattrs(&mut entry)?;
        let h = entry.header().clone();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
        let mtime = h.mtime().unwrap_or(0);
        let et = h.entry_type();
        if !et.is_dir() {
            // Replace what is there, but never a directory by a non-directory silently.
            match rustix::fs::unlinkat(&parent, &name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(rustix::io::Errno::ISDIR) => {
                    return Err(Error::invalid(format!(
                        "Archive entry {} replaces a directory",
                        rel.display()
                    )));
                }
                Err(e) => return Err(os(&rel, e)),
            }
        }
        if et.is_dir() {
            match rustix::fs::mkdirat(&parent, &name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(os(&rel, e)),
            }
            dirs.push((rel.clone(), mode, mtime));
        } else if et.is_file() || et == tar::EntryType::Continuous {
            let fd = rustix::fs::openat(
                &parent,
                &name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| os(&rel, e))?;
            let mut f = std::fs::File::from(fd);
            std::io::copy(&mut entry, &mut f)
                .map_err(|e| Error::invalid(format!("Failed extracting {}: {e}", rel.display())))?;
        } else if et.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| Error::invalid(format!("Bad link in archive: {e}")))?
                .ok_or_else(|| {
                    Error::invalid(format!("Symlink {} has no target", rel.display()))
                })?;
            rustix::fs::symlinkat(target.as_ref(), &parent, &name).map_err(|e| os(&rel, e))?;
        } else if et.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| Error::invalid(format!("Bad link in archive: {e}")))?
                .ok_or_else(|| {
                    Error::invalid(format!("Hard link {} has no target", rel.display()))
                })?;
            let mut trel = safe_relative(&target)?;
            if let Some(p) = prefix {
                trel = p.join(trel);
            }
            let tparent = open_in_root(&root, trel.parent().unwrap_or(Path::new("")))?;
            let tname = trel.file_name().unwrap_or_default().to_owned();
            rustix::fs::linkat(&tparent, &tname, &parent, &name, AtFlags::empty())
                .map_err(|e| os(&rel, e))?;
            count += 1;
            continue;
        } else if et.is_character_special() || et.is_block_special() || et.is_fifo() {
            let kind = if et.is_character_special() {
                rustix::fs::FileType::CharacterDevice
            } else if et.is_block_special() {
                rustix::fs::FileType::BlockDevice
            } else {
                rustix::fs::FileType::Fifo
            };
            let dev = rustix::fs::makedev(
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            );
            rustix::fs::mknodat(&parent, &name, kind, Mode::from_raw_mode(0o600), dev)
                .map_err(|e| os(&rel, e))?;
        } else {
            // PAX/GNU headers are consumed by the tar crate; anything else is skipped.
            continue;
        }
        count += 1;
        rustix::fs::chownat(
            &parent,
            &name,
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| os(&rel, e))?;
        if !et.is_symlink() && !et.is_dir() {
            rustix::fs::chmodat(&parent, &name, Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(|e| os(&rel, e))?;
        }
        // After chown, which drops file capabilities. Reached through the parent's descriptor
        // so that nothing outside the destination can be named.
        if !attrs.is_empty() {
            let at = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(&name);
            for (key, value) in &attrs {
                if let Err(e) = crate::xattrs::write_one(&at, key, value) {
                    tracing::warn!("{}: {e}", rel.display());
                }
            }
        }
        let ts = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: mtime as i64,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: mtime as i64,
                tv_nsec: 0,
            },
        };
        let _ = rustix::fs::utimensat(&parent, &name, &ts, AtFlags::SYMLINK_NOFOLLOW);
    }
    // Directory modes and times last, deepest first, so that writing into them worked.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
    for (rel, mode, mtime) in dirs {
        let d = open_in_root(&root, &rel)?;
        rustix::fs::fchmod(d.as_fd(), Mode::from_raw_mode(mode)).map_err(|e| os(&rel, e))?;
        let ts = rustix::fs::Timespec {
            tv_sec: mtime as i64,
            tv_nsec: 0,
        };
        let _ = rustix::fs::futimens(
            d.as_fd(),
            &rustix::fs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
        );
    }
    Ok(count)
}

/// The extended attributes an entry's PAX records carry (`SCHILY.xattr.<name>`).
fn entry_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<crate::xattrs::Xattr>> {
    let mut out = Vec::new();
    let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| Error::invalid(format!("Bad archive PAX header: {e}")))?
    else {
        return Ok(out);
    };
    for ext in exts {
        let ext = ext.map_err(|e| Error::invalid(format!("Bad archive PAX record: {e}")))?;
        if let Some(name) = ext.key_bytes().strip_prefix(XATTR_PREFIX.as_bytes()) {
            if name.is_empty() || name.contains(&0) {
                continue;
            }
            use std::os::unix::ffi::OsStrExt;
            out.push((
                std::ffi::OsStr::from_bytes(name).to_owned(),
                ext.value_bytes().to_vec(),
            ));
        }
    }
    Ok(out)
}

const XATTR_PREFIX: &str = "SCHILY.xattr.";

/// Appends the tree at `src` to a tar stream under the name `prefix` (the directory itself
/// first, then its content, in name order): regular files, directories, symlinks, hard links
/// (later names of one inode as links to the first), device nodes and FIFOs; sockets are left
/// out. With `unshift`, host ids in the container's range are written as container ids
/// (host root stays 0, other ids become 65534), so the archive holds what the container sees (ids inside ACLs and
/// file capabilities too). Extended attributes go in PAX records before their entry.
pub fn append_tree<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    src: &Path,
    prefix: &Path,
    unshift: Option<crate::drivers::IdShift>,
) -> Result<()> {
    let mut links = std::collections::HashMap::new();
    append_entry(b, src, prefix, unshift, &mut links)
}

fn append_entry<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    unshift: Option<crate::drivers::IdShift>,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let io = |e: std::io::Error| Error::internal(format!("{}: {e}", path.display()));
    let md = std::fs::symlink_metadata(path).map_err(io)?;
    let ft = md.file_type();
    if ft.is_socket() {
        return Ok(());
    }
    let map = |id: u32| match unshift {
        None => u64::from(id),
        // Files the daemon wrote (backup.yaml) belong to host root: kept as root.
        Some(s) => u64::from(
            s.to_container(id)
                .unwrap_or(if id == 0 { 0 } else { 65534 }),
        ),
    };
    let attrs = crate::xattrs::read_all(path)?;
    if !attrs.is_empty() {
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        for (key, value) in attrs {
            let Some(key) = key.to_str() else { continue };
            let value = match unshift {
                Some(_) => {
                    crate::xattrs::map_ids(std::ffi::OsStr::new(key), &value, |id| map(id) as u32)
                }
                None => value,
            };
            records.push((format!("{XATTR_PREFIX}{key}"), value));
        }
        b.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(io)?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
    h.set_uid(map(md.uid()));
    h.set_gid(map(md.gid()));
    h.set_mode(md.mode() & 0o7777);
    if !ft.is_dir() && md.nlink() > 1 {
        let key = (md.dev(), md.ino());
        if let Some(first) = links.get(&key) {
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            b.append_link(&mut h, name, first).map_err(io)?;
            return Ok(());
        }
        links.insert(key, name.to_path_buf());
    }
    if ft.is_dir() {
        h.set_size(0);
        b.append_data(&mut h, name, std::io::empty()).map_err(io)?;
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(io)?
            .collect::<std::result::Result<_, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            append_entry(b, &e.path(), &name.join(e.file_name()), unshift, links)?;
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path).map_err(io)?;
        h.set_size(0);
        b.append_link(&mut h, name, &target).map_err(io)?;
    } else if ft.is_file() {
        let f = std::fs::File::open(path).map_err(io)?;
        b.append_data(&mut h, name, f).map_err(io)?;
    } else {
        // Device nodes and FIFOs: the header carries everything.
        h.set_size(0);
        b.append_data(&mut h, name, std::io::empty()).map_err(io)?;
    }
    Ok(())
}

/// Reads one file (`wanted`, normalised) out of a tar stream without extracting anything.
pub fn read_member(r: impl Read, wanted: &str, limit: u64) -> Result<Option<Vec<u8>>> {
    let mut ar = tar::Archive::new(r);
    for entry in ar
        .entries()
        .map_err(|e| Error::invalid(format!("Bad archive: {e}")))?
    {
        let entry = entry.map_err(|e| Error::invalid(format!("Bad archive entry: {e}")))?;
        let p = entry
            .path()
            .map_err(|e| Error::invalid(format!("Bad archive entry name: {e}")))?;
        if safe_relative(&p).ok().as_deref() == Some(Path::new(wanted)) {
            let mut buf = Vec::new();
            entry
                .take(limit + 1)
                .read_to_end(&mut buf)
                .map_err(|e| Error::invalid(format!("Failed reading {wanted}: {e}")))?;
            if buf.len() as u64 > limit {
                return Err(Error::invalid(format!(
                    "{wanted} is larger than {limit} bytes"
                )));
            }
            return Ok(Some(buf));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().expect("tar")
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o640);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`; write the raw name to build hostile archives.
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str, kind: tar::EntryType) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(kind);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        b.append(&h, &[][..]).expect("append");
    }

    #[test]
    fn extracts_files_links_and_modes() {
        let t = tempfile::tempdir().expect("tempdir");
        let data = tarball(|b| {
            file(b, "rootfs/etc/hostname", b"x\n");
            link(b, "rootfs/bin/sh", "/bin/busybox", tar::EntryType::Symlink);
            link(
                b,
                "rootfs/etc/hn2",
                "rootfs/etc/hostname",
                tar::EntryType::Link,
            );
        });
        let n = extract(&data[..], t.path(), None).expect("extract");
        assert_eq!(n, 3);
        let p = t.path().join("rootfs/etc/hostname");
        assert_eq!(std::fs::read(&p).expect("read"), b"x\n");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&p).expect("stat").mode() & 0o777, 0o640);
        assert_eq!(std::fs::metadata(&p).expect("stat").nlink(), 2);
        assert_eq!(
            std::fs::read_link(t.path().join("rootfs/bin/sh")).expect("link"),
            Path::new("/bin/busybox")
        );
    }

    #[test]
    fn refuses_escapes() {
        for bad in ["../evil", "/abs/evil", "rootfs/../../evil"] {
            let t = tempfile::tempdir().expect("tempdir");
            let data = tarball(|b| file(b, bad, b"x"));
            let e = extract(&data[..], &t.path().join(""), None).unwrap_err();
            assert!(e.message().contains("escapes its root"), "{bad}: {e}");
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidInput);
        }
        let t = tempfile::tempdir().expect("tempdir");
        let data = tarball(|b| link(b, "rootfs/hl", "../../etc/passwd", tar::EntryType::Link));
        assert!(extract(&data[..], t.path(), None).is_err());
    }

    #[test]
    fn symlinked_parents_stay_inside() {
        let t = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let target = outside.path().display().to_string();
        let data = tarball(|b| {
            link(b, "rootfs/escape", &target, tar::EntryType::Symlink);
            file(b, "rootfs/escape/pwned", b"x");
        });
        // The link's target does not exist inside the root: refused, nothing written outside.
        let e = extract(&data[..], t.path(), None).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidInput);
        assert!(
            !outside.path().join("pwned").exists(),
            "wrote outside the root"
        );
        // With the target present inside the root, the entry lands there, still inside.
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join(target.trim_start_matches('/'))).expect("mkdir");
        extract(&data[..], t.path(), None).expect("extract");
        assert!(
            !outside.path().join("pwned").exists(),
            "wrote outside the root"
        );
        assert!(
            t.path()
                .join(target.trim_start_matches('/'))
                .join("pwned")
                .exists(),
            "resolved inside the root"
        );
    }

    #[test]
    fn decompresses_by_magic_and_reads_members() {
        use std::io::Write;
        let data = tarball(|b| file(b, "metadata.yaml", b"architecture: x86_64\n"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).expect("gz");
        let gz = gz.finish().expect("gz");
        let xz = {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(&data).expect("xz");
            e.finish().expect("xz")
        };
        let zs = zstd::encode_all(&data[..], 1).expect("zstd");
        for blob in [data.clone(), gz, xz, zs] {
            let r = decompress(&blob[..]).expect("decompress");
            let m = read_member(r, "metadata.yaml", 1024)
                .expect("read")
                .expect("present");
            assert_eq!(m, b"architecture: x86_64\n");
        }
        let r = decompress(&data[..]).expect("decompress");
        assert!(read_member(r, "metadata.yaml", 3).is_err(), "size limit");
    }

    #[test]
    fn extended_attributes_round_trip_with_unshifted_capabilities() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED extended_attributes_round_trip: needs root");
            return;
        }
        let t = tempfile::tempdir().expect("tempdir");
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("bin")).expect("mkdir");
        let ping = src.join("bin/ping");
        std::fs::write(&ping, b"x").expect("write");
        rustix::fs::chown(
            &ping,
            Some(rustix::process::Uid::from_raw(1_000_000)),
            Some(rustix::process::Gid::from_raw(1_000_000)),
        )
        .expect("chown");
        // A namespaced (v3) capability whose root is the container's root, host id 1000000.
        let mut cap = 0x0300_0001u32.to_le_bytes().to_vec();
        cap.extend_from_slice(&(1u32 << 13).to_le_bytes());
        cap.extend_from_slice(&[0; 12]);
        cap.extend_from_slice(&1_000_000u32.to_le_bytes());
        xattr::set(&ping, crate::xattrs::CAPABILITY, &cap).expect("setcap");
        xattr::set(&ping, "user.origin", b"image").expect("user xattr");
        let shift = crate::drivers::IdShift {
            base: 1_000_000,
            size: 65536,
        };
        let mut b = tar::Builder::new(Vec::new());
        append_tree(&mut b, &src, Path::new("rootfs"), Some(shift)).expect("append");
        let bytes = b.into_inner().expect("tar");
        let dst = t.path().join("dst");
        std::fs::create_dir(&dst).expect("mkdir");
        extract(&bytes[..], &dst, None).expect("extract");
        let out = dst.join("rootfs/bin/ping");
        assert_eq!(
            xattr::get(&out, "user.origin").expect("get"),
            Some(b"image".to_vec())
        );
        let got = xattr::get(&out, crate::xattrs::CAPABILITY)
            .expect("get")
            .expect("capability kept");
        // The archive holds what the container sees: its root is 0, which the kernel stores
        // as a plain (version 2) capability when host root writes it.
        let mut v2 = 0x0200_0001u32.to_le_bytes().to_vec();
        v2.extend_from_slice(&cap[4..20]);
        assert_eq!(got, v2);
    }
}
