//! Erasing old signatures: the first and last MiB of a range (which hold the
//! MBR boot code, GPT primary and backup, and the superblocks of ext2/3/4,
//! vfat, swap, btrfs, xfs, LUKS, LVM and md), plus btrfs mirror superblocks and
//! LUKS2 secondary headers further in. Regions already zero are not written,
//! so a sparse image stays sparse and a re-run writes nothing.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::signatures::{far_magic_offsets, read_at};

const MIB: u64 = 1 << 20;

/// The byte regions `[offset, offset+len)` of a range that a wipe zeroes.
fn regions(start: u64, len: u64) -> Vec<(u64, u64)> {
    let head = MIB.min(len);
    let mut out = vec![(start, head)];
    if len > head {
        let tail = MIB.min(len - head);
        out.push((start + len - tail, tail));
    }
    out
}

fn is_zero(dev: &File, offset: u64, len: u64) -> io::Result<bool> {
    let buf = read_at(dev, offset, len as usize)?;
    Ok(buf.iter().all(|&b| b == 0))
}

/// Whether the range is already wiped (its head, tail and far magics zero).
pub fn is_wiped(dev: &File, start: u64, len: u64) -> io::Result<bool> {
    for (o, l) in regions(start, len) {
        if !is_zero(dev, o, l)? {
            return Ok(false);
        }
    }
    Ok(far_magic_offsets(dev, start, len)?.is_empty())
}

/// Zero the signature regions of `[start, start+len)`; returns bytes written.
pub fn wipe_range(dev: &File, start: u64, len: u64) -> io::Result<u64> {
    let mut written = 0;
    for (o, l) in regions(start, len) {
        if !is_zero(dev, o, l)? {
            dev.write_all_at(&vec![0u8; l as usize], o)?;
            written += l;
        }
    }
    for (o, l) in far_magic_offsets(dev, start, len)? {
        dev.write_all_at(&vec![0u8; l], start + o)?;
        written += l as u64;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::signatures::detect;

    #[test]
    fn wipes_head_tail_and_far_copies_once() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(8 << 20).unwrap();
        f.write_at(b"EFI PART", 512).unwrap();
        f.write_at(b"EFI PART", (8 << 20) - 512).unwrap();
        f.write_at(&[0x53, 0xEF], 1024 + 0x38).unwrap();
        f.write_at(b"SKUL\xba\xbe", 4 << 20).unwrap();
        assert!(!detect(&f, 0, 8 << 20, 512).unwrap().is_empty());
        assert!(!is_wiped(&f, 0, 8 << 20).unwrap());
        assert_eq!(wipe_range(&f, 0, 8 << 20).unwrap(), 2 * MIB + 6);
        assert!(detect(&f, 0, 8 << 20, 512).unwrap().is_empty());
        assert!(is_wiped(&f, 0, 8 << 20).unwrap());
        assert_eq!(wipe_range(&f, 0, 8 << 20).unwrap(), 0);
    }

    #[test]
    fn small_ranges() {
        assert_eq!(regions(0, 4096), vec![(0, 4096)]);
        assert_eq!(regions(10, MIB + 5), vec![(10, MIB), (10 + MIB, 5)]);
    }
}
