//! Making the kernel's view of a disk's partitions match the table just
//! written, and making sure their device nodes exist.
//!
//! BLKRRPART first; then, partition by partition, BLKPG deletes what does not
//! match and adds what is missing (the only way on a kernel without a GPT
//! parser, or when a partition is busy). The node `/dev/<part>` normally comes
//! from devtmpfs; if it does not appear it is made with mknod from
//! `/sys/block/<disk>/<part>/dev`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::sys::blkpg::{self, BlkpgError};

/// Errors of the kernel re-read step, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{0} is not a block device")]
    NotBlock(PathBuf),
    #[error("Cannot stat {path}")]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot read {path}")]
    Sysfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot tell the kernel about the partitions")]
    Blkpg(#[source] BlkpgError),
    #[error("Cannot create the device node {path}")]
    Mknod {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("Partition {number} of {disk} did not appear in /sys within 5 s")]
    Missing { disk: String, number: u32 },
}

/// A partition as the kernel should see it (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WantedPartition {
    pub number: u32,
    pub start: u64,
    pub length: u64,
}

/// A partition as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KernelPartition {
    name: String,
    number: u32,
    start: u64,
    length: u64,
    dev: (u64, u64),
}

/// The kernel name (`loop3`, `nvme0n1`) of the block device at `path`.
pub fn kernel_name(path: &Path) -> Result<String, KernelError> {
    let meta = fs::metadata(path).map_err(|source| KernelError::Stat {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_block_device() {
        return Err(KernelError::NotBlock(path.to_path_buf()));
    }
    let rdev = meta.rdev();
    let link = PathBuf::from(format!(
        "/sys/dev/block/{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    ));
    let target = fs::read_link(&link).map_err(|source| KernelError::Sysfs {
        path: link.clone(),
        source,
    })?;
    target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or(KernelError::NotBlock(path.to_path_buf()))
}

fn read_sys(path: &Path) -> Result<String, KernelError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| KernelError::Sysfs {
            path: path.to_path_buf(),
            source,
        })
}

fn num(path: &Path) -> Result<u64, KernelError> {
    let s = read_sys(path)?;
    s.parse().map_err(|_| KernelError::Sysfs {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("not a number: {s}")),
    })
}

fn kernel_partitions(disk: &str) -> Result<Vec<KernelPartition>, KernelError> {
    let dir = PathBuf::from(format!("/sys/block/{disk}"));
    let entries = fs::read_dir(&dir).map_err(|source| KernelError::Sysfs {
        path: dir.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if !p.join("partition").exists() {
            continue;
        }
        let dev = read_sys(&p.join("dev"))?;
        let (maj, min) = dev.split_once(':').unwrap_or(("0", "0"));
        out.push(KernelPartition {
            name: e.file_name().to_string_lossy().into_owned(),
            number: num(&p.join("partition"))? as u32,
            start: num(&p.join("start"))? * 512,
            length: num(&p.join("size"))? * 512,
            dev: (maj.parse().unwrap_or(0), min.parse().unwrap_or(0)),
        });
    }
    out.sort_by_key(|p| p.number);
    Ok(out)
}

fn node_ok(path: &Path, dev: (u64, u64)) -> bool {
    fs::metadata(path)
        .map(|m| m.file_type().is_block_device() && m.rdev() == makedev(dev.0, dev.1))
        .unwrap_or(false)
}

/// The device node of each partition the kernel shows for the disk, by number.
pub fn partition_nodes(disk_path: &Path) -> Result<BTreeMap<u32, PathBuf>, KernelError> {
    let name = kernel_name(disk_path)?;
    Ok(kernel_partitions(&name)?
        .into_iter()
        .map(|p| (p.number, Path::new("/dev").join(p.name)))
        .collect())
}

/// Partitions of the disk (and the disk itself) that are mounted or used as
/// swap, as `"/dev/loop0p3 mounted on /mnt"` texts.
pub fn busy_partitions(disk_path: &Path) -> Result<Vec<String>, KernelError> {
    let name = kernel_name(disk_path)?;
    let meta = fs::metadata(disk_path).map_err(|source| KernelError::Stat {
        path: disk_path.to_path_buf(),
        source,
    })?;
    let disk_dev = (
        nix::sys::stat::major(meta.rdev()),
        nix::sys::stat::minor(meta.rdev()),
    );
    let mut devs: Vec<(String, (u64, u64))> = vec![(name.clone(), disk_dev)];
    devs.extend(
        kernel_partitions(&name)?
            .into_iter()
            .map(|p| (p.name, p.dev)),
    );
    let info_path = PathBuf::from("/proc/self/mountinfo");
    let info = fs::read_to_string(&info_path).map_err(|source| KernelError::Sysfs {
        path: info_path,
        source,
    })?;
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    let mut out = Vec::new();
    for (n, (maj, min)) in &devs {
        let id = format!("{maj}:{min}");
        for l in info.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            if f.get(2) == Some(&id.as_str()) {
                out.push(format!("/dev/{n} mounted on {}", f.get(4).unwrap_or(&"?")));
            }
        }
        if swaps
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().next() == Some(&format!("/dev/{n}")))
        {
            out.push(format!("/dev/{n} used as swap"));
        }
    }
    Ok(out)
}

