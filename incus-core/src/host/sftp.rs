//! SFTP (version 3) inside an instance, as Incus serves on `/1.0/instances/{name}/sftp`.
//!
//! The `incus` 6.0.4 client does all its file transfers (`file push`, `file pull`,
//! `file create`, `file delete`, `file mount`) over this: the daemon upgrades the HTTP
//! connection and speaks raw SFTP on it. The protocol framing comes from `russh-sftp`; this
//! module maps each request onto the instance's root, confined like [`Host::file_get`]:
//! every path is resolved with `openat2(RESOLVE_IN_ROOT)` from the instance's root, relative
//! paths are taken from `/`, and ids are reported and set in the container's ids.

use super::Host;
use crate::drivers::IdShift;
use crate::error::{Error, Result};
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use tokio::io::{AsyncRead, AsyncWrite};

/// Entries sent per `SSH_FXP_NAME` reply to a directory read.
const READDIR_BATCH: usize = 128;
/// The largest read answered at once (the client asks again for the rest).
const MAX_READ: u32 = 256 * 1024;

/// An open SFTP handle.
enum Open {
    File(OwnedFd),
    Dir(Vec<File>),
}

/// One SFTP session on one instance's root. Made by [`Host::sftp_session`], consumed by
/// [`SftpSession::serve`]. Usable without the daemon: any byte stream will do.
pub struct SftpSession {
    root: OwnedFd,
    ids: Option<IdShift>,
    handles: HashMap<String, Open>,
    next: u64,
}

impl std::fmt::Debug for SftpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpSession")
            .field("ids", &self.ids)
            .field("handles", &self.handles.len())
            .finish()
    }
}

impl Host {
    /// Opens an SFTP session on the root of an instance (running or stopped).
    pub async fn sftp_session(&self, project: &str, name: &str) -> Result<SftpSession> {
        let root_path = self.instance_root(project, name).await?;
        let root = rustix::fs::open(
            &root_path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::internal(format!("{}: {e}", root_path.display())))?;
        let ids = self.uses_idmap(project, name).then_some(self.inner.idmap);
        Ok(SftpSession {
            root,
            ids,
            handles: HashMap::new(),
            next: 0,
        })
    }
}

