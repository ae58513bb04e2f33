//! Block placement: where every piece of metadata goes, as mke2fs's
//! `ext2fs_allocate_tables` (flex_bg packing) and `ext2fs_mkjournal`
//! (journal at the filesystem's midpoint) place them, and which groups
//! stay BLOCK_UNINIT. Pure arithmetic over [`Geometry`]; writes nothing.

use std::collections::BTreeMap;

use super::geometry::{Geometry, BLOCKS_PER_GROUP, FLEX_GROUPS};

/// Longest initialised extent.
pub const MAX_EXTENT_LEN: u64 = 32768;
/// Extents that fit in the inode's `i_block` (depth 0).
pub const INLINE_EXTENTS: usize = 4;
/// Extents one 4 KiB leaf block holds: (4096 - 12 header - 4 tail) / 12.
pub const LEAF_EXTENTS: usize = 340;
/// Blocks of lost+found (mke2fs grows it to 16 KiB).
pub const LOST_FOUND_BLOCKS: u64 = 4;

/// Errors in placing metadata.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("No room for {what} ({len} blocks)")]
    NoRoom { what: &'static str, len: u64 },
}

/// A run of blocks of a file: `len` blocks from `start`, at file block `logical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub logical: u32,
    pub start: u64,
    pub len: u16,
}

/// Where one group's own metadata lives and how full the group is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub free_blocks: u32,
    /// Only a superblock backup in it (or nothing): the kernel can rebuild its bitmap.
    pub block_uninit: bool,
}

/// The journal inode's blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalPlan {
    pub extents: Vec<Extent>,
    /// The extent leaf block when the extents do not fit in the inode.
    pub leaf_block: Option<u64>,
}

/// The whole placement.
#[derive(Debug, Clone)]
pub struct Layout {
    pub geo: Geometry,
    pub groups: Vec<GroupPlan>,
    pub root_block: u64,
    pub lost_found_start: u64,
    /// The resize inode's double-indirect block (when there are reserved GDT blocks).
    pub resize_dind: Option<u64>,
    pub journal: JournalPlan,
    pub free_blocks: u64,
    /// `s_overhead_clusters` as the kernel counts it: superblock copies,
    /// descriptors, bitmaps, inode tables and the journal's length.
    pub overhead_blocks: u64,
    /// Every used block range `[start, end)`, merged and sorted.
    pub used: Vec<(u64, u64)>,
}

/// Sorted, merged set of used block ranges `[start, end)`.
#[derive(Debug, Default)]
struct UsedBlocks {
    ranges: BTreeMap<u64, u64>,
}

impl UsedBlocks {
    fn insert(&mut self, start: u64, len: u64) {
        if len == 0 {
            return;
        }
        let (mut s, mut e) = (start, start + len);
        if let Some((&ps, &pe)) = self.ranges.range(..=s).next_back() {
            if pe >= s {
                s = ps;
                e = e.max(pe);
                self.ranges.remove(&ps);
            }
        }
        while let Some((&ns, &ne)) = self.ranges.range(s..=e).next() {
            e = e.max(ne);
            self.ranges.remove(&ns);
        }
        self.ranges.insert(s, e);
    }

    /// First `p >= from` with `[p, p + len)` free and `p + len <= limit`.
    fn find_free(&self, from: u64, len: u64, limit: u64) -> Option<u64> {
        let mut p = from;
        if let Some((_, &e)) = self.ranges.range(..=p).next_back() {
            p = p.max(e);
        }
        loop {
            if p.checked_add(len)? > limit {
                return None;
            }
            match self.ranges.range(p..p + len).next() {
                Some((_, &e)) => p = e,
                None => return Some(p),
            }
        }
    }

    /// End of the free run starting at the free block `p` (or `limit`).
    fn free_run_end(&self, p: u64, limit: u64) -> u64 {
        self.ranges
            .range(p..)
            .next()
            .map_or(limit, |(&s, _)| s.min(limit))
    }

    /// Used blocks within `[start, end)`.
    fn used_in(&self, start: u64, end: u64) -> u64 {
        let mut n = 0;
        let first = self
            .ranges
            .range(..start)
            .next_back()
            .map(|(&s, &e)| (s, e));
        for (s, e) in first
            .into_iter()
            .chain(self.ranges.range(start..end).map(|(&s, &e)| (s, e)))
        {
            let (a, b) = (s.max(start), e.min(end));
            if b > a {
                n += b - a;
            }
        }
        n
    }
}

struct Placer<'a> {
    geo: &'a Geometry,
    used: UsedBlocks,
}

