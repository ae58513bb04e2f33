//! The btrfs and inode-flag ioctls the agent needs to lay out subvolumes and
//! swapfiles: BTRFS_IOC_SUBVOL_CREATE, FS_IOC_GETFLAGS/FS_IOC_SETFLAGS (for
//! NOCOW, `FS_NOCOW_FL`), fallocate(2), and the test btrfs-progs itself uses
//! to recognise a subvolume (a directory on btrfs whose inode is 256).
//!
//! Invariant: a name reaches BTRFS_IOC_SUBVOL_CREATE only after
//! [`check_subvolume_name`] accepted it (one component, 1-255 bytes, no `/`,
//! no NUL, not `.` or `..`).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// <uapi/linux/btrfs.h> BTRFS_IOCTL_MAGIC.
const BTRFS_IOCTL_MAGIC: u8 = 0x94;
/// BTRFS_PATH_NAME_MAX: `btrfs_ioctl_vol_args.name` holds this many bytes plus a NUL.
const BTRFS_PATH_NAME_MAX: usize = 4087;
/// BTRFS_NAME_LEN: the longest name of a directory entry.
pub const BTRFS_NAME_LEN: usize = 255;
/// BTRFS_FIRST_FREE_OBJECTID: the inode number of every subvolume's root directory.
pub const SUBVOLUME_ROOT_INODE: u64 = 256;
/// <uapi/linux/magic.h> BTRFS_SUPER_MAGIC, statfs's f_type of btrfs.
pub const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;
/// <uapi/linux/fs.h> FS_NOCOW_FL: do not copy-on-write (set while the file is empty).
pub const FS_NOCOW_FL: libc::c_int = 0x0080_0000;

/// <uapi/linux/btrfs.h> `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

/// BTRFS_IOC_SUBVOL_CREATE: `_IOW(BTRFS_IOCTL_MAGIC, 14, struct btrfs_ioctl_vol_args)`.
const BTRFS_IOC_SUBVOL_CREATE: libc::c_ulong =
    nix::request_code_write!(BTRFS_IOCTL_MAGIC, 14, std::mem::size_of::<VolArgs>())
        as libc::c_ulong;
nix::ioctl_write_ptr_bad!(subvol_create, BTRFS_IOC_SUBVOL_CREATE, VolArgs);
// <uapi/linux/fs.h>: _IOR('f', 1, long) and _IOW('f', 2, long); the kernel
// reads and writes an int through them.
const FS_IOC_GETFLAGS: libc::c_ulong =
    nix::request_code_read!(b'f', 1, std::mem::size_of::<libc::c_long>()) as libc::c_ulong;
const FS_IOC_SETFLAGS: libc::c_ulong =
    nix::request_code_write!(b'f', 2, std::mem::size_of::<libc::c_long>()) as libc::c_ulong;
nix::ioctl_read_bad!(fs_getflags, FS_IOC_GETFLAGS, libc::c_int);
nix::ioctl_write_ptr_bad!(fs_setflags, FS_IOC_SETFLAGS, libc::c_int);

