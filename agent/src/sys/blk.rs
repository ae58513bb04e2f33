//! Block-device ioctls: the geometry (BLKGETSIZE64, BLKSSZGET, BLKPBSZGET,
//! BLKROGET) and throwing away or zeroing a byte range (BLKDISCARD, BLKZEROOUT).
//!
//! [`device_size`] and friends also accept a regular file (a disk image), for
//! which the size is the file length and the sector sizes are 512.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::AsRawFd;

// <linux/fs.h>, as the 32 bits the kernel sees.
/// `_IOR(0x12, 114, size_t)`
const BLKGETSIZE64: u32 = nix::request_code_read!(0x12, 114, std::mem::size_of::<u64>()) as u32;
/// `_IO(0x12, 104)`
const BLKSSZGET: u32 = nix::request_code_none!(0x12, 104) as u32;
/// `_IO(0x12, 123)`
const BLKPBSZGET: u32 = nix::request_code_none!(0x12, 123) as u32;
/// `_IO(0x12, 94)`
const BLKROGET: u32 = nix::request_code_none!(0x12, 94) as u32;
/// `_IO(0x12, 119)`, takes `u64 range[2]`.
const BLKDISCARD: u32 = nix::request_code_none!(0x12, 119) as u32;
/// `_IO(0x12, 127)`, takes `u64 range[2]`.
const BLKZEROOUT: u32 = nix::request_code_none!(0x12, 127) as u32;
nix::ioctl_read_bad!(blkgetsize64, BLKGETSIZE64, u64);
nix::ioctl_read_bad!(blksszget, BLKSSZGET, libc::c_int);
nix::ioctl_read_bad!(blkpbszget, BLKPBSZGET, libc::c_uint);
nix::ioctl_read_bad!(blkroget, BLKROGET, libc::c_int);
nix::ioctl_write_ptr_bad!(blkdiscard, BLKDISCARD, [u64; 2]);
nix::ioctl_write_ptr_bad!(blkzeroout, BLKZEROOUT, [u64; 2]);

/// BLKDISCARD: the device may throw away `[offset, offset + len)` (what it
/// then reads back as is up to the device).
pub fn discard_range(file: &File, offset: u64, len: u64) -> Result<(), BlkError> {
    let range = [offset, len];
    // SAFETY: valid fd; `range` is a live [u64; 2] the kernel only reads.
    unsafe { blkdiscard(file.as_raw_fd(), &range) }
        .map(drop)
        .map_err(|source| BlkError::Discard {
            offset,
            len,
            source,
        })
}

/// BLKZEROOUT: `[offset, offset + len)` reads back as zeros afterwards (the
/// device may offload it).
pub fn zero_out_range(file: &File, offset: u64, len: u64) -> Result<(), BlkError> {
    let range = [offset, len];
    // SAFETY: valid fd; `range` is a live [u64; 2] the kernel only reads.
    unsafe { blkzeroout(file.as_raw_fd(), &range) }
        .map(drop)
        .map_err(|source| BlkError::ZeroOut {
            offset,
            len,
            source,
        })
}

/// Errors of the block ioctls, each naming the request that failed.
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
    #[error("BLKDISCARD of {len} bytes at {offset} failed")]
    Discard {
        offset: u64,
        len: u64,
        #[source]
        source: nix::Error,
    },
    #[error("BLKZEROOUT of {len} bytes at {offset} failed")]
    ZeroOut {
        offset: u64,
        len: u64,
        #[source]
        source: nix::Error,
    },
}

/// Whether `file` is a block device (and not a regular file, a disk image).
pub fn is_block_device(file: &File) -> io::Result<bool> {
    Ok(file.metadata()?.file_type().is_block_device())
}

/// Size in bytes of a block device (BLKGETSIZE64) or of a regular file.
pub fn device_size(file: &File) -> Result<u64, BlkError> {
    if !is_block_device(file).map_err(BlkError::Stat)? {
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
    if !is_block_device(file).map_err(BlkError::Stat)? {
        return Ok(512);
    }
    let mut v: libc::c_int = 0;
    // SAFETY: valid fd; the kernel writes one int into `v`.
    unsafe { blksszget(file.as_raw_fd(), &mut v) }.map_err(BlkError::LogicalSectorSize)?;
    Ok(v as u32)
}

/// Physical sector size (BLKPBSZGET); 512 for a regular file.
pub fn physical_sector_size(file: &File) -> Result<u32, BlkError> {
    if !is_block_device(file).map_err(BlkError::Stat)? {
        return Ok(512);
    }
    let mut v: libc::c_uint = 0;
    // SAFETY: valid fd; the kernel writes one unsigned int into `v`.
    unsafe { blkpbszget(file.as_raw_fd(), &mut v) }.map_err(BlkError::PhysicalSectorSize)?;
    Ok(v)
}

/// Whether the device is read-only (BLKROGET); false for a regular file.
pub fn is_read_only(file: &File) -> Result<bool, BlkError> {
    if !is_block_device(file).map_err(BlkError::Stat)? {
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

    /// The request numbers the wrappers use, as <linux/fs.h> defines them on x86_64.
    #[test]
    fn ioctl_numbers_match_the_kernel() {
        assert_eq!(BLKGETSIZE64, 0x8008_1272);
        assert_eq!(BLKSSZGET, 0x1268);
        assert_eq!(BLKPBSZGET, 0x127b);
        assert_eq!(BLKROGET, 0x125e);
        assert_eq!(BLKDISCARD, 0x1277);
        assert_eq!(BLKZEROOUT, 0x127f);
    }

    #[test]
    fn regular_file_geometry() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(3 << 20).unwrap();
        assert_eq!(device_size(&f).unwrap(), 3 << 20);
        assert_eq!(logical_sector_size(&f).unwrap(), 512);
        assert!(!is_read_only(&f).unwrap());
        assert!(!is_block_device(&f).unwrap());
    }

    /// On a regular file the block ioctls fail (ENOTTY) with the request,
    /// range and errno in the error; the file is untouched.
    #[test]
    fn discard_and_zero_out_name_the_request_and_range() {
        use std::os::unix::fs::FileExt;
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&[0xAA; 4096], 0).unwrap();
        let e = discard_range(&f, 512, 1024).unwrap_err();
        assert!(
            matches!(
                e,
                BlkError::Discard {
                    offset: 512,
                    len: 1024,
                    source: nix::Error::ENOTTY
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "BLKDISCARD of 1024 bytes at 512 failed");
        let e = zero_out_range(&f, 0, 4096).unwrap_err();
        assert!(
            matches!(
                e,
                BlkError::ZeroOut {
                    offset: 0,
                    len: 4096,
                    source: nix::Error::ENOTTY
                }
            ),
            "{e:?}"
        );
        let mut buf = [0u8; 4096];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert!(buf.iter().all(|&b| b == 0xAA));
    }
}
