//! The trees mkfs.btrfs 6.2 leaves on a new filesystem, each a single leaf,
//! all of generation 1: root tree (root items, the `default` directory entry),
//! chunk tree (device item, chunk items; in the system chunk), extent tree
//! (block groups, one skinny METADATA_ITEM per tree block), device tree (one
//! DEV_EXTENT per stripe), fs tree and data relocation tree (an empty root
//! directory), an empty csum tree, the uuid tree (the fs tree's uuid) and the
//! free-space tree (free ranges of every block group) — and the superblock.
//!
//! Output: the physical writes, sorted and coalesced, every copy of every
//! block (DUP chunks get each block twice).

use super::items::{self, ChunkItem, Device, Inode, Root, DIR_MODE};
use super::key::*;
use super::layout::{Chunk, Layout, NODESIZE, SECTORSIZE, STRIPE_LEN};
use super::leaf::{Header, Leaf, LeafError};
use super::superblock::{Roots, Superblock, LABEL_SIZE};
use crate::fs::BtrfsCsum;

/// The generation of every block and root mkfs writes.
pub const GENERATION: u64 = 1;

/// The trees cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("Cannot encode a tree leaf")]
    Leaf(#[from] LeafError),
    #[error("No room for {need} tree blocks in the chunk at {logical}")]
    NoRoom { logical: u64, need: usize },
}

/// Identities and settings of the new filesystem.
#[derive(Debug, Clone)]
pub struct Params {
    pub fsid: [u8; 16],
    pub dev_uuid: [u8; 16],
    pub chunk_tree_uuid: [u8; 16],
    /// The uuid of the top-level subvolume (fs tree).
    pub fs_tree_uuid: [u8; 16],
    pub label: [u8; LABEL_SIZE],
    pub csum: BtrfsCsum,
    /// Seconds since the epoch, for the root directories.
    pub now: u64,
}

/// What is written where.
#[derive(Debug, Clone)]
pub struct Image {
    /// `(physical offset, bytes)`, sorted, non-overlapping, adjacent ones merged.
    pub writes: Vec<(u64, Vec<u8>)>,
    /// Bytes of tree blocks (the superblock's `bytes_used`).
    pub bytes_used: u64,
}

impl Image {
    /// The byte ranges the writes cover.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        self.writes
            .iter()
            .map(|(o, b)| (*o, *o + b.len() as u64))
            .collect()
    }
}

/// The trees of the filesystem, in the order their blocks are placed in the
/// metadata chunk (the chunk tree lives in the system chunk).
const METADATA_TREES: [u64; 8] = [
    ROOT_TREE,
    EXTENT_TREE,
    DEV_TREE,
    FS_TREE,
    CSUM_TREE,
    UUID_TREE,
    FREE_SPACE_TREE,
    DATA_RELOC_TREE,
];

fn blocks(layout: &Layout, chunk: &Chunk, need: usize) -> Result<Vec<u64>, TreeError> {
    let b = layout.tree_blocks(chunk, need);
    if b.len() < need {
        return Err(TreeError::NoRoom {
            logical: chunk.logical,
            need,
        });
    }
    Ok(b)
}

/// Free `[start, end)` ranges of `chunk` around the used blocks `used` (sorted).
fn free_ranges(chunk: &Chunk, used: &[u64]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut pos = chunk.logical;
    for &b in used {
        if b > pos {
            out.push((pos, b));
        }
        pos = b + NODESIZE;
    }
    let end = chunk.logical + chunk.length;
    if end > pos {
        out.push((pos, end));
    }
    out
}

