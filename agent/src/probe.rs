//! Read-only detection of filesystem and container signatures at the start of a
//! device: what `blkid -p` would say for the types landfall meets on servers.
//!
//! Each probe reads fixed offsets only; a short or unreadable device yields no
//! signature rather than an error, because inventory must not fail over one disk.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// A signature found on a device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signature {
    /// blkid's TYPE: ext4, ext3, ext2, vfat, swap, xfs, btrfs, crypto_LUKS, LVM2_member, linux_raid_member.
    pub fs_type: String,
    pub label: String,
    pub uuid: String,
    /// Byte offset and bytes of the magic, so a wipe can clear exactly this.
    pub magic_offset: u64,
    pub magic_len: usize,
}

fn read_at(dev: &File, offset: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    dev.read_exact_at(&mut buf, offset).ok()?;
    Some(buf)
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_string()
}

/// Formats 16 bytes as a UUID string (8-4-4-4-12, lower case).
pub fn uuid_string(u: &[u8]) -> String {
    let h = |r: std::ops::Range<usize>| u[r].iter().map(|b| format!("{b:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

fn probe_ext(dev: &File) -> Option<Signature> {
    let sb = read_at(dev, 1024, 1024)?;
    if le16(&sb, 0x38) != 0xEF53 {
        return None;
    }
    let compat = le32(&sb, 0x5C);
    let incompat = le32(&sb, 0x60);
    let fs_type = if incompat & 0x40 != 0 || incompat & 0x80 != 0 || incompat & 0x200 != 0 {
        "ext4" // extents, 64bit or flex_bg
    } else if compat & 0x4 != 0 {
        "ext3" // has_journal
    } else {
        "ext2"
    };
    Some(Signature {
        fs_type: fs_type.into(),
        label: cstr(&sb[0x78..0x88]),
        uuid: uuid_string(&sb[0x68..0x78]),
        magic_offset: 1024 + 0x38,
        magic_len: 2,
    })
}

fn probe_vfat(dev: &File) -> Option<Signature> {
    let bs = read_at(dev, 0, 512)?;
    if bs[510] != 0x55 || bs[511] != 0xAA {
        return None;
    }
    let (id_at, label_at, kind_at) = if &bs[82..87] == b"FAT32" {
        (67, 71, 82)
    } else if &bs[54..59] == b"FAT12" || &bs[54..59] == b"FAT16" {
        (39, 43, 54)
    } else {
        return None;
    };
    let id = le32(&bs, id_at);
    let label = cstr(&bs[label_at..label_at + 11]);
    Some(Signature {
        fs_type: "vfat".into(),
        label: if label == "NO NAME" {
            String::new()
        } else {
            label
        },
        uuid: format!("{:04X}-{:04X}", id >> 16, id & 0xffff),
        magic_offset: kind_at as u64,
        magic_len: 8,
    })
}

fn probe_swap(dev: &File) -> Option<Signature> {
    for page in [4096u64, 8192, 16384, 65536] {
        let magic = read_at(dev, page - 10, 10)?;
        if &magic == b"SWAPSPACE2" || &magic == b"SWAP-SPACE" {
            let hdr = read_at(dev, 1024, 64)?;
            return Some(Signature {
                fs_type: "swap".into(),
                label: cstr(&hdr[28..44]),
                uuid: uuid_string(&hdr[12..28]),
                magic_offset: page - 10,
                magic_len: 10,
            });
        }
    }
    None
}

fn probe_xfs(dev: &File) -> Option<Signature> {
    let sb = read_at(dev, 0, 128)?;
    (&sb[0..4] == b"XFSB").then(|| Signature {
        fs_type: "xfs".into(),
        label: cstr(&sb[108..120]),
        uuid: uuid_string(&sb[32..48]),
        magic_offset: 0,
        magic_len: 4,
    })
}

fn probe_btrfs(dev: &File) -> Option<Signature> {
    let sb = read_at(dev, 0x10000, 0x400)?;
    (&sb[0x40..0x48] == b"_BHRfS_M").then(|| Signature {
        fs_type: "btrfs".into(),
        label: cstr(&sb[0x12b..0x22b]),
        uuid: uuid_string(&sb[0x20..0x30]),
        magic_offset: 0x10040,
        magic_len: 8,
    })
}

fn probe_luks(dev: &File) -> Option<Signature> {
    let hdr = read_at(dev, 0, 0x100)?;
    (&hdr[0..6] == b"LUKS\xba\xbe").then(|| Signature {
        fs_type: "crypto_LUKS".into(),
        label: if le16(&hdr, 6) == 2 {
            cstr(&hdr[0x18..0x48])
        } else {
            String::new()
        },
        uuid: cstr(&hdr[0xa8..0xd0]),
        magic_offset: 0,
        magic_len: 6,
    })
}

fn probe_lvm(dev: &File) -> Option<Signature> {
    for sector in 0..4u64 {
        let s = read_at(dev, sector * 512, 512)?;
        if &s[0..8] == b"LABELONE" && &s[24..32] == b"LVM2 001" {
            return Some(Signature {
                fs_type: "LVM2_member".into(),
                label: String::new(),
                uuid: String::from_utf8_lossy(&s[32..64]).into_owned(),
                magic_offset: sector * 512,
                magic_len: 8,
            });
        }
    }
    None
}

fn probe_md(dev: &File, size: u64) -> Option<Signature> {
    // v1.1 at 0, v1.2 at 4 KiB, v1.0 and 0.90 near the end.
    let mut offsets = vec![0u64, 4096];
    if size >= 8192 {
        offsets.push((size - 8192) & !4095);
    }
    if size >= 65536 {
        offsets.push((size & !65535) - 65536);
    }
    for off in offsets {
        let s = read_at(dev, off, 4)?;
        if le32(&s, 0) == 0xa92b_4efc {
            return Some(Signature {
                fs_type: "linux_raid_member".into(),
                label: String::new(),
                uuid: String::new(),
                magic_offset: off,
                magic_len: 4,
            });
        }
    }
    None
}

/// Every signature found on `dev` (of `size` bytes), most specific first.
/// Several can coexist (e.g. a stale swap header under a new ext4).
pub fn probe_signatures(dev: &File, size: u64) -> Vec<Signature> {
    [
        probe_ext(dev),
        probe_xfs(dev),
        probe_btrfs(dev),
        probe_luks(dev),
        probe_lvm(dev),
        probe_md(dev, size),
        probe_swap(dev),
        probe_vfat(dev),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The partition table kind on a whole disk: "gpt", "dos" or None.
pub fn partition_table(dev: &File, sector_size: u32) -> Option<&'static str> {
    let hdr = read_at(dev, sector_size as u64, 8)?;
    if &hdr == b"EFI PART" {
        return Some("gpt");
    }
    let mbr = read_at(dev, 0, 512)?;
    if mbr[510] == 0x55 && mbr[511] == 0xAA {
        // A FAT boot sector also ends in 55AA; an MBR has plausible partition entries.
        let entries_ok = (0..4).all(|i| matches!(mbr[446 + i * 16], 0x00 | 0x80));
        let any = (0..4).any(|i| mbr[446 + i * 16 + 4] != 0);
        if entries_ok && any && probe_vfat(dev).is_none() {
            return Some("dos");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn image_with(bytes: &[(u64, &[u8])], size: u64) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.set_len(size).unwrap();
        for (off, b) in bytes {
            f.write_all_at(b, *off).unwrap();
        }
        f.flush().unwrap();
        f
    }

    #[test]
    fn blank_device_has_no_signature() {
        let f = image_with(&[], 1 << 20);
        assert!(probe_signatures(&f, 1 << 20).is_empty());
        assert_eq!(partition_table(&f, 512), None);
    }

    #[test]
    fn swap_header_is_found_with_label_and_uuid() {
        let mut hdr = [0u8; 64];
        hdr[12..28].copy_from_slice(&[0x11; 16]);
        hdr[28..32].copy_from_slice(b"swp1");
        let f = image_with(&[(1024, &hdr), (4086, b"SWAPSPACE2")], 1 << 20);
        let sigs = probe_signatures(&f, 1 << 20);
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].fs_type, "swap");
        assert_eq!(sigs[0].label, "swp1");
        assert_eq!(sigs[0].uuid, "11111111-1111-1111-1111-111111111111");
    }

    #[test]
    fn gpt_header_is_recognised() {
        let f = image_with(&[(512, b"EFI PART")], 1 << 20);
        assert_eq!(partition_table(&f, 512), Some("gpt"));
        let f = image_with(&[(4096, b"EFI PART")], 1 << 20);
        assert_eq!(partition_table(&f, 4096), Some("gpt"));
    }

    #[test]
    fn short_device_is_not_an_error() {
        let f = image_with(&[], 100);
        assert!(probe_signatures(&f, 100).is_empty());
    }
}
