//! Filesystem geometry: how many blocks, groups and inodes a device of a given
//! size gets, with the choices mke2fs 1.47 makes for `-t ext4` (4 KiB blocks,
//! 256-byte inodes, the inode ratio of its size type, 5 % reserved blocks, the
//! default journal size, and dropping a last group too small for its metadata).

/// Bytes per block; the only block size this writer makes.
pub const BLOCK_SIZE: u64 = 4096;
/// Blocks per group: one bitmap block's worth of bits.
pub const BLOCKS_PER_GROUP: u64 = BLOCK_SIZE * 8;
/// Bytes per on-disk inode.
pub const INODE_SIZE: u64 = 256;
/// Bytes per group descriptor (64bit feature).
pub const DESC_SIZE: u64 = 64;
/// Groups per flex group (`s_log_groups_per_flex` = 4).
pub const FLEX_GROUPS: u32 = 16;
/// The first inode ordinary files may use.
pub const FIRST_INO: u32 = 11;
/// Smallest filesystem this writer makes, in blocks: JBD2 needs 1024 journal
/// blocks, and mke2fs makes no journal below 2048 blocks (8 MiB).
pub const MIN_BLOCKS: u64 = 2048;
/// The smallest device accepted, in bytes.
pub const MIN_BYTES: u64 = MIN_BLOCKS * BLOCK_SIZE;

/// Errors in choosing the geometry.
#[derive(Debug, thiserror::Error)]
pub enum GeometryError {
    #[error(
        "Device too small for ext4: {size} bytes, at least {MIN_BYTES} bytes (8 MiB) are needed"
    )]
    TooSmall { size: u64 },
    #[error("Device too large for ext4 with 4 KiB blocks and 32-bit inode numbers: {size} bytes")]
    TooLarge { size: u64 },
}

/// The sizes every other part of the layout derives from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    pub blocks_count: u64,
    pub group_count: u32,
    pub inodes_per_group: u32,
    /// Inode table blocks per group.
    pub inode_table_blocks: u32,
    /// Blocks of group descriptors (each copy).
    pub desc_blocks: u32,
    /// Blocks reserved after each descriptor copy for online growth (resize_inode);
    /// 0 means no resize inode.
    pub reserved_gdt_blocks: u32,
    pub reserved_blocks: u64,
    pub journal_blocks: u32,
}

/// mke2fs's inode ratio for the size type ("small", default, "big", "huge").
fn inode_ratio(bytes: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    if bytes < 512 * MIB {
        4096
    } else if bytes < 4 * (1 << 40) {
        16384
    } else if bytes < 16 * (1 << 40) {
        32768
    } else {
        65536
    }
}

/// `ext2fs_default_journal_size`: journal blocks for a filesystem of `blocks` blocks.
pub fn default_journal_blocks(blocks: u64) -> u32 {
    match blocks {
        b if b < 32768 => 1024,
        b if b < 256 * 1024 => 4096,
        b if b < 512 * 1024 => 8192,
        b if b < 4096 * 1024 => 16384,
        b if b < 8192 * 1024 => 32768,
        b if b < 16384 * 1024 => 65536,
        b if b < 32768 * 1024 => 131072,
        _ => 262144,
    }
}

/// Whether group `g` holds a superblock backup (sparse_super: 0, 1, powers of 3, 5, 7).
pub fn group_has_super(g: u32) -> bool {
    if g <= 1 {
        return true;
    }
    if g.is_multiple_of(2) {
        return false;
    }
    [3u32, 5, 7].iter().any(|&base| {
        let mut p = base;
        while p < g {
            match p.checked_mul(base) {
                Some(n) => p = n,
                None => return false,
            }
        }
        p == g
    })
}

/// Block addresses a 4 KiB indirect block holds.
pub const ADDR_PER_BLOCK: u64 = BLOCK_SIZE / 4;

