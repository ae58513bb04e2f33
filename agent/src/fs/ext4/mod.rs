//! The ext4 writer: formats a device with mke2fs 1.47's `-t ext4` defaults
//! (extents, 64bit, flex_bg 16, metadata_csum, dir_index, filetype,
//! sparse_super, large_file, huge_file, dir_nlink, extra_isize, ext_attr,
//! has_journal) — without resize_inode. Only metadata is written: inode tables
//! are left for the kernel's lazy init (INODE_UNINIT / itable_unused), groups
//! holding nothing but a superblock backup are BLOCK_UNINIT, and the device's
//! old contents are discarded first as mke2fs does.
//!
//! Modules: [`geometry`] (sizes), [`layout`] (placement), then one encoder per
//! on-disk structure, and [`writer`] for the coalesced writes.

pub mod bitmap;
pub mod checksum;
pub mod dir;
pub mod geometry;
pub mod group_desc;
pub mod inode;
pub mod journal;
pub mod layout;
pub mod resize;
pub mod superblock;
pub mod writer;

use std::fs::File;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use self::dir::{Entry, FT_DIR};
use self::geometry::{Geometry, GeometryError, BLOCK_SIZE, DESC_SIZE, FIRST_INO, INODE_SIZE};
use self::group_desc::{GroupDesc, BLOCK_UNINIT, INODE_UNINIT, ITABLE_ZEROED};
use self::inode::{Inode, EXTENTS_FL};
use self::layout::{Extent, Layout, LayoutError, INLINE_EXTENTS, LOST_FOUND_BLOCKS};
use self::superblock::{SuperblockInfo, EXTRA_ISIZE, JOURNAL_INO, SUPERBLOCK_SIZE};
use self::writer::BlockWriter;
use super::{Ext4Options, FormatReport};
use crate::sys::blk::{self, BlkError};

const ROOT_INO: u32 = 2;
const RESIZE_INO: u32 = 7;
const LOST_FOUND_INO: u32 = 11;
/// Longest label `s_volume_name` holds.
pub const MAX_LABEL: usize = 16;

