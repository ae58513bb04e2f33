//! What is on a disk now: its partition table, each partition's filesystem,
//! and signatures on the disk itself — the "exists now" half of the plan, the
//! input of the idempotence checks, and what the inventory reports of a disk
//! (one reading, through [`super::table::read_table`] and
//! [`super::signatures::detect`], for all three).

use std::io;

use landfall_proto::layout::{DiskFacts, ExistingDisk, Geometry};

use super::resolve::OpenDisk;
use super::signatures::{detect, Signature};
use super::table::read_table;

/// Drop a block device's page cache before reading it: writes through the
/// partition nodes (mkfs, mounted filesystems) bypass the whole disk's cache.
/// A regular file has no separate cache; nothing to do.
pub fn drop_cache(dev: &std::fs::File) -> io::Result<()> {
    if crate::sys::blk::is_block_device(dev)? {
        crate::sys::blkpg::flush_buffers(dev).map_err(io::Error::other)?;
    }
    Ok(())
}

/// The first filesystem-like signature in a byte range.
pub fn filesystem_at(
    dev: &std::fs::File,
    start: u64,
    len: u64,
    sector: u64,
) -> io::Result<Option<Signature>> {
    Ok(detect(dev, start, len, sector)?
        .into_iter()
        .find(|s| !matches!(s.kind, "gpt" | "gpt (backup header)" | "dos")))
}

/// Read what exists on an open disk, its page cache dropped first.
pub fn existing(dev: &std::fs::File, geo: Geometry) -> io::Result<ExistingDisk> {
    drop_cache(dev)?;
    read_existing(dev, geo)
}

/// Read what exists on an open disk through its page cache as it is (the
/// inventory, which cannot count on dropping it, drops it when it can).
pub fn read_existing(dev: &std::fs::File, geo: Geometry) -> io::Result<ExistingDisk> {
    let ss = u64::from(geo.logical_sector_size);
    let mut out = ExistingDisk::default();
    if let Some(found) = read_table(dev, geo.logical_sector_size)? {
        let mut parts = found.partitions;
        for p in &mut parts {
            // A corrupt table may point anywhere (found by fuzzing): look only
            // at the part of each range that lies on the device.
            let start = p.first_lba.saturating_mul(ss);
            let len = (p.last_lba.saturating_add(1))
                .saturating_sub(p.first_lba)
                .saturating_mul(ss)
                .min(geo.size_bytes.saturating_sub(start));
            if len == 0 {
                continue;
            }
            if let Some(sig) = filesystem_at(dev, start, len, ss)? {
                p.fs_type = Some(sig.kind.to_string());
                p.fs_label = sig.label;
                p.fs_uuid = sig.uuid;
            }
        }
        out.table = Some(found.kind);
        out.disk_guid = found.disk_guid;
        out.partitions = parts;
    }
    out.signatures = detect(dev, 0, geo.size_bytes, ss)?
        .into_iter()
        .filter(|s| !matches!(s.kind, "gpt" | "dos"))
        .map(|s| s.kind.to_string())
        .collect();
    Ok(out)
}

/// The facts the planner needs about an open disk.
pub fn facts(disk: &OpenDisk) -> io::Result<DiskFacts> {
    Ok(DiskFacts {
        path: disk.path.to_string_lossy().into_owned(),
        geometry: disk.geometry,
        existing: existing(&disk.file, disk.geometry)?,
    })
}
