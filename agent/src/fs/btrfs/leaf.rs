//! A tree leaf (level-0 node): the 101-byte `btrfs_header`, then the item
//! headers (key, data offset, data size) in key order from the front, and the
//! item data packed from the end of the block backwards — the order mkfs and
//! the kernel use. Invariants checked by [`Leaf::encode`]: keys strictly
//! increasing, everything fits in one node.

use super::checksum::{seal, CSUM_FIELD};
use super::key::Key;
use crate::fs::BtrfsCsum;

pub const HEADER_SIZE: usize = 101;
pub const ITEM_SIZE: usize = Key::SIZE + 8;
/// BTRFS_HEADER_FLAG_WRITTEN.
const FLAG_WRITTEN: u64 = 1;
/// BTRFS_MIXED_BACKREF_REV in the top byte of the header flags.
const MIXED_BACKREF_REV: u64 = 1 << 56;

/// Errors of leaf encoding (mkfs's own trees are small: these mean a bug).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeafError {
    #[error("Two items of tree {owner} have the key {key:?}")]
    DuplicateKey { owner: u64, key: Key },
    #[error("The items of tree {owner} need {need} bytes, a node holds {have}")]
    TooBig {
        owner: u64,
        need: usize,
        have: usize,
    },
}

/// Where a leaf sits and whom it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub fsid: [u8; 16],
    pub chunk_tree_uuid: [u8; 16],
    pub bytenr: u64,
    pub generation: u64,
    pub owner: u64,
}

/// The items of one leaf, in any order until encoded.
#[derive(Debug, Clone, Default)]
pub struct Leaf {
    items: Vec<(Key, Vec<u8>)>,
}

impl Leaf {
    pub fn new() -> Leaf {
        Leaf::default()
    }

    pub fn push(&mut self, key: Key, data: Vec<u8>) {
        self.items.push((key, data));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The sealed node of `nodesize` bytes.
    pub fn encode(
        &mut self,
        hdr: &Header,
        nodesize: usize,
        csum: BtrfsCsum,
    ) -> Result<Vec<u8>, LeafError> {
        self.items.sort_by_key(|(k, _)| *k);
        if let Some(w) = self.items.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(LeafError::DuplicateKey {
                owner: hdr.owner,
                key: w[0].0,
            });
        }
        let need = HEADER_SIZE
            + self
                .items
                .iter()
                .map(|(_, d)| ITEM_SIZE + d.len())
                .sum::<usize>();
        if need > nodesize {
            return Err(LeafError::TooBig {
                owner: hdr.owner,
                need,
                have: nodesize,
            });
        }
        let mut b = vec![0u8; nodesize];
        b[CSUM_FIELD..48].copy_from_slice(&hdr.fsid);
        b[48..56].copy_from_slice(&hdr.bytenr.to_le_bytes());
        b[56..64].copy_from_slice(&(FLAG_WRITTEN | MIXED_BACKREF_REV).to_le_bytes());
        b[64..80].copy_from_slice(&hdr.chunk_tree_uuid);
        b[80..88].copy_from_slice(&hdr.generation.to_le_bytes());
        b[88..96].copy_from_slice(&hdr.owner.to_le_bytes());
        b[96..100].copy_from_slice(&(self.items.len() as u32).to_le_bytes());
        b[100] = 0; // level
                    // Data offsets count from the end of the header.
        let mut data_end = nodesize - HEADER_SIZE;
        for (i, (key, data)) in self.items.iter().enumerate() {
            let at = HEADER_SIZE + i * ITEM_SIZE;
            data_end -= data.len();
            key.encode(&mut b[at..at + Key::SIZE]);
            b[at + 17..at + 21].copy_from_slice(&(data_end as u32).to_le_bytes());
            b[at + 21..at + 25].copy_from_slice(&(data.len() as u32).to_le_bytes());
            let d = HEADER_SIZE + data_end;
            b[d..d + data.len()].copy_from_slice(data);
        }
        seal(csum, &mut b);
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            fsid: [1; 16],
            chunk_tree_uuid: [2; 16],
            bytenr: 30_408_704,
            generation: 1,
            owner: 2,
        }
    }

    #[test]
    fn items_sorted_and_packed_from_the_end() {
        let mut leaf = Leaf::new();
        leaf.push(Key::new(9, 1, 0), vec![0xbb; 8]);
        leaf.push(Key::new(3, 1, 0), vec![0xaa; 24]);
        let b = leaf.encode(&header(), 16384, BtrfsCsum::Crc32c).unwrap();
        assert_eq!(b[..4], crc32c::crc32c(&b[32..]).to_le_bytes());
        assert_eq!(u32::from_le_bytes(b[96..100].try_into().unwrap()), 2);
        // First item: the smaller key, data right at the end (itemoff 16259, as
        // dump-tree prints for a 24-byte first item).
        assert_eq!(u64::from_le_bytes(b[101..109].try_into().unwrap()), 3);
        assert_eq!(u32::from_le_bytes(b[118..122].try_into().unwrap()), 16259);
        assert_eq!(b[16384 - 24..], [0xaa; 24]);
        assert_eq!(u32::from_le_bytes(b[143..147].try_into().unwrap()), 16251);
        // Header flags: WRITTEN, backref revision 1.
        assert_eq!(b[56], 1);
        assert_eq!(b[63], 1);
    }

    #[test]
    fn duplicate_keys_and_overflow_are_errors() {
        let mut leaf = Leaf::new();
        leaf.push(Key::new(3, 1, 0), vec![]);
        leaf.push(Key::new(3, 1, 0), vec![]);
        assert!(matches!(
            leaf.encode(&header(), 16384, BtrfsCsum::Crc32c),
            Err(LeafError::DuplicateKey { .. })
        ));
        let mut big = Leaf::new();
        big.push(Key::new(1, 1, 0), vec![0; 5000]);
        assert!(matches!(
            big.encode(&header(), 4096, BtrfsCsum::Crc32c),
            Err(LeafError::TooBig { .. })
        ));
    }
}
