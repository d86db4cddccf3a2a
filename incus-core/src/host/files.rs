//! Files inside instances: get, put and delete, never escaping the instance's root.
//!
//! A running container is reached through `/proc/<init pid>/root` (its own mount namespace,
//! so files on its tmpfs mounts are visible); a stopped one through its root filesystem on the
//! pool. Every path is resolved with `openat2(RESOLVE_IN_ROOT)` from that root, so `..` and
//! symlinks cannot lead outside. Ownership is given and reported in the container's ids.

use super::{DEFAULT_PROJECT, Host};
use crate::drivers::PowerState;
use crate::error::{Error, Result};
use crate::file::{FileAttrs, FileContent, FilePut};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

fn errno(path: &str, e: rustix::io::Errno) -> Error {
    match e {
        rustix::io::Errno::NOENT => Error::not_found(format!("{path}: no such file or directory")),
        rustix::io::Errno::EXIST => Error::already_exists(format!("{path}: already exists")),
        rustix::io::Errno::NOTEMPTY => Error::busy(format!("{path}: directory not empty")),
        rustix::io::Errno::NOTDIR => Error::invalid(format!("{path}: not a directory")),
        rustix::io::Errno::ISDIR => Error::invalid(format!("{path}: is a directory")),
        rustix::io::Errno::XDEV => Error::invalid(format!("{path}: escapes the instance root")),
        e => Error::internal(format!("{path}: {e}")),
    }
}

/// Runs a call that creates an inode inside an instance (`openat` with `O_CREAT`, `mkdirat`,
/// `symlinkat`). Through an idmapped mount (a custom volume in an unprivileged container)
/// the host's root is not mapped and the kernel answers `EOVERFLOW`; the call is then made
/// again with this thread's filesystem ids set to the host id of the container's root, as
/// the container's own root would create the inode, and the ids are restored at once (the
/// call is synchronous, so no other work runs on the thread meanwhile).
pub(super) fn creating<T>(
    container_root: Option<u32>,
    f: impl Fn() -> rustix::io::Result<T>,
) -> rustix::io::Result<T> {
    match (f(), container_root) {
        (Err(rustix::io::Errno::OVERFLOW), Some(id)) => {
            use nix::unistd::{Gid, Uid, setfsgid, setfsuid};
            let old_uid = setfsuid(Uid::from_raw(id));
            let old_gid = setfsgid(Gid::from_raw(id));
            let r = f();
            setfsgid(old_gid);
            setfsuid(old_uid);
            r
        }
        (r, _) => r,
    }
}

/// Splits an absolute in-container path into (parent, name), refusing the root itself.
fn split(path: &str) -> Result<(PathBuf, std::ffi::OsString)> {
    if !path.starts_with('/') {
        return Err(Error::invalid(format!("Path {path:?} is not absolute")));
    }
    let p = Path::new(path);
    let name = p
        .file_name()
        .filter(|n| *n != "..")
        .ok_or_else(|| Error::invalid(format!("Invalid path {path:?}")))?;
    let parent = p
        .parent()
        .unwrap_or(Path::new("/"))
        .strip_prefix("/")
        .unwrap_or(Path::new(""));
    Ok((parent.to_path_buf(), name.to_owned()))
}

fn open_dir(root: &OwnedFd, rel: &Path, path: &str) -> Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rustix::fs::openat2(
        root,
        rel,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| errno(path, e))
}

impl Host {
    pub(super) async fn instance_root(&self, project: &str, name: &str) -> Result<PathBuf> {
        let (inst, spec) = self.instance_spec(project, name)?;
        let _ = inst;
        Ok(
            match crate::drivers::InstanceDriver::power_state(&self.inner.lxc, &spec).await? {
                PowerState::Running(pid) | PowerState::Frozen(pid) => {
                    PathBuf::from(format!("/proc/{pid}/root"))
                }
                PowerState::Stopped => spec.rootfs,
            },
        )
    }

    fn to_container_id(&self, project: &str, name: &str, id: u32) -> u32 {
        match self.uses_idmap(project, name) {
            true => self.inner.idmap.to_container(id).unwrap_or(65534),
            false => id,
        }
    }

    fn to_host_id(&self, project: &str, name: &str, id: u32) -> Result<u32> {
        match self.uses_idmap(project, name) {
            true => self.inner.idmap.to_host(id).ok_or_else(|| {
                Error::invalid(format!("Id {id} is outside the container's id map"))
            }),
            false => Ok(id),
        }
    }

