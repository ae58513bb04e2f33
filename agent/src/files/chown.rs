//! `--chown PATH OWNER[:GROUP]` inside the root: the path and everything
//! beneath it change owner, with `lchown` semantics — a link's own owner
//! changes, what it points to does not, and a linked directory is not
//! descended into. Directories are opened with `O_NOFOLLOW` from their
//! parent's descriptor ([`super::beneath`]), so the walk never leaves the
//! root.

use std::os::fd::{AsFd, OwnedFd};

use std::ffi::CString;

use nix::fcntl::AtFlags;
use nix::unistd::{fchown, fchownat, Gid, Uid};
use nix::NixPath;

use super::beneath::{found, open_dir, BeneathError, Found, Root};

fn ids(uid: u32, gid: Option<u32>) -> (Option<Uid>, Option<Gid>) {
    (Some(Uid::from_raw(uid)), gid.map(Gid::from_raw))
}

fn chown_entry<P: ?Sized + NixPath>(
    dir: impl AsFd,
    name: &P,
    shown: &str,
    uid: u32,
    gid: Option<u32>,
) -> Result<(), BeneathError> {
    let (u, g) = ids(uid, gid);
    fchownat(dir, name, u, g, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| BeneathError::io(shown, "chown", e))
}

/// Changes the owner of `parts` (below the root; empty = the root itself)
/// and of everything beneath it. Returns how many names changed.
pub fn chown_tree(
    root: &Root,
    parts: &[&str],
    uid: u32,
    gid: Option<u32>,
) -> Result<u64, BeneathError> {
    let shown = if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    };
    let top: OwnedFd = match parts.split_last() {
        None => root
            .dir(&[], false)?
            .ok_or_else(|| BeneathError::NotDirectory(shown.clone()))?,
        Some((name, parents)) => {
            let parent = root
                .dir(parents, false)?
                .ok_or_else(|| BeneathError::io(&shown, "chown", nix::errno::Errno::ENOENT))?;
            match found(&parent, *name, &shown)? {
                Found::Missing => {
                    return Err(BeneathError::io(&shown, "chown", nix::errno::Errno::ENOENT))
                }
                Found::Symlink | Found::Other => {
                    chown_entry(&parent, *name, &shown, uid, gid)?;
                    return Ok(1);
                }
                Found::Directory => open_dir(&parent, *name, &shown)?,
            }
        }
    };
    let (u, g) = ids(uid, gid);
    fchown(&top, u, g).map_err(|e| BeneathError::io(&shown, "chown", e))?;
    let mut changed = 1u64;
    let mut stack = vec![(top, shown)];
    while let Some((dir, dir_shown)) = stack.pop() {
        let dup = dir.try_clone().map_err(|e| BeneathError::Io {
            path: dir_shown.clone(),
            op: "dup",
            source: e,
        })?;
        let mut listing = nix::dir::Dir::from_fd(dup)
            .map_err(|e| BeneathError::io(&dir_shown, "read the directory", e))?;
        let mut names: Vec<CString> = Vec::new();
        for entry in listing.iter() {
            let entry = entry.map_err(|e| BeneathError::io(&dir_shown, "read the directory", e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push(entry.file_name().to_owned());
        }
        for name in names {
            let shown = format!("{dir_shown}/{}", name.to_string_lossy());
            chown_entry(&dir, name.as_c_str(), &shown, uid, gid)?;
            changed += 1;
            if found(&dir, name.as_c_str(), &shown)? == Found::Directory {
                let sub = open_dir(&dir, name.as_c_str(), &shown)?;
                stack.push((sub, shown));
            }
        }
    }
    Ok(changed)
}
