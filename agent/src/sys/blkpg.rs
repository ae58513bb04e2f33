//! Telling the kernel about partitions: BLKRRPART (re-read the whole table)
//! and BLKPG (add or delete one partition); and BLKFLSBUF, which drops the
//! whole disk's page cache — stale once partitions were written through their
//! own device nodes, whose caches are separate. On a kernel without a GPT parser
//! (this project's CI host) BLKPG is the only way partitions of a loop device
//! appear — what `partx -a` does.

use std::fs::File;
use std::os::unix::io::AsRawFd;

// <linux/fs.h>, as the 32 bits the kernel sees.
/// `#define BLKRRPART _IO(0x12,95)`
const BLKRRPART: u32 = nix::request_code_none!(0x12, 95) as u32;
/// `#define BLKPG _IO(0x12,105)`
const BLKPG: u32 = nix::request_code_none!(0x12, 105) as u32;
/// `#define BLKFLSBUF _IO(0x12,97)`
const BLKFLSBUF: u32 = nix::request_code_none!(0x12, 97) as u32;
nix::ioctl_none_bad!(blkrrpart, BLKRRPART);
nix::ioctl_write_ptr_bad!(blkpg, BLKPG, BlkpgIoctlArg);
nix::ioctl_none_bad!(blkflsbuf, BLKFLSBUF);

/// <linux/blkpg.h> `BLKPG_ADD_PARTITION`.
const BLKPG_ADD_PARTITION: libc::c_int = 1;
/// <linux/blkpg.h> `BLKPG_DEL_PARTITION`.
const BLKPG_DEL_PARTITION: libc::c_int = 2;
/// <linux/blkpg.h> `BLKPG_DEVNAMELTH` / `BLKPG_VOLNAMELTH`.
const NAME_LEN: usize = 64;

/// <linux/blkpg.h> `struct blkpg_ioctl_arg`.
#[repr(C)]
pub struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// <linux/blkpg.h> `struct blkpg_partition` (start and length in bytes).
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; NAME_LEN],
    volname: [libc::c_char; NAME_LEN],
}

/// Errors of the partition ioctls, each naming the request.
#[derive(Debug, thiserror::Error)]
pub enum BlkpgError {
    #[error("BLKRRPART failed")]
    RereadPartitions(#[source] nix::Error),
    #[error("BLKPG_ADD_PARTITION of partition {number} failed")]
    AddPartition {
        number: u32,
        #[source]
        source: nix::Error,
    },
    #[error("BLKPG_DEL_PARTITION of partition {number} failed")]
    DeletePartition {
        number: u32,
        #[source]
        source: nix::Error,
    },
    #[error("BLKFLSBUF failed")]
    FlushBuffers(#[source] nix::Error),
    #[error("Partition {number}: byte range {start}+{length} does not fit the kernel's types")]
    Range {
        number: u32,
        start: u64,
        length: u64,
    },
}

/// Ask the kernel to re-read the whole partition table (fails with EBUSY when
/// a partition is in use, and does nothing useful without a GPT parser).
pub fn reread_partitions(disk: &File) -> Result<(), BlkpgError> {
    // SAFETY: BLKRRPART takes no argument; the fd is open for the call.
    unsafe { blkrrpart(disk.as_raw_fd()) }.map_err(BlkpgError::RereadPartitions)?;
    Ok(())
}

/// Write back and drop the block device's page cache, so reads see what was
/// written through other nodes (the partitions).
pub fn flush_buffers(disk: &File) -> Result<(), BlkpgError> {
    // SAFETY: BLKFLSBUF takes no argument; the fd is open for the call.
    unsafe { blkflsbuf(disk.as_raw_fd()) }.map_err(BlkpgError::FlushBuffers)?;
    Ok(())
}

fn call(disk: &File, op: libc::c_int, part: &mut BlkpgPartition) -> nix::Result<libc::c_int> {
    let arg = BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: `arg` points at a live, correctly sized `blkpg_partition` for the
    // duration of the call; the kernel only reads both structs.
    unsafe { blkpg(disk.as_raw_fd(), &arg) }
}

fn partition(number: u32, start: u64, length: u64) -> Result<BlkpgPartition, BlkpgError> {
    let range = || BlkpgError::Range {
        number,
        start,
        length,
    };
    Ok(BlkpgPartition {
        start: i64::try_from(start).map_err(|_| range())?,
        length: i64::try_from(length).map_err(|_| range())?,
        pno: i32::try_from(number).map_err(|_| range())?,
        devname: [0; NAME_LEN],
        volname: [0; NAME_LEN],
    })
}

/// Add partition `number` covering `length` bytes from byte `start`.
pub fn add_partition(disk: &File, number: u32, start: u64, length: u64) -> Result<(), BlkpgError> {
    let mut p = partition(number, start, length)?;
    call(disk, BLKPG_ADD_PARTITION, &mut p)
        .map_err(|source| BlkpgError::AddPartition { number, source })?;
    Ok(())
}

/// Delete partition `number` (ENXIO when it does not exist).
pub fn delete_partition(disk: &File, number: u32) -> Result<(), BlkpgError> {
    let mut p = partition(number, 0, 0)?;
    call(disk, BLKPG_DEL_PARTITION, &mut p)
        .map_err(|source| BlkpgError::DeletePartition { number, source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel() {
        assert_eq!(BLKRRPART, 0x125f);
        assert_eq!(BLKPG, 0x1269);
        assert_eq!(BLKFLSBUF, 0x1261);
    }

    #[test]
    fn struct_layouts_match_the_kernel() {
        // x86_64: int op, int flags, int datalen, (pad), void *data
        assert_eq!(std::mem::size_of::<BlkpgIoctlArg>(), 24);
        // long long start, long long length, int pno, char[64], char[64], (pad)
        assert_eq!(std::mem::size_of::<BlkpgPartition>(), 152);
    }

    #[test]
    fn ranges_beyond_i64_are_refused() {
        assert!(matches!(
            partition(1, u64::MAX, 1),
            Err(BlkpgError::Range { .. })
        ));
    }
}
