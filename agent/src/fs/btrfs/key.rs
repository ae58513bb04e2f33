//! Keys, the object ids of the trees mkfs makes and the item types it uses.
//! Items in a leaf are sorted by key: object id, then type, then offset — the
//! field order of [`Key`], so its derived `Ord` is the on-disk order.

/// A `btrfs_disk_key`: 17 bytes, little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub objectid: u64,
    pub item_type: u8,
    pub offset: u64,
}

impl Key {
    pub const SIZE: usize = 17;

    pub const fn new(objectid: u64, item_type: u8, offset: u64) -> Key {
        Key {
            objectid,
            item_type,
            offset,
        }
    }

    pub fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.objectid.to_le_bytes());
        out[8] = self.item_type;
        out[9..17].copy_from_slice(&self.offset.to_le_bytes());
    }
}

// Tree (object) ids.
pub const ROOT_TREE: u64 = 1;
pub const EXTENT_TREE: u64 = 2;
pub const CHUNK_TREE: u64 = 3;
pub const DEV_TREE: u64 = 4;
pub const FS_TREE: u64 = 5;
pub const ROOT_TREE_DIR: u64 = 6;
pub const CSUM_TREE: u64 = 7;
pub const UUID_TREE: u64 = 9;
pub const FREE_SPACE_TREE: u64 = 10;
pub const DATA_RELOC_TREE: u64 = -9i64 as u64;
/// Object id of the device items in the chunk tree.
pub const DEV_ITEMS: u64 = 1;
/// Object id of the chunk items, and the `chunk_objectid` of block groups.
pub const FIRST_CHUNK_TREE: u64 = 256;
/// The first free inode number: the root directory of a subvolume.
pub const FIRST_FREE_OBJECTID: u64 = 256;

// Item types.
pub const INODE_ITEM: u8 = 1;
pub const INODE_REF: u8 = 12;
pub const DIR_ITEM: u8 = 84;
pub const ROOT_ITEM: u8 = 132;
pub const METADATA_ITEM: u8 = 169;
pub const TREE_BLOCK_REF: u8 = 176;
pub const BLOCK_GROUP_ITEM: u8 = 192;
pub const FREE_SPACE_INFO: u8 = 198;
pub const FREE_SPACE_EXTENT: u8 = 199;
pub const DEV_EXTENT: u8 = 204;
pub const DEV_ITEM: u8 = 216;
pub const CHUNK_ITEM: u8 = 228;
pub const UUID_KEY_SUBVOL: u8 = 251;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_objectid_then_type_then_offset() {
        let mut keys = [
            Key::new(DATA_RELOC_TREE, ROOT_ITEM, 0),
            Key::new(ROOT_TREE_DIR, DIR_ITEM, 2_378_154_706),
            Key::new(ROOT_TREE_DIR, INODE_ITEM, 0),
            Key::new(FS_TREE, ROOT_ITEM, 0),
            Key::new(FS_TREE, INODE_REF, ROOT_TREE_DIR),
            Key::new(ROOT_TREE_DIR, INODE_REF, ROOT_TREE_DIR),
        ];
        keys.sort();
        let order: Vec<(u64, u8)> = keys.iter().map(|k| (k.objectid, k.item_type)).collect();
        // The order of mkfs.btrfs 6.2's root tree.
        assert_eq!(
            order,
            [
                (FS_TREE, INODE_REF),
                (FS_TREE, ROOT_ITEM),
                (ROOT_TREE_DIR, INODE_ITEM),
                (ROOT_TREE_DIR, INODE_REF),
                (ROOT_TREE_DIR, DIR_ITEM),
                (DATA_RELOC_TREE, ROOT_ITEM),
            ]
        );
    }

    #[test]
    fn encodes_little_endian() {
        let mut b = [0u8; Key::SIZE];
        Key::new(0x0102, CHUNK_ITEM, 0x0304).encode(&mut b);
        assert_eq!(b, [2, 1, 0, 0, 0, 0, 0, 0, 228, 4, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(DATA_RELOC_TREE, 18_446_744_073_709_551_607);
    }
}
