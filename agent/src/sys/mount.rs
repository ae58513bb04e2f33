//! mount(2), umount2(2), swapon(2) and swapoff(2), and the translation of
//! fstab-style option lists (`defaults`, `noatime`, `umask=0077`) into mount
//! flags plus the filesystem's data string, as mount(8) does.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// Errors of mounting, each naming the step.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("Cannot mount {source_dev} ({fs_type}) on {target}")]
    Mount {
        source_dev: String,
        fs_type: String,
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("Cannot unmount {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("swapon {path} failed")]
    Swapon {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("swapoff {path} failed")]
    Swapoff {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Path {0} contains a NUL byte")]
    Nul(PathBuf),
}

/// Mount flags and the data string for the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub data: String,
}

/// Translate an option list as mount(8) does. Options that only mean something
/// to userspace (`auto`, `nofail`, `x-…`) are dropped; unknown ones go to the
/// filesystem in the data string (it refuses what it does not know).
pub fn parse_options(opts: &[String]) -> MountOptions {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in opts {
        let o = o.as_str();
        match o {
            "defaults" | "rw" | "auto" | "noauto" | "user" | "nouser" | "users" | "nofail"
            | "_netdev" | "async" | "dev" | "suid" | "exec" | "atime" | "diratime"
            | "nolazytime" => {}
            "ro" => flags |= MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "dirsync" => flags |= MsFlags::MS_DIRSYNC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "lazytime" => flags |= MsFlags::MS_LAZYTIME,
            "mand" => flags |= MsFlags::MS_MANDLOCK,
            o if o.starts_with("x-") || o.starts_with("comment=") => {}
            o => data.push(o),
        }
    }
    MountOptions {
        flags,
        data: data.join(","),
    }
}

/// mount(2) `source` of type `fs_type` on `target` with the options.
pub fn mount(
    source: &str,
    target: &Path,
    fs_type: &str,
    opts: &MountOptions,
) -> Result<(), MountError> {
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    nix::mount::mount(Some(source), target, Some(fs_type), opts.flags, data).map_err(|e| {
        MountError::Mount {
            source_dev: source.to_string(),
            fs_type: fs_type.to_string(),
            target: target.to_path_buf(),
            source: e,
        }
    })
}

/// umount2(2) without flags.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    nix::mount::umount2(target, MntFlags::empty()).map_err(|source| MountError::Unmount {
        target: target.to_path_buf(),
        source,
    })
}

fn cpath(path: &Path) -> Result<CString, MountError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| MountError::Nul(path.to_path_buf()))
}

/// <linux/swap.h> flags.
const SWAP_FLAG_PREFER: libc::c_int = 0x8000;
const SWAP_FLAG_DISCARD: libc::c_int = 0x10000;
const SWAP_FLAG_DISCARD_ONCE: libc::c_int = 0x20000;
const SWAP_FLAG_DISCARD_PAGES: libc::c_int = 0x40000;

/// swapon(2) flags for a priority and a discard policy (`once`, `pages`, `both`).
pub fn swap_flags(priority: Option<i64>, discard: Option<&str>) -> libc::c_int {
    let mut flags = 0;
    if let Some(p) = priority {
        flags |= SWAP_FLAG_PREFER | (p.clamp(0, 0x7fff) as libc::c_int);
    }
    match discard {
        Some("once") => flags |= SWAP_FLAG_DISCARD | SWAP_FLAG_DISCARD_ONCE,
        Some("pages") => flags |= SWAP_FLAG_DISCARD | SWAP_FLAG_DISCARD_PAGES,
        Some("both") => flags |= SWAP_FLAG_DISCARD,
        _ => {}
    }
    flags
}

/// swapon(2).
pub fn swapon(path: &Path, flags: libc::c_int) -> Result<(), MountError> {
    let c = cpath(path)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::swapon(c.as_ptr(), flags) };
    if rc != 0 {
        return Err(MountError::Swapon {
            path: path.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// swapoff(2).
pub fn swapoff(path: &Path) -> Result<(), MountError> {
    let c = cpath(path)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::swapoff(c.as_ptr()) };
    if rc != 0 {
        return Err(MountError::Swapoff {
            path: path.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(v: &[&str]) -> MountOptions {
        parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_split_into_flags_and_data() {
        assert_eq!(
            o(&["defaults"]),
            MountOptions {
                flags: MsFlags::empty(),
                data: String::new()
            }
        );
        let m = o(&[
            "noatime",
            "nodev",
            "umask=0077",
            "x-systemd.automount",
            "size=64M",
        ]);
        assert_eq!(m.flags, MsFlags::MS_NOATIME | MsFlags::MS_NODEV);
        assert_eq!(m.data, "umask=0077,size=64M");
    }

    #[test]
    fn swap_flag_values_match_the_kernel() {
        assert_eq!(swap_flags(Some(5), None), 0x8005);
        assert_eq!(swap_flags(None, Some("once")), 0x30000);
        assert_eq!(swap_flags(None, Some("pages")), 0x50000);
        assert_eq!(swap_flags(None, Some("both")), 0x10000);
    }
}
