//! Finding the device for each layout disk: its `device`, or an override
//! `NAME=PATH`. A regular image file is attached to a free loop device first,
//! except once [`require_block_devices`] was called (the agent as PID 1):
//! then only block devices are accepted, so a layout cannot partition a file
//! of the RAM image (`/run/landfall-pid1.log`, a module).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use landfall_proto::layout::{Geometry, Layout};

use crate::sys::blk::{self, BlkError};
use crate::sys::loopdev::{self, LoopError};

pub use super::open_disk::OpenDisk;

/// Errors of resolving and opening disks.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("--disk {0}: expected NAME=PATH")]
    OverrideSyntax(String),
    #[error("--disk {0}: the layout has no disk of that name")]
    UnknownDisk(String),
    #[error(
        "The layout's disk `{key}` is {path}, which this machine does not have. Its disks: {available}. \
         Say which one to use with --disk {key}=/dev/…"
    )]
    Missing {
        key: String,
        path: PathBuf,
        available: String,
    },
    #[error("Cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0} is neither a block device nor a regular file")]
    NotADisk(PathBuf),
    #[error("{0} is not a block device: the agent running as PID 1 writes only to disks")]
    NotABlockDevice(PathBuf),
    #[error("Cannot attach {path} to a loop device")]
    Loop {
        path: PathBuf,
        #[source]
        source: LoopError,
    },
    #[error("Cannot read the geometry of {path}")]
    Geometry {
        path: PathBuf,
        #[source]
        source: BlkError,
    },
}

/// Parse `NAME=PATH` overrides, checking each name exists in the layout.
pub fn parse_overrides(
    layout: &Layout,
    args: &[String],
) -> Result<BTreeMap<String, PathBuf>, ResolveError> {
    let mut out = BTreeMap::new();
    for a in args {
        let (name, path) = a
            .split_once('=')
            .ok_or_else(|| ResolveError::OverrideSyntax(a.clone()))?;
        if name.is_empty() || path.is_empty() {
            return Err(ResolveError::OverrideSyntax(a.clone()));
        }
        if !layout.disks.iter().any(|d| d.key == name) {
            return Err(ResolveError::UnknownDisk(name.to_string()));
        }
        out.insert(name.to_string(), PathBuf::from(path));
    }
    Ok(out)
}

fn geometry(file: &File, path: &Path) -> Result<Geometry, ResolveError> {
    let g = |source| ResolveError::Geometry {
        path: path.to_path_buf(),
        source,
    };
    Ok(Geometry {
        size_bytes: blk::device_size(file).map_err(g)?,
        logical_sector_size: blk::logical_sector_size(file).map_err(g)?,
    })
}

/// The machine's disks for an error message: `/dev/nvme0n1 (4.0 GiB, QEMU NVMe Ctrl, serial S)`.
fn available_disks() -> String {
    let disks = super::present::list_disks();
    if disks.is_empty() {
        return "none found".into();
    }
    disks
        .iter()
        .map(|d| {
            let mut what = vec![landfall_proto::layout::human_bytes(d.size_bytes)];
            if !d.model.is_empty() {
                what.push(d.model.clone());
            }
            if !d.serial.is_empty() {
                what.push(format!("serial {}", d.serial));
            }
            format!("{} ({})", d.path, what.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

static BLOCK_DEVICES_ONLY: AtomicBool = AtomicBool::new(false);

/// From now on, layout disks must be block devices (no image files); for the
/// agent as PID 1. There is no way back.
pub fn require_block_devices() {
    BLOCK_DEVICES_ONLY.store(true, Ordering::Relaxed);
}

/// Whether a file of this kind may be a layout disk: a block device always,
/// a regular file (an image, attached to a loop device) unless
/// `block_devices_only`.
fn check_kind(
    path: &Path,
    is_block_device: bool,
    is_file: bool,
    block_devices_only: bool,
) -> Result<(), ResolveError> {
    match (is_block_device, is_file) {
        (true, _) => Ok(()),
        (false, true) if block_devices_only => {
            Err(ResolveError::NotABlockDevice(path.to_path_buf()))
        }
        (false, true) => Ok(()),
        (false, false) => Err(ResolveError::NotADisk(path.to_path_buf())),
    }
}

/// Open one disk read-write (or read-only for planning). An image file is
/// attached to a loop device with `image_block_size`-byte sectors.
pub fn open_disk(
    key: &str,
    path: &Path,
    writable: bool,
    image_block_size: u32,
) -> Result<OpenDisk, ResolveError> {
    let meta = std::fs::metadata(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound && path.starts_with("/dev") {
            ResolveError::Missing {
                key: key.to_string(),
                path: path.to_path_buf(),
                available: available_disks(),
            }
        } else {
            ResolveError::Open {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    use std::os::unix::fs::FileTypeExt;
    let ft = meta.file_type();
    check_kind(
        path,
        ft.is_block_device(),
        ft.is_file(),
        BLOCK_DEVICES_ONLY.load(Ordering::Relaxed),
    )?;
    if ft.is_block_device() {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|source| ResolveError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let geometry = geometry(&file, path)?;
        return Ok(OpenDisk {
            key: key.to_string(),
            path: path.to_path_buf(),
            image: None,
            file,
            geometry,
            loop_device: None,
        });
    }
    let lo = loopdev::attach(path, image_block_size).map_err(|source| ResolveError::Loop {
        path: path.to_path_buf(),
        source,
    })?;
    let file = lo.file.try_clone().map_err(|source| ResolveError::Open {
        path: lo.path.clone(),
        source,
    })?;
    let geometry = geometry(&file, &lo.path)?;
    Ok(OpenDisk {
        key: key.to_string(),
        path: lo.path.clone(),
        image: Some(path.to_path_buf()),
        file,
        geometry,
        loop_device: Some(lo),
    })
}

/// Open every disk of the layout (device from the layout unless overridden).
pub fn open_disks(
    layout: &Layout,
    overrides: &BTreeMap<String, PathBuf>,
    writable: bool,
    image_block_size: u32,
) -> Result<BTreeMap<String, OpenDisk>, ResolveError> {
    let mut out = BTreeMap::new();
    for d in &layout.disks {
        let path = overrides
            .get(&d.key)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(&d.device));
        out.insert(
            d.key.clone(),
            open_disk(&d.key, &path, writable, image_block_size)?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_pid1_only_block_devices_are_layout_disks() {
        let p = Path::new("/run/landfall-pid1.log");
        assert!(check_kind(p, true, false, true).is_ok());
        let e = check_kind(p, false, true, true).unwrap_err();
        assert!(matches!(e, ResolveError::NotABlockDevice(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "/run/landfall-pid1.log is not a block device: the agent running as PID 1 writes only to disks"
        );
        // Outside PID 1 (tests, `landfall-agent disk` on images) a file is fine.
        assert!(check_kind(p, false, true, false).is_ok());
        assert!(matches!(
            check_kind(Path::new("/dev/null"), false, false, false),
            Err(ResolveError::NotADisk(_))
        ));
    }
}
