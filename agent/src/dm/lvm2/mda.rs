//! The metadata area: a 512-byte header (lvm's `mda_header`) followed by a
//! circular buffer of metadata text.
//!
//! Header, little-endian: `0 checksum u32` (lvm crc of bytes 4..512),
//! `4 magic " LVM2 x[5A%r0N*>"`, `20 version u32 = 1`, `24 start u64` (absolute
//! byte offset of this header), `32 size u64` (of the whole area), then
//! `raw_locn`s of `{offset u64 (from start), size u64, checksum u32, flags
//! u32}` ended by a zero entry; the first is the committed metadata.
//!
//! A commit places the new text after the current one, 512-byte aligned,
//! wrapping to offset 512 when it would start within 512 bytes of the end
//! (lvm's `_next_rlocn_offset`); text that runs past the end continues at
//! offset 512. The new text never overlaps the committed one, so a crash
//! before the header write leaves the old metadata valid.

use super::crc::{crc_update, lvm_crc, INITIAL_CRC};

pub const MDA_HEADER_SIZE: u64 = 512;
const MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
const ALIGN: u64 = 512;

/// One metadata location in the circular buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLocn {
    /// Offset from the area start.
    pub offset: u64,
    pub size: u64,
    pub checksum: u32,
    pub flags: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdaHeader {
    /// Absolute byte offset of the area (and of this header).
    pub start: u64,
    /// Area size in bytes, header included.
    pub size: u64,
    /// The committed metadata, if any.
    pub committed: Option<RawLocn>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

impl MdaHeader {
    pub fn encode(&self) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[4..20].copy_from_slice(MAGIC);
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[24..32].copy_from_slice(&self.start.to_le_bytes());
        h[32..40].copy_from_slice(&self.size.to_le_bytes());
        if let Some(r) = self.committed {
            h[40..48].copy_from_slice(&r.offset.to_le_bytes());
            h[48..56].copy_from_slice(&r.size.to_le_bytes());
            h[56..60].copy_from_slice(&r.checksum.to_le_bytes());
            h[60..64].copy_from_slice(&r.flags.to_le_bytes());
        }
        let crc = lvm_crc(&h[4..]);
        h[0..4].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decode and check a header read at absolute offset `at`.
    pub fn decode(h: &[u8], at: u64) -> Result<Self, String> {
        if h.len() < 512 {
            return Err("short metadata area header".into());
        }
        if &h[4..20] != MAGIC {
            return Err("no metadata area magic".into());
        }
        if lvm_crc(&h[4..512]) != u32_at(h, 0) {
            return Err("metadata area header checksum mismatch".into());
        }
        if u32_at(h, 20) != 1 {
            return Err(format!("metadata area version {} is not 1", u32_at(h, 20)));
        }
        let start = u64_at(h, 24);
        if start != at {
            return Err(format!(
                "metadata area header says it starts at {start}, not {at}"
            ));
        }
        let size = u64_at(h, 32);
        let offset = u64_at(h, 40);
        let committed = (offset != 0).then(|| RawLocn {
            offset,
            size: u64_at(h, 48),
            checksum: u32_at(h, 56),
            flags: u32_at(h, 60),
        });
        if let Some(r) = committed {
            if r.offset < MDA_HEADER_SIZE || r.offset >= size || r.size > size - MDA_HEADER_SIZE {
                return Err("metadata location outside its area".into());
            }
        }
        Ok(Self {
            start,
            size,
            committed,
        })
    }

    /// The byte ranges `(offset from area start, length)` holding `locn`'s
    /// text: one, or two when it wraps.
    pub fn pieces(&self, locn: &RawLocn) -> Vec<(u64, u64)> {
        let end = locn.offset + locn.size;
        if end <= self.size {
            vec![(locn.offset, locn.size)]
        } else {
            let first = self.size - locn.offset;
            vec![(locn.offset, first), (MDA_HEADER_SIZE, locn.size - first)]
        }
    }

    /// Where new text of `len` bytes goes, or `None` if it cannot go anywhere
    /// without overlapping the committed text.
    pub fn next_location(&self, len: u64) -> Option<u64> {
        let usable = self.size.checked_sub(MDA_HEADER_SIZE)?;
        let old = match self.committed {
            None => return (len <= usable).then_some(MDA_HEADER_SIZE),
            Some(old) => old,
        };
        if len + old.size > usable {
            return None;
        }
        let old_last = if old.offset + old.size > self.size {
            old.offset + old.size - self.size + MDA_HEADER_SIZE - 1
        } else {
            old.offset + old.size - 1
        };
        let new_start = if self.size - old_last < ALIGN {
            MDA_HEADER_SIZE
        } else {
            let aligned = (old_last + 1).div_ceil(ALIGN) * ALIGN;
            if aligned > self.size - ALIGN {
                MDA_HEADER_SIZE
            } else {
                aligned
            }
        };
        // Both occupy ranges on the ring [512, size); check they are disjoint.
        let ring = |offset: u64, size: u64| -> Vec<(u64, u64)> {
            self.pieces(&RawLocn {
                offset,
                size,
                checksum: 0,
                flags: 0,
            })
            .into_iter()
            .map(|(o, l)| (o, o + l))
            .collect()
        };
        let old_ranges = ring(old.offset, old.size);
        let new_ranges = ring(new_start, len);
        let overlap = new_ranges
            .iter()
            .any(|n| old_ranges.iter().any(|o| n.0 < o.1 && o.0 < n.1));
        (!overlap).then_some(new_start)
    }
}

/// The checksum of text stored in (possibly two) pieces.
pub fn text_crc(pieces: &[&[u8]]) -> u32 {
    pieces.iter().fold(INITIAL_CRC, |crc, p| crc_update(crc, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(committed: Option<(u64, u64)>) -> MdaHeader {
        MdaHeader {
            start: 4096,
            size: 0xf_f000,
            committed: committed.map(|(offset, size)| RawLocn {
                offset,
                size,
                checksum: 0,
                flags: 0,
            }),
        }
    }

    #[test]
    fn header_matches_what_lvcreate_wrote() {
        // The header after the fifth commit on a fresh 2 GiB PV.
        let h = MdaHeader {
            start: 4096,
            size: 0xf_f000,
            committed: Some(RawLocn {
                offset: 0x1a00,
                size: 0x7fb,
                checksum: 0xf75a_638f,
                flags: 0,
            }),
        };
        let bytes = h.encode();
        assert_eq!(u32_at(&bytes, 0), 0x508c_ccb8);
        assert_eq!(MdaHeader::decode(&bytes, 4096), Ok(h));
        assert!(MdaHeader::decode(&bytes, 0).is_err());
        let mut broken = bytes;
        broken[45] ^= 1;
        assert!(MdaHeader::decode(&broken, 4096)
            .unwrap_err()
            .contains("checksum"));
    }

    #[test]
    fn commits_follow_each_other_512_aligned() {
        assert_eq!(area(None).next_location(0x700), Some(512));
        // lvm's own sequence: seqno 4 at 0x1200 (0x7fb bytes) -> seqno 5 at 0x1a00.
        assert_eq!(
            area(Some((0x1200, 0x7fb))).next_location(0x7fb),
            Some(0x1a00)
        );
        assert_eq!(
            area(Some((0x1200, 0x800))).next_location(0x10),
            Some(0x1a00)
        );
    }

    #[test]
    fn wraps_to_the_start_of_the_ring() {
        let size = 0xf_f000;
        // Old text ends within 512 bytes of the end: start over at 512.
        assert_eq!(
            area(Some((size - 0x300, 0x200))).next_location(0x400),
            Some(512)
        );
        // Old text ends far enough from the end: new text starts there and wraps.
        let h = area(Some((size - 0x1000, 0x200)));
        let at = h.next_location(0x1000).unwrap();
        assert_eq!(at, size - 0xe00);
        let pieces = h.pieces(&RawLocn {
            offset: at,
            size: 0x1000,
            checksum: 0,
            flags: 0,
        });
        assert_eq!(pieces, [(size - 0xe00, 0xe00), (512, 0x200)]);
        // Too large to fit beside the committed copy.
        assert_eq!(area(Some((512, 0x80000))).next_location(0x80000), None);
    }

    #[test]
    fn split_text_checksums_like_whole_text() {
        assert_eq!(text_crc(&[b"abc", b"def"]), lvm_crc(b"abcdef"));
    }
}
