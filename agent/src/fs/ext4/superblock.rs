//! The ext4 superblock (1024 bytes at byte 1024 of group 0, and a copy at the
//! start of each sparse_super backup group): field offsets, feature flags and
//! the crc32c checksum, following Documentation/filesystems/ext4/super.rst.

use super::checksum::crc32c;
use super::geometry::{BLOCKS_PER_GROUP, FIRST_INO, INODE_SIZE};
use super::layout::Layout;

pub const SUPERBLOCK_SIZE: usize = 1024;
pub const MAGIC: u16 = 0xEF53;

// s_feature_compat
pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
pub const COMPAT_EXT_ATTR: u32 = 0x8;
pub const COMPAT_RESIZE_INODE: u32 = 0x10;
pub const COMPAT_DIR_INDEX: u32 = 0x20;
// s_feature_incompat
pub const INCOMPAT_FILETYPE: u32 = 0x2;
pub const INCOMPAT_EXTENTS: u32 = 0x40;
pub const INCOMPAT_64BIT: u32 = 0x80;
pub const INCOMPAT_FLEX_BG: u32 = 0x200;
// s_feature_ro_compat
pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x2;
pub const RO_COMPAT_HUGE_FILE: u32 = 0x8;
pub const RO_COMPAT_DIR_NLINK: u32 = 0x20;
pub const RO_COMPAT_EXTRA_ISIZE: u32 = 0x40;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

pub const FEATURE_COMPAT: u32 = COMPAT_HAS_JOURNAL | COMPAT_EXT_ATTR | COMPAT_DIR_INDEX;
pub const FEATURE_INCOMPAT: u32 =
    INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG;
pub const FEATURE_RO_COMPAT: u32 = RO_COMPAT_SPARSE_SUPER
    | RO_COMPAT_LARGE_FILE
    | RO_COMPAT_HUGE_FILE
    | RO_COMPAT_DIR_NLINK
    | RO_COMPAT_EXTRA_ISIZE
    | RO_COMPAT_METADATA_CSUM;

/// Default mount options: user_xattr | acl, as mke2fs.conf's `default_mntopts`.
pub const DEFAULT_MOUNT_OPTS: u32 = 0x4 | 0x8;
/// Inode extra size required and wanted (mke2fs: 32).
pub const EXTRA_ISIZE: u16 = 32;
/// s_flags: signed directory hash (x86 `char` is signed).
pub const FLAGS_SIGNED_HASH: u32 = 0x1;
/// Journal inode number.
pub const JOURNAL_INO: u32 = 8;
/// Offset of s_checksum.
pub const CHECKSUM_OFFSET: usize = 0x3FC;

