//! Sector arithmetic of `sgdisk --align-end --new=N:START:END`, one call per
//! partition in disko's order, on a freshly cleared GPT.
//!
//! This replays gptfdisk's own rules (1.0.9): the table holds 128 entries, so
//! the first usable sector is 34 (512-byte sectors) or 6 (4096-byte sectors)
//! and the last is the mirror image at the end; the alignment is 1 MiB worth of
//! sectors, lowered to the largest power of two every existing partition start
//! is a multiple of (never under 8 sectors on disks of 585937500+ sectors), or
//! what disko sets with `--set-alignment`; START `0` is the start of the
//! largest free block, moved to the alignment; END is resolved against the
//! aligned end of that block. The result is proven against real sgdisk by the
//! agent's `disk_sgdisk_parity` test.

use serde::{Deserialize, Serialize};

use super::units::Position;

/// What the planner needs to know of a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    pub size_bytes: u64,
    pub logical_sector_size: u32,
}

impl Geometry {
    pub fn sectors(&self) -> u64 {
        self.size_bytes / u64::from(self.logical_sector_size.max(1))
    }
    /// Sectors taken by a 128-entry partition array (16 KiB).
    pub fn table_sectors(&self) -> u64 {
        (128 * 128u64).div_ceil(u64::from(self.logical_sector_size.max(1)))
    }
    /// First usable LBA of a fresh GPT (protective MBR, header, array).
    pub fn first_usable(&self) -> u64 {
        2 + self.table_sectors()
    }
    /// Last usable LBA of a fresh GPT (backup array and header at the end).
    pub fn last_usable(&self) -> Option<u64> {
        self.sectors().checked_sub(self.first_usable())
    }
}

/// One `--new` request.
#[derive(Debug, Clone)]
pub struct NewPartition<'a> {
    pub start: &'a Position,
    pub end: &'a Position,
    /// disko's `alignment`: 0 = sgdisk's own, otherwise `--set-alignment`.
    pub alignment: u64,
}

/// Why sgdisk would refuse a `--new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectorError {
    /// The disk is too small to hold a GPT at all.
    DiskTooSmall,
    /// START resolved to a sector that is not free (or was unparseable).
    StartNotFree { start: u64 },
    /// END resolved before START.
    EndBeforeStart { start: u64, end: u64 },
    /// The range runs into a partition or past the last usable sector.
    NoRoom {
        start: u64,
        end: u64,
        free_until: u64,
    },
}

/// sgdisk's in-memory partition table while the partitions are added.
#[derive(Debug, Clone)]
pub struct SgdiskTable {
    sector_size: u64,
    disk_sectors: u64,
    first_usable: u64,
    last_usable: u64,
    parts: Vec<(u64, u64)>,
}

const DEFAULT_ALIGNMENT: u64 = 2048;
const MIN_AF_ALIGNMENT: u64 = 8;
const SMALLEST_ADVANCED_FORMAT: u64 = 585_937_500;

impl SgdiskTable {
    /// The state after `sgdisk --clear`.
    pub fn cleared(geo: Geometry) -> Result<Self, SectorError> {
        let last_usable = geo.last_usable().ok_or(SectorError::DiskTooSmall)?;
        if last_usable <= geo.first_usable() {
            return Err(SectorError::DiskTooSmall);
        }
        Ok(Self {
            sector_size: u64::from(geo.logical_sector_size),
            disk_sectors: geo.sectors(),
            first_usable: geo.first_usable(),
            last_usable,
            parts: Vec::new(),
        })
    }

    /// gptfdisk `ComputeAlignment`, run when sgdisk loads the table.
    pub fn computed_alignment(&self) -> u64 {
        let mut align = DEFAULT_ALIGNMENT * 512 / self.sector_size.max(1);
        let mut exponent = 63 - align.max(1).leading_zeros();
        for &(first, _) in &self.parts {
            loop {
                align = 1u64 << exponent;
                if first.is_multiple_of(align) {
                    break;
                }
                exponent -= 1;
            }
        }
        if align < MIN_AF_ALIGNMENT && self.disk_sectors >= SMALLEST_ADVANCED_FORMAT {
            align = MIN_AF_ALIGNMENT;
        }
        align
    }

    fn is_free(&self, s: u64) -> bool {
        s >= self.first_usable
            && s <= self.last_usable
            && !self.parts.iter().any(|&(a, b)| s >= a && s <= b)
    }

