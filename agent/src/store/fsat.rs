//! Filesystem operations relative to a directory file descriptor that never
//! follow a symlink: every create is `O_CREAT|O_EXCL|O_NOFOLLOW` or `mkdirat`
//! or `symlinkat` (none of which follow a final symlink), every open of a
//! directory is `O_DIRECTORY|O_NOFOLLOW`, and names are single components
//! (the NAR decoder has already refused `/`, `.`, `..`, NUL and empty names).
//! Removal walks the tree the same way, so a symlink planted in the store
//! directory is unlinked, never traversed.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, futimens, mkdirat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, unlinkat, Gid, Uid, UnlinkatFlags};

/// Nix's canonical mtime (and what we use for atime too).
const STORE_TIME: TimeSpec = TimeSpec::new(1, 0);

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn io(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// Opens the directory `name` under `dir`, refusing a symlink.
pub fn open_dir_at(dir: impl AsFd, name: &[u8]) -> io::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        os(name),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)
}

/// Opens the directories `names`, each inside the one before, starting at
/// `dir`, never following a symlink (a planted `nix -> /` fails with ELOOP
/// or ENOTDIR instead of leading out of the root); with `create`, a missing
/// one is made (mode 0755; `mkdirat` does not follow either).
pub fn dir_chain_at(dir: impl AsFd, names: &[&[u8]], create: bool) -> io::Result<OwnedFd> {
    let mut cur: Option<OwnedFd> = None;
    for name in names {
        let parent = match &cur {
            Some(fd) => fd.as_fd(),
            None => dir.as_fd(),
        };
        if create {
            match mkdirat(parent, os(name), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(io(e)),
            }
        }
        let next = open_dir_at(parent, name)?;
        cur = Some(next);
    }
    match cur {
        Some(fd) => Ok(fd),
        None => dir.as_fd().try_clone_to_owned(),
    }
}

/// A path naming the directory `fd` is open on (`/proc/self/fd/N`): what is
/// below it is found from that directory, wherever it is and whatever links
/// lead to it. Valid while `fd` is open.
pub fn fd_path(fd: &OwnedFd) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Creates the directory `name` (mode 0700 while it is being filled) and opens it.
pub fn create_dir_at(dir: impl AsFd, name: &[u8]) -> io::Result<OwnedFd> {
    mkdirat(dir.as_fd(), os(name), Mode::S_IRWXU).map_err(io)?;
    open_dir_at(dir, name)
}

/// Creates the regular file `name` with `mode` (less the umask; the
/// returned descriptor is writable whatever the mode); fails if anything,
/// including a symlink, already has that name.
pub fn create_file_at(dir: impl AsFd, name: &[u8], mode: u32) -> io::Result<File> {
    let fd = nix::fcntl::openat(
        dir,
        os(name),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(io)?;
    Ok(File::from(fd))
}

/// Creates the symlink `name` → `target` with canonical owner and times;
/// `chown`: whether its owner must still be set to root.
pub fn create_symlink_at(
    dir: impl AsFd,
    name: &[u8],
    target: &[u8],
    chown: bool,
) -> io::Result<()> {
    let dir = dir.as_fd();
    nix::unistd::symlinkat(os(target), dir, os(name)).map_err(io)?;
    if chown && Uid::effective().is_root() {
        fchownat(
            dir,
            os(name),
            Some(Uid::from_raw(0)),
            Some(Gid::from_raw(0)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io)?;
    }
    utimensat(
        dir,
        os(name),
        &STORE_TIME,
        &STORE_TIME,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io)
}

/// Gives an open file or directory its canonical metadata: `mode`, owner
/// root (when we are root; an unprivileged caller keeps its own ids) and
/// atime = mtime = 1.
/// Skips what the caller knows is right already: the mode when `mode` is
/// `None`, the owner when `chown` is false.
pub fn canonicalise_with(fd: impl AsFd, mode: Option<u32>, chown: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    if let Some(mode) = mode {
        fchmod(fd, Mode::from_bits_truncate(mode)).map_err(io)?;
    }
    if chown && Uid::effective().is_root() {
        fchown(fd, Some(Uid::from_raw(0)), Some(Gid::from_raw(0))).map_err(io)?;
    }
    futimens(fd, &STORE_TIME, &STORE_TIME).map_err(io)
}

/// Whether what this process creates in a directory it made itself (mode
/// 0700: not setgid) is owned by root:root already.
pub fn creates_root_owned() -> bool {
    Uid::effective().is_root() && Gid::effective().as_raw() == 0
}

/// The process umask, read from `/proc/self/status` (reading it with
/// umask(2) would change it for a moment under other threads); `None` when
/// that cannot be read.
pub fn current_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// What kind of node `name` under `dir` is, without following it; `None` when absent.
pub fn kind_at(dir: impl AsFd, name: &[u8]) -> io::Result<Option<SFlag>> {
    match fstatat(dir, os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(io(e)),
    }
}

/// Removes `name` under `dir` and everything beneath it, never following a
/// symlink; absent is fine. Nesting beyond `max_depth` is an error.
pub fn remove_tree_at(dir: impl AsFd, name: &[u8], max_depth: usize) -> io::Result<()> {
    let dir = dir.as_fd();
    match kind_at(dir, name)? {
        None => Ok(()),
        Some(SFlag::S_IFDIR) => {
            if max_depth == 0 {
                return Err(io::Error::other("directory nested too deeply to remove"));
            }
            let sub = open_dir_at(dir, name)?;
            // Store directories are 0555; make this one writable so its entries can go.
            fchmod(sub.as_fd(), Mode::S_IRWXU).map_err(io)?;
            let mut names = Vec::new();
            let mut listing = Dir::from_fd(sub.try_clone()?).map_err(io)?;
            for entry in listing.iter() {
                let entry = entry.map_err(io)?;
                let n = entry.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(n.to_vec());
                }
            }
            drop(listing);
            for n in names {
                remove_tree_at(sub.as_fd(), &n, max_depth - 1)?;
            }
            unlinkat(dir, os(name), UnlinkatFlags::RemoveDir).map_err(io)
        }
        Some(_) => unlinkat(dir, os(name), UnlinkatFlags::NoRemoveDir).map_err(io),
    }
}
