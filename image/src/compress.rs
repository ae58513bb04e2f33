//! zstd compression of the initramfs with settings the kernel can decompress,
//! and the padding rule for appending further archives.
//!
//! The kernel's `unzstd` (CONFIG_RD_ZSTD) allocates the frame's window while
//! booting, so the window stays at 8 MiB (`window_log` 23, what level 19
//! uses anyway) rather than a long-distance window.

use std::io::{self, Write};

/// zstd level for the initrd: slow to build, small, fast to decompress.
pub const INITRD_ZSTD_LEVEL: i32 = 19;
/// zstd window log for the initrd (8 MiB).
pub const INITRD_WINDOW_LOG: u32 = 23;

/// Compresses a cpio archive as one zstd frame at `level` (with content size
/// and checksum; the window capped at 8 MiB whatever the level), padded with
/// zeros to a multiple of 4 bytes so another archive can be appended (see
/// [`append_archive`]).
pub fn compress_initrd(cpio: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), level)?;
    encoder.window_log(INITRD_WINDOW_LOG)?;
    encoder.include_checksum(true)?;
    encoder.include_contentsize(true)?;
    encoder.set_pledged_src_size(Some(cpio.len() as u64))?;
    encoder.write_all(cpio)?;
    let mut out = encoder.finish()?;
    pad_to_4(&mut out);
    Ok(out)
}

fn pad_to_4(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_initrd_decompresses_and_is_padded() {
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| (i / 7).to_le_bytes()).collect();
        let compressed = compress_initrd(&data, INITRD_ZSTD_LEVEL).unwrap();
        assert_eq!(compressed.len() % 4, 0);
        assert_eq!(&compressed[..4], &[0x28, 0xB5, 0x2F, 0xFD], "zstd magic");
        // The decoder stops at the frame's end; the NUL padding is not a frame.
        let mut decoder = zstd::stream::read::Decoder::new(compressed.as_slice())
            .unwrap()
            .single_frame();
        let mut out = Vec::new();
        io::Read::read_to_end(&mut decoder, &mut out).unwrap();
        assert_eq!(out, data);
        let params = zstd::zstd_safe::get_frame_content_size(&compressed).unwrap();
        assert_eq!(params, Some(data.len() as u64));
    }
}
