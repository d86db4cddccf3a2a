//! The host id range for unprivileged containers, from `/etc/subuid` and `/etc/subgid`.

use crate::drivers::IdShift;
use crate::error::{Error, Result};
use std::path::Path;

/// Ids mapped into each container (uid and gid 0 to 65535).
pub const CONTAINER_IDS: u32 = 65536;
/// The range written for root when none exists, as Incus's packaging does.
const DEFAULT_RANGE: (u32, u32) = (1_000_000, 1_000_000_000);

/// Root's first range of at least [`CONTAINER_IDS`] ids in a subuid/subgid-formatted text.
pub fn root_range(text: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (user, start, count) = (f.next()?, f.next()?, f.next()?);
        let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
        (user == "root" && count >= CONTAINER_IDS).then_some((start, count))
    })
}

fn ensure(path: &Path) -> Result<(u32, u32)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if let Some(r) = root_range(&text) {
        return Ok(r);
    }
    let mut text = text;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("root:{}:{}\n", DEFAULT_RANGE.0, DEFAULT_RANGE.1));
    std::fs::write(path, text).map_err(|e| Error::io(path.display(), e))?;
    Ok(DEFAULT_RANGE)
}

/// Root's id range, created in `/etc/subuid` and `/etc/subgid` if absent. The uid and gid
/// ranges must start at the same id.
pub fn host_idmap() -> Result<IdShift> {
    let (u, _) = ensure(Path::new("/etc/subuid"))?;
    let (g, _) = ensure(Path::new("/etc/subgid"))?;
    if u != g {
        return Err(Error::internal(format!(
            "root's ranges in /etc/subuid ({u}) and /etc/subgid ({g}) start at different ids"
        )));
    }
    Ok(IdShift {
        base: u,
        size: CONTAINER_IDS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_root_range() {
        assert_eq!(
            root_range("bob:1:2\nroot:100000:65536\n"),
            Some((100000, 65536))
        );
        assert_eq!(
            root_range("root:100000:1000\nroot:200000:70000\n"),
            Some((200000, 70000))
        );
        assert_eq!(root_range("bob:100000:65536\n"), None);
        assert_eq!(root_range("garbage"), None);
    }
}
