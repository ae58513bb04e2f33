//! 256-byte inodes with extent trees (depth 0 in `i_block`, or depth 1 with one
//! leaf block), and their metadata_csum checksums (inode and extent-block tail).

use super::checksum::{crc32c, inode_seed};
use super::geometry::{BLOCK_SIZE, INODE_SIZE};
use super::layout::{Extent, INLINE_EXTENTS, LEAF_EXTENTS};
use super::superblock::EXTRA_ISIZE;

pub const EXTENTS_FL: u32 = 0x80000;
const EXTENT_MAGIC: u16 = 0xF30A;
const I_BLOCK: usize = 0x28;
const CSUM_LO: usize = 0x7C;
const CSUM_HI: usize = 0x82;

/// An inode's contents, in host values.
#[derive(Debug, Clone)]
pub struct Inode {
    pub mode: u16,
    pub links: u16,
    pub size: u64,
    /// 512-byte sectors, as `i_blocks` counts them without HUGE_FILE_FL.
    pub sectors: u64,
    pub flags: u32,
    pub time: u32,
    /// 60 bytes of `i_block`.
    pub i_block: [u8; 60],
    /// `i_extra_isize`: 32 for live inodes, 0 for the untouched reserved ones.
    pub extra_isize: u16,
}

impl Default for Inode {
    fn default() -> Self {
        Inode {
            mode: 0,
            links: 0,
            size: 0,
            sectors: 0,
            flags: 0,
            time: 0,
            i_block: [0; 60],
            extra_isize: 0,
        }
    }
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn extent_header(b: &mut [u8], entries: u16, max: u16, depth: u16) {
    put16(b, 0, EXTENT_MAGIC);
    put16(b, 2, entries);
    put16(b, 4, max);
    put16(b, 6, depth);
}

fn extent_entry(b: &mut [u8], e: &Extent) {
    put32(b, 0, e.logical);
    put16(b, 4, e.len);
    put16(b, 6, (e.start >> 32) as u16);
    put32(b, 8, e.start as u32);
}

/// `i_block` for a tree of depth 0; `extents` must hold at most 4 entries.
pub fn inline_extents(extents: &[Extent]) -> [u8; 60] {
    debug_assert!(extents.len() <= INLINE_EXTENTS);
    let mut ib = [0u8; 60];
    extent_header(&mut ib, extents.len() as u16, INLINE_EXTENTS as u16, 0);
    for (i, e) in extents.iter().enumerate() {
        extent_entry(&mut ib[12 + 12 * i..], e);
    }
    ib
}

/// `i_block` pointing at one leaf block, and that leaf block (checksummed for `ino`).
pub fn leaf_extents(extents: &[Extent], leaf: u64, ino: u32, fs_seed: u32) -> ([u8; 60], Vec<u8>) {
    debug_assert!(extents.len() <= LEAF_EXTENTS);
    let mut ib = [0u8; 60];
    extent_header(&mut ib, 1, INLINE_EXTENTS as u16, 1);
    // ext4_extent_idx: ei_block, ei_leaf_lo, ei_leaf_hi, ei_unused
    put32(&mut ib, 12, 0);
    put32(&mut ib, 16, leaf as u32);
    put16(&mut ib, 20, (leaf >> 32) as u16);
    let mut block = vec![0u8; BLOCK_SIZE as usize];
    extent_header(&mut block, extents.len() as u16, LEAF_EXTENTS as u16, 0);
    for (i, e) in extents.iter().enumerate() {
        extent_entry(&mut block[12 + 12 * i..], e);
    }
    let tail = 12 + 12 * LEAF_EXTENTS;
    let csum = crc32c(inode_seed(fs_seed, ino, 0), &block[..tail]);
    put32(&mut block, tail, csum);
    (ib, block)
}

impl Inode {
    /// The on-disk bytes of inode `ino` (generation 0), checksum included.
    pub fn encode(&self, ino: u32, fs_seed: u32) -> [u8; INODE_SIZE as usize] {
        let mut b = [0u8; INODE_SIZE as usize];
        put16(&mut b, 0x00, self.mode);
        put32(&mut b, 0x04, self.size as u32);
        put32(&mut b, 0x08, self.time); // atime
        put32(&mut b, 0x0C, self.time); // ctime
        put32(&mut b, 0x10, self.time); // mtime
        put16(&mut b, 0x1A, self.links);
        put32(&mut b, 0x1C, self.sectors as u32);
        put32(&mut b, 0x20, self.flags);
        b[I_BLOCK..I_BLOCK + 60].copy_from_slice(&self.i_block);
        put32(&mut b, 0x6C, (self.size >> 32) as u32);
        put16(&mut b, 0x74, (self.sectors >> 32) as u16);
        put16(&mut b, 0x80, self.extra_isize);
        if self.extra_isize >= EXTRA_ISIZE {
            put32(&mut b, 0x90, self.time); // crtime
        }
        let csum = checksum(&b, ino, fs_seed);
        put16(&mut b, CSUM_LO, csum as u16);
        if self.extra_isize >= 4 {
            put16(&mut b, CSUM_HI, (csum >> 16) as u16);
        }
        b
    }
}

/// The inode checksum: crc32c over the inode (generation 0) with both checksum
/// fields zeroed (the high one only when `i_extra_isize` covers it).
pub fn checksum(inode: &[u8; INODE_SIZE as usize], ino: u32, fs_seed: u32) -> u32 {
    let extra = u16::from_le_bytes([inode[0x80], inode[0x81]]);
    let mut c = inode_seed(fs_seed, ino, 0);
    c = crc32c(c, &inode[..CSUM_LO]);
    c = crc32c(c, &[0, 0]);
    if extra >= 4 {
        c = crc32c(c, &inode[CSUM_LO + 2..CSUM_HI]);
        c = crc32c(c, &[0, 0]);
        crc32c(c, &inode[CSUM_HI + 2..])
    } else {
        crc32c(c, &inode[CSUM_LO + 2..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_bytes() {
        let ib = inline_extents(&[Extent {
            logical: 0,
            start: 0x1_0000_0003,
            len: 4,
        }]);
        assert_eq!(&ib[0..8], &[0x0A, 0xF3, 1, 0, 4, 0, 0, 0]);
        assert_eq!(&ib[12..24], &[0, 0, 0, 0, 4, 0, 1, 0, 3, 0, 0, 0]);
    }

    #[test]
    fn leaf_tail_checksum() {
        let ext: Vec<Extent> = (0..8)
            .map(|i| Extent {
                logical: i * 32768,
                start: 1000 + u64::from(i) * 32768,
                len: 32768,
            })
            .collect();
        let (ib, leaf) = leaf_extents(&ext, 77, 8, 0xDEAD_BEEF);
        assert_eq!(&ib[6..8], &[1, 0]); // depth 1
        assert_eq!(&ib[16..20], &77u32.to_le_bytes());
        let tail = 12 + 12 * 340;
        let want = crc32c(inode_seed(0xDEAD_BEEF, 8, 0), &leaf[..tail]);
        assert_eq!(&leaf[tail..tail + 4], &want.to_le_bytes());
    }

    /// The root inode of a real mke2fs 1.47 image (UUID
    /// 374473a4-4ec0-44a8-84fd-714f9ee69157, time 0x6B065152, root block 3)
    /// carries the checksum 0x153805D4.
    #[test]
    fn root_inode_matches_a_mke2fs_image() {
        let uuid = [
            0x37, 0x44, 0x73, 0xa4, 0x4e, 0xc0, 0x44, 0xa8, 0x84, 0xfd, 0x71, 0x4f, 0x9e, 0xe6,
            0x91, 0x57,
        ];
        let root = Inode {
            mode: 0o40755,
            links: 3,
            size: 4096,
            sectors: 8,
            flags: EXTENTS_FL,
            time: 0x6B06_5152,
            i_block: inline_extents(&[Extent {
                logical: 0,
                start: 3,
                len: 1,
            }]),
            extra_isize: 32,
        };
        let b = root.encode(2, super::super::checksum::fs_seed(&uuid));
        assert_eq!(&b[0x7C..0x7E], &[0xd4, 0x05]);
        assert_eq!(&b[0x82..0x84], &[0x38, 0x15]);
    }

    #[test]
    fn checksum_is_stored_in_two_halves() {
        let inode = Inode {
            mode: 0o40755,
            links: 3,
            size: 4096,
            sectors: 8,
            flags: EXTENTS_FL,
            time: 5,
            i_block: [0; 60],
            extra_isize: 32,
        };
        let b = inode.encode(2, 0x1234_5678);
        let lo = u16::from_le_bytes([b[0x7C], b[0x7D]]);
        let hi = u16::from_le_bytes([b[0x82], b[0x83]]);
        assert_eq!(
            (u32::from(hi) << 16) | u32::from(lo),
            checksum(&b, 2, 0x1234_5678)
        );
        // A small (extra_isize 0) inode keeps only the low half.
        let small = Inode {
            extra_isize: 0,
            ..Default::default()
        }
        .encode(3, 1);
        assert_eq!(&small[0x82..0x84], &[0, 0]);
        assert_eq!(
            u32::from(u16::from_le_bytes([small[0x7C], small[0x7D]])),
            checksum(&small, 3, 1) & 0xFFFF
        );
    }
}
