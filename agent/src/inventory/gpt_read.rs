//! A small read-only GPT parser for inventory: partition names (PARTLABEL),
//! type and unique GUIDs by partition number. The disk engine writes GPTs with
//! the `gpt` crate; this only reads, tolerating anything malformed.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// One used GPT entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptEntry {
    pub number: u32,
    pub type_guid: String,
    pub unique_guid: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub name: String,
}

/// Formats a GUID stored in GPT's mixed-endian layout, lower case as blkid prints it.
pub fn guid_string(b: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10..16]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    )
}

/// Reads the primary GPT of `dev`. None when there is none or it is implausible.
pub fn read_gpt(dev: &File, sector_size: u32) -> Option<Vec<GptEntry>> {
    let ss = sector_size as u64;
    let mut hdr = [0u8; 92];
    dev.read_exact_at(&mut hdr, ss).ok()?;
    if &hdr[0..8] != b"EFI PART" {
        return None;
    }
    let entries_lba = u64::from_le_bytes(hdr[72..80].try_into().ok()?);
    let count = u32::from_le_bytes(hdr[80..84].try_into().ok()?);
    let entry_size = u32::from_le_bytes(hdr[84..88].try_into().ok()?);
    if !(128..=4096).contains(&entry_size) || count > 1024 {
        return None;
    }
    let mut table = vec![0u8; (count * entry_size) as usize];
    dev.read_exact_at(&mut table, entries_lba.checked_mul(ss)?)
        .ok()?;
    let mut out = Vec::new();
    for (i, e) in table.chunks_exact(entry_size as usize).enumerate() {
        if e[0..16].iter().all(|&b| b == 0) {
            continue;
        }
        let name_units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        out.push(GptEntry {
            number: i as u32 + 1,
            type_guid: guid_string(&e[0..16]),
            unique_guid: guid_string(&e[16..32]),
            first_lba: u64::from_le_bytes(e[32..40].try_into().ok()?),
            last_lba: u64::from_le_bytes(e[40..48].try_into().ok()?),
            name: String::from_utf16_lossy(&name_units),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_mixed_endian() {
        // EFI System Partition type as stored on disk.
        let raw = [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ];
        assert_eq!(guid_string(&raw), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    }

    #[test]
    fn garbage_is_not_a_gpt() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(1 << 20).unwrap();
        assert!(read_gpt(&f, 512).is_none());
    }
}