impl SftpSession {
    /// Serves SFTP requests from `stream` until the client closes it. The session runs on
    /// its own task; this returns at once.
    pub async fn serve<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        russh_sftp::server::run(stream, self).await;
    }

    fn to_container(&self, id: u32) -> u32 {
        match self.ids {
            Some(m) => m.to_container(id).unwrap_or(65534),
            None => id,
        }
    }

    fn to_host(&self, id: u32) -> std::result::Result<u32, StatusReply> {
        match self.ids {
            Some(m) => m.to_host(id).ok_or_else(|| {
                StatusCode::Failure.with_message(format!("id {id} is outside the container's map"))
            }),
            None => Ok(id),
        }
    }

    /// Opens `path` (confined) with `flags`.
    fn open_at(&self, path: &str, flags: OFlags, mode: u32) -> std::result::Result<OwnedFd, Errno> {
        rustix::fs::openat2(
            &self.root,
            clean(path),
            flags | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// The parent directory of `path` (confined) and the last component; `None` for the root.
    fn parent(&self, path: &str) -> std::result::Result<(OwnedFd, OsString), StatusReply> {
        let p = clean(path);
        let name = p
            .file_name()
            .ok_or_else(|| StatusCode::Failure.with_message("not allowed on the root"))?
            .to_owned();
        let dir = p.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let fd = rustix::fs::openat2(
            &self.root,
            dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(reply)?;
        Ok((fd, name))
    }

    fn attrs(&self, st: &rustix::fs::Stat) -> FileAttributes {
        FileAttributes {
            size: Some(st.st_size as u64),
            uid: Some(self.to_container(st.st_uid)),
            gid: Some(self.to_container(st.st_gid)),
            user: None,
            group: None,
            permissions: Some(st.st_mode),
            atime: Some(st.st_atime as u32),
            mtime: Some(st.st_mtime as u32),
        }
    }

    /// Applies size, ownership, mode and times to an open file.
    fn apply(&self, fd: &OwnedFd, a: &FileAttributes) -> std::result::Result<(), StatusReply> {
        if let Some(size) = a.size {
            rustix::fs::ftruncate(fd, size).map_err(reply)?;
        }
        if a.uid.is_some() || a.gid.is_some() {
            let uid = a.uid.map(|u| self.to_host(u)).transpose()?;
            let gid = a.gid.map(|g| self.to_host(g)).transpose()?;
            rustix::fs::fchown(
                fd,
                uid.map(rustix::process::Uid::from_raw),
                gid.map(rustix::process::Gid::from_raw),
            )
            .map_err(reply)?;
        }
        if let Some(mode) = a.permissions {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777)).map_err(reply)?;
        }
        if let (Some(at), Some(mt)) = (a.atime, a.mtime) {
            let ts = |s: u32| rustix::fs::Timespec {
                tv_sec: i64::from(s),
                tv_nsec: 0,
            };
            rustix::fs::futimens(
                fd,
                &Timestamps {
                    last_access: ts(at),
                    last_modification: ts(mt),
                },
            )
            .map_err(reply)?;
        }
        Ok(())
    }

    /// Gives a new entry the container's root as owner (the daemon creates it as host root).
    fn own_new(&self, fd: &OwnedFd) -> std::result::Result<(), StatusReply> {
        if self.ids.is_some() {
            let root = self.to_host(0)?;
            rustix::fs::fchown(
                fd,
                Some(rustix::process::Uid::from_raw(root)),
                Some(rustix::process::Gid::from_raw(root)),
            )
            .map_err(reply)?;
        }
        Ok(())
    }

    fn add(&mut self, open: Open) -> String {
        self.next += 1;
        let h = self.next.to_string();
        self.handles.insert(h.clone(), open);
        h
    }

    fn file(&self, handle: &str) -> std::result::Result<&OwnedFd, StatusReply> {
        match self.handles.get(handle) {
            Some(Open::File(fd)) => Ok(fd),
            _ => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    fn stat_path(&self, path: &str, follow: bool) -> std::result::Result<Attrs, StatusReply> {
        let st = if follow || clean(path).file_name().is_none() {
            let fd = self.open_at(path, OFlags::PATH, 0).map_err(reply)?;
            rustix::fs::fstat(&fd).map_err(reply)?
        } else {
            let (dir, name) = self.parent(path)?;
            rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(reply)?
        };
        Ok(Attrs {
            id: 0,
            attrs: self.attrs(&st),
        })
    }
}

/// Maps an errno onto the SFTP status the Go client turns back into the same `os` error.
fn reply(e: Errno) -> StatusReply {
    let code = match e {
        Errno::NOENT => StatusCode::NoSuchFile,
        Errno::ACCESS | Errno::PERM => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    };
    code.with_message(e.to_string())
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

/// A client path made relative to the instance root, `.` and `..` resolved lexically (never
/// above the root). `openat2(RESOLVE_IN_ROOT)` keeps symlinks inside too.
fn clean(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> std::result::Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> std::result::Result<Handle, Self::Error> {
        let mut flags = match (
            pflags.contains(OpenFlags::READ),
            pflags.contains(OpenFlags::WRITE),
        ) {
            (true, true) => OFlags::RDWR,
            (false, true) => OFlags::WRONLY,
            _ => OFlags::RDONLY,
        };
        if pflags.contains(OpenFlags::APPEND) {
            flags |= OFlags::APPEND;
        }
        if pflags.contains(OpenFlags::CREATE) {
            flags |= OFlags::CREATE;
        }
        if pflags.contains(OpenFlags::TRUNCATE) {
            flags |= OFlags::TRUNC;
        }
        if pflags.contains(OpenFlags::EXCLUDE) {
            flags |= OFlags::EXCL;
        }
        let existed = !flags.contains(OFlags::CREATE) || self.stat_path(&filename, true).is_ok();
        // openat2 refuses a mode without O_CREAT.
        let mode = match flags.contains(OFlags::CREATE) {
            true => attrs.permissions.map(|m| m & 0o7777).unwrap_or(0o644),
            false => 0,
        };
        let root = self.ids.and_then(|i| i.to_host(0));
        let fd =
            super::files::creating(root, || self.open_at(&filename, flags, mode)).map_err(reply)?;
        if !existed {
            self.own_new(&fd)?;
        }
        let handle = self.add(Open::File(fd));
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> std::result::Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(_) => Ok(ok(id)),
            None => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> std::result::Result<Data, Self::Error> {
        let fd = self.file(&handle)?;
        let mut buf = vec![0u8; len.min(MAX_READ) as usize];
        let n = rustix::io::pread(fd, &mut buf, offset).map_err(reply)?;
        if n == 0 && !buf.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        buf.truncate(n);
        Ok(Data { id, data: buf })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> std::result::Result<Status, Self::Error> {
        let fd = self.file(&handle)?;
        let mut done = 0;
        while done < data.len() {
            let n = rustix::io::pwrite(fd, &data[done..], offset + done as u64).map_err(reply)?;
            if n == 0 {
                return Err(StatusCode::Failure.with_message("short write"));
            }
            done += n;
        }
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> std::result::Result<Attrs, Self::Error> {
        let mut a = self.stat_path(&path, false)?;
        a.id = id;
        Ok(a)
    }

    async fn stat(&mut self, id: u32, path: String) -> std::result::Result<Attrs, Self::Error> {
        let mut a = self.stat_path(&path, true)?;
        a.id = id;
        Ok(a)
    }

    async fn fstat(&mut self, id: u32, handle: String) -> std::result::Result<Attrs, Self::Error> {
        let st = rustix::fs::fstat(self.file(&handle)?).map_err(reply)?;
        Ok(Attrs {
            id,
            attrs: self.attrs(&st),
        })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> std::result::Result<Status, Self::Error> {
        // O_PATH descriptors refuse fchown/fchmod: open for reading (directories too), or for
        // writing when only the size changes on a write-only file.
        let fd = match self.open_at(&path, OFlags::RDONLY, 0) {
            Ok(fd) => fd,
            Err(Errno::ACCESS) | Err(Errno::ISDIR) => {
                self.open_at(&path, OFlags::WRONLY, 0).map_err(reply)?
            }
            Err(e) => return Err(reply(e)),
        };
        if attrs.size.is_some() {
            // Truncation needs a writable descriptor.
            let w = self.open_at(&path, OFlags::WRONLY, 0).map_err(reply)?;
            self.apply(
                &w,
                &FileAttributes {
                    size: attrs.size,
                    ..FileAttributes::empty()
                },
            )?;
        }
        self.apply(
            &fd,
            &FileAttributes {
                size: None,
                ..attrs
            },
        )?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> std::result::Result<Status, Self::Error> {
        self.apply(self.file(&handle)?, &attrs)?;
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> std::result::Result<Handle, Self::Error> {
        let fd = self
            .open_at(&path, OFlags::DIRECTORY | OFlags::RDONLY, 0)
            .map_err(reply)?;
        let mut files = Vec::new();
        for ent in rustix::fs::Dir::read_from(&fd).map_err(reply)? {
            let ent = ent.map_err(reply)?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            // An entry that vanished meanwhile is left out.
            if let Ok(st) = rustix::fs::statat(&fd, ent.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                files.push(File::new(name, self.attrs(&st)));
            }
        }
        files.sort_by(|a, b| a.filename.cmp(&b.filename));
        files.reverse(); // popped from the end in order
        let handle = self.add(Open::Dir(files));
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> std::result::Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(Open::Dir(files)) => {
                if files.is_empty() {
                    return Err(StatusCode::Eof.into());
                }
                let n = files.len().min(READDIR_BATCH);
                let batch: Vec<File> = files.drain(files.len() - n..).rev().collect();
                Ok(Name { id, files: batch })
            }
            _ => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    async fn remove(
        &mut self,
        id: u32,
        filename: String,
    ) -> std::result::Result<Status, Self::Error> {
        let (dir, name) = self.parent(&filename)?;
        rustix::fs::unlinkat(&dir, &name, AtFlags::empty()).map_err(reply)?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> std::result::Result<Status, Self::Error> {
        let (dir, name) = self.parent(&path)?;
        let mode = attrs.permissions.map(|m| m & 0o7777).unwrap_or(0o755);
        let root = self.ids.and_then(|i| i.to_host(0));
        super::files::creating(root, || {
            rustix::fs::mkdirat(&dir, &name, Mode::from_raw_mode(mode))
        })
        .map_err(reply)?;
        let fd = rustix::fs::openat(
            &dir,
            &name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(reply)?;
        self.own_new(&fd)?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> std::result::Result<Status, Self::Error> {
        let (dir, name) = self.parent(&path)?;
        rustix::fs::unlinkat(&dir, &name, AtFlags::REMOVEDIR).map_err(reply)?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> std::result::Result<Name, Self::Error> {
        let p = clean(&path);
        let abs = if p == Path::new(".") {
            "/".to_string()
        } else {
            format!("/{}", p.display())
        };
        Ok(Name {
            id,
            files: vec![File::dummy(abs)],
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> std::result::Result<Status, Self::Error> {
        let (odir, oname) = self.parent(&oldpath)?;
        let (ndir, nname) = self.parent(&newpath)?;
        rustix::fs::renameat(&odir, &oname, &ndir, &nname).map_err(reply)?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> std::result::Result<Name, Self::Error> {
        let (dir, name) = self.parent(&path)?;
        let target = rustix::fs::readlinkat(&dir, &name, Vec::new()).map_err(reply)?;
        Ok(Name {
            id,
            files: vec![File::dummy(target.to_string_lossy().into_owned())],
        })
    }

    /// OpenSSH (and the Go client, which follows it) send the link's target first and the
    /// link's own path second, the reverse of the draft's field names that `russh-sftp` uses.
    async fn symlink(
        &mut self,
        id: u32,
        linkpath: String,
        targetpath: String,
    ) -> std::result::Result<Status, Self::Error> {
        let (target, link) = (linkpath, targetpath);
        let (dir, name) = self.parent(&link)?;
        let root = self.ids.and_then(|i| i.to_host(0));
        super::files::creating(root, || rustix::fs::symlinkat(target.as_str(), &dir, &name))
            .map_err(reply)?;
        if self.ids.is_some() {
            let root = self.to_host(0)?;
            rustix::fs::chownat(
                &dir,
                &name,
                Some(rustix::process::Uid::from_raw(root)),
                Some(rustix::process::Gid::from_raw(root)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(reply)?;
        }
        Ok(ok(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_stays_inside() {
        assert_eq!(clean("/"), PathBuf::from("."));
        assert_eq!(clean(""), PathBuf::from("."));
        assert_eq!(clean("root/a.txt"), PathBuf::from("root/a.txt"));
        assert_eq!(clean("/root/./a/../b"), PathBuf::from("root/b"));
        assert_eq!(clean("/../../etc/passwd"), PathBuf::from("etc/passwd"));
    }
}
