//! `ChunkReader`: a blocking `Read` over chunks handed over one at a time
//! (e.g. `move || rx.blocking_recv()` on a tokio channel fed by the gRPC
//! stream), so the pull-based NAR decoder can run in `spawn_blocking` while
//! the async side receives. Holds one chunk at a time.

use std::io::{self, Read};

/// Reads the concatenation of the chunks `next` yields until it yields `None`.
pub struct ChunkReader<F> {
    next: F,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<F> ChunkReader<F>
where
    F: FnMut() -> Option<io::Result<Vec<u8>>>,
{
    /// A reader pulling chunks from `next`; `Some(Err(_))` is passed on as a read error.
    pub fn new(next: F) -> Self {
        Self {
            next,
            chunk: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl<F> Read for ChunkReader<F>
where
    F: FnMut() -> Option<io::Result<Vec<u8>>>,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match (self.next)() {
                Some(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => self.done = true,
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenates_chunks_and_skips_empty_ones() {
        let mut chunks = vec![b"ab".to_vec(), Vec::new(), b"cde".to_vec()].into_iter();
        let mut r = ChunkReader::new(move || chunks.next().map(Ok));
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abcde");
    }

    #[test]
    fn passes_errors_on() {
        let mut first = true;
        let mut r = ChunkReader::new(move || {
            std::mem::take(&mut first).then(|| Err(io::Error::other("stream reset")))
        });
        assert!(r.read(&mut [0u8; 4]).is_err());
    }
}
