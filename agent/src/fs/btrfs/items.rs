//! Encoders of the item payloads mkfs writes, each the exact size of its
//! on-disk struct (`ctree.h` / `btrfs_tree.h`), little-endian, reserved
//! fields zero.

use super::key::{Key, TREE_BLOCK_REF};

pub const INODE_ITEM_SIZE: usize = 160;
pub const ROOT_ITEM_SIZE: usize = 439;
pub const DEV_ITEM_SIZE: usize = 98;
pub const CHUNK_ITEM_SIZE: usize = 48;
pub const STRIPE_SIZE: usize = 32;
pub const DEV_EXTENT_SIZE: usize = 48;
pub const BLOCK_GROUP_ITEM_SIZE: usize = 24;
/// A skinny METADATA_ITEM with one inline TREE_BLOCK_REF.
pub const METADATA_ITEM_SIZE: usize = 33;
pub const FREE_SPACE_INFO_SIZE: usize = 8;

/// BTRFS_EXTENT_FLAG_TREE_BLOCK.
const EXTENT_FLAG_TREE_BLOCK: u64 = 2;
/// BTRFS_FT_DIR.
const FT_DIR: u8 = 2;
/// S_IFDIR | 0755.
pub const DIR_MODE: u32 = 0o040755;

/// A little-endian field writer over a fixed buffer.
struct Fields {
    buf: Vec<u8>,
    pos: usize,
}

impl Fields {
    fn new(size: usize) -> Fields {
        Fields {
            buf: vec![0; size],
            pos: 0,
        }
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn skip(&mut self, n: usize) -> &mut Self {
        self.pos += n;
        self
    }
    fn key(&mut self, k: &Key) -> &mut Self {
        let mut b = [0u8; Key::SIZE];
        k.encode(&mut b);
        self.bytes(&b)
    }
    /// A `btrfs_timespec`: seconds, then nanoseconds (u32).
    fn time(&mut self, secs: u64) -> &mut Self {
        self.u64(secs).u32(0)
    }
    fn done(&mut self) -> Vec<u8> {
        debug_assert_eq!(self.pos, self.buf.len(), "item size");
        std::mem::take(&mut self.buf)
    }
}

/// A `btrfs_inode_item` of a directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inode {
    pub generation: u64,
    pub size: u64,
    pub nbytes: u64,
    pub nlink: u32,
    pub mode: u32,
    /// atime, ctime, mtime.
    pub time: u64,
    pub otime: u64,
}

impl Inode {
    pub fn encode(&self) -> Vec<u8> {
        let mut f = Fields::new(INODE_ITEM_SIZE);
        self.write(&mut f);
        f.done()
    }

    fn write(&self, f: &mut Fields) {
        f.u64(self.generation)
            .u64(0) // transid
            .u64(self.size)
            .u64(self.nbytes)
            .u64(0) // block_group
            .u32(self.nlink)
            .u32(0) // uid
            .u32(0) // gid
            .u32(self.mode)
            .u64(0) // rdev
            .u64(0) // flags
            .u64(0) // sequence
            .skip(32) // reserved
            .time(self.time)
            .time(self.time)
            .time(self.time)
            .time(self.otime);
    }
}

/// A `btrfs_root_item`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Root {
    pub inode: Inode,
    pub generation: u64,
    pub root_dirid: u64,
    pub bytenr: u64,
    pub bytes_used: u64,
    pub uuid: [u8; 16],
    /// ctime and otime (0 for the internal trees).
    pub time: u64,
}

impl Root {
    pub fn encode(&self) -> Vec<u8> {
        let mut f = Fields::new(ROOT_ITEM_SIZE);
        self.inode.write(&mut f);
        f.u64(self.generation)
            .u64(self.root_dirid)
            .u64(self.bytenr)
            .u64(0) // byte_limit
            .u64(self.bytes_used)
            .u64(0) // last_snapshot
            .u64(0) // flags
            .u32(1) // refs
            .key(&Key::new(0, 0, 0)) // drop_progress
            .u8(0) // drop_level
            .u8(0) // level
            .u64(self.generation) // generation_v2
            .bytes(&self.uuid)
            .skip(32) // parent_uuid, received_uuid
            .skip(32) // ctransid, otransid, stransid, rtransid
            .time(self.time)
            .time(self.time)
            .time(0)
            .time(0)
            .skip(64); // reserved
        f.done()
    }
}

/// A `btrfs_inode_ref` with one name.
pub fn inode_ref(index: u64, name: &[u8]) -> Vec<u8> {
    let mut f = Fields::new(10 + name.len());
    f.u64(index).u16(name.len() as u16).bytes(name);
    f.done()
}

/// A `btrfs_dir_item` naming a subvolume (`location` is its ROOT_ITEM key).
pub fn dir_item_subvol(location: &Key, name: &[u8]) -> Vec<u8> {
    let mut f = Fields::new(Key::SIZE + 13 + name.len());
    f.key(location)
        .u64(0) // transid
        .u16(0) // data_len
        .u16(name.len() as u16)
        .u8(FT_DIR)
        .bytes(name);
    f.done()
}

/// A `btrfs_dev_item`.
#[derive(Debug, Clone, Copy)]
pub struct Device {
    pub devid: u64,
    pub total_bytes: u64,
    pub bytes_used: u64,
    pub sector_size: u32,
    pub uuid: [u8; 16],
    pub fsid: [u8; 16],
}