    fn find_first_available(&self, start: u64) -> u64 {
        let mut first = start.max(self.first_usable);
        loop {
            let mut moved = false;
            for &(a, b) in &self.parts {
                if first >= a && first <= b {
                    first = b + 1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        if first > self.last_usable {
            0
        } else {
            first
        }
    }

    fn find_last_in_free(&self, start: u64, align_end: bool, alignment: u64) -> u64 {
        let mut nearest_end = self.last_usable;
        for &(a, _) in &self.parts {
            if nearest_end > a && a > start {
                nearest_end = a - 1;
            }
        }
        if align_end {
            let mut end_plus = nearest_end + 1;
            if self.align(&mut end_plus, alignment)
                && self.is_free(end_plus - 1)
                && end_plus > start
            {
                nearest_end = end_plus - 1;
            }
        }
        nearest_end
    }

    fn find_first_in_largest(&self, alignment: u64) -> u64 {
        let (mut start, mut selected_size, mut selected) = (0u64, 0u64, 0u64);
        loop {
            let first = self.find_first_available(start);
            if first == 0 {
                return selected;
            }
            let last = self.find_last_in_free(first, false, alignment);
            let size = last - first + 1;
            if size > selected_size {
                selected_size = size;
                selected = first;
            }
            start = last + 1;
        }
    }

    /// gptfdisk `Align`: move `sector` to a multiple of the alignment, earlier
    /// if every sector in between is free, else later. True if it moved.
    fn align(&self, sector: &mut u64, alignment: u64) -> bool {
        if alignment == 0 || (*sector).is_multiple_of(alignment) {
            return false;
        }
        let earlier = (*sector / alignment) * alignment;
        let later = earlier + alignment;
        if earlier >= self.first_usable && (earlier..*sector).all(|s| self.is_free(s)) {
            *sector = earlier;
            return true;
        }
        // do { ok = IsFree(t--) } while (ok && t > sector): checks later down to sector+1,
        // and at least `later` itself.
        if later <= self.last_usable
            && self.is_free(later)
            && (*sector + 1..later).all(|s| self.is_free(s))
        {
            *sector = later;
            return true;
        }
        false
    }

    /// `sgdisk --align-end [--set-alignment=A] --new=N:START:END`: add the
    /// partition and return its first and last sector.
    pub fn add(&mut self, req: &NewPartition<'_>) -> Result<(u64, u64), SectorError> {
        let alignment = if req.alignment != 0 {
            req.alignment
        } else {
            self.computed_alignment()
        };
        let mut low = self.find_first_in_largest(alignment);
        self.align(&mut low, alignment);
        let high = self.find_last_in_free(low, true, alignment);
        let ss = self.sector_size;
        let start = req
            .start
            .resolve(ss, low, high, alignment, low)
            .unwrap_or(0);
        let end = req
            .end
            .resolve(ss, start, high, alignment, high)
            .unwrap_or(0);
        // CreatePartition
        let mut start_aligned = start;
        self.align(&mut start_aligned, alignment);
        if !self.is_free(start_aligned) {
            return Err(SectorError::StartNotFree {
                start: start_aligned,
            });
        }
        if start_aligned > end {
            return Err(SectorError::EndBeforeStart {
                start: start_aligned,
                end,
            });
        }
        let free_until = self.find_last_in_free(start_aligned, false, alignment);
        if free_until < end {
            return Err(SectorError::NoRoom {
                start: start_aligned,
                end,
                free_until,
            });
        }
        self.parts.push((start_aligned, end));
        Ok((start_aligned, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(s: &str) -> Position {
        Position::parse(s).unwrap()
    }

    fn run(size: u64, ss: u32, reqs: &[(&str, &str)]) -> Vec<Result<(u64, u64), SectorError>> {
        let mut t = SgdiskTable::cleared(Geometry {
            size_bytes: size,
            logical_sector_size: ss,
        })
        .unwrap();
        reqs.iter()
            .map(|(s, e)| {
                let (s, e) = (pos(s), pos(e));
                t.add(&NewPartition {
                    start: &s,
                    end: &e,
                    alignment: 0,
                })
            })
            .collect()
    }

    /// Figures read off real `sgdisk -p` for a 64 MiB image (see the parity test).
    #[test]
    fn seed_like_layout_on_64_mib() {
        let r = run(64 << 20, 512, &[("0", "+1M"), ("0", "+20M"), ("0", "-0")]);
        assert_eq!(
            r,
            vec![Ok((2048, 4095)), Ok((4096, 45055)), Ok((45056, 129023))]
        );
    }

    #[test]
    fn too_big_is_refused() {
        let r = run(64 << 20, 512, &[("0", "+1M"), ("0", "+512M")]);
        assert!(matches!(r[1], Err(SectorError::NoRoom { .. })), "{r:?}");
    }

    #[test]
    fn four_k_sectors_align_to_256() {
        let r = run(64 << 20, 4096, &[("0", "+1M"), ("0", "-0")]);
        // 16384 sectors; last usable 16378; aligned end 16383 -> 16127
        assert_eq!(r, vec![Ok((256, 511)), Ok((512, 16127))]);
    }

    #[test]
    fn alignment_drops_after_an_unaligned_start() {
        let mut t = SgdiskTable::cleared(Geometry {
            size_bytes: 64 << 20,
            logical_sector_size: 512,
        })
        .unwrap();
        let (s, e) = (pos("40s"), pos("+100"));
        assert_eq!(
            t.add(&NewPartition {
                start: &s,
                end: &e,
                alignment: 1
            }),
            Ok((40, 139))
        );
        assert_eq!(t.computed_alignment(), 8);
    }

    #[test]
    fn tiny_disk() {
        assert_eq!(
            SgdiskTable::cleared(Geometry {
                size_bytes: 16 * 512,
                logical_sector_size: 512
            })
            .unwrap_err(),
            SectorError::DiskTooSmall
        );
    }
}
