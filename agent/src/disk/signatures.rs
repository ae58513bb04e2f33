//! Recognising what is on a device range by its magic bytes, the way blkid
//! does for the formats landfall cares about: ext2/3/4, vfat, swap, btrfs, xfs,
//! LUKS, LVM, md RAID, GPT, an MBR. Used for the plan ("what exists now") and
//! for the idempotence checks; [`super::wipe`] erases what is found.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A filesystem or container signature found in a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// blkid's TYPE name: `ext4`, `vfat`, `swap`, `btrfs`, `xfs`, `crypto_LUKS`,
    /// `LVM2_member`, `linux_raid_member`, `gpt`, `dos`.
    pub kind: &'static str,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

/// Read `len` bytes at `offset`; short reads past the end give zeros, and so
/// do offsets no device reaches (beyond `i64::MAX`, where `pread` says EINVAL).
pub fn read_at(dev: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let Some(at) = offset
            .checked_add(done as u64)
            .filter(|&at| at <= i64::MAX as u64)
        else {
            break;
        };
        match dev.read_at(&mut buf[done..], at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn text(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]).trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

fn uuid_text(b: &[u8]) -> Option<String> {
    if b.iter().all(|&c| c == 0) {
        return None;
    }
    let h = hex(b);
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// ext2/3/4 from the superblock at 1024 bytes.
fn ext(sb: &[u8]) -> Option<Signature> {
    if le16(sb, 0x38) != 0xEF53 {
        return None;
    }
    let compat = le32(sb, 0x5C);
    let incompat = le32(sb, 0x60);
    // EXTENTS | 64BIT | FLEX_BG | MMP... : anything beyond ext3's incompat set is ext4.
    let kind = if incompat & !(0x2 | 0x4) != 0 {
        "ext4"
    } else if compat & 0x4 != 0 {
        "ext3"
    } else {
        "ext2"
    };
    Some(Signature {
        kind,
        label: text(&sb[0x78..0x88]),
        uuid: uuid_text(&sb[0x68..0x78]),
    })
}

/// FAT from the boot sector.
fn fat(bs: &[u8]) -> Option<Signature> {
    if bs[510] != 0x55 || bs[511] != 0xAA {
        return None;
    }
    let (label_at, id_at) = if &bs[0x52..0x57] == b"FAT32" {
        (0x47, 0x43)
    } else if &bs[0x36..0x39] == b"FAT" {
        (0x2B, 0x27)
    } else {
        return None;
    };
    let id = le32(bs, id_at);
    let label = text(&bs[label_at..label_at + 11]).filter(|l| l != "NO NAME");
    Some(Signature {
        kind: "vfat",
        label,
        uuid: Some(format!("{:04X}-{:04X}", id >> 16, id & 0xFFFF)),
    })
}

/// Linux swap v1: magic at the end of the first page (any page size up to 64 KiB).
fn swap(head: &[u8]) -> Option<Signature> {
    for page in [4096usize, 8192, 16384, 65536] {
        if head.len() >= page
            && (&head[page - 10..page] == b"SWAPSPACE2" || &head[page - 10..page] == b"SWAP-SPACE")
        {
            return Some(Signature {
                kind: "swap",
                label: text(&head[0x41C..0x42C]),
                uuid: uuid_text(&head[0x40C..0x41C]),
            });
        }
    }
    None
}

/// The offsets (relative to the range start) that hold a magic of one of the
/// multi-copy formats, beyond the first MiB: btrfs mirror superblocks and LUKS2
/// secondary headers. [`super::wipe`] zeroes these too.
pub fn far_magic_offsets(dev: &File, start: u64, len: u64) -> io::Result<Vec<(u64, usize)>> {
    let mut out = Vec::new();
    for off in [64u64 << 20, 256u64 << 30, 1u64 << 50] {
        if off + 0x10000 <= len && read_at(dev, start + off + 0x40, 8)? == b"_BHRfS_M" {
            out.push((off + 0x40, 8));
        }
    }
    for off in [1u64 << 20, 2 << 20, 4 << 20] {
        if off + 4096 <= len && read_at(dev, start + off, 6)? == b"SKUL\xba\xbe" {
            out.push((off, 6));
        }
    }
    Ok(out)
}

/// Whether the range carries an MBR boot signature or boot code.
fn mbr(head: &[u8]) -> bool {
    head[510] == 0x55 && head[511] == 0xAA
}

/// Signatures in the range `[start, start+len)` of `dev` whose logical sector
/// size is `sector` (for the GPT header at LBA 1).
pub fn detect(dev: &File, start: u64, len: u64, sector: u64) -> io::Result<Vec<Signature>> {
    let head = read_at(dev, start, (1 << 17).min(len) as usize)?;
    let mut head = head;
    head.resize(1 << 17, 0);
    let mut out = Vec::new();
    let plain = |kind| Signature {
        kind,
        label: None,
        uuid: None,
    };
    if let Some(s) = ext(&head[1024..2048]) {
        out.push(s);
    }
    if let Some(s) = fat(&head[..512]) {
        out.push(s);
    }
    if let Some(s) = swap(&head) {
        out.push(s);
    }
    if &head[0x10040..0x10048] == b"_BHRfS_M" {
        out.push(Signature {
            kind: "btrfs",
            label: text(&head[0x1012B..0x1022B]),
            uuid: uuid_text(&head[0x10020..0x10030]),
        });
    }
    if &head[0..4] == b"XFSB" {
        out.push(Signature {
            kind: "xfs",
            label: text(&head[0x6C..0x78]),
            uuid: uuid_text(&head[0x20..0x30]),
        });
    }
    if &head[0..6] == b"LUKS\xba\xbe" {
        out.push(plain("crypto_LUKS"));
    }
    if (0..4).any(|s| {
        &head[s * 512..s * 512 + 8] == b"LABELONE"
            && &head[s * 512 + 24..s * 512 + 32] == b"LVM2 001"
    }) {
        out.push(plain("LVM2_member"));
    }
    let md_magic = 0xa92b_4efcu32;
    let md_end_090 = (len & !0xFFFF).saturating_sub(0x10000);
    let md_end_10 = (len.saturating_sub(8192)) & !0xFFF;
    let md_hit = le32(&head, 0) == md_magic
        || le32(&head, 4096) == md_magic
        || (len >= 0x20000
            && le32(&read_at(dev, start.saturating_add(md_end_090), 4)?, 0) == md_magic)
        || (len >= 0x3000
            && le32(&read_at(dev, start.saturating_add(md_end_10), 4)?, 0) == md_magic);
    if md_hit {
        out.push(plain("linux_raid_member"));
    }
    if len >= 2 * sector && read_at(dev, start.saturating_add(sector), 8)? == b"EFI PART" {
        out.push(plain("gpt"));
    } else if len >= sector * 2
        && read_at(dev, start.saturating_add(len - sector), 8)? == b"EFI PART"
    {
        out.push(plain("gpt (backup header)"));
    } else if mbr(&head) && !out.iter().any(|s| s.kind == "vfat") {
        out.push(plain("dos"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_nothing_on_zeros_and_finds_magics() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(4 << 20).unwrap();
        assert!(detect(&f, 0, 4 << 20, 512).unwrap().is_empty());
        f.write_at(b"XFSB", 0).unwrap();
        f.write_at(b"SWAPSPACE2", 4086).unwrap();
        f.write_at(b"SKUL\xba\xbe", 2 << 20).unwrap();
        let kinds: Vec<_> = detect(&f, 0, 4 << 20, 512)
            .unwrap()
            .into_iter()
            .map(|s| s.kind)
            .collect();
        assert_eq!(kinds, vec!["swap", "xfs"]);
        assert_eq!(
            far_magic_offsets(&f, 0, 4 << 20).unwrap(),
            vec![(2 << 20, 6)]
        );
    }
}