/// What the superblock says besides the layout.
#[derive(Debug, Clone)]
pub struct SuperblockInfo {
    pub uuid: [u8; 16],
    pub label: [u8; 16],
    pub hash_seed: [u8; 16],
    pub now: u32,
    /// `s_jnl_blocks`: the journal inode's `i_block` (60 bytes), then i_size_high, i_size.
    pub journal_backup: [u8; 68],
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// The superblock copy for group `group_nr` (0 for the primary).
pub fn encode(layout: &Layout, info: &SuperblockInfo, group_nr: u16) -> [u8; SUPERBLOCK_SIZE] {
    let geo = &layout.geo;
    let mut b = [0u8; SUPERBLOCK_SIZE];
    let free_inodes = geo.inodes_count() - FIRST_INO;
    put32(&mut b, 0x00, geo.inodes_count());
    put32(&mut b, 0x04, geo.blocks_count as u32);
    put32(&mut b, 0x08, geo.reserved_blocks as u32);
    put32(&mut b, 0x0C, layout.free_blocks as u32);
    put32(&mut b, 0x10, free_inodes);
    put32(&mut b, 0x14, 0); // s_first_data_block
    put32(&mut b, 0x18, 2); // s_log_block_size: 1024 << 2
    put32(&mut b, 0x1C, 2); // s_log_cluster_size
    put32(&mut b, 0x20, BLOCKS_PER_GROUP as u32);
    put32(&mut b, 0x24, BLOCKS_PER_GROUP as u32); // s_clusters_per_group
    put32(&mut b, 0x28, geo.inodes_per_group);
    put32(&mut b, 0x30, info.now); // s_wtime
    put16(&mut b, 0x36, 0xFFFF); // s_max_mnt_count = -1
    put16(&mut b, 0x38, MAGIC);
    put16(&mut b, 0x3A, 1); // s_state: clean
    put16(&mut b, 0x3C, 1); // s_errors: continue
    put32(&mut b, 0x40, info.now); // s_lastcheck
    put32(&mut b, 0x4C, 1); // s_rev_level: dynamic
    put32(&mut b, 0x54, FIRST_INO);
    put16(&mut b, 0x58, INODE_SIZE as u16);
    put16(&mut b, 0x5A, group_nr);
    let resize = if geo.reserved_gdt_blocks > 0 {
        COMPAT_RESIZE_INODE
    } else {
        0
    };
    put32(&mut b, 0x5C, FEATURE_COMPAT | resize);
    put32(&mut b, 0x60, FEATURE_INCOMPAT);
    put32(&mut b, 0x64, FEATURE_RO_COMPAT);
    b[0x68..0x78].copy_from_slice(&info.uuid);
    b[0x78..0x88].copy_from_slice(&info.label);
    put16(&mut b, 0xCE, geo.reserved_gdt_blocks as u16);
    put32(&mut b, 0xE0, JOURNAL_INO);
    b[0xEC..0xFC].copy_from_slice(&info.hash_seed);
    b[0xFC] = 1; // s_def_hash_version: half_md4
    b[0xFD] = 1; // s_jnl_backup_type: EXT3_JNL_BACKUP_BLOCKS
    put16(&mut b, 0xFE, super::geometry::DESC_SIZE as u16);
    put32(&mut b, 0x100, DEFAULT_MOUNT_OPTS);
    put32(&mut b, 0x108, info.now); // s_mkfs_time
    b[0x10C..0x150].copy_from_slice(&info.journal_backup);
    put32(&mut b, 0x150, (geo.blocks_count >> 32) as u32);
    put32(&mut b, 0x154, (geo.reserved_blocks >> 32) as u32);
    put32(&mut b, 0x158, (layout.free_blocks >> 32) as u32);
    put16(&mut b, 0x15C, EXTRA_ISIZE); // s_min_extra_isize
    put16(&mut b, 0x15E, EXTRA_ISIZE); // s_want_extra_isize
    put32(&mut b, 0x160, FLAGS_SIGNED_HASH);
    b[0x174] = FLEX_LOG; // s_log_groups_per_flex
    b[0x175] = 1; // s_checksum_type: crc32c
    put32(&mut b, 0x248, layout.overhead_blocks as u32); // s_overhead_clusters
    let csum = crc32c(!0, &b[..CHECKSUM_OFFSET]);
    put32(&mut b, CHECKSUM_OFFSET, csum);
    b
}

/// log2 of the flex group size.
const FLEX_LOG: u8 = 4;

#[cfg(test)]
mod tests {
    use super::super::geometry::Geometry;
    use super::*;

    fn sample() -> [u8; SUPERBLOCK_SIZE] {
        let geo = Geometry::for_device(1 << 30).unwrap();
        let layout = Layout::plan(&geo).unwrap();
        let mut label = [0u8; 16];
        label[..4].copy_from_slice(b"root");
        let info = SuperblockInfo {
            uuid: [7; 16],
            label,
            hash_seed: [9; 16],
            now: 1_700_000_000,
            journal_backup: [0; 68],
        };
        encode(&layout, &info, 3)
    }

    fn get32(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn field_offsets() {
        let b = sample();
        assert_eq!(u16::from_le_bytes([b[0x38], b[0x39]]), 0xEF53);
        assert_eq!(get32(&b, 0x00), 65536); // s_inodes_count
        assert_eq!(get32(&b, 0x04), 262144); // s_blocks_count_lo
        assert_eq!(get32(&b, 0x08), 13107); // s_r_blocks_count_lo
        assert_eq!(get32(&b, 0x28), 8192); // s_inodes_per_group
        assert_eq!(u16::from_le_bytes([b[0x5A], b[0x5B]]), 3); // s_block_group_nr
        assert_eq!(&b[0x78..0x7C], b"root");
        assert_eq!(get32(&b, 0x5C), 0x3C);
        assert_eq!(u16::from_le_bytes([b[0xCE], b[0xCF]]), 127); // s_reserved_gdt_blocks
        assert_eq!(get32(&b, 0x60), 0x2C2);
        assert_eq!(get32(&b, 0x64), 0x46B);
        assert_eq!(u16::from_le_bytes([b[0xFE], b[0xFF]]), 64);
        assert_eq!(b[0x174], 4);
        assert_eq!(get32(&b, 0x248), 12949); // s_overhead_clusters
    }

    #[test]
    fn checksum_covers_all_but_the_last_four_bytes() {
        let b = sample();
        assert_eq!(get32(&b, CHECKSUM_OFFSET), crc32c(!0, &b[..0x3FC]));
        assert_ne!(get32(&b, CHECKSUM_OFFSET), 0);
    }
}
