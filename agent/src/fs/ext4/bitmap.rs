//! Block and inode bitmaps of initialised groups and their crc32c checksums
//! (`bg_*_bitmap_csum`: crc32c(fs_seed, the bitmap's bytes)).

use super::checksum::crc32c;
use super::geometry::{BLOCKS_PER_GROUP, BLOCK_SIZE};

fn set_range(bits: &mut [u8], start: u64, end: u64) {
    let mut i = start;
    while i < end && !i.is_multiple_of(8) {
        bits[(i / 8) as usize] |= 1 << (i % 8);
        i += 1;
    }
    while i + 8 <= end {
        bits[(i / 8) as usize] = 0xFF;
        i += 8;
    }
    while i < end {
        bits[(i / 8) as usize] |= 1 << (i % 8);
        i += 1;
    }
}

/// A block bitmap with `used` ranges (relative to the group start) set, and the
/// bits past a short last group's `group_len` set as padding.
pub fn block_bitmap(used: &[(u64, u64)], group_len: u64) -> Vec<u8> {
    let mut bits = vec![0u8; BLOCK_SIZE as usize];
    fill_block_bitmap(&mut bits, used, group_len);
    bits
}

/// [`block_bitmap`] into a zeroed block-sized buffer.
pub fn fill_block_bitmap(bits: &mut [u8], used: &[(u64, u64)], group_len: u64) {
    for &(s, e) in used {
        set_range(bits, s, e);
    }
    set_range(bits, group_len, BLOCKS_PER_GROUP);
}

/// An inode bitmap with the first `used` inodes set and the padding past
/// `inodes_per_group` set, as mke2fs writes it.
pub fn inode_bitmap(used: u32, inodes_per_group: u32) -> Vec<u8> {
    let mut bits = vec![0u8; BLOCK_SIZE as usize];
    set_range(&mut bits, 0, u64::from(used));
    set_range(&mut bits, u64::from(inodes_per_group), BLOCK_SIZE * 8);
    bits
}

/// Checksum of the first `bytes` bytes of a bitmap block.
pub fn checksum(bitmap: &[u8], bytes: usize, fs_seed: u32) -> u32 {
    crc32c(fs_seed, &bitmap[..bytes])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_bits() {
        let b = block_bitmap(&[(0, 3), (10, 18)], 32768);
        assert_eq!(b[0], 0b0000_0111);
        assert_eq!(b[1], 0b1111_1100);
        assert_eq!(b[2], 0b0000_0011);
        assert!(b[3..].iter().all(|&x| x == 0));
        let short = block_bitmap(&[], 20);
        assert_eq!(short[2], 0b1111_0000);
        assert!(short[3..].iter().all(|&x| x == 0xFF));
    }

    #[test]
    fn inode_bits_and_padding() {
        let b = inode_bitmap(11, 8192);
        assert_eq!((b[0], b[1], b[2]), (0xFF, 0b0000_0111, 0));
        assert!(b[1024..].iter().all(|&x| x == 0xFF));
        assert!(b[2..1024].iter().all(|&x| x == 0));
    }
}
