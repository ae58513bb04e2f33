//! The extra-files request as a plan checked against the root before
//! anything is written ([`FilesPlan::prepare`]), then written entry by entry
//! ([`FilesPlan::write_entry`]), then the `--chown` rules and the host keys.
//! See the module doc of [`super`] for the invariants and what a failure
//! leaves on the disk.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode};
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::beneath::{found, open_dir, BeneathError, Found, Root};
use super::host_keys::HostKey;
use super::manifest::{self, Entry, EntryKind, ManifestError};
use super::owners::{self, OwnerError};

/// Largest `/etc/passwd` or `/etc/group` read to resolve names.
const MAX_ID_FILE_BYTES: u64 = 16 << 20;

/// A `--chown` rule as the request gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChownRule {
    /// Relative to the root; "" or "." is the root itself.
    pub path: String,
    pub owner: String,
    /// "" leaves the group as it is.
    pub group: String,
}

/// A rule with its ids resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedChown {
    pub path: String,
    pub uid: u32,
    pub gid: Option<u32>,
}

/// Why the request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("The manifest was refused")]
    Manifest(#[from] ManifestError),
    #[error("Cannot write beneath the root")]
    Beneath(#[from] BeneathError),
    #[error("{path} is a directory on the disk; a file or link does not replace a directory")]
    ReplacesDirectory { path: String },
    #[error("{path} exists on the disk as {what}; a directory does not replace it")]
    DirectoryOverNonDirectory { path: String, what: &'static str },
    #[error("--chown {path}: {source}")]
    Owner {
        path: String,
        #[source]
        source: OwnerError,
    },
    #[error("--chown {0}: no such path in the new root or among the extra files")]
    ChownMissing(String),
    #[error("{path}: the stream brought {got} bytes, the manifest said {expected}")]
    ShortData {
        path: String,
        expected: u64,
        got: u64,
    },
    #[error("{path}: reading its data failed")]
    Data {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// A request checked against the root; nothing written yet.
pub struct FilesPlan {
    root: Root,
    entries: Vec<Entry>,
    chown: Vec<ResolvedChown>,
    host_keys: Vec<HostKey>,
    skipped_host_keys: Vec<String>,
}

fn parts_of(path: &str) -> Vec<&str> {
    if path.is_empty() || path == "." {
        Vec::new()
    } else {
        path.split('/').collect()
    }
}

fn shown(path: &str) -> String {
    path.trim_start_matches("./").to_string()
}

impl FilesPlan {
    /// Checks everything the request asks against the root at `root`:
    /// the manifest, what each entry would replace, the `--chown` paths and
    /// ids, and which `host_keys` the entries do not already bring. Touches
    /// nothing.
    pub fn prepare(
        root: &Path,
        entries: Vec<Entry>,
        chown: &[ChownRule],
        host_keys: Vec<HostKey>,
    ) -> Result<FilesPlan, FilesError> {
        manifest::check(&entries)?;
        let root = Root::open(root)?;
        for e in &entries {
            let parts = parts_of(&e.path);
            let on_disk = root.lookup(&parts)?;
            match (&e.kind, on_disk) {
                (EntryKind::Directory, Found::Symlink) => {
                    return Err(FilesError::DirectoryOverNonDirectory {
                        path: e.path.clone(),
                        what: "a symbolic link",
                    })
                }
                (EntryKind::Directory, Found::Other) => {
                    return Err(FilesError::DirectoryOverNonDirectory {
                        path: e.path.clone(),
                        what: "a file",
                    })
                }
                (EntryKind::Regular { .. } | EntryKind::Symlink { .. }, Found::Directory) => {
                    return Err(FilesError::ReplacesDirectory {
                        path: e.path.clone(),
                    })
                }
                _ => {}
            }
        }
        let in_manifest = |path: &str| {
            entries.iter().any(|e| {
                e.path == path
                    || (e.path.len() > path.len()
                        && e.path.starts_with(path)
                        && e.path.as_bytes()[path.len()] == b'/')
            })
        };
        let mut resolved = Vec::with_capacity(chown.len());
        if !chown.is_empty() {
            let passwd = root.read(&["etc", "passwd"], MAX_ID_FILE_BYTES)?;
            let group = root.read(&["etc", "group"], MAX_ID_FILE_BYTES)?;
            let text =
                |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
            let (passwd, group) = (text(&passwd), text(&group));
            for r in chown {
                let path = shown(&r.path);
                let parts = parts_of(&path);
                if !parts.is_empty() {
                    manifest::components(&path).map_err(|why| ManifestError::BadName {
                        path: path.clone(),
                        why,
                    })?;
                    if !in_manifest(&path) && root.lookup(&parts)? == Found::Missing {
                        return Err(FilesError::ChownMissing(path));
                    }
                }
                let owner_err = |source| FilesError::Owner {
                    path: path.clone(),
                    source,
                };
                let uid = owners::uid(&r.owner, passwd.as_deref()).map_err(owner_err)?;
                let gid = owners::gid(&r.group, group.as_deref()).map_err(owner_err)?;
                resolved.push(ResolvedChown { path, uid, gid });
            }
        }
        let (mut keep, mut skipped) = (Vec::new(), Vec::new());
        for k in host_keys {
            let path = format!("etc/ssh/{}", k.name);
            if entries.iter().any(|e| e.path == path) {
                skipped.push(path);
                continue;
            }
            if root.lookup(&["etc", "ssh", &k.name])? == Found::Directory {
                return Err(FilesError::ReplacesDirectory { path });
            }
            keep.push(k);
        }
        Ok(FilesPlan {
            root,
            entries,
            chown: resolved,
            host_keys: keep,
            skipped_host_keys: skipped,
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn chown_rules(&self) -> &[ResolvedChown] {
        &self.chown
    }

    /// The host keys to install (those the entries do not bring).
    pub fn host_keys(&self) -> &[HostKey] {
        &self.host_keys
    }

    /// The host keys left alone because the entries bring them.
    pub fn skipped_host_keys(&self) -> &[String] {
        &self.skipped_host_keys
    }

    /// The regular files' total size.
    pub fn data_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::Regular { size } => size,
                _ => 0,
            })
            .sum()
    }

    /// Writes entry `index`; a regular file's bytes are read from `data`
    /// (exactly its size). Parents missing on the disk are created.
    pub fn write_entry(&self, index: usize, data: &mut dyn Read) -> Result<(), FilesError> {
        let e = &self.entries[index];
        let parts = parts_of(&e.path);
        let Some((name, parents)) = parts.split_last() else {
            return Ok(());
        };
        let dir = self
            .root
            .dir(parents, true)?
            .ok_or_else(|| BeneathError::NotDirectory(parents.join("/")))?;
        let tmp = format!(".landfall-new-{index}");
        match &e.kind {
            EntryKind::Directory => write_dir(&dir, name, &e.path, e.mode)?,
            EntryKind::Regular { size } => {
                let r = write_file(&dir, &tmp, &e.path, e.mode, *size, data)
                    .and_then(|()| rename(&dir, &tmp, name, &e.path));
                if r.is_err() {
                    let _ = unlinkat(&dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                }
                r?
            }
            EntryKind::Symlink { target } => {
                let r = write_link(&dir, &tmp, &e.path, target)
                    .and_then(|()| rename(&dir, &tmp, name, &e.path));
                if r.is_err() {
                    let _ = unlinkat(&dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                }
                r?
            }
        }
        Ok(())
    }

    /// Applies the `--chown` rules in order; returns (path, names changed).
    pub fn apply_chown(&self) -> Result<Vec<(String, u64)>, FilesError> {
        let mut done = Vec::new();
        for r in &self.chown {
            let n = super::chown::chown_tree(&self.root, &parts_of(&r.path), r.uid, r.gid)?;
            done.push((r.path.clone(), n));
        }
        Ok(done)
    }

    /// Installs the host keys into `etc/ssh`; returns the paths written.
    pub fn install_host_keys(&self) -> Result<Vec<String>, FilesError> {
        let mut written = Vec::new();
        if self.host_keys.is_empty() {
            return Ok(written);
        }
        let dir = self
            .root
            .dir(&["etc", "ssh"], true)?
            .ok_or_else(|| BeneathError::NotDirectory("etc/ssh".into()))?;
        for (i, k) in self.host_keys.iter().enumerate() {
            let path = format!("etc/ssh/{}", k.name);
            let tmp = format!(".landfall-key-{i}");
            let r = write_file(
                &dir,
                &tmp,
                &path,
                k.mode(),
                k.data.len() as u64,
                &mut &k.data[..],
            )
            .and_then(|()| rename(&dir, &tmp, &k.name, &path));
            if r.is_err() {
                let _ = unlinkat(&dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            }
            r?;
            written.push(path);
        }
        Ok(written)
    }

    /// Flushes the root's filesystem.
    pub fn sync(&self) -> Result<(), FilesError> {
        nix::unistd::syncfs(self.root.fd()).map_err(|e| BeneathError::io(".", "syncfs", e).into())
    }
}

fn root_owned(fd: impl AsFd, path: &str) -> Result<(), BeneathError> {
    fchown(fd, Some(Uid::from_raw(0)), Some(Gid::from_raw(0)))
        .map_err(|e| BeneathError::io(path, "chown", e))
}

fn set_mode(fd: impl AsFd, path: &str, mode: u32) -> Result<(), BeneathError> {
    fchmod(fd, Mode::from_bits_truncate(mode)).map_err(|e| BeneathError::io(path, "chmod", e))
}

fn write_dir(parent: &OwnedFd, name: &str, path: &str, mode: u32) -> Result<(), FilesError> {
    if found(parent, name, path)? == Found::Missing {
        match mkdirat(parent, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(BeneathError::io(path, "mkdir", e).into()),
        }
    }
    let fd = open_dir(parent, name, path)?;
    root_owned(&fd, path)?;
    set_mode(&fd, path, mode)?;
    Ok(())
}

/// Creates `tmp` in `dir` (never through a link: `O_EXCL|O_NOFOLLOW`; a
/// leftover of ours from an earlier run is removed first).
fn create_tmp(dir: &OwnedFd, tmp: &str, path: &str) -> Result<OwnedFd, BeneathError> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mode = Mode::from_bits_truncate(0o600);
    match openat(dir, tmp, flags, mode) {
        Ok(fd) => Ok(fd),
        Err(Errno::EEXIST) => {
            unlinkat(dir, tmp, UnlinkatFlags::NoRemoveDir)
                .map_err(|e| BeneathError::io(path, "remove a leftover temporary file", e))?;
            openat(dir, tmp, flags, mode).map_err(|e| BeneathError::io(path, "create", e))
        }
        Err(e) => Err(BeneathError::io(path, "create", e)),
    }
}

fn write_file(
    dir: &OwnedFd,
    tmp: &str,
    path: &str,
    mode: u32,
    size: u64,
    data: &mut dyn Read,
) -> Result<(), FilesError> {
    let fd = create_tmp(dir, tmp, path)?;
    let mut file = std::fs::File::from(fd);
    let got = io::copy(&mut data.take(size), &mut file).map_err(|source| FilesError::Data {
        path: path.to_string(),
        source,
    })?;
    if got != size {
        return Err(FilesError::ShortData {
            path: path.to_string(),
            expected: size,
            got,
        });
    }
    file.flush().map_err(|source| FilesError::Data {
        path: path.to_string(),
        source,
    })?;
    // Owner first: a chown clears set-id bits, the mode then sets them.
    root_owned(&file, path)?;
    set_mode(&file, path, mode)?;
    Ok(())
}

fn write_link(dir: &OwnedFd, tmp: &str, path: &str, target: &str) -> Result<(), FilesError> {
    match symlinkat(target, dir, tmp) {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            unlinkat(dir, tmp, UnlinkatFlags::NoRemoveDir)
                .map_err(|e| BeneathError::io(path, "remove a leftover temporary file", e))?;
            symlinkat(target, dir, tmp).map_err(|e| BeneathError::io(path, "symlink", e))?;
        }
        Err(e) => return Err(BeneathError::io(path, "symlink", e).into()),
    }
    fchownat(
        dir,
        tmp,
        Some(Uid::from_raw(0)),
        Some(Gid::from_raw(0)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| BeneathError::io(path, "chown", e))?;
    Ok(())
}

/// Renames `tmp` over `name` (a directory there is refused by the kernel,
/// and was refused before writing by [`FilesPlan::prepare`]).
fn rename(dir: &OwnedFd, tmp: &str, name: &str, path: &str) -> Result<(), FilesError> {
    renameat(dir, tmp, dir, name).map_err(|e| BeneathError::io(path, "rename", e).into())
}
