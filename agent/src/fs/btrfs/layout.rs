//! Where everything goes on a single device: the three chunks (system,
//! metadata, data), their stripes, the tree blocks inside them and the
//! superblock copies.
//!
//! Sizes follow btrfs-progs 6.2's chunk allocator for a single device:
//! - system: 8 MiB per stripe (4 MiB when single);
//! - metadata: 10 % of the filesystem split over its stripes, rounded down to
//!   the 64 KiB stripe length, at least 32 MiB and at most 256 MiB per stripe
//!   (1 GiB above 50 GiB) — mkfs.btrfs 6.2 makes 32 MiB on 256 MiB,
//!   51.19 MiB on 1 GiB and 1 GiB on 64 GiB and 2 TiB, all DUP;
//! - data: 8 MiB, the kernel allocates more as files are written.
//!
//! Stripes are laid out one after another from 1 MiB (the first MiB holds
//! the boot area and the primary superblock). Each chunk's logical address is
//! its first stripe's physical offset. mkfs.btrfs first builds its trees in
//! temporary chunks and leaves their 12 MiB unused after deleting them; we
//! write the final chunks directly, so our chunks start at 1 MiB.
//!
//! Invariants: stripes do not overlap each other or the first MiB; no tree
//! block lies in a 64 KiB superblock stripe (the copy at 64 MiB falls inside
//! the metadata chunk's stripes on most sizes).

use crate::fs::BtrfsProfile;

pub const NODESIZE: u64 = 16 * 1024;
pub const SECTORSIZE: u64 = 4096;
pub const STRIPE_LEN: u64 = 64 * 1024;
/// The device range no chunk uses (BTRFS_DEVICE_RANGE_RESERVED).
pub const RESERVED: u64 = 1 << 20;
/// Superblock copies: 64 KiB, 64 MiB, 256 GiB, where they fit.
pub const SUPER_MIRRORS: [u64; 3] = [64 << 10, 64 << 20, 256 << 30];
pub const SUPER_SIZE: u64 = 4096;

// Block group type and profile bits (BTRFS_BLOCK_GROUP_*).
pub const BG_DATA: u64 = 1 << 0;
pub const BG_SYSTEM: u64 = 1 << 1;
pub const BG_METADATA: u64 = 1 << 2;
pub const BG_DUP: u64 = 1 << 5;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The layout cannot be made on the device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("The device has {size} bytes, btrfs with these profiles needs at least {need}")]
    TooSmall { size: u64, need: u64 },
}

/// One chunk (and its block group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub logical: u64,
    pub length: u64,
    /// Type and profile bits.
    pub flags: u64,
    /// Physical offset of each stripe (each `length` bytes long).
    pub stripes: Vec<u64>,
}

impl Chunk {
    /// Bytes the chunk takes on the device.
    pub fn device_bytes(&self) -> u64 {
        self.length * self.stripes.len() as u64
    }

    /// Physical offsets of the copies of logical `addr`.
    pub fn physical(&self, addr: u64) -> impl Iterator<Item = u64> + '_ {
        let rel = addr - self.logical;
        self.stripes.iter().map(move |s| s + rel)
    }

    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.logical && addr < self.logical + self.length
    }
}

/// The whole placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The filesystem size: the device size rounded down to the sector size.
    pub total_bytes: u64,
    pub system: Chunk,
    pub metadata: Chunk,
    pub data: Chunk,
}

fn stripes(profile: BtrfsProfile) -> u64 {
    match profile {
        BtrfsProfile::Single => 1,
        BtrfsProfile::Dup => 2,
    }
}

fn profile_bit(profile: BtrfsProfile) -> u64 {
    match profile {
        BtrfsProfile::Single => 0,
        BtrfsProfile::Dup => BG_DUP,
    }
}

/// Per-stripe size of the metadata chunk on a filesystem of `total` bytes.
pub fn metadata_stripe_size(total: u64, profile: BtrfsProfile) -> u64 {
    let cap = if total > 50 * GIB { GIB } else { 256 * MIB };
    let share = total / 10 / stripes(profile) / STRIPE_LEN * STRIPE_LEN;
    share.clamp(32 * MIB, cap)
}

impl Layout {
    /// Place the chunks on a device of `device_size` bytes.
    pub fn plan(
        device_size: u64,
        metadata: BtrfsProfile,
        data: BtrfsProfile,
    ) -> Result<Layout, LayoutError> {
        let total = device_size / SECTORSIZE * SECTORSIZE;
        let system_size = match metadata {
            BtrfsProfile::Single => 4 * MIB,
            BtrfsProfile::Dup => 8 * MIB,
        };
        let specs = [
            (
                BG_SYSTEM | profile_bit(metadata),
                system_size,
                stripes(metadata),
            ),
            (
                BG_METADATA | profile_bit(metadata),
                metadata_stripe_size(total, metadata),
                stripes(metadata),
            ),
            (BG_DATA | profile_bit(data), 8 * MIB, stripes(data)),
        ];
        let need = RESERVED + specs.iter().map(|(_, l, n)| l * n).sum::<u64>();
        if total < need {
            return Err(LayoutError::TooSmall {
                size: device_size,
                need,
            });
        }
        let mut cursor = RESERVED;
        let mut place = |(flags, length, n): (u64, u64, u64)| {
            let logical = cursor;
            cursor += length * n;
            Chunk {
                logical,
                length,
                flags,
                stripes: (0..n).map(|i| logical + i * length).collect(),
            }
        };
        let system = place(specs[0]);
        let metadata = place(specs[1]);
        let data = place(specs[2]);
        Ok(Layout {
            total_bytes: total,
            system,
            metadata,
            data,
        })
    }

