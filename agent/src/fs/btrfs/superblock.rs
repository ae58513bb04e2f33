//! The 4096-byte superblock (`btrfs_super_block`), written at 64 KiB and at
//! each copy that fits (64 MiB, 256 GiB) with `bytenr` set to its own offset.
//! It carries the system chunk in `sys_chunk_array` (the kernel needs it to
//! read the chunk tree) and the current roots in backup slot 0.

use super::checksum::seal;
use super::key::{Key, CHUNK_ITEM, FIRST_CHUNK_TREE};
use crate::fs::BtrfsCsum;

pub const SUPER_SIZE: usize = 4096;
pub const MAGIC: &[u8; 8] = b"_BHRfS_M";
pub const LABEL_SIZE: usize = 256;
const SYS_CHUNK_ARRAY: usize = 811;
const SYS_CHUNK_ARRAY_SIZE: usize = 2048;
const BACKUP_ROOTS: usize = SYS_CHUNK_ARRAY + SYS_CHUNK_ARRAY_SIZE;

// Feature flags mkfs.btrfs 6.2 sets by default.
pub const COMPAT_RO_FREE_SPACE_TREE: u64 = 1 << 0;
pub const COMPAT_RO_FREE_SPACE_TREE_VALID: u64 = 1 << 1;
pub const INCOMPAT_MIXED_BACKREF: u64 = 1 << 0;
pub const INCOMPAT_EXTENDED_IREF: u64 = 1 << 6;
pub const INCOMPAT_SKINNY_METADATA: u64 = 1 << 8;
pub const INCOMPAT_NO_HOLES: u64 = 1 << 9;

/// Tree roots (all leaves, so level 0) the superblock points at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Roots {
    pub root: u64,
    pub chunk: u64,
    pub extent: u64,
    pub fs: u64,
    pub dev: u64,
    pub csum: u64,
}

/// What goes into the superblock.
#[derive(Debug, Clone)]
pub struct Superblock {
    pub fsid: [u8; 16],
    pub generation: u64,
    pub roots: Roots,
    pub total_bytes: u64,
    pub bytes_used: u64,
    pub sectorsize: u32,
    pub nodesize: u32,
    pub csum: BtrfsCsum,
    /// The encoded device item (98 bytes).
    pub dev_item: Vec<u8>,
    pub label: [u8; LABEL_SIZE],
    /// The system chunk's logical address and encoded chunk item.
    pub sys_chunk: (u64, Vec<u8>),
}