impl Placer<'_> {
    fn alloc(&mut self, from: u64, len: u64, what: &'static str) -> Result<u64, LayoutError> {
        let limit = self.geo.blocks_count;
        let p = self
            .used
            .find_free(from, len, limit)
            .or_else(|| self.used.find_free(0, len, limit))
            .ok_or(LayoutError::NoRoom { what, len })?;
        self.used.insert(p, len);
        Ok(p)
    }

    /// Free blocks of group `g` as things stand.
    fn group_free(&self, g: u32) -> u64 {
        let start = self.geo.group_first_block(g);
        let end = start + self.geo.group_len(g);
        (end - start) - self.used.used_in(start, end)
    }

    /// Bitmaps and inode tables, packed per flex group: all block bitmaps of the
    /// flex group, then all inode bitmaps, then all inode tables.
    fn place_group_tables(&mut self) -> Result<Vec<(u64, u64, u64)>, LayoutError> {
        let geo = self.geo;
        let itb = u64::from(geo.inode_table_blocks);
        let mut out: Vec<(u64, u64, u64)> = Vec::with_capacity(geo.group_count as usize);
        let mut g = 0;
        while g < geo.group_count {
            let leader = g - g % FLEX_GROUPS;
            let last = (leader + FLEX_GROUPS - 1).min(geo.group_count - 1);
            let n = u64::from(last - leader + 1);
            // Gap between the bitmap runs (mke2fs's table_offset): the flex group
            // size, or the group count of a short last flex group of 2 or more.
            let gap = if n == 1 { u64::from(FLEX_GROUPS) } else { n };
            if g == leader {
                if let Some(areas) = self.packed_areas(leader, n, gap) {
                    // The common case: each run fits contiguously; reserve it whole.
                    let (bb, ib, it) = areas;
                    self.used.insert(bb, n);
                    self.used.insert(ib, n);
                    self.used.insert(it, n * itb);
                    out.extend((0..n).map(|i| (bb + i, ib + i, it + i * itb)));
                    g = last + 1;
                    continue;
                }
                // Each run as far as it goes contiguously, as mke2fs's flexbg_offset.
                let limit = geo.blocks_count;
                let first = geo.group_first_block(leader);
                let at = self.used.find_free(first, n, limit).unwrap_or(first);
                let bb = self.alloc(at, 1, "a block bitmap")?;
                let at = self.used.find_free(bb + gap, n, limit).unwrap_or(bb + gap);
                let ib = self.alloc(at, 1, "an inode bitmap")?;
                let at = self
                    .used
                    .find_free(ib + gap, n * itb, limit)
                    .unwrap_or(ib + gap);
                let it = self.alloc(at, itb, "an inode table")?;
                out.push((bb, ib, it));
            } else {
                // Obstacles in the way: place group by group after the previous one.
                let (pbb, pib, pit) = out[(g - 1) as usize];
                let bb = self.alloc(pbb + 1, 1, "a block bitmap")?;
                let ib = self.alloc(pib + 1, 1, "an inode bitmap")?;
                let it = self.alloc(pit + itb, itb, "an inode table")?;
                out.push((bb, ib, it));
            }
            g += 1;
        }
        Ok(out)
    }

    /// Starts of the block-bitmap, inode-bitmap and inode-table runs of a flex
    /// group when each fits contiguously: block bitmaps at the first free run
    /// of the leader, inode bitmaps `gap` blocks on, inode tables `gap` after those.
    fn packed_areas(&self, leader: u32, n: u64, gap: u64) -> Option<(u64, u64, u64)> {
        let geo = self.geo;
        let itb = u64::from(geo.inode_table_blocks);
        let limit = geo.blocks_count;
        let bb = self
            .used
            .find_free(geo.group_first_block(leader), n, limit)?;
        let ib = self.used.find_free(bb + gap, n, limit)?;
        if ib < bb + n {
            return None;
        }
        let it = self.used.find_free(ib + gap, n * itb, limit)?;
        (it >= ib + n).then_some((bb, ib, it))
    }

    /// `get_midpoint_journal_block` of e2fsprogs: the first block of the group near
    /// the middle of the filesystem with the most free blocks.
    fn journal_goal(&self) -> u64 {
        let geo = self.geo;
        let mut group = geo.group_of(geo.blocks_count / 2);
        let start;
        if group > FLEX_GROUPS {
            group &= !(FLEX_GROUPS - 1);
            while group < geo.group_count && self.group_free(group) == 0 {
                group += 1;
            }
            if group == geo.group_count {
                group = 0;
            }
            start = group;
        } else {
            start = group.saturating_sub(1);
        }
        let end = if group + 1 < geo.group_count {
            group + 1
        } else {
            group
        };
        let mut best = start;
        for g in start + 1..=end {
            if self.group_free(g) > self.group_free(best) {
                best = g;
            }
        }
        geo.group_first_block(best)
    }

    fn place_journal(&mut self) -> Result<JournalPlan, LayoutError> {
        let total = u64::from(self.geo.journal_blocks);
        let goal = self.journal_goal();
        // Count the runs first to know whether an extent leaf block is needed.
        let runs = self.journal_runs(goal, total)?;
        let extents_needed: usize = runs
            .iter()
            .map(|&(_, len)| len.div_ceil(MAX_EXTENT_LEN) as usize)
            .sum();
        let leaf_block = if extents_needed > INLINE_EXTENTS {
            if extents_needed > LEAF_EXTENTS {
                return Err(LayoutError::NoRoom {
                    what: "the journal in one extent leaf",
                    len: total,
                });
            }
            let leaf = self.alloc(goal.saturating_sub(1), 1, "the journal extent block")?;
            Some(leaf)
        } else {
            None
        };
        let runs = if leaf_block.is_some() {
            self.journal_runs(goal, total)?
        } else {
            runs
        };
        let mut extents = Vec::new();
        let mut logical = 0u64;
        for (start, len) in runs {
            self.used.insert(start, len);
            let mut off = 0;
            while off < len {
                let piece = (len - off).min(MAX_EXTENT_LEN);
                extents.push(Extent {
                    logical: logical as u32,
                    start: start + off,
                    len: piece as u16,
                });
                logical += piece;
                off += piece;
            }
        }
        if extents.len() > LEAF_EXTENTS {
            return Err(LayoutError::NoRoom {
                what: "the journal in one extent leaf",
                len: total,
            });
        }
        Ok(JournalPlan {
            extents,
            leaf_block,
        })
    }

    /// Free runs from `goal` (wrapping once to block 0) covering `total` blocks.
    fn journal_runs(&self, goal: u64, total: u64) -> Result<Vec<(u64, u64)>, LayoutError> {
        let limit = self.geo.blocks_count;
        let mut runs = Vec::new();
        let mut left = total;
        let mut cursor = goal;
        let mut wrapped = false;
        while left > 0 {
            match self.used.find_free(cursor, 1, limit) {
                Some(p) => {
                    let end =
                        self.used
                            .free_run_end(p, limit)
                            .min(if wrapped { goal } else { limit });
                    if end <= p {
                        return Err(LayoutError::NoRoom {
                            what: "the journal",
                            len: total,
                        });
                    }
                    let take = (end - p).min(left);
                    runs.push((p, take));
                    left -= take;
                    cursor = p + take;
                }
                None if !wrapped => {
                    wrapped = true;
                    cursor = 0;
                }
                None => {
                    return Err(LayoutError::NoRoom {
                        what: "the journal",
                        len: total,
                    })
                }
            }
        }
        Ok(runs)
    }
}

