//! Block-device ioctls: the geometry (BLKGETSIZE64, BLKSSZGET, BLKPBSZGET,
//! BLKROGET) and throwing away or zeroing a byte range (BLKDISCARD, BLKZEROOUT).
//!
//! [`device_size`] and friends also accept a regular file (a disk image), for
//! which the size is the file length and the sector sizes are 512.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::AsRawFd;

// <linux/fs.h>: _IO(0x12, 104), _IO(0x12, 123), _IOR(0x12, 114, size_t), _IO(0x12, 94)
nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
nix::ioctl_read_bad!(blksszget, nix::request_code_none!(0x12, 104), libc::c_int);
nix::ioctl_read_bad!(blkpbszget, nix::request_code_none!(0x12, 123), libc::c_uint);
nix::ioctl_read_bad!(blkroget, nix::request_code_none!(0x12, 94), libc::c_int);
// <linux/fs.h>: BLKDISCARD _IO(0x12, 119), BLKZEROOUT _IO(0x12, 127); both take `u64 range[2]`.
nix::ioctl_write_ptr_bad!(blkdiscard, nix::request_code_none!(0x12, 119), [u64; 2]);
nix::ioctl_write_ptr_bad!(blkzeroout, nix::request_code_none!(0x12, 127), [u64; 2]);

/// BLKDISCARD: the device may throw away `[offset, offset + len)` (what it
/// then reads back as is up to the device).
pub fn discard_range(file: &File, offset: u64, len: u64) -> nix::Result<()> {
    let range = [offset, len];
    // SAFETY: valid fd; `range` is a live [u64; 2] the kernel only reads.
    unsafe { blkdiscard(file.as_raw_fd(), &range) }.map(drop)
}

/// BLKZEROOUT: `[offset, offset + len)` reads back as zeros afterwards (the
/// device may offload it).
pub fn zero_out_range(file: &File, offset: u64, len: u64) -> nix::Result<()> {
    let range = [offset, len];
    // SAFETY: valid fd; `range` is a live [u64; 2] the kernel only reads.
    unsafe { blkzeroout(file.as_raw_fd(), &range) }.map(drop)
}

/// Errors of the geometry ioctls, each naming the request that failed.
#[derive(Debug, thiserror::Error)]
pub enum BlkError {
    #[error("Cannot stat the device")]
    Stat(#[source] io::Error),
    #[error("BLKGETSIZE64 failed")]
    GetSize64(#[source] nix::Error),
    #[error("BLKSSZGET failed")]
    LogicalSectorSize(#[source] nix::Error),
    #[error("BLKPBSZGET failed")]
    PhysicalSectorSize(#[source] nix::Error),
    #[error("BLKROGET failed")]
    ReadOnly(#[source] nix::Error),
}

fn is_block_device(file: &File) -> Result<bool, BlkError> {
    Ok(file
        .metadata()
        .map_err(BlkError::Stat)?
        .file_type()
        .is_block_device())
}

/// Size in bytes of a block device (BLKGETSIZE64) or of a regular file.
pub fn device_size(file: &File) -> Result<u64, BlkError> {
    if !is_block_device(file)? {
        return Ok(file.metadata().map_err(BlkError::Stat)?.len());
    }
    let mut size: u64 = 0;
    // SAFETY: the fd is open for the duration of the call and `size` is a valid u64
    // the kernel writes exactly 8 bytes into.
    unsafe { blkgetsize64(file.as_raw_fd(), &mut size) }.map_err(BlkError::GetSize64)?;
    Ok(size)
}

/// Logical sector size (BLKSSZGET); 512 for a regular file.
pub fn logical_sector_size(file: &File) -> Result<u32, BlkError> {
    if !is_block_device(file)? {
        return Ok(512);
    }
    let mut v: libc::c_int = 0;
    // SAFETY: valid fd; the kernel writes one int into `v`.
    unsafe { blksszget(file.as_raw_fd(), &mut v) }.map_err(BlkError::LogicalSectorSize)?;
    Ok(v as u32)
}

/// Physical sector size (BLKPBSZGET); 512 for a regular file.
pub fn physical_sector_size(file: &File) -> Result<u32, BlkError> {
    if !is_block_device(file)? {
        return Ok(512);
    }
    let mut v: libc::c_uint = 0;
    // SAFETY: valid fd; the kernel writes one unsigned int into `v`.
    unsafe { blkpbszget(file.as_raw_fd(), &mut v) }.map_err(BlkError::PhysicalSectorSize)?;
    Ok(v)
}

/// Whether the device is read-only (BLKROGET); false for a regular file.
pub fn is_read_only(file: &File) -> Result<bool, BlkError> {
    if !is_block_device(file)? {
        return Ok(false);
    }
    let mut v: libc::c_int = 0;
    // SAFETY: valid fd; the kernel writes one int into `v`.
    unsafe { blkroget(file.as_raw_fd(), &mut v) }.map_err(BlkError::ReadOnly)?;
    Ok(v != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request numbers as <linux/fs.h> defines them on x86_64.
    #[test]
    fn ioctl_numbers_match_the_kernel() {
        assert_eq!(nix::request_code_read!(0x12, 114, 8), 0x8008_1272); // BLKGETSIZE64
        assert_eq!(nix::request_code_none!(0x12, 104), 0x1268); // BLKSSZGET
        assert_eq!(nix::request_code_none!(0x12, 123), 0x127b); // BLKPBSZGET
        assert_eq!(nix::request_code_none!(0x12, 94), 0x125e); // BLKROGET
        assert_eq!(nix::request_code_none!(0x12, 119), 0x1277); // BLKDISCARD
        assert_eq!(nix::request_code_none!(0x12, 127), 0x127f); // BLKZEROOUT
    }

    #[test]
    fn regular_file_geometry() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(3 << 20).unwrap();
        assert_eq!(device_size(&f).unwrap(), 3 << 20);
        assert_eq!(logical_sector_size(&f).unwrap(), 512);
        assert!(!is_read_only(&f).unwrap());
    }
}
