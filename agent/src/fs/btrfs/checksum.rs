//! The four checksums btrfs can use for its blocks (`csum_type` in the
//! superblock) and the directory-name hash. A block's checksum covers every
//! byte after its 32-byte checksum field and is stored at its start, zero
//! padded; crc32c and xxhash64 are stored little-endian.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use sha2::Sha256;

use crate::fs::BtrfsCsum;

/// Bytes of the checksum field at the start of every block.
pub const CSUM_FIELD: usize = 32;

impl BtrfsCsum {
    /// `csum_type` in the superblock (BTRFS_CSUM_TYPE_*).
    pub fn type_code(self) -> u16 {
        match self {
            BtrfsCsum::Crc32c => 0,
            BtrfsCsum::Xxhash => 1,
            BtrfsCsum::Sha256 => 2,
            BtrfsCsum::Blake2 => 3,
        }
    }

    /// Bytes of the checksum itself.
    pub fn size(self) -> usize {
        match self {
            BtrfsCsum::Crc32c => 4,
            BtrfsCsum::Xxhash => 8,
            BtrfsCsum::Sha256 | BtrfsCsum::Blake2 => 32,
        }
    }

    /// The name `btrfs inspect-internal dump-super` prints.
    pub fn name(self) -> &'static str {
        match self {
            BtrfsCsum::Crc32c => "crc32c",
            BtrfsCsum::Xxhash => "xxhash64",
            BtrfsCsum::Sha256 => "sha256",
            BtrfsCsum::Blake2 => "blake2",
        }
    }

    /// The checksum of `data` as stored: `size()` bytes, then zeros.
    pub fn compute(self, data: &[u8]) -> [u8; CSUM_FIELD] {
        let mut out = [0u8; CSUM_FIELD];
        match self {
            BtrfsCsum::Crc32c => out[..4].copy_from_slice(&crc32c::crc32c(data).to_le_bytes()),
            BtrfsCsum::Xxhash => {
                out[..8].copy_from_slice(&twox_hash::XxHash64::oneshot(0, data).to_le_bytes())
            }
            BtrfsCsum::Sha256 => out.copy_from_slice(&Sha256::digest(data)),
            BtrfsCsum::Blake2 => out.copy_from_slice(&Blake2b::<U32>::digest(data)),
        }
        out
    }
}

/// Fill in the checksum of a block: over `block[32..]`, into `block[..32]`.
pub fn seal(csum: BtrfsCsum, block: &mut [u8]) {
    let sum = csum.compute(&block[CSUM_FIELD..]);
    block[..CSUM_FIELD].copy_from_slice(&sum);
}

/// The hash of a directory entry's name (the DIR_ITEM key offset): the
/// kernel's `crc32c(~1, name)`, without the final inversion.
pub fn name_hash(name: &[u8]) -> u64 {
    // crc32c_append(c, d) == !raw(!c, d); raw(!1, d) == !crc32c_append(1, d).
    u64::from(!crc32c::crc32c_append(1, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_of_each_algorithm() {
        // The standard check input "123456789".
        let d = b"123456789";
        assert_eq!(
            BtrfsCsum::Crc32c.compute(d)[..4],
            0xe306_9283u32.to_le_bytes()
        );
        // XXH64 of the empty input, seed 0 (the xxHash reference value).
        assert_eq!(
            BtrfsCsum::Xxhash.compute(b"")[..8],
            0xef46_db37_51d8_e999u64.to_le_bytes()[..]
        );
        let sha = BtrfsCsum::Sha256.compute(b"abc");
        assert_eq!(sha[..4], [0xba, 0x78, 0x16, 0xbf]);
        // BLAKE2b-256 of the empty string.
        let b2 = BtrfsCsum::Blake2.compute(b"");
        assert_eq!(b2[..4], [0x0e, 0x57, 0x51, 0xc0]);
        assert!(BtrfsCsum::Crc32c.compute(d)[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn name_hash_of_default_matches_mkfs() {
        // mkfs.btrfs 6.2's root-tree DIR_ITEM for "default" has key offset 2378154706.
        assert_eq!(name_hash(b"default"), 2_378_154_706);
    }

    #[test]
    fn sealed_block_checks_out() {
        let mut block = vec![0x5au8; 4096];
        seal(BtrfsCsum::Crc32c, &mut block);
        assert_eq!(block[..4], crc32c::crc32c(&block[32..]).to_le_bytes());
        assert!(block[4..32].iter().all(|&b| b == 0));
    }
}