/// Whether the kernel already shows exactly these partitions, with nodes.
pub fn in_sync(disk_path: &Path, wanted: &[WantedPartition]) -> Result<bool, KernelError> {
    let name = kernel_name(disk_path)?;
    let have = kernel_partitions(&name)?;
    Ok(have.len() == wanted.len()
        && wanted.iter().all(|w| {
            have.iter().any(|h| {
                h.number == w.number
                    && h.start == w.start
                    && h.length == w.length
                    && node_ok(&Path::new("/dev").join(&h.name), h.dev)
            })
        }))
}

/// Bring the kernel's partitions of `disk` in line with `wanted` and return
/// the device node of each partition by number.
pub fn sync_partitions(
    disk: &File,
    disk_path: &Path,
    wanted: &[WantedPartition],
) -> Result<BTreeMap<u32, PathBuf>, KernelError> {
    let name = kernel_name(disk_path)?;
    // On a kernel with a GPT parser this is all it takes; errors (EBUSY, EINVAL
    // on a loop device without partscan) leave the work to BLKPG below.
    let _ = blkpg::reread_partitions(disk);
    let have = kernel_partitions(&name)?;
    for h in &have {
        let keep = wanted
            .iter()
            .any(|w| w.number == h.number && w.start == h.start && w.length == h.length);
        if !keep {
            blkpg::delete_partition(disk, h.number).map_err(KernelError::Blkpg)?;
        }
    }
    let have = kernel_partitions(&name)?;
    for w in wanted {
        if !have.iter().any(|h| h.number == w.number) {
            blkpg::add_partition(disk, w.number, w.start, w.length).map_err(KernelError::Blkpg)?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut nodes = BTreeMap::new();
    for w in wanted {
        let part = loop {
            if let Some(p) = kernel_partitions(&name)?
                .into_iter()
                .find(|h| h.number == w.number)
            {
                break p;
            }
            if Instant::now() > deadline {
                return Err(KernelError::Missing {
                    disk: name.clone(),
                    number: w.number,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let node = Path::new("/dev").join(&part.name);
        while !node_ok(&node, part.dev) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !node_ok(&node, part.dev) {
            let _ = fs::remove_file(&node);
            mknod(
                &node,
                SFlag::S_IFBLK,
                Mode::from_bits_truncate(0o660),
                makedev(part.dev.0, part.dev.1),
            )
            .map_err(|source| KernelError::Mknod {
                path: node.clone(),
                source,
            })?;
        }
        nodes.insert(w.number, node);
    }
    Ok(nodes)
}
