//! Extended attributes of files in instance and volume trees: read, write and id-shift them.
//!
//! Root filesystems carry file capabilities (`security.capability`, e.g. `ping`'s
//! `cap_net_raw`), POSIX ACLs (`system.posix_acl_access`, `system.posix_acl_default`) and
//! user attributes. Copies, id shifts, image unpacking and backups keep them all. Two kinds
//! hold user or group ids and are rewritten when a tree moves between id ranges: ACL entries
//! for named users and groups, and the root id of a version 3 (namespaced) file capability.
//! Note that `chown` drops `security.capability`, so callers write attributes after it.

use crate::error::{Error, Result};
use std::ffi::{OsStr, OsString};
use std::path::Path;

/// One extended attribute: its full name (`security.capability`) and raw value.
pub type Xattr = (OsString, Vec<u8>);

/// The name of the file capability attribute.
pub const CAPABILITY: &str = "security.capability";
const ACL_ACCESS: &str = "system.posix_acl_access";
const ACL_DEFAULT: &str = "system.posix_acl_default";
const ACL_VERSION: u32 = 2;
const ACL_USER: u16 = 0x02;
const ACL_GROUP: u16 = 0x08;
const CAP_REVISION_MASK: u32 = 0xFF00_0000;
const CAP_REVISION_3: u32 = 0x0300_0000;
const CAP_V3_LEN: usize = 24;

fn unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENOSYS))
}

/// Every extended attribute of `path` (not following a final symlink). A filesystem without
/// extended attributes gives an empty list.
pub fn read_all(path: &Path) -> Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::internal(format!(
                "Listing extended attributes of {}: {e}",
                path.display()
            )));
        }
    };
    let mut out = Vec::new();
    for name in names {
        match xattr::get(path, &name) {
            Ok(Some(value)) => out.push((name, value)),
            // Removed meanwhile.
            Ok(None) => {}
            Err(e) => {
                return Err(Error::internal(format!(
                    "Reading extended attribute {} of {}: {e}",
                    name.to_string_lossy(),
                    path.display()
                )));
            }
        }
    }
    Ok(out)
}

/// Writes the attributes `attrs` on `path` (not following a final symlink).
pub fn write_all(path: &Path, attrs: &[Xattr]) -> Result<()> {
    for (name, value) in attrs {
        write_one(path, name, value)?;
    }
    Ok(())
}

/// Writes one attribute on `path` (not following a final symlink).
pub fn write_one(path: &Path, name: &OsStr, value: &[u8]) -> Result<()> {
    xattr::set(path, name, value).map_err(|e| {
        Error::internal(format!(
            "Setting extended attribute {} on {}: {e}",
            name.to_string_lossy(),
            path.display()
        ))
    })
}

/// The value `value` of attribute `name` with the ids it holds passed through `map`: the
/// user and group of named ACL entries, and the root id of a version 3 file capability. Other
/// attributes, and malformed values, are returned as they are.
pub fn map_ids(name: &OsStr, value: &[u8], map: impl Fn(u32) -> u32) -> Vec<u8> {
    let mut v = value.to_vec();
    if name == ACL_ACCESS || name == ACL_DEFAULT {
        if v.len() < 4 || !(v.len() - 4).is_multiple_of(8) || le32(&v[0..4]) != ACL_VERSION {
            return v;
        }
        for entry in v[4..].chunks_exact_mut(8) {
            let tag = u16::from_le_bytes([entry[0], entry[1]]);
            if tag == ACL_USER || tag == ACL_GROUP {
                let id = map(le32(&entry[4..8]));
                entry[4..8].copy_from_slice(&id.to_le_bytes());
            }
        }
    } else if name == CAPABILITY
        && v.len() == CAP_V3_LEN
        && le32(&v[0..4]) & CAP_REVISION_MASK == CAP_REVISION_3
    {
        let id = map(le32(&v[20..24]));
        v[20..24].copy_from_slice(&id.to_le_bytes());
    }
    v
}

/// Whether an attribute holds ids that [`map_ids`] rewrites.
pub fn holds_ids(name: &OsStr) -> bool {
    name == ACL_ACCESS || name == ACL_DEFAULT || name == CAPABILITY
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = ACL_VERSION.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn maps_acl_entries_and_v3_capabilities_only() {
        let shift = |id: u32| id + 1_000_000;
        let before = acl(&[
            (0x01, 7, u32::MAX),
            (ACL_USER, 5, 1000),
            (ACL_GROUP, 4, 27),
            (0x10, 7, u32::MAX),
        ]);
        let after = map_ids(OsStr::new(ACL_ACCESS), &before, shift);
        assert_eq!(
            after,
            acl(&[
                (0x01, 7, u32::MAX),
                (ACL_USER, 5, 1_001_000),
                (ACL_GROUP, 4, 1_000_027),
                (0x10, 7, u32::MAX),
            ])
        );
        let mut v3 = (CAP_REVISION_3 | 1).to_le_bytes().to_vec();
        v3.extend_from_slice(&[0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        v3.extend_from_slice(&5u32.to_le_bytes());
        let mapped = map_ids(OsStr::new(CAPABILITY), &v3, shift);
        assert_eq!(&mapped[20..], &1_000_005u32.to_le_bytes());
        assert_eq!(&mapped[..20], &v3[..20]);
        // Version 2 capabilities carry no id; other attributes and junk pass unchanged.
        let v2 = [
            0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(map_ids(OsStr::new(CAPABILITY), &v2, shift), v2);
        assert_eq!(
            map_ids(OsStr::new("user.x"), b"abcd1234", shift),
            b"abcd1234"
        );
        assert_eq!(map_ids(OsStr::new(ACL_ACCESS), b"bad", shift), b"bad");
    }
}