/// `calc_reserved_gdt_blocks` of e2fsprogs: enough descriptor blocks to grow
/// the filesystem 1024-fold or to 2^32 blocks, at most one indirect block's
/// worth; none above 2^32 blocks, where mke2fs turns resize_inode off.
fn reserved_gdt_blocks(blocks: u64, desc_blocks: u64) -> u64 {
    const MAX_32: u64 = u32::MAX as u64;
    if blocks > MAX_32 {
        return 0;
    }
    let max_blocks = if blocks < MAX_32 / 1024 {
        blocks * 1024
    } else {
        MAX_32
    };
    let groups = max_blocks.div_ceil(BLOCKS_PER_GROUP);
    let wanted = groups
        .div_ceil(BLOCK_SIZE / DESC_SIZE)
        .saturating_sub(desc_blocks);
    wanted.min(ADDR_PER_BLOCK)
}

impl Geometry {
    /// The geometry for a device of `device_bytes` bytes.
    pub fn for_device(device_bytes: u64) -> Result<Self, GeometryError> {
        let mut blocks = device_bytes / BLOCK_SIZE;
        if blocks < MIN_BLOCKS {
            return Err(GeometryError::TooSmall { size: device_bytes });
        }
        let inodes_wanted =
            (blocks * BLOCK_SIZE / inode_ratio(device_bytes)).max(u64::from(FIRST_INO) + 1);
        let inodes_per_block = BLOCK_SIZE / INODE_SIZE;
        loop {
            let group_count = blocks.div_ceil(BLOCKS_PER_GROUP);
            let group_count_u32 = u32::try_from(group_count)
                .map_err(|_| GeometryError::TooLarge { size: device_bytes })?;
            let desc_blocks = (group_count * DESC_SIZE).div_ceil(BLOCK_SIZE);
            let reserved_gdt = reserved_gdt_blocks(blocks, desc_blocks);
            if desc_blocks + reserved_gdt > BLOCKS_PER_GROUP * 3 / 4 {
                // mke2fs would switch to meta_bg, which this writer does not make.
                return Err(GeometryError::TooLarge { size: device_bytes });
            }
            let mut ipg = inodes_wanted.div_ceil(group_count).min(BLOCKS_PER_GROUP);
            let mut itb = (ipg * INODE_SIZE).div_ceil(BLOCK_SIZE);
            ipg = (itb * inodes_per_block) & !7;
            itb = (ipg * INODE_SIZE).div_ceil(BLOCK_SIZE);
            if ipg * group_count > u64::from(u32::MAX) {
                return Err(GeometryError::TooLarge { size: device_bytes });
            }
            // Drop a last group too small to hold its own metadata plus 50 blocks.
            let last = group_count_u32 - 1;
            let mut overhead = 2 + itb;
            if group_has_super(last) {
                overhead += 1 + desc_blocks + reserved_gdt;
            }
            let rem = blocks % BLOCKS_PER_GROUP;
            if group_count == 1 && rem != 0 && rem < overhead {
                return Err(GeometryError::TooSmall { size: device_bytes });
            }
            if rem != 0 && rem < overhead + 50 {
                blocks -= rem;
                continue;
            }
            return Ok(Geometry {
                blocks_count: blocks,
                group_count: group_count_u32,
                inodes_per_group: ipg as u32,
                inode_table_blocks: itb as u32,
                desc_blocks: desc_blocks as u32,
                reserved_gdt_blocks: reserved_gdt as u32,
                reserved_blocks: blocks * 5 / 100,
                journal_blocks: default_journal_blocks(blocks),
            });
        }
    }

