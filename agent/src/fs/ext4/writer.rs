//! Collects the blocks a format writes, then writes them in ascending order
//! with as few system calls as possible: adjacent chunks go out together in
//! one `pwritev`, and a chunk shared by many places (the group descriptor
//! table, copied to every backup group) is held once, never copied.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use nix::sys::uio::pwritev;

use super::geometry::BLOCK_SIZE;

/// Most iovecs per `pwritev` (Linux's UIO_MAXIOV is 1024).
const MAX_IOVECS: usize = 1024;
/// Most bytes per `pwritev`.
const MAX_WRITE: usize = 16 << 20;

/// Pending block writes keyed by block number; each value is a whole number of blocks.
#[derive(Default)]
pub struct BlockWriter {
    pending: BTreeMap<u64, Rc<[u8]>>,
}

impl BlockWriter {
    /// Queue `data` (a multiple of the block size) for block `block` onwards.
    pub fn put(&mut self, block: u64, data: Vec<u8>) {
        self.put_shared(block, Rc::from(data));
    }

    /// Queue shared `data` (a multiple of the block size) for block `block` onwards.
    pub fn put_shared(&mut self, block: u64, data: Rc<[u8]>) {
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
    pub fn write(&self, dev: &File) -> Result<(), (u64, io::Error)> {
        let mut run: Vec<&[u8]> = Vec::new();
        let (mut run_start, mut run_len) = (0u64, 0usize);
        for (&block, data) in &self.pending {
            let contiguous =
                !run.is_empty() && run_start * BLOCK_SIZE + run_len as u64 == block * BLOCK_SIZE;
            if !contiguous || run.len() == MAX_IOVECS || run_len + data.len() > MAX_WRITE {
                write_run(dev, run_start, &run).map_err(|e| (run_start, e))?;
                run.clear();
                run_start = block;
                run_len = 0;
            }
            run.push(data);
            run_len += data.len();
        }
        write_run(dev, run_start, &run).map_err(|e| (run_start, e))
    }
}

/// Write `chunks` back to back from block `start`.
fn write_run(dev: &File, start: u64, chunks: &[&[u8]]) -> io::Result<()> {
    let offset = start * BLOCK_SIZE;
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    if total == 0 {
        return Ok(());
    }
    let iov: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let done = pwritev(dev, &iov, offset as i64).map_err(io::Error::from)?;
    if done == total {
        return Ok(());
    }
    // A short write: finish chunk by chunk from where it stopped.
    let mut pos = 0usize;
    for c in chunks {
        let end = pos + c.len();
        if end > done {
            let skip = done.saturating_sub(pos);
            dev.write_all_at(&c[skip..], offset + (pos + skip) as u64)?;
        }
        pos = end;
    }
    Ok(())
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
        let shared: Rc<[u8]> = Rc::from(vec![6u8; 4096]);
        w.put_shared(6, shared.clone());
        w.put_shared(7, shared);
        assert_eq!(w.blocks(), 5);
        assert_eq!(w.byte_ranges(), vec![(4096, 16384), (6 * 4096, 8 * 4096)]);
        w.write(&f).unwrap();
        let mut buf = vec![0u8; 8 * 4096];
        f.read_exact_at(&mut buf, 0).unwrap();
        let per_block: Vec<u8> = buf.chunks(4096).map(|c| c[0]).collect();
        assert_eq!(per_block, vec![0, 1, 1, 3, 0, 0, 6, 6]);
    }
}
