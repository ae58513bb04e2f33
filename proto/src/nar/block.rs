//! The closure stream's block format: a path's NAR travels as a sequence of
//! blocks, each either raw bytes or one whole zstd frame, so the sender can
//! skip compression for data that does not compress (already-compressed or
//! random bytes) and the receiver then skips decompression too.
//!
//! Only the sizes both sides must agree on live here; zstd itself is the
//! caller's business (this crate stays free of C dependencies).

/// NAR bytes per block the controller cuts. Small enough that a block's
/// buffers stay below musl's mmap threshold (no map/unmap per message on the
/// agent), large enough that per-message costs vanish.
pub const NAR_BLOCK: usize = 96 << 10;

/// The most bytes one `zstd_block` may decompress to; a receiver refuses a
/// frame that expands beyond it (so a compression bomb costs nothing).
pub const MAX_BLOCK_DECOMPRESSED: usize = 1 << 20;

const _: () = assert!(NAR_BLOCK <= MAX_BLOCK_DECOMPRESSED && PROBE < NAR_BLOCK);

/// Bytes of a block the sender compresses first to guess whether the whole
/// block is worth compressing.
pub const PROBE: usize = 8 << 10;

/// Whether `compressed` bytes for `original` bytes save enough (at least 5 %)
/// to be worth the receiver's decompression.
pub fn worth_compressing(original: usize, compressed: usize) -> bool {
    (compressed as u64) * 100 < (original as u64) * 95
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_percent_saving_is_the_line() {
        assert!(worth_compressing(1000, 949));
        assert!(!worth_compressing(1000, 950));
        assert!(!worth_compressing(1000, 1010));
        assert!(!worth_compressing(0, 0));
    }
}
