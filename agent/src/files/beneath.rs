//! Walking beneath the root without ever following a link: every directory
//! is opened from its parent's descriptor, one plain component at a time,
//! with `O_NOFOLLOW|O_DIRECTORY`, starting from a descriptor of the root.
//! A component that is a link, or not a directory, stops the walk with an
//! error naming it. Since every component is a plain name (never `.`/`..`,
//! see [`super::manifest::components`]), the walk cannot leave the root.
//!
//! (`openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)` gives the same guarantee
//! in one call, from Linux 5.6 on; the walk gives it on every kernel and
//! creates missing directories on the way, so it is the one code path.)

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{fchown, Gid, Uid};
use nix::NixPath;

/// Mode of a directory the walk creates because an entry needs it.
pub const IMPLIED_DIR_MODE: u32 = 0o755;

/// Why a walk beneath the root stopped.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("Cannot open the root {0}")]
    Root(PathBuf, #[source] std::io::Error),
    #[error("{0} is a symbolic link on the disk; nothing is written through a link")]
    Symlink(String),
    #[error("{0} is not a directory on the disk")]
    NotDirectory(String),
    #[error("{0} is not a regular file on the disk")]
    NotRegular(String),
    #[error("{path}: {op} failed")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl BeneathError {
    pub fn io(path: &str, op: &'static str, e: Errno) -> Self {
        BeneathError::Io {
            path: path.to_string(),
            op,
            source: e.into(),
        }
    }
}

/// The kind of what a name holds, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Missing,
    Directory,
    Symlink,
    /// A regular file, or anything else that is not a directory or a link.
    Other,
}

/// What `name` in `dir` is (`fstatat` with `AT_SYMLINK_NOFOLLOW`).
pub fn found<P: ?Sized + NixPath>(
    dir: impl AsFd,
    name: &P,
    shown: &str,
) -> Result<Found, BeneathError> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(kind_of(&st)),
        Err(Errno::ENOENT) => Ok(Found::Missing),
        Err(e) => Err(BeneathError::io(shown, "stat", e)),
    }
}

fn kind_of(st: &FileStat) -> Found {
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFDIR => Found::Directory,
        SFlag::S_IFLNK => Found::Symlink,
        _ => Found::Other,
    }
}

/// Opens the directory `name` in `dir` without following a link.
pub fn open_dir<P: ?Sized + NixPath>(
    dir: impl AsFd,
    name: &P,
    shown: &str,
) -> Result<OwnedFd, BeneathError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let dir = dir.as_fd();
    match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::ELOOP | Errno::ENOTDIR) => match found(dir, name, shown)? {
            Found::Symlink => Err(BeneathError::Symlink(shown.to_string())),
            _ => Err(BeneathError::NotDirectory(shown.to_string())),
        },
        Err(e) => Err(BeneathError::io(shown, "open", e)),
    }
}

/// An open root to write beneath.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens `path` (the root itself may be reached through links: it is the
    /// agent's own setting, not the request's).
    pub fn open(path: &Path) -> Result<Root, BeneathError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BeneathError::Root(path.to_path_buf(), e.into()))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The directory at `parts` (components below the root). Missing
    /// directories are created (mode [`IMPLIED_DIR_MODE`], owned by root)
    /// when `create`, else the answer is None.
    pub fn dir(&self, parts: &[&str], create: bool) -> Result<Option<OwnedFd>, BeneathError> {
        let mut cur = self.fd.try_clone().map_err(|e| BeneathError::Io {
            path: ".".into(),
            op: "dup",
            source: e,
        })?;
        for (i, name) in parts.iter().enumerate() {
            let shown = parts[..=i].join("/");
            if create && found(&cur, *name, &shown)? == Found::Missing {
                match mkdirat(&cur, *name, Mode::from_bits_truncate(IMPLIED_DIR_MODE)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(BeneathError::io(&shown, "mkdir", e)),
                }
                let fd = open_dir(&cur, *name, &shown)?;
                fchown(&fd, Some(Uid::from_raw(0)), Some(Gid::from_raw(0)))
                    .map_err(|e| BeneathError::io(&shown, "chown", e))?;
                cur = fd;
                continue;
            }
            if !create && found(&cur, *name, &shown)? == Found::Missing {
                return Ok(None);
            }
            cur = open_dir(&cur, *name, &shown)?;
        }
        Ok(Some(cur))
    }

    /// What the path `parts` holds, without following anything: Missing
    /// also when a parent is missing; an error when a parent is a link or
    /// not a directory.
    pub fn lookup(&self, parts: &[&str]) -> Result<Found, BeneathError> {
        let Some((name, parents)) = parts.split_last() else {
            return Ok(Found::Directory);
        };
        match self.dir(parents, false)? {
            Some(d) => found(&d, *name, &parts.join("/")),
            None => Ok(Found::Missing),
        }
    }

    /// Reads the regular file at `parts` (at most `limit` bytes), opened
    /// without following a link; None when it does not exist.
    pub fn read(&self, parts: &[&str], limit: u64) -> Result<Option<Vec<u8>>, BeneathError> {
        use std::io::Read;
        let Some((name, parents)) = parts.split_last() else {
            return Ok(None);
        };
        let shown = parts.join("/");
        let Some(d) = self.dir(parents, false)? else {
            return Ok(None);
        };
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = match openat(&d, *name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(BeneathError::Symlink(shown)),
            Err(e) => return Err(BeneathError::io(&shown, "open", e)),
        };
        let st = nix::sys::stat::fstat(&fd).map_err(|e| BeneathError::io(&shown, "stat", e))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(BeneathError::NotRegular(shown));
        }
        let mut buf = Vec::new();
        std::fs::File::from(fd)
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(|e| BeneathError::Io {
                path: shown,
                op: "read",
                source: e,
            })?;
        Ok(Some(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_stops_at_a_link_and_creates_only_when_asked() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("etc/out")).unwrap();
        std::fs::write(t.path().join("file"), b"x").unwrap();
        let root = Root::open(t.path()).unwrap();

        assert!(root.dir(&["etc"], false).unwrap().is_some());
        assert!(root.dir(&["missing", "deeper"], false).unwrap().is_none());
        let e = root.dir(&["etc", "out", "x"], true).err().unwrap();
        assert_eq!(
            e.to_string(),
            "etc/out is a symbolic link on the disk; nothing is written through a link"
        );
        let e = root.dir(&["file", "x"], true).err().unwrap();
        assert_eq!(e.to_string(), "file is not a directory on the disk");
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "nothing was created through the link"
        );

        assert!(root.dir(&["new", "deeper"], true).unwrap().is_some());
        let md = std::fs::metadata(t.path().join("new/deeper")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert!(md.is_dir());
        assert_eq!(md.permissions().mode() & 0o7777, 0o755);

        assert_eq!(root.lookup(&["etc", "out"]).unwrap(), Found::Symlink);
        assert_eq!(root.lookup(&["file"]).unwrap(), Found::Other);
        assert_eq!(root.lookup(&["nope", "x"]).unwrap(), Found::Missing);
        assert_eq!(root.read(&["file"], 10).unwrap().unwrap(), b"x");
        assert!(root.read(&["etc", "out"], 10).is_err());
    }
}
