//! The resize inode (inode 7, resize_inode feature): a block-mapped file whose
//! double-indirect block lists the primary reserved GDT blocks, each of which
//! in turn lists its backup copies in the backup groups — how the kernel finds
//! room for new group descriptors when the filesystem grows online
//! (`ext2fs_create_resize_inode` of e2fsprogs builds the same).

use super::geometry::{Geometry, ADDR_PER_BLOCK, BLOCK_SIZE};
use super::inode::Inode;

/// `i_block` index of the double-indirect pointer.
const DIND_BLOCK: usize = 13;
/// Direct blocks of a block-mapped inode.
const NDIR_BLOCKS: u64 = 12;

/// The resize inode and its double-indirect block.
pub fn inode_and_dind(geo: &Geometry, dind: u64, now: u32) -> (Inode, Vec<u8>) {
    let rsv = u64::from(geo.reserved_gdt_blocks);
    let desc = u64::from(geo.desc_blocks);
    let mut dind_block = vec![0u8; BLOCK_SIZE as usize];
    for i in 0..rsv {
        let slot = ((desc + i) % ADDR_PER_BLOCK) as usize * 4;
        dind_block[slot..slot + 4].copy_from_slice(&((1 + desc + i) as u32).to_le_bytes());
    }
    let mut i_block = [0u8; 60];
    i_block[DIND_BLOCK * 4..DIND_BLOCK * 4 + 4].copy_from_slice(&(dind as u32).to_le_bytes());
    let blocks = 1 + rsv * (1 + geo.backup_groups().count() as u64);
    let inode = Inode {
        mode: 0o100600,
        links: 1,
        // The largest size a double-indirect map reaches, as mke2fs records it.
        size: (ADDR_PER_BLOCK * ADDR_PER_BLOCK + ADDR_PER_BLOCK + NDIR_BLOCKS) * BLOCK_SIZE,
        sectors: blocks * (BLOCK_SIZE / 512),
        flags: 0,
        time: now,
        i_block,
        extra_isize: super::superblock::EXTRA_ISIZE,
    };
    (inode, dind_block)
}

/// First primary reserved GDT block.
pub fn first_reserved(geo: &Geometry) -> u64 {
    1 + u64::from(geo.desc_blocks)
}

/// Primary reserved GDT block `i` (into a zeroed buffer): as an indirect block,
/// the addresses of its copies in the backup groups `backups`.
pub fn fill_reserved(block: &mut [u8], i: u64, first_reserved: u64, backups: &[u64]) {
    for (j, &group_start) in backups.iter().enumerate() {
        let copy = group_start + first_reserved + i;
        block[j * 4..j * 4 + 4].copy_from_slice(&(copy as u32).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 GiB: 127 reserved blocks at 2..=128 with backups in groups 1, 3, 5, 7,
    /// as `debugfs -R 'stat <7>'` shows for a mke2fs image (Blockcount 5088).
    #[test]
    fn one_gib_resize_inode() {
        let geo = Geometry::for_device(1 << 30).unwrap();
        let (inode, dind) = inode_and_dind(&geo, 4246, 0);
        assert_eq!(inode.size, 4_299_210_752);
        assert_eq!(inode.sectors, 5088);
        assert_eq!(&inode.i_block[52..56], &4246u32.to_le_bytes());
        // Slot desc_blocks (1) holds the first reserved block, 2.
        assert_eq!(&dind[4..8], &2u32.to_le_bytes());
        assert_eq!(&dind[127 * 4..128 * 4], &128u32.to_le_bytes());
        assert_eq!(first_reserved(&geo), 2);
        let backups: Vec<u64> = geo
            .backup_groups()
            .map(|g| geo.group_first_block(g))
            .collect();
        let mut rsv = vec![0u8; 4096];
        fill_reserved(&mut rsv, 0, 2, &backups);
        let first: Vec<u32> = rsv[..16]
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(first, vec![32770, 98306, 163842, 229378]);
        assert!(rsv[16..4096].iter().all(|&b| b == 0));
    }
}
