//! Whole-device operations the writers need besides plain writes: throwing away
//! old contents (hole punching for image files, BLKDISCARD for block devices)
//! and zeroing a byte range (BLKZEROOUT, which the device may offload).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::fcntl::{fallocate, FallocateFlags};
use nix::unistd::{lseek, Whence};

use crate::sys::blk::{self, is_block_device};

/// Throw away the contents of `[0, len)`, as mke2fs does before formatting,
/// except the sorted, disjoint byte ranges in `rewritten` that the caller is
/// about to overwrite completely anyway. Returns whether everything else now
/// reads back as zeros (only guaranteed for a regular file whose data was
/// punched out). Devices without discard are fine.
pub fn discard(dev: &File, len: u64, rewritten: &[(u64, u64)]) -> io::Result<bool> {
    if is_block_device(dev)? {
        // A device without discard support is fine.
        let _ = blk::discard_range(dev, 0, len);
        return Ok(false);
    }
    // Punch out only the parts holding data that will not be overwritten: a
    // sparse image is mostly holes, and punching costs the host filesystem time.
    let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    for (start, end) in subtract(&data_segments(dev, len)?, rewritten) {
        match fallocate(dev, flags, start as i64, (end - start) as i64) {
            Ok(()) => {}
            Err(Errno::EOPNOTSUPP) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// `ranges` minus `holes`; both sorted and disjoint.
fn subtract(ranges: &[(u64, u64)], holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut h = 0;
    for &(mut s, e) in ranges {
        while h < holes.len() && holes[h].1 <= s {
            h += 1;
        }
        let mut k = h;
        while s < e {
            match holes.get(k) {
                Some(&(hs, he)) if hs < e => {
                    if hs > s {
                        out.push((s, hs));
                    }
                    s = s.max(he);
                    k += 1;
                }
                _ => {
                    out.push((s, e));
                    break;
                }
            }
        }
    }
    out
}

/// The `[start, end)` ranges of a regular file below `len` that hold data
/// (SEEK_DATA / SEEK_HOLE); the whole range when the filesystem cannot tell.
fn data_segments(dev: &File, len: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = dev.as_fd();
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let start = match lseek(fd, pos as i64, Whence::SeekData) {
            Ok(p) => p as u64,
            Err(Errno::ENXIO) => break,
            Err(Errno::EINVAL) => return Ok(vec![(pos, len)]),
            Err(e) => return Err(e.into()),
        };
        if start >= len {
            break;
        }
        let end = match lseek(fd, start as i64, Whence::SeekHole) {
            Ok(p) => (p as u64).min(len),
            Err(e) => return Err(e.into()),
        };
        out.push((start, end));
        pos = end;
    }
    Ok(out)
}

/// Make `[offset, offset + len)` read back as zeros.
pub fn zero_range(dev: &File, offset: u64, len: u64) -> io::Result<()> {
    if is_block_device(dev)? {
        if blk::zero_out_range(dev, offset, len).is_ok() {
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
    fn punch_and_zero_a_file() {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&[0xAA; 8192], 0).unwrap();
        zero_range(&f, 100, 200).unwrap();
        let mut buf = [0u8; 8192];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 0).unwrap();
        assert!(buf[100..300].iter().all(|&b| b == 0));
        assert_eq!(buf[99], 0xAA);
        assert_eq!(buf[300], 0xAA);
        if discard(&f, 8192, &[]).unwrap() {
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 0).unwrap();
            assert!(buf.iter().all(|&b| b == 0));
        }
        assert_eq!(f.metadata().unwrap().len(), 8192);
    }

    #[test]
    fn subtract_ranges() {
        assert_eq!(subtract(&[(0, 100)], &[]), vec![(0, 100)]);
        assert_eq!(subtract(&[(0, 100)], &[(0, 100)]), vec![]);
        assert_eq!(
            subtract(&[(0, 100), (200, 300)], &[(10, 20), (90, 210), (250, 260)]),
            vec![(0, 10), (20, 90), (210, 250), (260, 300)]
        );
        assert_eq!(subtract(&[(50, 60)], &[(0, 10), (55, 70)]), vec![(50, 55)]);
    }

    #[test]
    fn discard_keeps_what_will_be_rewritten() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(1 << 20).unwrap();
        f.write_all_at(&[7; 16384], 0).unwrap();
        assert!(discard(&f, 1 << 20, &[(4096, 8192)]).unwrap());
        let mut buf = [0u8; 16384];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 0));
        assert!(buf[4096..8192].iter().all(|&b| b == 7));
        assert!(buf[8192..].iter().all(|&b| b == 0));
    }

    #[test]
    fn finds_data_segments_of_a_sparse_file() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&[1; 4096], 8 << 20).unwrap();
        f.write_all_at(&[1; 4096], 40 << 20).unwrap();
        let segs = data_segments(&f, 64 << 20).unwrap();
        // tmpfs and ext4 report the written blocks (possibly rounded to pages).
        assert!(
            segs.iter().any(|&(s, e)| s <= 8 << 20 && e > 8 << 20),
            "{segs:?}"
        );
        assert!(
            segs.iter().any(|&(s, e)| s <= 40 << 20 && e > 40 << 20),
            "{segs:?}"
        );
        assert!(discard(&f, 64 << 20, &[]).unwrap());
        assert!(data_segments(&f, 64 << 20).unwrap().is_empty());
        let mut buf = [0xFFu8; 4096];
        f.read_exact_at(&mut buf, 8 << 20).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
    }
}
