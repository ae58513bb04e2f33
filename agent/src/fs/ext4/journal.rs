//! The JBD2 journal superblock (big-endian, v2, no features: the kernel turns on
//! csum v3 at mount when the filesystem has metadata_csum), as mke2fs writes it
//! for an internal journal. The rest of the journal is left as it is (zeroed by
//! the caller when the device does not read back zeros).

use super::geometry::BLOCK_SIZE;

pub const JBD2_MAGIC: u32 = 0xC03B_3998;
/// h_blocktype of a v2 superblock.
pub const SUPERBLOCK_V2: u32 = 4;

/// The first block of a journal of `blocks` blocks for the filesystem `uuid`.
pub fn superblock(blocks: u32, uuid: &[u8; 16]) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK_SIZE as usize];
    let mut put = |off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_be_bytes());
    put(0x00, JBD2_MAGIC);
    put(0x04, SUPERBLOCK_V2);
    put(0x08, 0); // h_sequence
    put(0x0C, BLOCK_SIZE as u32); // s_blocksize
    put(0x10, blocks); // s_maxlen
    put(0x14, 1); // s_first
    put(0x18, 1); // s_sequence
    put(0x1C, 0); // s_start: clean, nothing to replay
    put(0x40, 1); // s_nr_users
    b[0x30..0x40].copy_from_slice(uuid);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 0x44 bytes match those of a mke2fs 1.47 journal of 1024 blocks.
    #[test]
    fn matches_mke2fs_bytes() {
        let uuid = [
            0x37, 0x44, 0x73, 0xa4, 0x4e, 0xc0, 0x44, 0xa8, 0x84, 0xfd, 0x71, 0x4f, 0x9e, 0xe6,
            0x91, 0x57,
        ];
        let b = superblock(1024, &uuid);
        let want: [u8; 0x20] = [
            0xc0, 0x3b, 0x39, 0x98, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 4, 0, 0, 0, 0, 1,
            0, 0, 0, 1, 0, 0, 0, 0,
        ];
        assert_eq!(&b[..0x20], &want);
        assert_eq!(&b[0x30..0x40], &uuid);
        assert_eq!(&b[0x40..0x44], &[0, 0, 0, 1]);
        assert!(b[0x44..].iter().all(|&x| x == 0));
    }
}