/// Build every tree and the superblock.
pub fn build(layout: &Layout, p: &Params) -> Result<Image, TreeError> {
    let chunk_block = blocks(layout, &layout.system, 1)?[0];
    let meta = blocks(layout, &layout.metadata, METADATA_TREES.len())?;
    let at = |tree: u64| {
        let i = METADATA_TREES.iter().position(|&t| t == tree).unwrap_or(0);
        meta[i]
    };
    let mut all: Vec<(u64, u64)> = METADATA_TREES.iter().map(|&t| (t, at(t))).collect();
    all.push((CHUNK_TREE, chunk_block));
    all.sort_by_key(|&(_, b)| b);
    let bytes_used = all.len() as u64 * NODESIZE;
    let nodesize = NODESIZE as usize;
    let dir_inode = Inode {
        generation: GENERATION,
        size: 0,
        nbytes: NODESIZE,
        nlink: 1,
        mode: DIR_MODE,
        time: p.now,
        otime: p.now,
    };

    // Chunk tree.
    let dev = Device {
        devid: 1,
        total_bytes: layout.total_bytes,
        bytes_used: layout.device_bytes_used(),
        sector_size: SECTORSIZE as u32,
        uuid: p.dev_uuid,
        fsid: p.fsid,
    }
    .encode();
    let chunk_item = |c: &Chunk| {
        ChunkItem {
            length: c.length,
            stripe_len: STRIPE_LEN,
            flags: c.flags,
            sector_size: SECTORSIZE as u32,
            stripes: c.stripes.clone(),
            dev_uuid: p.dev_uuid,
        }
        .encode()
    };
    let mut chunk_tree = Leaf::new();
    chunk_tree.push(Key::new(DEV_ITEMS, DEV_ITEM, 1), dev.clone());
    for c in layout.chunks() {
        chunk_tree.push(
            Key::new(FIRST_CHUNK_TREE, CHUNK_ITEM, c.logical),
            chunk_item(c),
        );
    }

    // Extent tree.
    let mut extent_tree = Leaf::new();
    for c in layout.chunks() {
        let used = all.iter().filter(|(_, b)| c.contains(*b)).count() as u64 * NODESIZE;
        extent_tree.push(
            Key::new(c.logical, BLOCK_GROUP_ITEM, c.length),
            items::block_group(used, c.flags),
        );
    }
    for &(tree, b) in &all {
        extent_tree.push(
            Key::new(b, METADATA_ITEM, 0),
            items::metadata_extent(GENERATION, tree),
        );
    }

    // Device tree.
    let mut dev_tree = Leaf::new();
    for c in layout.chunks() {
        for &s in &c.stripes {
            dev_tree.push(
                Key::new(1, DEV_EXTENT, s),
                items::dev_extent(c.logical, c.length, &p.chunk_tree_uuid),
            );
        }
    }

    // Fs tree and data relocation tree: an empty root directory each.
    let mut fs_tree = Leaf::new();
    fs_tree.push(
        Key::new(FIRST_FREE_OBJECTID, INODE_ITEM, 0),
        dir_inode.encode(),
    );
    fs_tree.push(
        Key::new(FIRST_FREE_OBJECTID, INODE_REF, FIRST_FREE_OBJECTID),
        items::inode_ref(0, b".."),
    );
    let mut reloc_tree = Leaf::new();
    let reloc_inode = Inode {
        nbytes: 0,
        otime: 0,
        ..dir_inode
    };
    reloc_tree.push(
        Key::new(FIRST_FREE_OBJECTID, INODE_ITEM, 0),
        reloc_inode.encode(),
    );
    reloc_tree.push(
        Key::new(FIRST_FREE_OBJECTID, INODE_REF, FIRST_FREE_OBJECTID),
        items::inode_ref(0, b".."),
    );

    // Uuid tree: the top-level subvolume's uuid.
    let mut uuid_tree = Leaf::new();
    let half = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&p.fs_tree_uuid[r]);
        u64::from_le_bytes(b)
    };
    uuid_tree.push(
        Key::new(half(0..8), UUID_KEY_SUBVOL, half(8..16)),
        FS_TREE.to_le_bytes().to_vec(),
    );

    // Free-space tree.
    let mut fst = Leaf::new();
    for c in layout.chunks() {
        let used: Vec<u64> = all
            .iter()
            .map(|&(_, b)| b)
            .filter(|&b| c.contains(b))
            .collect();
        let free = free_ranges(c, &used);
        fst.push(
            Key::new(c.logical, FREE_SPACE_INFO, c.length),
            items::free_space_info(free.len() as u32),
        );
        for (s, e) in free {
            fst.push(Key::new(s, FREE_SPACE_EXTENT, e - s), Vec::new());
        }
    }

    // Root tree.
    let mut root_tree = Leaf::new();
    let root_inode = Inode {
        size: 3,
        ..dir_inode
    };
    for tree in [
        EXTENT_TREE,
        DEV_TREE,
        FS_TREE,
        CSUM_TREE,
        UUID_TREE,
        FREE_SPACE_TREE,
        DATA_RELOC_TREE,
    ] {
        let subvol = tree == FS_TREE || tree == DATA_RELOC_TREE;
        let root = Root {
            inode: root_inode,
            generation: GENERATION,
            root_dirid: if subvol { FIRST_FREE_OBJECTID } else { 0 },
            bytenr: at(tree),
            bytes_used: NODESIZE,
            uuid: if tree == FS_TREE {
                p.fs_tree_uuid
            } else {
                [0; 16]
            },
            time: if tree == FS_TREE { p.now } else { 0 },
        };
        root_tree.push(Key::new(tree, ROOT_ITEM, 0), root.encode());
    }
    root_tree.push(Key::new(ROOT_TREE_DIR, INODE_ITEM, 0), dir_inode.encode());
    root_tree.push(
        Key::new(ROOT_TREE_DIR, INODE_REF, ROOT_TREE_DIR),
        items::inode_ref(0, b".."),
    );
    root_tree.push(
        Key::new(
            ROOT_TREE_DIR,
            DIR_ITEM,
            super::checksum::name_hash(b"default"),
        ),
        items::dir_item_subvol(&Key::new(FS_TREE, ROOT_ITEM, u64::MAX), b"default"),
    );
    root_tree.push(
        Key::new(FS_TREE, INODE_REF, ROOT_TREE_DIR),
        items::inode_ref(0, b"default"),
    );

    let mut leaves = [
        (ROOT_TREE, root_tree),
        (EXTENT_TREE, extent_tree),
        (CHUNK_TREE, chunk_tree),
        (DEV_TREE, dev_tree),
        (FS_TREE, fs_tree),
        (CSUM_TREE, Leaf::new()),
        (UUID_TREE, uuid_tree),
        (FREE_SPACE_TREE, fst),
        (DATA_RELOC_TREE, reloc_tree),
    ];
    let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
    for (tree, leaf) in &mut leaves {
        let (bytenr, chunk) = if *tree == CHUNK_TREE {
            (chunk_block, &layout.system)
        } else {
            (at(*tree), &layout.metadata)
        };
        let hdr = Header {
            fsid: p.fsid,
            chunk_tree_uuid: p.chunk_tree_uuid,
            bytenr,
            generation: GENERATION,
            owner: *tree,
        };
        let block = leaf.encode(&hdr, nodesize, p.csum)?;
        for phys in chunk.physical(bytenr) {
            writes.push((phys, block.clone()));
        }
    }

    let sb = Superblock {
        fsid: p.fsid,
        generation: GENERATION,
        roots: Roots {
            root: at(ROOT_TREE),
            chunk: chunk_block,
            extent: at(EXTENT_TREE),
            fs: at(FS_TREE),
            dev: at(DEV_TREE),
            csum: at(CSUM_TREE),
        },
        total_bytes: layout.total_bytes,
        bytes_used,
        sectorsize: SECTORSIZE as u32,
        nodesize: NODESIZE as u32,
        csum: p.csum,
        dev_item: dev,
        label: p.label,
        sys_chunk: (layout.system.logical, chunk_item(&layout.system)),
    };
    for m in layout.super_mirrors() {
        writes.push((m, sb.encode(m)));
    }
    Ok(Image {
        writes: coalesce(writes),
        bytes_used,
    })
}

