//! Recognising what is on a device range by its magic bytes, the way blkid
//! does for the formats landfall cares about: ext2/3/4, vfat, swap, btrfs, xfs,
//! LUKS, LVM, md RAID, GPT, an MBR. The agent's one signature detector: the
//! plan ("what exists now", through [`super::probe`]), the idempotence checks
//! and the inventory all read a disk through it, so the disks a confirmation
//! names and the data it says will be destroyed cannot disagree.
//! [`super::wipe`] erases what is found.
//!
//! Reading never fails over what the bytes say: a short, blank or corrupt
//! range yields fewer signatures, only an I/O error is an error.

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

/// Whether a first sector holds an MBR partition table, as blkid decides it:
/// the boot signature, boot flags 0x00 or 0x80 only, at least one record, and
/// not a FAT boot sector (which also ends in 55AA, its code where the records
/// would be).
pub fn is_mbr(sector0: &[u8]) -> bool {
    sector0.len() >= 512
        && sector0[510] == 0x55
        && sector0[511] == 0xAA
        && (0..4).all(|i| matches!(sector0[446 + i * 16], 0x00 | 0x80))
        && (0..4).any(|i| sector0[446 + i * 16 + 4] != 0)
        && fat(&sector0[..512]).is_none()
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
        out.push(Signature {
            kind: "crypto_LUKS",
            // Only LUKS2 has a label; both versions keep the UUID as text.
            label: (le16(&head, 6) == 2)
                .then(|| text(&head[0x18..0x48]))
                .flatten(),
            uuid: text(&head[0xA8..0xD0]),
        });
    }
    if let Some(label) = (0..4)
        .map(|s| &head[s * 512..s * 512 + 512])
        .find(|l| &l[0..8] == b"LABELONE" && &l[24..32] == b"LVM2 001")
    {
        out.push(Signature {
            kind: "LVM2_member",
            label: None,
            // The PV UUID, 32 characters as stored (blkid adds dashes).
            uuid: text(&label[32..64]),
        });
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
    } else if is_mbr(&head) {
        out.push(plain("dos"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(size: u64, bytes: &[(u64, &[u8])]) -> File {
        let f = tempfile::tempfile().unwrap();
        f.set_len(size).unwrap();
        for (at, b) in bytes {
            f.write_all_at(b, *at).unwrap();
        }
        f
    }

    fn kinds(f: &File, len: u64, sector: u64) -> Vec<&'static str> {
        detect(f, 0, len, sector)
            .unwrap()
            .into_iter()
            .map(|s| s.kind)
            .collect()
    }

    #[test]
    fn detects_nothing_on_zeros_and_finds_magics() {
        let f = image(4 << 20, &[]);
        assert!(detect(&f, 0, 4 << 20, 512).unwrap().is_empty());
        f.write_at(b"XFSB", 0).unwrap();
        f.write_at(b"SWAPSPACE2", 4086).unwrap();
        f.write_at(b"SKUL\xba\xbe", 2 << 20).unwrap();
        assert_eq!(kinds(&f, 4 << 20, 512), ["swap", "xfs"]);
        assert_eq!(
            far_magic_offsets(&f, 0, 4 << 20).unwrap(),
            vec![(2 << 20, 6)]
        );
    }

    #[test]
    fn swap_header_is_found_with_label_and_uuid() {
        let mut hdr = [0u8; 64];
        hdr[12..28].copy_from_slice(&[0x11; 16]);
        hdr[28..32].copy_from_slice(b"swp1");
        let f = image(1 << 20, &[(1024, &hdr), (4086, b"SWAPSPACE2")]);
        let sigs = detect(&f, 0, 1 << 20, 512).unwrap();
        assert_eq!(
            sigs,
            [Signature {
                kind: "swap",
                label: Some("swp1".into()),
                uuid: Some("11111111-1111-1111-1111-111111111111".into()),
            }]
        );
    }

    #[test]
    fn luks_and_lvm_carry_their_uuids() {
        let mut luks = [0u8; 0x100];
        luks[0..6].copy_from_slice(b"LUKS\xba\xbe");
        luks[6..8].copy_from_slice(&2u16.to_le_bytes());
        luks[0x18..0x1C].copy_from_slice(b"safe");
        luks[0xA8..0xCC].copy_from_slice(b"01234567-89ab-cdef-0123-456789abcdef");
        let f = image(1 << 20, &[(0, &luks)]);
        let sigs = detect(&f, 0, 1 << 20, 512).unwrap();
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].kind, "crypto_LUKS");
        assert_eq!(sigs[0].label.as_deref(), Some("safe"));
        assert_eq!(
            sigs[0].uuid.as_deref(),
            Some("01234567-89ab-cdef-0123-456789abcdef")
        );
        // LUKS1 has no label field: the same bytes are not one.
        f.write_at(&1u16.to_le_bytes(), 6).unwrap();
        assert_eq!(detect(&f, 0, 1 << 20, 512).unwrap()[0].label, None);

        let mut pv = [0u8; 64];
        pv[0..8].copy_from_slice(b"LABELONE");
        pv[24..32].copy_from_slice(b"LVM2 001");
        pv[32..64].copy_from_slice(b"AbCdEf0123456789AbCdEf0123456789");
        let f = image(1 << 20, &[(512, &pv)]);
        let sigs = detect(&f, 0, 1 << 20, 512).unwrap();
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].kind, "LVM2_member");
        assert_eq!(
            sigs[0].uuid.as_deref(),
            Some("AbCdEf0123456789AbCdEf0123456789")
        );
    }

    #[test]
    fn gpt_header_is_found_at_lba_1_of_either_sector_size() {
        let f = image(1 << 20, &[(512, b"EFI PART")]);
        assert_eq!(kinds(&f, 1 << 20, 512), ["gpt"]);
        let f = image(1 << 20, &[(4096, b"EFI PART")]);
        assert_eq!(kinds(&f, 1 << 20, 4096), ["gpt"]);
        assert!(kinds(&f, 1 << 20, 512).is_empty());
    }

    #[test]
    fn an_mbr_needs_records_and_is_not_a_fat_boot_sector() {
        let mut mbr = [0u8; 512];
        mbr[510..].copy_from_slice(&[0x55, 0xAA]);
        assert!(!is_mbr(&mbr), "a boot signature alone is no table");
        mbr[446 + 4] = 0x83;
        assert!(is_mbr(&mbr));
        let f = image(1 << 20, &[(0, &mbr)]);
        assert_eq!(kinds(&f, 1 << 20, 512), ["dos"]);
        mbr[446] = 0x12;
        assert!(!is_mbr(&mbr), "boot flags are 0x00 or 0x80");
        mbr[446] = 0x80;
        mbr[0x36..0x3B].copy_from_slice(b"FAT16");
        assert!(!is_mbr(&mbr), "a FAT boot sector is not a table");
        let f = image(1 << 20, &[(0, &mbr)]);
        assert_eq!(kinds(&f, 1 << 20, 512), ["vfat"]);
    }

    #[test]
    fn a_short_device_is_not_an_error() {
        let f = image(100, &[]);
        assert!(detect(&f, 0, 100, 512).unwrap().is_empty());
        assert!(detect(&f, 0, 1 << 20, 512).unwrap().is_empty());
    }
}
