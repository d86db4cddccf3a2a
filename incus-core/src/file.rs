//! What a path inside an instance holds and what to write there: the values of the files
//! API, shared by the engine (`Host::file_get`, `Host::file_put`) and the clients. Builds on
//! every OS.

/// What a path inside an instance holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// A regular file.
    File {
        /// The content.
        data: Vec<u8>,
        /// Owner (container id).
        uid: u32,
        /// Group (container id).
        gid: u32,
        /// Permission bits.
        mode: u32,
    },
    /// A directory and its entry names.
    Directory {
        /// Entry names, sorted.
        entries: Vec<String>,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link and its target.
    Symlink {
        /// The target.
        target: String,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// Ownership and mode for [`Host::file_put`], in container ids. `None` keeps the existing
/// value on overwrite; new files get uid 0, gid 0 and mode 0644 (0755 for directories).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileAttrs {
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Permission bits.
    pub mode: Option<u32>,
}

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilePut {
    /// A regular file (created or overwritten, or appended to).
    File {
        /// Content.
        data: Vec<u8>,
        /// Append instead of overwrite.
        append: bool,
    },
    /// A directory (created if missing).
    Directory,
    /// A symlink to `target`.
    Symlink {
        /// The target.
        target: String,
    },
}