impl Layout {
    /// Place everything for `geo`.
    pub fn plan(geo: &Geometry) -> Result<Self, LayoutError> {
        let mut placer = Placer {
            geo,
            used: UsedBlocks::default(),
        };
        for g in 0..geo.group_count {
            placer
                .used
                .insert(geo.group_first_block(g), geo.super_and_desc_blocks(g));
        }
        let tables = placer.place_group_tables()?;
        let root_block = placer.alloc(0, 1, "the root directory")?;
        let lost_found_start = placer.alloc(0, LOST_FOUND_BLOCKS, "lost+found")?;
        let resize_dind = if geo.reserved_gdt_blocks > 0 {
            let goal =
                3 + u64::from(geo.reserved_gdt_blocks + geo.desc_blocks + geo.inode_table_blocks);
            Some(placer.alloc(goal, 1, "the resize inode's block")?)
        } else {
            None
        };
        let journal = placer.place_journal()?;

        let mut groups = Vec::with_capacity(tables.len());
        let mut free_blocks = 0u64;
        for (g, &(block_bitmap, inode_bitmap, inode_table)) in tables.iter().enumerate() {
            let g = g as u32;
            let start = geo.group_first_block(g);
            let len = geo.group_len(g);
            let used = placer.used.used_in(start, start + len);
            let free = len - used;
            free_blocks += free;
            groups.push(GroupPlan {
                block_bitmap,
                inode_bitmap,
                inode_table,
                free_blocks: free as u32,
                block_uninit: g + 1 < geo.group_count && used == geo.super_and_desc_blocks(g),
            });
        }
        let used = placer.used.ranges.iter().map(|(&s, &e)| (s, e)).collect();
        // Reserved GDT blocks count as overhead (the kernel's
        // ext4_num_base_meta_clusters); the resize inode's own block does not.
        let overhead_blocks = (0..geo.group_count)
            .map(|g| geo.super_and_desc_blocks(g))
            .sum::<u64>()
            + u64::from(geo.group_count) * (2 + u64::from(geo.inode_table_blocks))
            + u64::from(geo.journal_blocks);
        Ok(Layout {
            geo: geo.clone(),
            groups,
            root_block,
            lost_found_start,
            resize_dind,
            journal,
            free_blocks,
            overhead_blocks,
            used,
        })
    }

