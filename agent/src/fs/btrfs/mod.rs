//! The btrfs writer: makes, on one device, the filesystem Debian 12's
//! `mkfs.btrfs` (btrfs-progs 6.2) makes by default — 16 KiB nodes, 4 KiB
//! sectors, crc32c, DUP metadata and system, single data (also on SSDs since
//! 5.15, and with no mixed block groups on small devices: 6.2 makes separate
//! ones from 256 MiB up, as its minimum is 109 MiB), incompat features
//! mixed-backref, extref, skinny-metadata and no-holes, and the free-space
//! tree. Checksum and the two profiles can be chosen (`--csum`, `-m`, `-d`).
//!
//! Every tree is one leaf of generation 1, written straight into its final
//! chunk (see [`layout`] for where and how big, [`trees`] for what). Input is
//! checked and the layout planned before the first write; old contents are
//! discarded first as mkfs.btrfs does (image files: holes punched).
//!
//! Modules: [`checksum`], [`key`], [`items`], [`leaf`] and [`superblock`]
//! encode the on-disk structures; [`layout`] and [`trees`] decide them.

pub mod checksum;
pub mod items;
pub mod key;
pub mod layout;
pub mod leaf;
pub mod superblock;
pub mod trees;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{SystemTime, UNIX_EPOCH};

use self::layout::{Layout, LayoutError, RESERVED, SECTORSIZE};
use self::superblock::LABEL_SIZE;
use self::trees::{Params, TreeError};
use super::{BtrfsOptions, BtrfsProfile, FormatReport};
use crate::sys::blk::{self, BlkError};

/// Longest label (the superblock field is 256 bytes, NUL-terminated).
pub const MAX_LABEL: usize = LABEL_SIZE - 1;
/// Bytes mkfs.btrfs zeroes at each end of the device when it cannot discard.
const ZERO_ENDS: u64 = 2 << 20;

/// Errors of the btrfs writer, each naming the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum BtrfsError {
    #[error("Cannot read the device geometry")]
    DeviceSize(#[source] BlkError),
    #[error("Logical sector size {0} is larger than the 4096-byte btrfs sector")]
    SectorTooLarge(u32),
    #[error("Label {label:?} is longer than {MAX_LABEL} bytes")]
    LabelTooLong { label: String },
    #[error("Label {label:?} contains a NUL byte")]
    LabelNul { label: String },
    #[error("Cannot place the filesystem")]
    Layout(#[from] LayoutError),
    #[error("Cannot build the trees")]
    Trees(#[from] TreeError),
    #[error("Cannot discard the old contents of the device")]
    Discard(#[source] io::Error),
    #[error("Cannot zero the ends of the device")]
    ZeroEnds(#[source] io::Error),
    #[error("Cannot write at byte {offset}")]
    Write {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("Cannot flush the device")]
    Sync(#[source] io::Error),
}

fn random_uuid() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

/// Format `dev` as btrfs.
pub fn format(dev: &File, opts: &BtrfsOptions) -> Result<FormatReport, BtrfsError> {
    let mut label = [0u8; LABEL_SIZE];
    if let Some(l) = &opts.label {
        if l.len() > MAX_LABEL {
            return Err(BtrfsError::LabelTooLong { label: l.clone() });
        }
        if l.contains('\0') {
            return Err(BtrfsError::LabelNul { label: l.clone() });
        }
        label[..l.len()].copy_from_slice(l.as_bytes());
    }
    let size = blk::device_size(dev).map_err(BtrfsError::DeviceSize)?;
    let sector = blk::logical_sector_size(dev).map_err(BtrfsError::DeviceSize)?;
    if u64::from(sector) > SECTORSIZE {
        return Err(BtrfsError::SectorTooLarge(sector));
    }
    let layout = Layout::plan(
        size,
        opts.metadata.unwrap_or(BtrfsProfile::Dup),
        opts.data.unwrap_or(BtrfsProfile::Single),
    )?;
    let fsid = opts.uuid.unwrap_or_else(random_uuid);
    let params = Params {
        fsid,
        dev_uuid: random_uuid(),
        chunk_tree_uuid: random_uuid(),
        fs_tree_uuid: random_uuid(),
        label,
        csum: opts.csum,
        now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let image = trees::build(&layout, &params)?;

    // Nothing has been written so far.
    let zeroed = super::device::discard(dev, size, &image.ranges()).map_err(BtrfsError::Discard)?;
    if !zeroed {
        // As mkfs.btrfs: clear the first and last 2 MiB, where other
        // filesystems' and RAID signatures live.
        super::device::zero_range(dev, 0, ZERO_ENDS.min(size)).map_err(BtrfsError::ZeroEnds)?;
        let tail = size.saturating_sub(ZERO_ENDS).max(RESERVED.min(size));
        super::device::zero_range(dev, tail, size - tail).map_err(BtrfsError::ZeroEnds)?;
    }
    for (offset, bytes) in &image.writes {
        dev.write_all_at(bytes, *offset)
            .map_err(|source| BtrfsError::Write {
                offset: *offset,
                source,
            })?;
    }
    dev.sync_all().map_err(BtrfsError::Sync)?;

    Ok(FormatReport {
        fs_type: "btrfs",
        size_bytes: layout.total_bytes,
        uuid: uuid::Uuid::from_bytes(fsid).hyphenated().to_string(),
        label: opts.label.clone().filter(|l| !l.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_leaves_the_device_untouched() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(256 << 20).unwrap();
        f.write_all_at(&[0xaa; 4096], 64 << 10).unwrap();
        let long = BtrfsOptions {
            label: Some("x".repeat(256)),
            ..BtrfsOptions::default()
        };
        assert!(matches!(
            format(&f, &long),
            Err(BtrfsError::LabelTooLong { .. })
        ));
        let small = tempfile::tempfile().unwrap();
        small.set_len(32 << 20).unwrap();
        small.write_all_at(&[0xaa; 4096], 64 << 10).unwrap();
        assert!(matches!(
            format(&small, &BtrfsOptions::default()),
            Err(BtrfsError::Layout(LayoutError::TooSmall { .. }))
        ));
        for dev in [&f, &small] {
            let mut b = [0u8; 4096];
            dev.read_exact_at(&mut b, 64 << 10).unwrap();
            assert_eq!(b, [0xaa; 4096]);
        }
    }

    #[test]
    fn a_label_of_255_bytes_is_kept() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(256 << 20).unwrap();
        let opts = BtrfsOptions {
            label: Some("l".repeat(MAX_LABEL)),
            uuid: Some([9; 16]),
            ..BtrfsOptions::default()
        };
        let r = format(&f, &opts).unwrap();
        assert_eq!(r.uuid, "09090909-0909-0909-0909-090909090909");
        assert_eq!(r.fs_type, "btrfs");
        let mut sb = [0u8; 4096];
        f.read_exact_at(&mut sb, 64 << 10).unwrap();
        assert_eq!(&sb[64..72], superblock::MAGIC);
        assert_eq!(sb[299..299 + MAX_LABEL], *"l".repeat(MAX_LABEL).as_bytes());
        assert_eq!(sb[299 + MAX_LABEL], 0);
    }
}