/// Errors of the btrfs interfaces, each naming the request that failed.
#[derive(Debug, thiserror::Error)]
pub enum BtrfsIoError {
    #[error("Bad subvolume name {name:?}: {why}")]
    Name { name: String, why: &'static str },
    #[error("Cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot stat {path}")]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("BTRFS_IOC_SUBVOL_CREATE of {name:?} in {parent} failed")]
    SubvolCreate {
        parent: PathBuf,
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("FS_IOC_GETFLAGS failed")]
    GetFlags(#[source] nix::Error),
    #[error("FS_IOC_SETFLAGS failed")]
    SetFlags(#[source] nix::Error),
    #[error("fallocate of {len} bytes failed")]
    Fallocate {
        len: u64,
        #[source]
        source: nix::Error,
    },
}

/// Check one subvolume name as BTRFS_IOC_SUBVOL_CREATE takes it (a single
/// directory entry in its parent).
pub fn check_subvolume_name(name: &OsStr) -> Result<(), BtrfsIoError> {
    let b = name.as_bytes();
    let why = if b.is_empty() {
        Some("empty")
    } else if b.len() > BTRFS_NAME_LEN {
        Some("longer than 255 bytes")
    } else if b.contains(&b'/') {
        Some("contains /")
    } else if b.contains(&0) {
        Some("contains a NUL byte")
    } else if b == b"." || b == b".." {
        Some("is . or ..")
    } else {
        None
    };
    match why {
        Some(why) => Err(BtrfsIoError::Name {
            name: name.to_string_lossy().into_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// Create subvolume `name` in the directory `parent` (which must exist and
/// be on btrfs).
pub fn create_subvolume(parent: &Path, name: &OsStr) -> Result<(), BtrfsIoError> {
    check_subvolume_name(name)?;
    let dir = File::open(parent).map_err(|source| BtrfsIoError::Open {
        path: parent.to_path_buf(),
        source,
    })?;
    let mut args = VolArgs {
        fd: 0,
        name: [0; BTRFS_PATH_NAME_MAX + 1],
    };
    let b = name.as_bytes();
    // Checked above: at most 255 bytes, so the NUL after it is in the array.
    args.name[..b.len()].copy_from_slice(b);
    // SAFETY: `dir` is an open directory for the duration of the call; `args`
    // is a valid, initialised `btrfs_ioctl_vol_args` the kernel only reads,
    // with a NUL-terminated name.
    unsafe { subvol_create(dir.as_raw_fd(), &args) }.map_err(|source| {
        BtrfsIoError::SubvolCreate {
            parent: parent.to_path_buf(),
            name: name.to_string_lossy().into_owned(),
            source,
        }
    })?;
    Ok(())
}

/// Whether `path` is the root of a btrfs subvolume; `Ok(false)` when it does
/// not exist.
pub fn is_subvolume(path: &Path) -> Result<bool, BtrfsIoError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(BtrfsIoError::Stat {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.is_dir() || meta.ino() != SUBVOLUME_ROOT_INODE {
        return Ok(false);
    }
    let st = nix::sys::statfs::statfs(path).map_err(|e| BtrfsIoError::Stat {
        path: path.to_path_buf(),
        source: io::Error::from(e),
    })?;
    Ok(st.filesystem_type().0 as i64 == BTRFS_SUPER_MAGIC)
}

/// The inode flags of an open file (FS_IOC_GETFLAGS).
pub fn inode_flags(file: &File) -> Result<libc::c_int, BtrfsIoError> {
    let mut flags: libc::c_int = 0;
    // SAFETY: valid fd; the kernel writes one int into `flags`.
    unsafe { fs_getflags(file.as_raw_fd(), &mut flags) }.map_err(BtrfsIoError::GetFlags)?;
    Ok(flags)
}

/// Set FS_NOCOW_FL on an open file; btrfs honours it only while the file is empty.
pub fn set_nocow(file: &File) -> Result<(), BtrfsIoError> {
    let flags = inode_flags(file)? | FS_NOCOW_FL;
    // SAFETY: valid fd; the kernel reads one int from `flags`.
    unsafe { fs_setflags(file.as_raw_fd(), &flags) }.map_err(BtrfsIoError::SetFlags)?;
    Ok(())
}

/// Allocate `len` bytes from offset 0 (fallocate mode 0: extents written as
/// unwritten, size extended).
pub fn allocate(file: &File, len: u64) -> Result<(), BtrfsIoError> {
    let l = libc::off_t::try_from(len).map_err(|_| BtrfsIoError::Fallocate {
        len,
        source: nix::Error::EFBIG,
    })?;
    nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), 0, l)
        .map_err(|source| BtrfsIoError::Fallocate { len, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request numbers as the kernel headers give them on x86_64.
    #[test]
    fn ioctl_numbers_match_the_kernel() {
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        // _IOW(0x94, 14, 4096 bytes)
        assert_eq!(BTRFS_IOC_SUBVOL_CREATE, 0x5000_940E);
        assert_eq!(FS_IOC_GETFLAGS, 0x8008_6601);
        assert_eq!(FS_IOC_SETFLAGS, 0x4008_6602);
        assert_eq!(FS_NOCOW_FL, 0x0080_0000);
    }

    #[test]
    fn subvolume_names_are_one_component() {
        for ok in ["home", "@nix", ".snapshots", &"x".repeat(255)] {
            check_subvolume_name(OsStr::new(ok)).unwrap();
        }
        for (bad, why) in [
            ("", "empty"),
            ("a/b", "contains /"),
            ("..", "is . or .."),
            (".", "is . or .."),
            ("a\0b", "contains a NUL byte"),
        ] {
            match check_subvolume_name(OsStr::new(bad)) {
                Err(BtrfsIoError::Name { why: w, .. }) => assert_eq!(w, why, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(check_subvolume_name(OsStr::new(&"x".repeat(256))).is_err());
    }

    #[test]
    fn a_plain_directory_is_not_a_subvolume() {
        let d = tempfile::tempdir().unwrap();
        assert!(!is_subvolume(d.path()).unwrap());
        assert!(!is_subvolume(&d.path().join("missing")).unwrap());
    }
}
