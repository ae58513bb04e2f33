//! Collects the blocks a format writes, then writes them in as few `pwrite`
//! calls as possible (adjacent blocks coalesced), in ascending order.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::geometry::BLOCK_SIZE;

/// Largest single write.
const MAX_WRITE: usize = 8 << 20;

/// Pending block writes keyed by block number; each value is a whole number of blocks.
#[derive(Default)]
pub struct BlockWriter {
    pending: BTreeMap<u64, Vec<u8>>,
}

impl BlockWriter {
    /// Queue `data` (a multiple of the block size) for block `block` onwards.
    pub fn put(&mut self, block: u64, data: Vec<u8>) {
        debug_assert_eq!(data.len() as u64 % BLOCK_SIZE, 0);
        self.pending.insert(block, data);
    }

    /// Number of blocks queued.
    pub fn blocks(&self) -> u64 {
        self.pending
            .values()
            .map(|d| d.len() as u64 / BLOCK_SIZE)
            .sum()
    }

    /// The byte ranges that will be written, sorted and merged.
    pub fn byte_ranges(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (&block, data) in &self.pending {
            let (s, e) = (block * BLOCK_SIZE, block * BLOCK_SIZE + data.len() as u64);
            match out.last_mut() {
                Some(last) if last.1 >= s => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// Write everything; on error, the first block of the failed write.
    pub fn write(self, dev: &File) -> Result<(), (u64, io::Error)> {
        let mut run_start = 0u64;
        let mut run: Vec<u8> = Vec::new();
        for (block, data) in self.pending {
            let contiguous = !run.is_empty() && run_start + run.len() as u64 / BLOCK_SIZE == block;
            if !contiguous || run.len() + data.len() > MAX_WRITE {
                if !run.is_empty() {
                    dev.write_all_at(&run, run_start * BLOCK_SIZE)
                        .map_err(|e| (run_start, e))?;
                }
                run_start = block;
                run = data;
            } else {
                run.extend_from_slice(&data);
            }
        }
        if !run.is_empty() {
            dev.write_all_at(&run, run_start * BLOCK_SIZE)
                .map_err(|e| (run_start, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_where_queued() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(8 * BLOCK_SIZE).unwrap();
        let mut w = BlockWriter::default();
        w.put(3, vec![3u8; 4096]);
        w.put(1, vec![1u8; 8192]);
        w.put(6, vec![6u8; 4096]);
        assert_eq!(w.blocks(), 4);
        assert_eq!(w.byte_ranges(), vec![(4096, 16384), (6 * 4096, 7 * 4096)]);
        w.write(&f).unwrap();
        let mut buf = vec![0u8; 8 * 4096];
        f.read_exact_at(&mut buf, 0).unwrap();
        let per_block: Vec<u8> = buf.chunks(4096).map(|c| c[0]).collect();
        assert_eq!(per_block, vec![0, 1, 1, 3, 0, 0, 6, 0]);
    }
}
