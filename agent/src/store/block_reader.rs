//! `BlockReader`: a blocking `Read` over a path's NAR sent in the block format
//! (see `landfall_proto::nar::block`): each block is raw bytes or one whole
//! zstd frame. Raw blocks are passed on as they are; frames are decompressed
//! into one reused buffer, refusing any frame that would expand beyond
//! [`MAX_BLOCK_DECOMPRESSED`]. The zstd context lives as long as the reader's
//! [`BlockDecompressor`], so one transfer allocates it once, not per path.

use std::io::{self, Read};

use landfall_proto::nar::block::MAX_BLOCK_DECOMPRESSED;

/// One block of a path's NAR as it arrived.
#[derive(Debug)]
pub enum Block {
    /// NAR bytes as they are.
    Raw(Vec<u8>),
    /// NAR bytes as one complete zstd frame.
    Zstd(Vec<u8>),
}

/// The decompression state a transfer reuses for all its blocks.
pub struct BlockDecompressor {
    zstd: zstd::bulk::Decompressor<'static>,
    out: Vec<u8>,
}

impl BlockDecompressor {
    /// A decompressor with its output buffer (MAX_BLOCK_DECOMPRESSED bytes).
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            zstd: zstd::bulk::Decompressor::new()?,
            out: Vec::with_capacity(MAX_BLOCK_DECOMPRESSED),
        })
    }
}

/// Reads the concatenated contents of the blocks `next` yields until `None`.
pub struct BlockReader<'d, F> {
    next: F,
    dec: &'d mut BlockDecompressor,
    raw: Vec<u8>,
    /// Whether the current bytes are in `raw` (else in `dec.out`).
    in_raw: bool,
    pos: usize,
    done: bool,
}

impl<'d, F> BlockReader<'d, F>
where
    F: FnMut() -> Option<io::Result<Block>>,
{
    /// A reader pulling blocks from `next`; `Some(Err(_))` is passed on as a read error.
    pub fn new(dec: &'d mut BlockDecompressor, next: F) -> Self {
        dec.out.clear();
        Self {
            next,
            dec,
            raw: Vec::new(),
            in_raw: true,
            pos: 0,
            done: false,
        }
    }

    fn current(&self) -> &[u8] {
        if self.in_raw {
            &self.raw
        } else {
            &self.dec.out
        }
    }

    fn load(&mut self, block: Block) -> io::Result<()> {
        self.pos = 0;
        match block {
            Block::Raw(bytes) => {
                self.raw = bytes;
                self.in_raw = true;
            }
            Block::Zstd(frame) => {
                self.dec.out.clear();
                self.dec
                    .zstd
                    .decompress_to_buffer(&frame, &mut self.dec.out)
                    .map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("a zstd block is invalid or expands beyond {MAX_BLOCK_DECOMPRESSED} bytes: {e}"),
                        )
                    })?;
                self.raw = Vec::new();
                self.in_raw = false;
            }
        }
        Ok(())
    }
}

impl<F> Read for BlockReader<'_, F>
where
    F: FnMut() -> Option<io::Result<Block>>,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current().len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match (self.next)() {
                Some(Ok(block)) => self.load(block)?,
                Some(Err(e)) => return Err(e),
                None => self.done = true,
            }
        }
        let cur = self.current();
        let n = buf.len().min(cur.len() - self.pos);
        buf[..n].copy_from_slice(&cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_zstd_blocks_concatenate_across_paths() {
        let mut dec = BlockDecompressor::new().unwrap();
        for _ in 0..2 {
            let mut blocks = vec![
                Block::Raw(b"ab".to_vec()),
                Block::Zstd(zstd::bulk::compress(&[b'c'; 5000], 3).unwrap()),
                Block::Raw(Vec::new()),
                Block::Raw(b"d".to_vec()),
            ]
            .into_iter();
            let mut r = BlockReader::new(&mut dec, move || blocks.next().map(Ok));
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out.len(), 2 + 5000 + 1);
            assert_eq!(&out[..2], b"ab");
            assert!(out[2..5002].iter().all(|&b| b == b'c'));
            assert_eq!(out[5002], b'd');
        }
    }

    #[test]
    fn a_frame_expanding_past_the_limit_is_refused() {
        let mut dec = BlockDecompressor::new().unwrap();
        let bomb = zstd::bulk::compress(&vec![0u8; MAX_BLOCK_DECOMPRESSED + 1], 19).unwrap();
        let mut blocks = vec![Block::Zstd(bomb)].into_iter();
        let mut r = BlockReader::new(&mut dec, move || blocks.next().map(Ok));
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn garbage_is_refused_and_errors_pass_on() {
        let mut dec = BlockDecompressor::new().unwrap();
        let mut blocks = vec![Block::Zstd(b"not zstd".to_vec())].into_iter();
        let mut r = BlockReader::new(&mut dec, move || blocks.next().map(Ok));
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        let mut first = true;
        let mut r = BlockReader::new(&mut dec, move || {
            std::mem::take(&mut first).then(|| Err(io::Error::other("stream reset")))
        });
        assert!(r.read(&mut [0u8; 4]).is_err());
    }
}
