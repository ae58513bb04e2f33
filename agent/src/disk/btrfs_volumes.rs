//! What disko's btrfs `_create` does after mkfs, through the kernel: mount
//! the top level (subvolid=5) on a private temporary directory, create each
//! missing subvolume (parents first; a missing intermediate directory is made
//! with `mkdir -p` as disko does), make each missing swapfile as
//! `btrfs filesystem mkswapfile` does, and unmount.
//!
//! Invariants: what exists is never touched — an existing subvolume or
//! swapfile is kept as it is, so a re-run only adds what is missing; a
//! swapfile is NOCOW before its first byte is allocated (btrfs ignores the
//! flag on a file with data) and fully allocated before its header is
//! written; the temporary mount is undone on every path out (a Drop guard).

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use landfall_proto::layout::Btrfs;
use nix::mount::MsFlags;

use crate::fs::swap;
use crate::sys::btrfs::{self as sysbtrfs, BtrfsIoError};
use crate::sys::mount::{self as sysmount, MountError};

/// Errors of the subvolume and swapfile step.
#[derive(Debug, thiserror::Error)]
pub enum BtrfsVolumeError {
    #[error("Cannot make the temporary mountpoint {path}")]
    TempDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot mount the btrfs top level")]
    Mount(#[source] MountError),
    #[error("Cannot make the temporary mount private")]
    Private(#[source] nix::Error),
    #[error("Cannot create the directory {path} for a nested subvolume")]
    Mkdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} exists but is not a subvolume")]
    NotASubvolume { path: String },
    #[error("Cannot create subvolume {path}")]
    Subvolume {
        path: String,
        #[source]
        source: BtrfsIoError,
    },
    #[error("Cannot make swapfile {path}")]
    Swapfile {
        path: String,
        #[source]
        source: SwapfileError,
    },
    #[error("Cannot check {path}")]
    Inspect {
        path: String,
        #[source]
        source: BtrfsIoError,
    },
}

/// The step of making a swapfile that failed.
#[derive(Debug, thiserror::Error)]
pub enum SwapfileError {
    #[error("Cannot create the file")]
    Create(#[source] io::Error),
    #[error("Cannot set NOCOW")]
    Nocow(#[source] BtrfsIoError),
    #[error("Cannot allocate it")]
    Allocate(#[source] BtrfsIoError),
    #[error("Cannot write the swap header")]
    Header(#[source] io::Error),
    #[error("Cannot flush it")]
    Sync(#[source] io::Error),
}

/// Something the layout asks for that the filesystem lacks, by its path
/// below the top level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Subvolume(String),
    Swapfile { path: String, size_bytes: u64 },
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Subvolume(p) => write!(f, "subvolume {p}"),
            Missing::Swapfile { path, .. } => write!(f, "swapfile {path}"),
        }
    }
}

/// The top level of a btrfs mounted on a fresh private directory; unmounted
/// and removed when dropped.
struct TopLevel {
    dir: PathBuf,
}

impl TopLevel {
    fn mount(node: &Path) -> Result<TopLevel, BtrfsVolumeError> {
        let dir = std::env::temp_dir().join(format!(
            "landfall-btrfs-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir(&dir).map_err(|source| BtrfsVolumeError::TempDir {
            path: dir.clone(),
            source,
        })?;
        let opts = sysmount::parse_options(&["subvolid=5".to_string()]);
        if let Err(e) = sysmount::mount(&node.to_string_lossy(), &dir, "btrfs", &opts) {
            let _ = fs::remove_dir(&dir);
            return Err(BtrfsVolumeError::Mount(e));
        }
        let top = TopLevel { dir };
        nix::mount::mount(
            None::<&str>,
            &top.dir,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(BtrfsVolumeError::Private)?;
        Ok(top)
    }
}

impl Drop for TopLevel {
    fn drop(&mut self) {
        if sysmount::unmount(&self.dir).is_ok() {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

fn wanted(fs: &Btrfs) -> Vec<Missing> {
    let mut out: Vec<Missing> = fs
        .subvolumes
        .iter()
        .map(|s| Missing::Subvolume(s.path.clone()))
        .collect();
    out.extend(fs.swapfiles().map(|(s, f)| Missing::Swapfile {
        path: match s {
            Some(s) => format!("{}/{}", s.path, f.path),
            None => f.path.clone(),
        },
        size_bytes: f.size_bytes,
    }));
    out
}

fn missing_in(top: &Path, fs: &Btrfs) -> Result<Vec<Missing>, BtrfsVolumeError> {
    let mut out = Vec::new();
    for w in wanted(fs) {
        let present = match &w {
            Missing::Subvolume(p) => sysbtrfs::is_subvolume(&top.join(p)).map_err(|source| {
                BtrfsVolumeError::Inspect {
                    path: p.clone(),
                    source,
                }
            })?,
            // disko: `if ! test -e` — anything at the path counts.
            Missing::Swapfile { path, .. } => fs::symlink_metadata(top.join(path)).is_ok(),
        };
        if !present {
            out.push(w);
        }
    }
    Ok(out)
}

/// What the layout asks for that the btrfs on `node` lacks (mounts its top
/// level privately for the look).
pub fn missing(node: &Path, fs: &Btrfs) -> Result<Vec<Missing>, BtrfsVolumeError> {
    let top = TopLevel::mount(node)?;
    missing_in(&top.dir, fs)
}

/// Create what is missing; returns what was created, in order.
pub fn ensure(node: &Path, fs: &Btrfs) -> Result<Vec<Missing>, BtrfsVolumeError> {
    let top = TopLevel::mount(node)?;
    let todo = missing_in(&top.dir, fs)?;
    for m in &todo {
        match m {
            Missing::Subvolume(p) => create_subvolume(&top.dir, p)?,
            Missing::Swapfile { path, size_bytes } => {
                make_swapfile(&top.dir.join(path), *size_bytes).map_err(|source| {
                    BtrfsVolumeError::Swapfile {
                        path: path.clone(),
                        source,
                    }
                })?
            }
        }
    }
    Ok(todo)
}

fn create_subvolume(top: &Path, rel: &str) -> Result<(), BtrfsVolumeError> {
    let abs = top.join(rel);
    if fs::symlink_metadata(&abs).is_ok() {
        return Err(BtrfsVolumeError::NotASubvolume {
            path: rel.to_string(),
        });
    }
    let (parent, name) = match rel.rsplit_once('/') {
        Some((p, n)) => (top.join(p), n),
        None => (top.to_path_buf(), rel),
    };
    fs::create_dir_all(&parent).map_err(|source| BtrfsVolumeError::Mkdir {
        path: parent.clone(),
        source,
    })?;
    sysbtrfs::create_subvolume(&parent, OsStr::new(name)).map_err(|source| {
        BtrfsVolumeError::Subvolume {
            path: rel.to_string(),
            source,
        }
    })
}

/// A swapfile as `btrfs filesystem mkswapfile` makes it: a new empty file
/// (mode 0600), NOCOW, `size_bytes` allocated, a v1 swap header with a fresh
/// UUID and no label.
pub fn make_swapfile(path: &Path, size_bytes: u64) -> Result<(), SwapfileError> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(SwapfileError::Create)?;
    sysbtrfs::set_nocow(&f).map_err(SwapfileError::Nocow)?;
    let page = swap::page_size();
    let pages = (size_bytes / page).min(u64::from(u32::MAX));
    sysbtrfs::allocate(&f, pages * page).map_err(SwapfileError::Allocate)?;
    let uuid = *uuid::Uuid::new_v4().as_bytes();
    f.write_all_at(&swap::header(page, pages, &uuid, b""), 0)
        .map_err(SwapfileError::Header)?;
    f.sync_all().map_err(SwapfileError::Sync)
}
