//! The disks this machine has, and their partitions: from /sys/block, the
//! block ioctls, the on-disk partition table and filesystem signatures, and
//! /proc/self/mountinfo. The inventory reports this list; the disk engine
//! names it when a layout's disk does not exist.
//!
//! The table and the signatures are read by the disk engine's own probe
//! ([`crate::disk::probe`]): the identity lines a layout confirmation shows
//! and the plan's "will be destroyed" come from one reading of the disk.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use landfall_proto::layout::{ExistingPartition, Geometry};
use landfall_proto::v1::{Disk, Partition};

use super::probe;
use crate::sys::blk;

use crate::sys::sysfs::{entry_names, read_trimmed as sysfs_str, read_u64 as sysfs_u64};

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
    entry_names("/sys/block")
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
    let table = match File::open(&path) {
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
            read_disk(&f, &path, &mut disk)
        }
        Err(e) => {
            tracing::warn!("Cannot open {} for inventory: {e}", path.display());
            Vec::new()
        }
    };
    disk.partitions = list_partitions(name, &sys, &table, mounts, swaps);
    disk
}

/// The partition table and whole-disk signatures of an open disk, as the
/// plan sees them; returns the table's partitions (none when unreadable).
fn read_disk(f: &File, path: &Path, disk: &mut Disk) -> Vec<ExistingPartition> {
    if let Err(e) = probe::drop_cache(f) {
        tracing::debug!("Cannot drop the page cache of {}: {e}", path.display());
    }
    let geo = Geometry {
        size_bytes: disk.size_bytes,
        logical_sector_size: disk.logical_sector_size.max(512),
    };
    match probe::read_existing(f, geo) {
        Ok(found) => {
            disk.partition_table = match found.table.as_deref() {
                // The proto names an MBR as blkid's PTTYPE does.
                Some("mbr") => "dos".to_string(),
                other => other.unwrap_or_default().to_string(),
            };
            disk.signatures = found.signatures;
            found.partitions
        }
        Err(e) => {
            tracing::warn!("Cannot read the table of {}: {e}", path.display());
            Vec::new()
        }
    }
}

fn list_partitions(
    disk: &str,
    sys: &Path,
    table: &[ExistingPartition],
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
                Some(describe_partition(&pname, &psys, table, mounts, swaps))
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
    table: &[ExistingPartition],
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
    let fs = match table.iter().find(|e| e.number == number) {
        Some(e) => {
            // GUIDs in lower case, as blkid prints them.
            p.label = e.label.clone();
            p.type_guid = e.type_guid.to_ascii_lowercase();
            p.uuid = e.part_uuid.to_ascii_lowercase();
            e.fs_type
                .clone()
                .map(|kind| (kind, e.fs_label.clone(), e.fs_uuid.clone()))
        }
        // Not in a GPT (an MBR's partitions): the same detector on the
        // partition's own node.
        None => File::open(&p.path)
            .ok()
            .and_then(|f| {
                probe::filesystem_at(&f, 0, p.size_bytes, 512)
                    .ok()
                    .flatten()
            })
            .map(|s| (s.kind.to_string(), s.label, s.uuid)),
    };
    if let Some((kind, label, uuid)) = fs {
        p.filesystem = kind;
        p.filesystem_label = label.unwrap_or_default();
        p.filesystem_uuid = uuid.unwrap_or_default();
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
