//! The label sector and PV header (lvm2's `label_header` + `pv_header`).
//!
//! Layout of the 512-byte label, stored by `pvcreate` in sector 1 (lvm scans
//! sectors 0-3), little-endian:
//! `0 "LABELONE"`, `8 sector_xl u64`, `16 crc u32` (lvm crc of bytes 20..512),
//! `20 offset_xl u32 = 32`, `24 "LVM2 001"`, then at 32 the PV header: the PV
//! id (32 chars, no dashes), the device size in bytes, the data areas and the
//! metadata areas as `(offset, size)` byte pairs each list ended by `(0, 0)`,
//! and the extension: version 2, flags (1 = `PV_EXT_USED`, in a VG) and an
//! empty bootloader-area list.

use super::crc::lvm_crc;
use super::id::LvmId;

pub const LABEL_SECTOR: u64 = 1;
const LABEL_ID: &[u8; 8] = b"LABELONE";
const LABEL_TYPE: &[u8; 8] = b"LVM2 001";
const PV_HEADER_OFFSET: usize = 32;
/// `PV_EXT_USED`: the PV belongs to a VG.
pub const PV_EXT_USED: u32 = 1;

/// A decoded label + PV header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvLabel {
    pub id: LvmId,
    /// Device size in bytes.
    pub device_size: u64,
    /// Data areas `(offset, size)` in bytes; size 0 means "to the end".
    pub data_areas: Vec<(u64, u64)>,
    /// Metadata areas `(offset, size)` in bytes.
    pub metadata_areas: Vec<(u64, u64)>,
    pub ext_version: u32,
    pub ext_flags: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

impl PvLabel {
    /// The 512-byte label sector, for sector `LABEL_SECTOR`.
    pub fn encode(&self) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[0..8].copy_from_slice(LABEL_ID);
        s[8..16].copy_from_slice(&LABEL_SECTOR.to_le_bytes());
        s[20..24].copy_from_slice(&(PV_HEADER_OFFSET as u32).to_le_bytes());
        s[24..32].copy_from_slice(LABEL_TYPE);
        let mut at = PV_HEADER_OFFSET;
        s[at..at + 32].copy_from_slice(self.id.compact());
        at += 32;
        s[at..at + 8].copy_from_slice(&self.device_size.to_le_bytes());
        at += 8;
        for list in [&self.data_areas, &self.metadata_areas] {
            for &(offset, size) in list.iter().chain([&(0, 0)]) {
                s[at..at + 8].copy_from_slice(&offset.to_le_bytes());
                s[at + 8..at + 16].copy_from_slice(&size.to_le_bytes());
                at += 16;
            }
        }
        s[at..at + 4].copy_from_slice(&self.ext_version.to_le_bytes());
        s[at + 4..at + 8].copy_from_slice(&self.ext_flags.to_le_bytes());
        // The bootloader-area list is empty: its (0, 0) terminator is zeros.
        let crc = lvm_crc(&s[20..]);
        s[16..20].copy_from_slice(&crc.to_le_bytes());
        s
    }

    /// Find and decode the label in the first four sectors (2048 bytes).
    /// `Ok(None)`: no LVM label at all; `Err`: a label that is damaged.
    pub fn find(head: &[u8]) -> Result<Option<Self>, String> {
        for sector in 0..4usize {
            let Some(s) = head.get(sector * 512..sector * 512 + 512) else {
                break;
            };
            if &s[0..8] != LABEL_ID {
                continue;
            }
            if u64_at(s, 8) != sector as u64 {
                return Err(format!("label in sector {sector} claims another sector"));
            }
            if lvm_crc(&s[20..]) != u32_at(s, 16) {
                return Err(format!("label checksum mismatch in sector {sector}"));
            }
            if &s[24..32] != LABEL_TYPE {
                return Err(format!(
                    "label type {:?} is not LVM2 001",
                    String::from_utf8_lossy(&s[24..32])
                ));
            }
            return Self::decode_header(s).map(Some);
        }
        Ok(None)
    }

    fn decode_header(s: &[u8]) -> Result<Self, String> {
        let mut at = u32_at(s, 20) as usize;
        if !(32..=512 - 40).contains(&at) {
            return Err("PV header offset out of range".into());
        }
        let id = LvmId::from_compact(&s[at..at + 32]).ok_or("PV id is not an lvm id")?;
        at += 32;
        let device_size = u64_at(s, at);
        at += 8;
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            loop {
                if at + 16 > 512 {
                    return Err("PV header area list runs off the sector".into());
                }
                let (offset, size) = (u64_at(s, at), u64_at(s, at + 8));
                at += 16;
                if offset == 0 {
                    break;
                }
                list.push((offset, size));
            }
        }
        let (ext_version, ext_flags) = if at + 8 <= 512 {
            (u32_at(s, at), u32_at(s, at + 4))
        } else {
            (0, 0)
        };
        let [data_areas, metadata_areas] = lists;
        Ok(Self {
            id,
            device_size,
            data_areas,
            metadata_areas,
            ext_version,
            ext_flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pvcreate_label() -> PvLabel {
        PvLabel {
            id: LvmId::from_compact(b"negY9cYafliw1NgcqJ6R6vbs26h3jinf").unwrap(),
            device_size: 2 << 30,
            data_areas: vec![(1 << 20, 0)],
            metadata_areas: vec![(4096, 0xf_f000)],
            ext_version: 2,
            ext_flags: PV_EXT_USED,
        }
    }

    #[test]
    fn encodes_the_sector_pvcreate_and_vgcreate_wrote() {
        let s = pvcreate_label().encode();
        assert_eq!(&s[0..8], b"LABELONE");
        assert_eq!(&s[24..32], b"LVM2 001");
        // The checksum Debian 12's lvm2 stored for this very PV.
        assert_eq!(u32_at(&s, 16), 0x2ee4_167b);
        assert_eq!(u64_at(&s, 0x48), 1 << 20);
        assert_eq!(u64_at(&s, 0x68), 4096);
        assert_eq!(u64_at(&s, 0x70), 0xf_f000);
        assert_eq!(u32_at(&s, 0x88), 2);
        assert_eq!(u32_at(&s, 0x8c), 1);
    }

    #[test]
    fn finds_the_label_in_sector_one_and_checks_it() {
        let mut head = vec![0u8; 2048];
        assert_eq!(PvLabel::find(&head), Ok(None));
        head[512..1024].copy_from_slice(&pvcreate_label().encode());
        assert_eq!(PvLabel::find(&head), Ok(Some(pvcreate_label())));
        head[600] ^= 1;
        assert!(PvLabel::find(&head).unwrap_err().contains("checksum"));
    }
}