    pub(super) fn uses_idmap(&self, project: &str, name: &str) -> bool {
        self.get_instance_record(project, name)
            .map(|i| !crate::config::is_true(&i.expanded_config, "security.privileged"))
            .unwrap_or(true)
    }

    /// Opens the parent directory of `path` inside the instance (confined to its root) and
    /// returns it with the last path component.
    async fn open_parent(
        &self,
        project: &str,
        name: &str,
        path: &str,
    ) -> Result<(OwnedFd, std::ffi::OsString)> {
        let root_path = self.instance_root(project, name).await?;
        let root = rustix::fs::open(
            &root_path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno(path, e))?;
        let (parent, fname) = split(path)?;
        Ok((open_dir(&root, &parent, path)?, fname))
    }

    /// Reads a path inside an instance.
    pub async fn file_get(&self, project: &str, name: &str, path: &str) -> Result<FileContent> {
        let root_path = self.instance_root(project, name).await?;
        let root = rustix::fs::open(
            &root_path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno(path, e))?;
        let (parent, fname) = if path == "/" {
            (PathBuf::new(), ".".into())
        } else {
            split(path)?
        };
        let dir = open_dir(&root, &parent, path)?;
        let st = rustix::fs::statat(&dir, &fname, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| errno(path, e))?;
        let (uid, gid) = (
            self.to_container_id(project, name, st.st_uid),
            self.to_container_id(project, name, st.st_gid),
        );
        let mode = st.st_mode & 0o7777;
        match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Symlink => {
                let target =
                    rustix::fs::readlinkat(&dir, &fname, Vec::new()).map_err(|e| errno(path, e))?;
                Ok(FileContent::Symlink {
                    target: target.to_string_lossy().into_owned(),
                    uid,
                    gid,
                })
            }
            rustix::fs::FileType::Directory => {
                let d = rustix::fs::openat(
                    &dir,
                    &fname,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno(path, e))?;
                let mut entries: Vec<String> = dir_names(&d, path)?
                    .iter()
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect();
                entries.sort();
                Ok(FileContent::Directory {
                    entries,
                    uid,
                    gid,
                    mode,
                })
            }
            rustix::fs::FileType::RegularFile => {
                let fd = rustix::fs::openat(
                    &dir,
                    &fname,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno(path, e))?;
                let mut data = Vec::new();
                std::fs::File::from(fd)
                    .read_to_end(&mut data)
                    .map_err(|e| Error::internal(format!("{path}: {e}")))?;
                Ok(FileContent::File {
                    data,
                    uid,
                    gid,
                    mode,
                })
            }
            _ => Err(Error::invalid(format!(
                "{path}: not a regular file, directory or symlink"
            ))),
        }
    }

    /// Writes a path inside an instance with the ownership and mode of `attrs`.
    pub async fn file_put(
        &self,
        project: &str,
        name: &str,
        path: &str,
        what: FilePut,
        attrs: FileAttrs,
    ) -> Result<()> {
        let FileAttrs { uid, gid, mode } = attrs;
        if let Some(m) = mode
            && m > 0o7777
        {
            return Err(Error::invalid(format!("Invalid mode {m:o}")));
        }
        let (dir, fname) = self.open_parent(project, name, path).await?;
        let existing = rustix::fs::statat(&dir, &fname, AtFlags::SYMLINK_NOFOLLOW).ok();
        let huid = match uid {
            Some(u) => Some(self.to_host_id(project, name, u)?),
            None if existing.is_none() => Some(self.to_host_id(project, name, 0)?),
            None => None,
        };
        let hgid = match gid {
            Some(g) => Some(self.to_host_id(project, name, g)?),
            None if existing.is_none() => Some(self.to_host_id(project, name, 0)?),
            None => None,
        };
        let root_id = self
            .uses_idmap(project, name)
            .then(|| self.inner.idmap.to_host(0))
            .flatten();
        match what {
            FilePut::File { data, append } => {
                if existing.as_ref().is_some_and(|s| {
                    rustix::fs::FileType::from_raw_mode(s.st_mode)
                        != rustix::fs::FileType::RegularFile
                }) {
                    return Err(Error::invalid(format!(
                        "{path}: exists and is not a regular file"
                    )));
                }
                let mut flags =
                    OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                flags |= if append {
                    OFlags::APPEND
                } else {
                    OFlags::TRUNC
                };
                let fd = creating(root_id, || {
                    rustix::fs::openat(
                        &dir,
                        &fname,
                        flags,
                        Mode::from_raw_mode(mode.unwrap_or(0o644)),
                    )
                })
                .map_err(|e| errno(path, e))?;
                let mut f = std::fs::File::from(fd);
                f.write_all(&data)
                    .map_err(|e| Error::internal(format!("{path}: {e}")))?;
                rustix::fs::fchown(
                    &f,
                    huid.map(rustix::process::Uid::from_raw),
                    hgid.map(rustix::process::Gid::from_raw),
                )
                .map_err(|e| errno(path, e))?;
                if mode.is_some() || existing.is_none() {
                    rustix::fs::fchmod(&f, Mode::from_raw_mode(mode.unwrap_or(0o644)))
                        .map_err(|e| errno(path, e))?;
                }
            }
            FilePut::Directory => {
                match creating(root_id, || {
                    rustix::fs::mkdirat(&dir, &fname, Mode::from_raw_mode(mode.unwrap_or(0o755)))
                }) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::EXIST)
                        if existing.as_ref().is_some_and(|s| {
                            rustix::fs::FileType::from_raw_mode(s.st_mode)
                                == rustix::fs::FileType::Directory
                        }) => {}
                    Err(e) => return Err(errno(path, e)),
                }
                let d = rustix::fs::openat(
                    &dir,
                    &fname,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno(path, e))?;
                rustix::fs::fchown(
                    &d,
                    huid.map(rustix::process::Uid::from_raw),
                    hgid.map(rustix::process::Gid::from_raw),
                )
                .map_err(|e| errno(path, e))?;
                if mode.is_some() || existing.is_none() {
                    rustix::fs::fchmod(&d, Mode::from_raw_mode(mode.unwrap_or(0o755)))
                        .map_err(|e| errno(path, e))?;
                }
            }
            FilePut::Symlink { target } => {
                if existing.is_some() {
                    rustix::fs::unlinkat(&dir, &fname, AtFlags::empty())
                        .map_err(|e| errno(path, e))?;
                }
                creating(root_id, || {
                    rustix::fs::symlinkat(target.as_str(), &dir, &fname)
                })
                .map_err(|e| errno(path, e))?;
                rustix::fs::chownat(
                    &dir,
                    &fname,
                    huid.map(rustix::process::Uid::from_raw),
                    hgid.map(rustix::process::Gid::from_raw),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| errno(path, e))?;
            }
        }
        self.inner.events.lifecycle(
            "instance-file-pushed",
            &super::instance_url(project, name),
            if project.is_empty() {
                DEFAULT_PROJECT
            } else {
                project
            },
            Some(
                [("file".to_string(), serde_json::json!(path))]
                    .into_iter()
                    .collect(),
            ),
        );
        Ok(())
    }

    /// Deletes a path inside an instance; directories only when empty unless `recursive`.
    pub async fn file_delete(
        &self,
        project: &str,
        name: &str,
        path: &str,
        recursive: bool,
    ) -> Result<()> {
        let (dir, fname) = self.open_parent(project, name, path).await?;
        delete_at(&dir, &fname, recursive, path)?;
        self.inner.events.lifecycle(
            "instance-file-deleted",
            &super::instance_url(project, name),
            project,
            None,
        );
        Ok(())
    }
}

/// The entry names of an open directory, without `.` and `..`.
fn dir_names(d: &OwnedFd, path: &str) -> Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut names = Vec::new();
    for ent in rustix::fs::Dir::read_from(d).map_err(|e| errno(path, e))? {
        let ent = ent.map_err(|e| errno(path, e))?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(std::ffi::OsStr::from_bytes(n).to_owned());
        }
    }
    Ok(names)
}

fn delete_at(dir: &OwnedFd, name: &std::ffi::OsStr, recursive: bool, path: &str) -> Result<()> {
    let st =
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| errno(path, e))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| errno(path, e));
    }
    if recursive {
        let d = rustix::fs::openat(
            dir,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno(path, e))?;
        for n in dir_names(&d, path)? {
            delete_at(&d, &n, true, path)?;
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(|e| errno(path, e))
}
