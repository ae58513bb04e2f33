//! Disks and their partitions from /sys/block, the block ioctls, the on-disk
//! partition table and filesystem signatures, and /proc/self/mountinfo.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use landfall_proto::v1::{Disk, Partition};

use super::gpt_read::{read_gpt, GptEntry};
use crate::probe::{partition_table, probe_signatures};
use crate::sys::blk;

fn sysfs_str(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn sysfs_u64(path: impl AsRef<Path>) -> u64 {
    sysfs_str(path).parse().unwrap_or(0)
}

pub use crate::sys::mountinfo::MountEntry;

/// This process's mounts (empty when unreadable).
pub fn mountinfo() -> Vec<MountEntry> {
    crate::sys::mountinfo::read().unwrap_or_default()
}

fn swaps() -> Vec<String> {
    crate::sys::mountinfo::parse_swaps(&fs::read_to_string("/proc/swaps").unwrap_or_default())
}

fn holders_of(
    dev_name: &str,
    major_minor: &str,
    mounts: &[MountEntry],
    swaps: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = mounts
        .iter()
        .filter(|m| m.major_minor == major_minor)
        .map(|m| format!("mounted at {}", m.mount_point.display()))
        .collect();
    if swaps.iter().any(|s| s == &format!("/dev/{dev_name}")) {
        out.push("active swap".into());
    }
    out
}

/// Whether this /sys/block entry is a disk worth listing (not a RAM disk, not an unused loop device).
fn is_listed(name: &str, sys: &Path) -> bool {
    if name.starts_with("ram") || name.starts_with("zram") {
        return false;
    }
    sysfs_u64(sys.join("size")) > 0
}

/// Lists every disk under /sys/block, sorted by name.
pub fn list_disks() -> Vec<Disk> {
    let mounts = mountinfo();
    let swaps = swaps();
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter(|n| is_listed(n, &Path::new("/sys/block").join(n)))
        .map(|n| describe_disk(&n, &mounts, &swaps))
        .collect()
}

fn dev_path(name: &str) -> PathBuf {
    PathBuf::from("/dev").join(name)
}

fn describe_disk(name: &str, mounts: &[MountEntry], swaps: &[String]) -> Disk {
    let sys = Path::new("/sys/block").join(name);
    let path = dev_path(name);
    let mut disk = Disk {
        name: name.to_string(),
        path: path.display().to_string(),
        size_bytes: sysfs_u64(sys.join("size")) * 512,
        logical_sector_size: sysfs_u64(sys.join("queue/logical_block_size")) as u32,
        physical_sector_size: sysfs_u64(sys.join("queue/physical_block_size")) as u32,
        model: sysfs_str(sys.join("device/model")),
        serial: {
            let s = sysfs_str(sys.join("device/serial"));
            if s.is_empty() {
                sysfs_str(sys.join("serial"))
            } else {
                s
            }
        },
        wwn: {
            let w = sysfs_str(sys.join("wwid"));
            if w.is_empty() {
                sysfs_str(sys.join("device/wwid"))
            } else {
                w
            }
        },
        rotational: sysfs_str(sys.join("queue/rotational")) == "1",
        removable: sysfs_str(sys.join("removable")) == "1",
        read_only: sysfs_str(sys.join("ro")) == "1",
        holders: holders_of(name, &sysfs_str(sys.join("dev")), mounts, swaps),
        ..Default::default()
    };
    // The ioctls are authoritative where the device can be opened.
    let gpt = match File::open(&path) {
        Ok(f) => {
            if let Ok(s) = blk::device_size(&f) {
                disk.size_bytes = s;
            }
            if let Ok(s) = blk::logical_sector_size(&f) {
                disk.logical_sector_size = s;
            }
            if let Ok(s) = blk::physical_sector_size(&f) {
                disk.physical_sector_size = s;
            }
            if let Ok(ro) = blk::is_read_only(&f) {
                disk.read_only = ro;
            }
            disk.partition_table = partition_table(&f, disk.logical_sector_size.max(512))
                .unwrap_or_default()
                .to_string();
            if disk.partition_table.is_empty() {
                disk.signatures = probe_signatures(&f, disk.size_bytes)
                    .into_iter()
                    .map(|s| s.fs_type)
                    .collect();
            }
            read_gpt(&f, disk.logical_sector_size.max(512))
        }
        Err(e) => {
            tracing::warn!("Cannot open {} for inventory: {e}", path.display());
            None
        }
    };
    disk.partitions = list_partitions(name, &sys, gpt.as_deref().unwrap_or(&[]), mounts, swaps);
    disk
}

fn list_partitions(
    disk: &str,
    sys: &Path,
    gpt: &[GptEntry],
    mounts: &[MountEntry],
    swaps: &[String],
) -> Vec<Partition> {
    let mut parts: Vec<Partition> = fs::read_dir(sys)
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                let pname = e.file_name().into_string().ok()?;
                let psys = e.path();
                if !pname.starts_with(disk) || !psys.join("partition").exists() {
                    return None;
                }
                Some(describe_partition(&pname, &psys, gpt, mounts, swaps))
            })
            .collect()
        })
        .unwrap_or_default();
    parts.sort_by_key(|p| p.number);
    parts
}

fn describe_partition(
    name: &str,
    sys: &Path,
    gpt: &[GptEntry],
    mounts: &[MountEntry],
    swaps: &[String],
) -> Partition {
    let number = sysfs_u64(sys.join("partition")) as u32;
    let major_minor = sysfs_str(sys.join("dev"));
    let mut p = Partition {
        name: name.to_string(),
        path: dev_path(name).display().to_string(),
        number,
        start_bytes: sysfs_u64(sys.join("start")) * 512,
        size_bytes: sysfs_u64(sys.join("size")) * 512,
        mountpoints: mounts
            .iter()
            .filter(|m| m.major_minor == major_minor)
            .map(|m| m.mount_point.display().to_string())
            .collect(),
        ..Default::default()
    };
    if swaps.iter().any(|s| s == &p.path) {
        p.mountpoints.push("[SWAP]".into());
    }
    if let Some(e) = gpt.iter().find(|e| e.number == number) {
        p.label = e.name.clone();
        p.type_guid = e.type_guid.clone();
        p.uuid = e.unique_guid.clone();
    }
    if let Ok(f) = File::open(&p.path) {
        if let Some(sig) = probe_signatures(&f, p.size_bytes).into_iter().next() {
            p.filesystem = sig.fs_type;
            p.filesystem_label = sig.label;
            p.filesystem_uuid = sig.uuid;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_lists_without_panicking() {
        // Whatever the host has, listing must not fail; every disk has a /dev path.
        for d in list_disks() {
            assert!(d.path.starts_with("/dev/"));
        }
    }
}