impl Device {
    pub fn encode(&self) -> Vec<u8> {
        let mut f = Fields::new(DEV_ITEM_SIZE);
        f.u64(self.devid)
            .u64(self.total_bytes)
            .u64(self.bytes_used)
            .u32(self.sector_size) // io_align
            .u32(self.sector_size) // io_width
            .u32(self.sector_size)
            .u64(0) // type
            .u64(0) // generation
            .u64(0) // start_offset
            .u32(0) // dev_group
            .u8(0) // seek_speed
            .u8(0) // bandwidth
            .bytes(&self.uuid)
            .bytes(&self.fsid);
        f.done()
    }
}

/// A `btrfs_chunk` with its stripes (all on device 1).
#[derive(Debug, Clone)]
pub struct ChunkItem {
    pub length: u64,
    pub stripe_len: u64,
    pub flags: u64,
    pub sector_size: u32,
    pub stripes: Vec<u64>,
    pub dev_uuid: [u8; 16],
}

impl ChunkItem {
    pub fn encode(&self) -> Vec<u8> {
        let mut f = Fields::new(CHUNK_ITEM_SIZE + STRIPE_SIZE * self.stripes.len());
        f.u64(self.length)
            .u64(super::key::EXTENT_TREE) // owner
            .u64(self.stripe_len)
            .u64(self.flags)
            .u32(self.stripe_len as u32) // io_align
            .u32(self.stripe_len as u32) // io_width
            .u32(self.sector_size)
            .u16(self.stripes.len() as u16)
            .u16(1); // sub_stripes
        for &offset in &self.stripes {
            f.u64(1).u64(offset).bytes(&self.dev_uuid);
        }
        f.done()
    }
}

/// A `btrfs_dev_extent`: a stripe of chunk `chunk_offset` on the device.
pub fn dev_extent(chunk_offset: u64, length: u64, chunk_tree_uuid: &[u8; 16]) -> Vec<u8> {
    let mut f = Fields::new(DEV_EXTENT_SIZE);
    f.u64(super::key::CHUNK_TREE)
        .u64(super::key::FIRST_CHUNK_TREE)
        .u64(chunk_offset)
        .u64(length)
        .bytes(chunk_tree_uuid);
    f.done()
}

/// A `btrfs_block_group_item`.
pub fn block_group(used: u64, flags: u64) -> Vec<u8> {
    let mut f = Fields::new(BLOCK_GROUP_ITEM_SIZE);
    f.u64(used).u64(super::key::FIRST_CHUNK_TREE).u64(flags);
    f.done()
}

/// A skinny METADATA_ITEM: one reference, from tree `owner`.
pub fn metadata_extent(generation: u64, owner: u64) -> Vec<u8> {
    let mut f = Fields::new(METADATA_ITEM_SIZE);
    f.u64(1) // refs
        .u64(generation)
        .u64(EXTENT_FLAG_TREE_BLOCK)
        .u8(TREE_BLOCK_REF)
        .u64(owner);
    f.done()
}

/// A `btrfs_free_space_info`: `extent_count` FREE_SPACE_EXTENT items follow.
pub fn free_space_info(extent_count: u32) -> Vec<u8> {
    let mut f = Fields::new(FREE_SPACE_INFO_SIZE);
    f.u32(extent_count).u32(0);
    f.done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_sizes_match_mkfs() {
        // The itemsize column of `btrfs inspect-internal dump-tree` on a
        // filesystem made by mkfs.btrfs 6.2.
        assert_eq!(Root::default().encode().len(), 439);
        assert_eq!(Inode::default().encode().len(), 160);
        assert_eq!(inode_ref(0, b"..").len(), 12);
        assert_eq!(inode_ref(0, b"default").len(), 17);
        assert_eq!(
            dir_item_subvol(&Key::new(5, 132, u64::MAX), b"default").len(),
            37
        );
        let dev = Device {
            devid: 1,
            total_bytes: 1,
            bytes_used: 0,
            sector_size: 4096,
            uuid: [0; 16],
            fsid: [0; 16],
        };
        assert_eq!(dev.encode().len(), 98);
        let mut chunk = ChunkItem {
            length: 1 << 23,
            stripe_len: 65536,
            flags: 0,
            sector_size: 4096,
            stripes: vec![1 << 20],
            dev_uuid: [0; 16],
        };
        assert_eq!(chunk.encode().len(), 80);
        chunk.stripes.push(9 << 20);
        assert_eq!(chunk.encode().len(), 112);
        assert_eq!(dev_extent(0, 0, &[0; 16]).len(), 48);
        assert_eq!(block_group(0, 0).len(), 24);
        assert_eq!(metadata_extent(1, 2).len(), 33);
        assert_eq!(free_space_info(1).len(), 8);
    }

    #[test]
    fn root_item_fields_land_where_the_kernel_reads_them() {
        let r = Root {
            generation: 7,
            root_dirid: 256,
            bytenr: 0x1122_3344,
            bytes_used: 16384,
            uuid: [0xab; 16],
            ..Root::default()
        }
        .encode();
        let u64_at = |o: usize| u64::from_le_bytes(r[o..o + 8].try_into().unwrap());
        assert_eq!(u64_at(160), 7); // generation
        assert_eq!(u64_at(168), 256); // root_dirid
        assert_eq!(u64_at(176), 0x1122_3344); // bytenr
        assert_eq!(u64_at(192), 16384); // bytes_used
        assert_eq!(u32::from_le_bytes(r[216..220].try_into().unwrap()), 1); // refs
        assert_eq!(u64_at(239), 7); // generation_v2
        assert_eq!(r[247..263], [0xab; 16]); // uuid
    }
}
