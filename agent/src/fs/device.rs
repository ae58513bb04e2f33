//! Whole-device operations the writers need besides plain writes: throwing away
//! old contents (hole punching for image files, BLKDISCARD for block devices)
//! and zeroing a byte range (BLKZEROOUT, which the device may offload).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::os::unix::io::AsRawFd;

use nix::fcntl::{fallocate, FallocateFlags};

// <linux/fs.h>: BLKDISCARD _IO(0x12, 119), BLKZEROOUT _IO(0x12, 127); both take `u64 range[2]`.
nix::ioctl_write_ptr_bad!(blkdiscard, nix::request_code_none!(0x12, 119), [u64; 2]);
nix::ioctl_write_ptr_bad!(blkzeroout, nix::request_code_none!(0x12, 127), [u64; 2]);

fn is_block_device(dev: &File) -> io::Result<bool> {
    Ok(dev.metadata()?.file_type().is_block_device())
}

/// Throw away the contents of `[0, len)`, as mke2fs does before formatting.
/// Returns whether the range now reads back as zeros (only guaranteed for a
/// regular file whose blocks were punched out). Devices without discard are fine.
pub fn discard(dev: &File, len: u64) -> io::Result<bool> {
    if is_block_device(dev)? {
        let range = [0u64, len];
        // SAFETY: valid fd; `range` is a live [u64; 2] the kernel only reads.
        let _ = unsafe { blkdiscard(dev.as_raw_fd(), &range) };
        return Ok(false);
    }
    let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    match fallocate(dev, flags, 0, len as i64) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EOPNOTSUPP) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Make `[offset, offset + len)` read back as zeros.
pub fn zero_range(dev: &File, offset: u64, len: u64) -> io::Result<()> {
    if is_block_device(dev)? {
        let range = [offset, len];
        // SAFETY: valid fd; `range` is a live [u64; 2] the kernel only reads.
        if unsafe { blkzeroout(dev.as_raw_fd(), &range) }.is_ok() {
            return Ok(());
        }
    } else {
        let flags = FallocateFlags::FALLOC_FL_ZERO_RANGE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        if fallocate(dev, flags, offset as i64, len as i64).is_ok() {
            return Ok(());
        }
    }
    let zeros = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        dev.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel() {
        assert_eq!(nix::request_code_none!(0x12, 119), 0x1277); // BLKDISCARD
        assert_eq!(nix::request_code_none!(0x12, 127), 0x127f); // BLKZEROOUT
    }

    #[test]
    fn punch_and_zero_a_file() {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&[0xAA; 8192], 0).unwrap();
        zero_range(&f, 100, 200).unwrap();
        let mut buf = [0u8; 8192];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 0).unwrap();
        assert!(buf[100..300].iter().all(|&b| b == 0));
        assert_eq!(buf[99], 0xAA);
        assert_eq!(buf[300], 0xAA);
        if discard(&f, 8192).unwrap() {
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 0).unwrap();
            assert!(buf.iter().all(|&b| b == 0));
        }
        assert_eq!(f.metadata().unwrap().len(), 8192);
    }
}