    /// Used blocks of group `g` as `[start, end)` ranges clipped to the group, relative to its start.
    pub fn used_in_group(&self, g: u32) -> Vec<(u64, u64)> {
        let start = self.geo.group_first_block(g);
        let end = start + self.geo.group_len(g);
        let i = self.used.partition_point(|&(_, e)| e <= start);
        self.used[i..]
            .iter()
            .take_while(|&&(s, _)| s < end)
            .map(|&(s, e)| (s.max(start) - start, e.min(end) - start))
            .collect()
    }
}

/// Blocks per group as a `u64`, for callers doing bitmap arithmetic.
pub const GROUP_BLOCKS: u64 = BLOCKS_PER_GROUP;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_blocks_merge_and_search() {
        let mut u = UsedBlocks::default();
        u.insert(0, 3);
        u.insert(5, 2);
        u.insert(3, 2);
        assert_eq!(u.ranges.len(), 1);
        assert_eq!(u.find_free(0, 4, 100), Some(7));
        u.insert(9, 1);
        assert_eq!(u.find_free(0, 3, 100), Some(10));
        assert_eq!(u.find_free(0, 2, 100), Some(7));
        assert_eq!(u.find_free(95, 10, 100), None);
        assert_eq!(u.used_in(6, 10), 2);
    }

    /// 1 GiB: 8 groups in one flex group; tables packed in group 0, as mke2fs does.
    #[test]
    fn one_gib_layout() {
        let geo = Geometry::for_device(1 << 30).unwrap();
        let l = Layout::plan(&geo).unwrap();
        assert_eq!(l.groups.len(), 8);
        // sb + 1 descriptor block + 127 reserved, then 8 block bitmaps, 8 inode
        // bitmaps, 8 tables: where mke2fs puts them.
        assert_eq!(l.groups[0].block_bitmap, 129);
        assert_eq!(l.groups[7].block_bitmap, 136);
        assert_eq!(l.groups[0].inode_bitmap, 137);
        assert_eq!(l.groups[0].inode_table, 145);
        assert_eq!(l.groups[7].inode_table, 145 + 7 * 512);
        // The journal at the start of group 4 (the middle group with most free blocks).
        assert_eq!(
            l.journal.extents,
            vec![Extent {
                logical: 0,
                start: 4 * 32768,
                len: 8192
            }]
        );
        assert!(
            !l.groups[0].block_uninit && !l.groups[4].block_uninit && !l.groups[7].block_uninit
        );
        assert!(l.groups[1].block_uninit && l.groups[2].block_uninit);
        assert_eq!(l.groups[1].free_blocks, 32768 - 2 - 127);
        assert_eq!(l.groups[2].free_blocks, 32768);
        let total_used: u64 = l.used.iter().map(|&(s, e)| e - s).sum();
        assert_eq!(l.free_blocks, geo.blocks_count - total_used);
        // mke2fs 1.47 reports 12949 overhead clusters for 1 GiB; the 6 other used
        // blocks are the root directory, lost+found and the resize inode's block.
        assert_eq!(l.overhead_blocks, 12949);
        assert_eq!(total_used, 12949 + 6);
    }

    /// 2 TiB: the journal needs 8 extents and so an extent leaf block.
    #[test]
    fn two_tib_journal_has_a_leaf() {
        let geo = Geometry::for_device(2 << 40).unwrap();
        let l = Layout::plan(&geo).unwrap();
        assert_eq!(l.journal.extents.len(), 8);
        assert!(l.journal.leaf_block.is_some());
        assert_eq!(l.journal.extents[0].start, 8193 * 32768);
        let sum: u64 = l.journal.extents.iter().map(|e| u64::from(e.len)).sum();
        assert_eq!(sum, 262144);
    }
}
