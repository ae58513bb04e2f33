//! Room on the filesystem the store is written to. Before a closure transfer
//! begins, the space the announced NARs will take (an estimate from their
//! sizes and count) is checked against what `statvfs` says is free, so a disk
//! that is too small is refused up front with both figures named. When a write
//! still fails for lack of space (another writer, a bad estimate, a lying
//! controller), [`disk_full`] names the path being written and the space left.
//! Nothing here writes; the unpacker already removes a path that failed.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use landfall_proto::nar::StorePath;

/// Fixed room for the Nix database, profile links and filesystem metadata.
const BASE_OVERHEAD: u64 = 16 << 20;
/// Per path: its directory, inodes and the last partly used blocks of its files.
const PER_PATH_OVERHEAD: u64 = 64 << 10;

/// Why the store does not fit, or the space could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// `statvfs` failed.
    #[error("Cannot read the free space of {dir}")]
    Statvfs {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The announced closure does not fit.
    #[error(
        "Not enough space for the closure: it needs {} for {paths} paths, {} free on {}",
        Bytes(*.needed),
        Bytes(.free.bytes),
        .free.mount.display()
    )]
    TooSmall {
        needed: u64,
        paths: u32,
        free: FreeSpace,
    },
    /// A write failed with ENOSPC/EDQUOT.
    #[error(
        "The disk filled up while writing {path}: {} free on {} once its partial files were removed{}",
        Bytes(.free.bytes),
        .free.mount.display(),
        match .still_to_come { Some(n) => format!(", {} of the closure still to come", Bytes(*n)), None => String::new() }
    )]
    Full {
        path: StorePath,
        free: FreeSpace,
        still_to_come: Option<u64>,
    },
}

/// Free space on the filesystem holding a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes the agent can still write (it runs as root, so reserved blocks count).
    pub bytes: u64,
    /// The filesystem's mount point (the topmost directory on the same device).
    pub mount: PathBuf,
}

/// A byte count as people read it: "60 MiB", "1.0 GiB".
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 30 {
            write!(f, "{:.1} GiB", b as f64 / (1u64 << 30) as f64)
        } else if b >= 1 << 20 {
            write!(f, "{} MiB", b >> 20)
        } else if b >= 1 << 10 {
            write!(f, "{} KiB", b >> 10)
        } else {
            write!(f, "{b} B")
        }
    }
}

/// The space `paths` store paths of `nar_bytes` NAR bytes in all take on disk:
/// the NAR size (which already exceeds the file contents by its framing),
/// plus a tenth for block rounding of small files, plus fixed overheads.
pub fn needed_bytes(nar_bytes: u64, paths: u32) -> u64 {
    nar_bytes
        .saturating_add(nar_bytes / 10)
        .saturating_add(u64::from(paths).saturating_mul(PER_PATH_OVERHEAD))
        .saturating_add(BASE_OVERHEAD)
}

/// The mount point of the filesystem holding `dir`: walk up while the device stays the same.
fn mount_point(dir: &Path) -> PathBuf {
    let Ok(dev) = std::fs::metadata(dir).map(|m| m.dev()) else {
        return dir.to_path_buf();
    };
    let mut cur = dir.to_path_buf();
    while let Some(parent) = cur.parent() {
        match std::fs::metadata(parent) {
            Ok(m) if m.dev() == dev => cur = parent.to_path_buf(),
            _ => break,
        }
    }
    cur
}

/// Free space where `dir` lives (`dir` itself, or its nearest existing ancestor).
pub fn free_space(dir: &Path) -> Result<FreeSpace, SpaceError> {
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    let st = nix::sys::statvfs::statvfs(existing).map_err(|e| SpaceError::Statvfs {
        dir: existing.to_path_buf(),
        source: e.into(),
    })?;
    let blocks = if nix::unistd::geteuid().is_root() {
        st.blocks_free()
    } else {
        st.blocks_available()
    };
    Ok(FreeSpace {
        bytes: (blocks as u64).saturating_mul(st.fragment_size() as u64),
        mount: mount_point(existing),
    })
}

/// Refuses a transfer of `paths` paths and `nar_bytes` NAR bytes that cannot
/// fit under `root`; returns the free space otherwise.
pub fn check_room(root: &Path, nar_bytes: u64, paths: u32) -> Result<FreeSpace, SpaceError> {
    let free = free_space(root)?;
    if paths == 0 {
        return Ok(free);
    }
    let needed = needed_bytes(nar_bytes, paths);
    if needed > free.bytes {
        return Err(SpaceError::TooSmall {
            needed,
            paths,
            free,
        });
    }
    Ok(free)
}

/// True when `e` or one of its causes is a "no space" I/O error (ENOSPC, EDQUOT).
pub fn is_out_of_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) {
                return true;
            }
        }
        cur = c.source();
    }
    false
}

/// The error for a write of `path` under `root` that ran out of space.
pub fn disk_full(root: &Path, path: &StorePath, still_to_come: Option<u64>) -> SpaceError {
    let free = free_space(root).unwrap_or_else(|_| FreeSpace {
        bytes: 0,
        mount: root.to_path_buf(),
    });
    SpaceError::Full {
        path: path.clone(),
        free,
        still_to_come,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(60 << 20).to_string(), "60 MiB");
        assert_eq!(Bytes((1 << 30) + (50 << 20)).to_string(), "1.0 GiB");
        assert_eq!(Bytes(3 << 10).to_string(), "3 KiB");
    }

    #[test]
    fn the_estimate_covers_the_nar_and_overheads() {
        assert_eq!(needed_bytes(0, 0), BASE_OVERHEAD);
        let n = needed_bytes(1 << 30, 501);
        assert!(n > (1 << 30) + (100 << 20), "{n}");
        assert_eq!(needed_bytes(u64::MAX, u32::MAX), u64::MAX);
    }

    #[test]
    fn a_closure_larger_than_the_disk_is_refused_with_both_figures() {
        let d = tempfile::tempdir().unwrap();
        let free = free_space(d.path()).unwrap();
        assert!(free.bytes > 0);
        assert!(d.path().starts_with(&free.mount));
        let e = check_room(&d.path().join("not/yet/made"), free.bytes, 501).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("for 501 paths"), "{msg}");
        assert!(msg.contains(" free on "), "{msg}");
        assert!(matches!(e, SpaceError::TooSmall { paths: 501, .. }));
        assert!(check_room(d.path(), 1 << 10, 1).is_ok());
    }

    #[test]
    fn enospc_is_found_anywhere_in_the_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let full = Outer(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(is_out_of_space(&full));
        let other = Outer(io::Error::from_raw_os_error(libc::EIO));
        assert!(!is_out_of_space(&other));
        let p = StorePath::parse("/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-first").unwrap();
        let d = tempfile::tempdir().unwrap();
        let msg = disk_full(d.path(), &p, Some(5 << 20)).to_string();
        assert!(
            msg.contains("while writing /nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-first"),
            "{msg}"
        );
        assert!(msg.contains("5 MiB of the closure still to come"), "{msg}");
    }
}