/// Errors of the ext4 writer, each naming the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Ext4Error {
    #[error("Cannot read the device geometry")]
    DeviceSize(#[source] BlkError),
    #[error("Logical sector size {0} is larger than the 4096-byte ext4 block")]
    SectorTooLarge(u32),
    #[error("Cannot choose the filesystem geometry")]
    Geometry(#[from] GeometryError),
    #[error("Cannot place the filesystem metadata")]
    Layout(#[from] LayoutError),
    #[error("Label {label:?} is longer than {MAX_LABEL} bytes")]
    LabelTooLong { label: String },
    #[error("Cannot discard the old contents of the device")]
    Discard(#[source] io::Error),
    #[error("Cannot zero the journal")]
    ZeroJournal(#[source] io::Error),
    #[error("Cannot zero the end of the filesystem")]
    ZeroTail(#[source] io::Error),
    #[error("Cannot write metadata at block {block}")]
    Write {
        block: u64,
        #[source]
        source: io::Error,
    },
    #[error("Cannot flush the device")]
    Sync(#[source] io::Error),
}

/// What happens to the device's old contents before formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldContents {
    /// Punch out (image file) or BLKDISCARD (block device) what is not
    /// rewritten, as mke2fs does by default.
    Discard,
    /// Leave them (mke2fs `-E nodiscard`): the journal and the filesystem's tail
    /// are zeroed, the inode tables are left for the kernel's lazy init.
    Keep,
}

/// Format `dev` as ext4, discarding its old contents.
pub fn format(dev: &File, opts: &Ext4Options) -> Result<FormatReport, Ext4Error> {
    format_with(dev, opts, OldContents::Discard)
}

/// Format `dev` as ext4, doing `old` with its old contents.
pub fn format_with(
    dev: &File,
    opts: &Ext4Options,
    old: OldContents,
) -> Result<FormatReport, Ext4Error> {
    let mut label = [0u8; 16];
    if let Some(l) = &opts.label {
        if l.len() > MAX_LABEL {
            return Err(Ext4Error::LabelTooLong { label: l.clone() });
        }
        label[..l.len()].copy_from_slice(l.as_bytes());
    }
    let size = blk::device_size(dev).map_err(Ext4Error::DeviceSize)?;
    let sector = blk::logical_sector_size(dev).map_err(Ext4Error::DeviceSize)?;
    if u64::from(sector) > BLOCK_SIZE {
        return Err(Ext4Error::SectorTooLarge(sector));
    }
    let geo = Geometry::for_device(size)?;
    let layout = Layout::plan(&geo)?;
    let uuid = opts
        .uuid
        .unwrap_or_else(|| *uuid::Uuid::new_v4().as_bytes());
    let hash_seed = *uuid::Uuid::new_v4().as_bytes();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);

    let mut params = Params {
        uuid,
        label,
        hash_seed,
        now,
        zeroed: true,
    };
    let mut writer = build(&layout, &params);
    let zeroed = match old {
        OldContents::Discard => {
            super::device::discard(dev, size, &writer.byte_ranges()).map_err(Ext4Error::Discard)?
        }
        OldContents::Keep => false,
    };
    if !zeroed {
        params.zeroed = false;
        writer = build(&layout, &params);
        for e in &layout.journal.extents {
            super::device::zero_range(dev, e.start * BLOCK_SIZE, u64::from(e.len) * BLOCK_SIZE)
                .map_err(Ext4Error::ZeroJournal)?;
        }
        // Like mke2fs, clear the filesystem's last 64-128 KiB, where MD RAID and
        // other end-of-device signatures live.
        let tail = tail_to_zero(geo.blocks_count);
        super::device::zero_range(
            dev,
            tail * BLOCK_SIZE,
            (geo.blocks_count - tail) * BLOCK_SIZE,
        )
        .map_err(Ext4Error::ZeroTail)?;
    }
    writer
        .write(dev)
        .map_err(|(block, source)| Ext4Error::Write { block, source })?;
    dev.sync_all().map_err(Ext4Error::Sync)?;

    Ok(FormatReport {
        fs_type: "ext4",
        size_bytes: geo.blocks_count * BLOCK_SIZE,
        uuid: uuid::Uuid::from_bytes(uuid).hyphenated().to_string(),
        label: opts.label.clone().filter(|l| !l.is_empty()),
    })
}

/// First block of the tail mke2fs zeroes: from a 64 KiB boundary, one more
/// 64 KiB back, to the end of the filesystem.
fn tail_to_zero(blocks: u64) -> u64 {
    let chunk = 65536 / BLOCK_SIZE;
    let start = blocks & !(chunk - 1);
    if start > chunk {
        start - chunk
    } else {
        start
    }
}

/// Everything besides the layout that ends up on disk.
pub struct Params {
    pub uuid: [u8; 16],
    pub label: [u8; 16],
    pub hash_seed: [u8; 16],
    pub now: u32,
    /// The device reads back zeros where nothing was written (ITABLE_ZEROED).
    pub zeroed: bool,
}

/// All metadata blocks of the filesystem `layout` describes.
pub fn build(layout: &Layout, p: &Params) -> BlockWriter {
    let geo = &layout.geo;
    let seed = checksum::fs_seed(&p.uuid);
    let mut w = BlockWriter::default();

    // The journal inode and its superblock.
    let journal_blocks = u64::from(geo.journal_blocks);
    let (journal_i_block, leaf) = match layout.journal.leaf_block {
        Some(leaf) => {
            let (ib, block) = inode::leaf_extents(&layout.journal.extents, leaf, JOURNAL_INO, seed);
            (ib, Some((leaf, block)))
        }
        None => {
            debug_assert!(layout.journal.extents.len() <= INLINE_EXTENTS);
            (inode::inline_extents(&layout.journal.extents), None)
        }
    };
    if let Some((leaf, block)) = leaf {
        w.put(leaf, block);
    }
    w.put(
        layout.journal.extents[0].start,
        journal::superblock(geo.journal_blocks, &p.uuid),
    );
    let journal_size = journal_blocks * BLOCK_SIZE;
    let journal_inode = Inode {
        mode: 0o100600,
        links: 1,
        size: journal_size,
        sectors: (journal_blocks + u64::from(layout.journal.leaf_block.is_some()))
            * (BLOCK_SIZE / 512),
        flags: EXTENTS_FL,
        time: p.now,
        i_block: journal_i_block,
        extra_isize: EXTRA_ISIZE,
    };

    // Root directory and lost+found.
    let root_inode = Inode {
        mode: 0o40755,
        links: 3,
        size: BLOCK_SIZE,
        sectors: BLOCK_SIZE / 512,
        flags: EXTENTS_FL,
        time: p.now,
        i_block: inode::inline_extents(&[Extent {
            logical: 0,
            start: layout.root_block,
            len: 1,
        }]),
        extra_isize: EXTRA_ISIZE,
    };
    w.put(
        layout.root_block,
        dir::block(
            &[
                Entry {
                    ino: ROOT_INO,
                    name: b".",
                    file_type: FT_DIR,
                },
                Entry {
                    ino: ROOT_INO,
                    name: b"..",
                    file_type: FT_DIR,
                },
                Entry {
                    ino: LOST_FOUND_INO,
                    name: b"lost+found",
                    file_type: FT_DIR,
                },
            ],
            ROOT_INO,
            seed,
        ),
    );
    let lf_inode = Inode {
        mode: 0o40700,
        links: 2,
        size: LOST_FOUND_BLOCKS * BLOCK_SIZE,
        sectors: LOST_FOUND_BLOCKS * BLOCK_SIZE / 512,
        flags: EXTENTS_FL,
        time: p.now,
        i_block: inode::inline_extents(&[Extent {
            logical: 0,
            start: layout.lost_found_start,
            len: LOST_FOUND_BLOCKS as u16,
        }]),
        extra_isize: EXTRA_ISIZE,
    };
    let mut lf = dir::block(
        &[
            Entry {
                ino: LOST_FOUND_INO,
                name: b".",
                file_type: FT_DIR,
            },
            Entry {
                ino: ROOT_INO,
                name: b"..",
                file_type: FT_DIR,
            },
        ],
        LOST_FOUND_INO,
        seed,
    );
    for _ in 1..LOST_FOUND_BLOCKS {
        lf.extend_from_slice(&dir::block(&[], LOST_FOUND_INO, seed));
    }
    w.put(layout.lost_found_start, lf);

    // The resize inode and its blocks.
    let resize_inode = layout.resize_dind.map(|dind| {
        let (inode, dind_block) = resize::inode_and_dind(geo, dind, p.now);
        w.put(dind, dind_block);
        let first = resize::first_reserved(geo);
        let backups: Vec<u64> = geo
            .backup_groups()
            .map(|g| geo.group_first_block(g))
            .collect();
        w.put_generated(
            first,
            u64::from(geo.reserved_gdt_blocks),
            Box::new(move |i, block| resize::fill_reserved(block, i, first, &backups)),
        );
        inode
    });

    // The first block of group 0's inode table: the reserved inodes 1..=11.
    let mut itable = vec![0u8; BLOCK_SIZE as usize];
    for ino in 1..=FIRST_INO {
        let inode = match ino {
            ROOT_INO => root_inode.clone(),
            JOURNAL_INO => journal_inode.clone(),
            LOST_FOUND_INO => lf_inode.clone(),
            1 => Inode {
                time: p.now,
                ..Default::default()
            },
            RESIZE_INO => resize_inode.clone().unwrap_or_default(),
            _ => Inode::default(),
        };
        let off = (ino as usize - 1) * INODE_SIZE as usize;
        itable[off..off + INODE_SIZE as usize].copy_from_slice(&inode.encode(ino, seed));
    }
    w.put(layout.groups[0].inode_table, itable);

    // Bitmaps and group descriptors.
    let ipg = geo.inodes_per_group;
    let mut gdt = vec![0u8; geo.desc_blocks as usize * BLOCK_SIZE as usize];
    let mut scratch = vec![0u8; BLOCK_SIZE as usize];
    for (g, gp) in layout.groups.iter().enumerate() {
        let g32 = g as u32;
        let mut d = GroupDesc {
            block_bitmap: gp.block_bitmap,
            inode_bitmap: gp.inode_bitmap,
            inode_table: gp.inode_table,
            free_blocks: gp.free_blocks,
            free_inodes: ipg,
            itable_unused: ipg,
            ..Default::default()
        };
        if p.zeroed {
            d.flags |= ITABLE_ZEROED;
        }
        if gp.block_uninit {
            d.flags |= BLOCK_UNINIT;
        } else {
            // Computed once here for the checksum, and again when written.
            let used = layout.used_in_group(g32);
            let len = geo.group_len(g32);
            scratch.fill(0);
            bitmap::fill_block_bitmap(&mut scratch, &used, len);
            d.block_bitmap_csum = bitmap::checksum(&scratch, BLOCK_SIZE as usize, seed);
            w.put_generated(
                gp.block_bitmap,
                1,
                Box::new(move |_, bits| bitmap::fill_block_bitmap(bits, &used, len)),
            );
        }
        if g == 0 {
            let bits = bitmap::inode_bitmap(FIRST_INO, ipg);
            d.inode_bitmap_csum = bitmap::checksum(&bits, ipg as usize / 8, seed);
            w.put(gp.inode_bitmap, bits);
            d.free_inodes = ipg - FIRST_INO;
            d.itable_unused = ipg - FIRST_INO;
            d.used_dirs = 2;
        } else {
            d.flags |= INODE_UNINIT;
        }
        let off = g * DESC_SIZE as usize;
        gdt[off..off + DESC_SIZE as usize].copy_from_slice(&d.encode(g32, seed));
    }

    // Superblock copies, each followed by the descriptor table.
    let mut journal_backup = [0u8; 68];
    journal_backup[..60].copy_from_slice(&journal_i_block);
    journal_backup[60..64].copy_from_slice(&((journal_size >> 32) as u32).to_le_bytes());
    journal_backup[64..68].copy_from_slice(&(journal_size as u32).to_le_bytes());
    let info = SuperblockInfo {
        uuid: p.uuid,
        label: p.label,
        hash_seed: p.hash_seed,
        now: p.now,
        journal_backup,
    };
    let gdt: std::rc::Rc<[u8]> = gdt.into();
    for g in 0..geo.group_count {
        if geo.super_and_desc_blocks(g) == 0 {
            continue;
        }
        let mut block = vec![0u8; BLOCK_SIZE as usize];
        let sb = superblock::encode(layout, &info, g as u16);
        // The primary sits at byte 1024; a backup at the start of its group's first block.
        let at = if g == 0 { 1024 } else { 0 };
        block[at..at + SUPERBLOCK_SIZE].copy_from_slice(&sb);
        w.put(geo.group_first_block(g), block);
        w.put_shared(geo.group_first_block(g) + 1, gdt.clone());
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_to_zero_as_mke2fs() {
        assert_eq!(tail_to_zero(262144), 262144 - 16);
        assert_eq!(tail_to_zero(24414), 24400 - 16);
    }

    /// The whole metadata of a 1 GiB filesystem, built in memory: the blocks
    /// written are the ones the layout reserved, superblock first.
    #[test]
    fn build_writes_only_reserved_blocks() {
        let geo = Geometry::for_device(1 << 30).unwrap();
        let layout = Layout::plan(&geo).unwrap();
        let p = Params {
            uuid: [1; 16],
            label: [0; 16],
            hash_seed: [2; 16],
            now: 3,
            zeroed: true,
        };
        let w = build(&layout, &p);
        let ranges = w.byte_ranges();
        assert_eq!(ranges[0].0, 0);
        for (s, e) in ranges {
            let (sb, eb) = (s / BLOCK_SIZE, e / BLOCK_SIZE);
            assert!(
                layout.used.iter().any(|&(us, ue)| us <= sb && eb <= ue),
                "blocks {sb}..{eb} written outside the used ranges"
            );
        }
        // sb + GDT + reserved GDT per copy (5 copies), 2 used bitmaps' worth per
        // initialised group, inode table block, root, lost+found, journal sb, dind.
        assert!(w.blocks() > 5 * 2 && w.blocks() < 5 * 129 + 20);
    }
}