    pub fn chunks(&self) -> [&Chunk; 3] {
        [&self.system, &self.metadata, &self.data]
    }

    /// Device bytes in chunks (the device item's `bytes_used`).
    pub fn device_bytes_used(&self) -> u64 {
        self.chunks().iter().map(|c| c.device_bytes()).sum()
    }

    /// The superblock copies that fit on the filesystem.
    pub fn super_mirrors(&self) -> Vec<u64> {
        SUPER_MIRRORS
            .iter()
            .copied()
            .filter(|&m| m + SUPER_SIZE <= self.total_bytes)
            .collect()
    }

    /// `count` tree blocks in `chunk`, from its start, skipping any block one of
    /// whose copies would touch a superblock stripe.
    pub fn tree_blocks(&self, chunk: &Chunk, count: usize) -> Vec<u64> {
        let hits_super = |addr: u64| {
            chunk.physical(addr).any(|p| {
                SUPER_MIRRORS.iter().any(|&m| {
                    let s = m / STRIPE_LEN * STRIPE_LEN;
                    p < s + STRIPE_LEN && s < p + NODESIZE
                })
            })
        };
        (0..)
            .map(|i| chunk.logical + i * NODESIZE)
            .take_while(|&a| a + NODESIZE <= chunk.logical + chunk.length)
            .filter(|&a| !hits_super(a))
            .take(count)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BtrfsProfile::{Dup, Single};

    #[test]
    fn metadata_sizes_match_mkfs_6_2() {
        // Per-stripe sizes mkfs.btrfs 6.2 prints for DUP metadata.
        assert_eq!(metadata_stripe_size(256 * MIB, Dup), 32 * MIB);
        assert_eq!(metadata_stripe_size(GIB, Dup), 53_673_984); // 51.19 MiB
        assert_eq!(metadata_stripe_size(2 * GIB, Dup), 107_347_968);
        assert_eq!(metadata_stripe_size(10 * GIB, Dup), 256 * MIB);
        assert_eq!(metadata_stripe_size(64 * GIB, Dup), GIB);
        assert_eq!(metadata_stripe_size(2 << 40, Dup), GIB);
    }

    #[test]
    fn default_layout_on_one_gib() {
        let l = Layout::plan(GIB, Dup, Single).unwrap();
        assert_eq!(l.system.stripes, [MIB, 9 * MIB]);
        assert_eq!(l.system.flags, BG_SYSTEM | BG_DUP);
        assert_eq!(l.metadata.logical, 17 * MIB);
        assert_eq!(l.metadata.stripes, [17 * MIB, 17 * MIB + 53_673_984]);
        assert_eq!(l.data.flags, BG_DATA);
        assert_eq!(l.data.stripes, [17 * MIB + 2 * 53_673_984]);
        assert_eq!(l.device_bytes_used(), 16 * MIB + 2 * 53_673_984 + 8 * MIB);
        assert_eq!(l.super_mirrors(), [64 << 10, 64 << 20]);
    }

    #[test]
    fn super_mirrors_by_size() {
        let l = Layout::plan(2 << 40, Dup, Single).unwrap();
        assert_eq!(l.super_mirrors(), SUPER_MIRRORS);
        let l = Layout::plan(64 * MIB, Single, Single).unwrap();
        assert_eq!(l.super_mirrors(), [64 << 10]);
    }

    #[test]
    fn tree_blocks_avoid_superblock_stripes() {
        // Metadata stripe 1 starting exactly at 64 MiB: its first 64 KiB holds
        // the superblock copy, so the first four blocks are skipped.
        let l = Layout {
            total_bytes: GIB,
            system: Chunk {
                logical: MIB,
                length: 8 * MIB,
                flags: BG_SYSTEM,
                stripes: vec![MIB],
            },
            metadata: Chunk {
                logical: 32 * MIB,
                length: 32 * MIB,
                flags: BG_METADATA | BG_DUP,
                stripes: vec![32 * MIB, 64 * MIB],
            },
            data: Chunk {
                logical: 96 * MIB,
                length: 8 * MIB,
                flags: BG_DATA,
                stripes: vec![96 * MIB],
            },
        };
        let blocks = l.tree_blocks(&l.metadata, 2);
        assert_eq!(
            blocks,
            [32 * MIB + STRIPE_LEN, 32 * MIB + STRIPE_LEN + NODESIZE]
        );
    }

    #[test]
    fn too_small_is_an_error() {
        assert_eq!(
            Layout::plan(80 * MIB, Dup, Single),
            Err(LayoutError::TooSmall {
                size: 80 * MIB,
                need: MIB + 16 * MIB + 64 * MIB + 8 * MIB
            })
        );
    }
}