impl Superblock {
    /// The sealed copy for offset `bytenr`.
    pub fn encode(&self, bytenr: u64) -> Vec<u8> {
        let mut b = vec![0u8; SUPER_SIZE];
        let put = |b: &mut [u8], at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(&mut b, 32, &self.fsid);
        put(&mut b, 48, &bytenr.to_le_bytes());
        put(&mut b, 56, &1u64.to_le_bytes()); // flags: WRITTEN, as mkfs
        put(&mut b, 64, MAGIC);
        put(&mut b, 72, &self.generation.to_le_bytes());
        put(&mut b, 80, &self.roots.root.to_le_bytes());
        put(&mut b, 88, &self.roots.chunk.to_le_bytes());
        put(&mut b, 112, &self.total_bytes.to_le_bytes());
        put(&mut b, 120, &self.bytes_used.to_le_bytes());
        put(&mut b, 128, &super::key::ROOT_TREE_DIR.to_le_bytes());
        put(&mut b, 136, &1u64.to_le_bytes()); // num_devices
        put(&mut b, 144, &self.sectorsize.to_le_bytes());
        put(&mut b, 148, &self.nodesize.to_le_bytes());
        put(&mut b, 152, &self.nodesize.to_le_bytes()); // leafsize
        put(&mut b, 156, &self.sectorsize.to_le_bytes()); // stripesize
        let (logical, chunk) = &self.sys_chunk;
        let array_len = Key::SIZE + chunk.len();
        put(&mut b, 160, &(array_len as u32).to_le_bytes());
        put(&mut b, 164, &self.generation.to_le_bytes()); // chunk_root_generation
        put(&mut b, 172, &0u64.to_le_bytes()); // compat_flags
        let compat_ro = COMPAT_RO_FREE_SPACE_TREE | COMPAT_RO_FREE_SPACE_TREE_VALID;
        put(&mut b, 180, &compat_ro.to_le_bytes());
        let incompat = INCOMPAT_MIXED_BACKREF
            | INCOMPAT_EXTENDED_IREF
            | INCOMPAT_SKINNY_METADATA
            | INCOMPAT_NO_HOLES;
        put(&mut b, 188, &incompat.to_le_bytes());
        put(&mut b, 196, &self.csum.type_code().to_le_bytes());
        // root_level, chunk_root_level, log_root_level: 0 (leaves).
        put(&mut b, 201, &self.dev_item);
        put(&mut b, 299, &self.label);
        put(&mut b, 555, &0u64.to_le_bytes()); // cache_generation (no v1 cache)
        put(&mut b, 563, &self.generation.to_le_bytes()); // uuid_tree_generation
        let mut key = [0u8; Key::SIZE];
        Key::new(FIRST_CHUNK_TREE, CHUNK_ITEM, *logical).encode(&mut key);
        put(&mut b, SYS_CHUNK_ARRAY, &key);
        put(&mut b, SYS_CHUNK_ARRAY + Key::SIZE, chunk);
        self.put_backup(&mut b[BACKUP_ROOTS..BACKUP_ROOTS + 168]);
        seal(self.csum, &mut b);
        b
    }

    /// Backup slot 0: the current roots, as the kernel fills it on commit.
    fn put_backup(&self, b: &mut [u8]) {
        let g = self.generation;
        let r = &self.roots;
        let words = [
            r.root,
            g,
            r.chunk,
            g,
            r.extent,
            g,
            r.fs,
            g,
            r.dev,
            g,
            r.csum,
            g,
            self.total_bytes,
            self.bytes_used,
            1,
        ];
        for (i, w) in words.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        // Levels (all 0) and padding follow.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_at_their_offsets_and_sealed() {
        let mut label = [0u8; LABEL_SIZE];
        label[..4].copy_from_slice(b"root");
        let sb = Superblock {
            fsid: [7; 16],
            generation: 1,
            roots: Roots {
                root: 0x100_0000,
                chunk: 0x10_0000,
                ..Roots::default()
            },
            total_bytes: 1 << 30,
            bytes_used: 9 * 16384,
            sectorsize: 4096,
            nodesize: 16384,
            csum: BtrfsCsum::Crc32c,
            dev_item: vec![0xd; 98],
            label,
            sys_chunk: (0x10_0000, vec![0xc; 112]),
        };
        let b = sb.encode(64 << 20);
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(&b[64..72], MAGIC);
        assert_eq!(u64_at(48), 64 << 20);
        assert_eq!(u64_at(80), 0x100_0000);
        assert_eq!(u64_at(188), 0x341, "the incompat flags mkfs.btrfs 6.2 sets");
        assert_eq!(u64_at(180), 0x3);
        assert_eq!(u32::from_le_bytes(b[160..164].try_into().unwrap()), 129);
        assert_eq!(&b[299..303], b"root");
        assert_eq!(b[SYS_CHUNK_ARRAY + 8], CHUNK_ITEM);
        assert_eq!(b[..4], crc32c::crc32c(&b[32..]).to_le_bytes());
        // Backup slot 0 names the tree root; the layout ends exactly at 4096.
        assert_eq!(u64_at(BACKUP_ROOTS), 0x100_0000);
        assert_eq!(BACKUP_ROOTS + 4 * 168 + 565, SUPER_SIZE);
    }
}
