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

pub use crate::sys::mountinfo::MountEntry;

/// The current mounts of this process.
pub fn mounts() -> Result<Vec<MountEntry>, MountStepError> {
    crate::sys::mountinfo::read().map_err(|source| MountStepError::Read {
        path: PathBuf::from("/proc/self/mountinfo"),
        source,
    })
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
    Ok(crate::sys::mountinfo::parse_swaps(&text)
        .iter()
        .any(|d| Path::new(d) == canon))
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
}
