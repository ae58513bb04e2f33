//! Mounting the layout under a root (default `/mnt`) in mountpoint order, and
//! activating swap; each checked against /proc/self/mountinfo and /proc/swaps
//! so a re-run skips what is already in place.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Errors of the mount step.
#[derive(Debug, thiserror::Error)]
pub enum MountStepError {
    #[error("Cannot create the mountpoint {path}")]
    Mkdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Mount(#[from] crate::sys::mount::MountError),
}

/// `root` joined with an absolute layout mountpoint (`/` → root itself).
pub fn target(root: &Path, mountpoint: &str) -> PathBuf {
    let mut t = root.to_path_buf();
    for c in Path::new(mountpoint).components() {
        if let Component::Normal(n) = c {
            t.push(n);
        }
    }
    t
}

/// Undo the octal escapes of /proc/self/mountinfo (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub options: String,
}

/// The current mounts of this process.
pub fn mounts() -> Result<Vec<MountEntry>, MountStepError> {
    let path = PathBuf::from("/proc/self/mountinfo");
    let text = fs::read_to_string(&path).map_err(|source| MountStepError::Read { path, source })?;
    Ok(parse_mountinfo(&text))
}

fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(f.get(4)?)),
                fs_type: r.first()?.to_string(),
                source: unescape(r.get(1)?),
                options: f.get(5)?.to_string(),
            })
        })
        .collect()
}

/// Whether something of `fs_type` is mounted at `target`.
pub fn is_mounted(target: &Path, fs_type: &str) -> Result<bool, MountStepError> {
    Ok(mounts()?
        .iter()
        .any(|m| m.mount_point == target && m.fs_type == fs_type))
}

/// Create the mountpoint directory (and parents).
pub fn make_mountpoint(target: &Path) -> Result<(), MountStepError> {
    fs::create_dir_all(target).map_err(|source| MountStepError::Mkdir {
        path: target.to_path_buf(),
        source,
    })
}

/// Whether the device is listed in /proc/swaps.
pub fn is_swap_active(node: &Path) -> Result<bool, MountStepError> {
    let path = PathBuf::from("/proc/swaps");
    let text = fs::read_to_string(&path).map_err(|source| MountStepError::Read { path, source })?;
    let canon = fs::canonicalize(node).unwrap_or_else(|_| node.to_path_buf());
    Ok(text.lines().skip(1).any(|l| {
        l.split_whitespace()
            .next()
            .map(|d| Path::new(&unescape(d)) == canon)
            .unwrap_or(false)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_stay_under_the_root() {
        assert_eq!(target(Path::new("/mnt"), "/"), PathBuf::from("/mnt"));
        assert_eq!(
            target(Path::new("/mnt"), "/boot/efi"),
            PathBuf::from("/mnt/boot/efi")
        );
    }

    #[test]
    fn mountinfo_lines() {
        let m = parse_mountinfo(
            "36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext4 /dev/loop0p3 rw,errors=continue\n",
        );
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(
            (m[0].fs_type.as_str(), m[0].source.as_str()),
            ("ext4", "/dev/loop0p3")
        );
    }
}
