//! 64-byte group descriptors (64bit feature) and their metadata_csum checksum:
//! the low 16 bits of crc32c(seed, le32 group, descriptor with bg_checksum zeroed).

use super::checksum::crc32c;
use super::geometry::DESC_SIZE;

pub const INODE_UNINIT: u16 = 0x1;
pub const BLOCK_UNINIT: u16 = 0x2;
pub const ITABLE_ZEROED: u16 = 0x4;

const CHECKSUM_OFFSET: usize = 0x1E;

/// One group's descriptor, in host values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupDesc {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub free_blocks: u32,
    pub free_inodes: u32,
    pub used_dirs: u32,
    pub flags: u16,
    pub block_bitmap_csum: u32,
    pub inode_bitmap_csum: u32,
    pub itable_unused: u32,
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

impl GroupDesc {
    /// The on-disk bytes of group `group`'s descriptor, checksum included.
    pub fn encode(&self, group: u32, fs_seed: u32) -> [u8; DESC_SIZE as usize] {
        let mut b = [0u8; DESC_SIZE as usize];
        put32(&mut b, 0x00, self.block_bitmap as u32);
        put32(&mut b, 0x04, self.inode_bitmap as u32);
        put32(&mut b, 0x08, self.inode_table as u32);
        put16(&mut b, 0x0C, self.free_blocks as u16);
        put16(&mut b, 0x0E, self.free_inodes as u16);
        put16(&mut b, 0x10, self.used_dirs as u16);
        put16(&mut b, 0x12, self.flags);
        put16(&mut b, 0x18, self.block_bitmap_csum as u16);
        put16(&mut b, 0x1A, self.inode_bitmap_csum as u16);
        put16(&mut b, 0x1C, self.itable_unused as u16);
        put32(&mut b, 0x20, (self.block_bitmap >> 32) as u32);
        put32(&mut b, 0x24, (self.inode_bitmap >> 32) as u32);
        put32(&mut b, 0x28, (self.inode_table >> 32) as u32);
        put16(&mut b, 0x2C, (self.free_blocks >> 16) as u16);
        put16(&mut b, 0x2E, (self.free_inodes >> 16) as u16);
        put16(&mut b, 0x30, (self.used_dirs >> 16) as u16);
        put16(&mut b, 0x32, (self.itable_unused >> 16) as u16);
        put16(&mut b, 0x38, (self.block_bitmap_csum >> 16) as u16);
        put16(&mut b, 0x3A, (self.inode_bitmap_csum >> 16) as u16);
        let csum = checksum(&b, group, fs_seed);
        put16(&mut b, CHECKSUM_OFFSET, csum);
        b
    }
}

/// bg_checksum of an encoded descriptor (its checksum field is treated as zero).
pub fn checksum(desc: &[u8; DESC_SIZE as usize], group: u32, fs_seed: u32) -> u16 {
    let mut c = crc32c(fs_seed, &group.to_le_bytes());
    c = crc32c(c, &desc[..CHECKSUM_OFFSET]);
    c = crc32c(c, &[0, 0]);
    c = crc32c(c, &desc[CHECKSUM_OFFSET + 2..]);
    (c & 0xFFFF) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_fields_and_high_halves() {
        let d = GroupDesc {
            block_bitmap: 0x1_0000_0002,
            inode_bitmap: 3,
            inode_table: 4,
            free_blocks: 0x1_0005,
            free_inodes: 6,
            used_dirs: 2,
            flags: INODE_UNINIT | ITABLE_ZEROED,
            block_bitmap_csum: 0xAABB_CCDD,
            inode_bitmap_csum: 0x1122_3344,
            itable_unused: 9,
        };
        let b = d.encode(5, 0x1234);
        assert_eq!(&b[0..4], &2u32.to_le_bytes());
        assert_eq!(&b[0x20..0x24], &1u32.to_le_bytes());
        assert_eq!(&b[0x0C..0x0E], &5u16.to_le_bytes());
        assert_eq!(&b[0x2C..0x2E], &1u16.to_le_bytes());
        assert_eq!(&b[0x12..0x14], &5u16.to_le_bytes());
        assert_eq!(&b[0x18..0x1A], &0xCCDDu16.to_le_bytes());
        assert_eq!(&b[0x38..0x3A], &0xAABBu16.to_le_bytes());
        assert_eq!(
            u16::from_le_bytes([b[0x1E], b[0x1F]]),
            checksum(&b, 5, 0x1234)
        );
        // The group number is part of the checksum.
        assert_ne!(checksum(&b, 5, 0x1234), checksum(&b, 6, 0x1234));
    }
}