    /// Groups holding a backup superblock (all but group 0), ascending.
    pub fn backup_groups(&self) -> impl Iterator<Item = u32> + '_ {
        (1..self.group_count).filter(|&g| group_has_super(g))
    }

    pub fn inodes_count(&self) -> u32 {
        self.inodes_per_group * self.group_count
    }

    pub fn group_first_block(&self, g: u32) -> u64 {
        u64::from(g) * BLOCKS_PER_GROUP
    }

    /// Blocks in group `g` (the last group may be short).
    pub fn group_len(&self, g: u32) -> u64 {
        (self.blocks_count - self.group_first_block(g)).min(BLOCKS_PER_GROUP)
    }

    pub fn group_of(&self, block: u64) -> u32 {
        (block / BLOCKS_PER_GROUP) as u32
    }

    /// Blocks taken at the start of group `g` by a superblock copy, descriptors
    /// and reserved descriptor blocks.
    pub fn super_and_desc_blocks(&self, g: u32) -> u64 {
        if group_has_super(g) {
            1 + u64::from(self.desc_blocks) + u64::from(self.reserved_gdt_blocks)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_super_groups() {
        let with: Vec<u32> = (0..100).filter(|&g| group_has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81]);
    }

    /// Figures read from `dumpe2fs -h` of `mke2fs -t ext4 -b 4096` images.
    #[test]
    fn matches_mke2fs_figures() {
        let g = Geometry::for_device(100 << 20).unwrap();
        assert_eq!(
            (
                g.blocks_count,
                g.inodes_count(),
                g.inodes_per_group,
                g.inode_table_blocks
            ),
            (25600, 25600, 25600, 1600)
        );
        assert_eq!((g.reserved_blocks, g.journal_blocks), (1280, 1024));
        let g = Geometry::for_device(1 << 30).unwrap();
        assert_eq!(
            (
                g.blocks_count,
                g.inodes_count(),
                g.inodes_per_group,
                g.inode_table_blocks
            ),
            (262144, 65536, 8192, 512)
        );
        assert_eq!((g.reserved_blocks, g.journal_blocks), (13107, 8192));
        let g = Geometry::for_device(64 << 30).unwrap();
        assert_eq!(
            (g.group_count, g.desc_blocks, g.inodes_count()),
            (512, 8, 4194304)
        );
        assert_eq!((g.reserved_blocks, g.journal_blocks), (838860, 131072));
        let g = Geometry::for_device(2 << 40).unwrap();
        assert_eq!(
            (g.blocks_count, g.inodes_count(), g.reserved_blocks),
            (536870912, 134217728, 26843545)
        );
        assert_eq!(g.journal_blocks, 262144);
        assert_eq!(g.reserved_gdt_blocks, 1024);
        assert_eq!(
            Geometry::for_device(1 << 30).unwrap().reserved_gdt_blocks,
            127
        );
        assert_eq!(
            Geometry::for_device(16 << 20).unwrap().reserved_gdt_blocks,
            1
        );
        assert_eq!(
            Geometry::for_device(40 << 20).unwrap().reserved_gdt_blocks,
            4
        );
        assert_eq!(
            Geometry::for_device(8 << 20).unwrap().reserved_gdt_blocks,
            0
        );
        assert_eq!(
            Geometry::for_device(64 << 30).unwrap().reserved_gdt_blocks,
            1024
        );
        assert_eq!(
            Geometry::for_device(20 << 40).unwrap().reserved_gdt_blocks,
            0
        );
        let g = Geometry::for_device(100_000_000).unwrap();
        assert_eq!((g.blocks_count, g.inodes_count()), (24414, 24416));
    }

    #[test]
    fn small_last_group_is_dropped() {
        // 2 groups where the second would have 100 blocks (< 2 + 512 + 1 + 1 + 50).
        let g = Geometry::for_device((32768 + 100) * BLOCK_SIZE * 16).unwrap();
        assert_eq!(
            g.blocks_count % BLOCKS_PER_GROUP,
            (32768 + 100) * 16 % BLOCKS_PER_GROUP
        );
        let g = Geometry::for_device((32768 * 20 + 100) * BLOCK_SIZE).unwrap();
        assert_eq!(g.blocks_count, 32768 * 20);
        assert_eq!(g.group_count, 20);
    }

    #[test]
    fn too_small_is_an_error() {
        assert!(matches!(
            Geometry::for_device(4 << 20),
            Err(GeometryError::TooSmall { .. })
        ));
        assert!(Geometry::for_device(8 << 20).is_ok());
    }
}