/// Sort writes by offset and merge the adjacent ones.
fn coalesce(mut writes: Vec<(u64, Vec<u8>)>) -> Vec<(u64, Vec<u8>)> {
    writes.sort_by_key(|(o, _)| *o);
    let mut out: Vec<(u64, Vec<u8>)> = Vec::with_capacity(writes.len());
    for (o, b) in writes {
        match out.last_mut() {
            Some((lo, lb)) if *lo + lb.len() as u64 == o => lb.extend_from_slice(&b),
            _ => out.push((o, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::BtrfsProfile;

    fn params() -> Params {
        Params {
            fsid: [1; 16],
            dev_uuid: [2; 16],
            chunk_tree_uuid: [3; 16],
            fs_tree_uuid: [4; 16],
            label: [0; LABEL_SIZE],
            csum: BtrfsCsum::Crc32c,
            now: 1_700_000_000,
        }
    }

    #[test]
    fn dup_metadata_is_written_twice_and_supers_where_they_fit() {
        let layout = Layout::plan(1 << 30, BtrfsProfile::Dup, BtrfsProfile::Single).unwrap();
        let img = build(&layout, &params()).unwrap();
        assert_eq!(img.bytes_used, 9 * NODESIZE);
        let total: usize = img.writes.iter().map(|(_, b)| b.len()).sum();
        // 9 blocks, each twice (system and metadata are DUP), and 2 superblocks.
        assert_eq!(total, 18 * NODESIZE as usize + 2 * 4096);
        let starts: Vec<u64> = img.writes.iter().map(|(o, _)| *o).collect();
        assert!(starts.contains(&(64 << 10)) && starts.contains(&(64 << 20)));
        // Both copies of the metadata blocks are identical.
        let m = &layout.metadata;
        let copy = |s: u64| &img.writes.iter().find(|(o, _)| *o == s).unwrap().1;
        assert_eq!(copy(m.stripes[0]), copy(m.stripes[1]));
        assert!(img.ranges().windows(2).all(|w| w[0].1 < w[1].0));
    }

    #[test]
    fn free_ranges_surround_the_used_blocks() {
        let c = Chunk {
            logical: 1 << 20,
            length: 1 << 20,
            flags: 0,
            stripes: vec![1 << 20],
        };
        let used = [(1 << 20) + NODESIZE];
        assert_eq!(
            free_ranges(&c, &used),
            [
                (1 << 20, (1 << 20) + NODESIZE),
                ((1 << 20) + 2 * NODESIZE, 2 << 20)
            ]
        );
    }
}
