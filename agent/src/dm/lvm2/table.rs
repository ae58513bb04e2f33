//! What device-mapper needs to serve an LV: one `linear` target per segment,
//! `<start> <length> linear <pv device> <offset>` in 512-byte sectors, where
//! the offset is the PV's `pe_start` plus the segment's first PV extent.

use std::fmt;

use super::model::{Lv, Vg};

/// One line of an LV's device-mapper table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearTarget {
    /// First sector of the LV this target covers.
    pub start: u64,
    pub length: u64,
    /// The PV's block device (path or `major:minor`).
    pub device: String,
    /// Sector on the PV where the target's data starts.
    pub offset: u64,
}

impl fmt::Display for LinearTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} linear {} {}",
            self.start, self.length, self.device, self.offset
        )
    }
}

/// The table of `lv`, with `pv_devices[i]` the device of `vg.pvs[i]`.
/// `None` if a segment names a PV without a device.
pub fn linear_table(vg: &Vg, lv: &Lv, pv_devices: &[String]) -> Option<Vec<LinearTarget>> {
    let ext = vg.extent_size;
    lv.segments
        .iter()
        .map(|seg| {
            Some(LinearTarget {
                start: seg.start_extent * ext,
                length: seg.extent_count * ext,
                device: pv_devices.get(seg.pv)?.clone(),
                offset: vg.pvs.get(seg.pv)?.pe_start + seg.pv_start * ext,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dm::lvm2::id::LvmId;
    use crate::dm::lvm2::model::{Pv, Segment};

    #[test]
    fn segments_become_linear_lines() {
        let pv = |n| Pv {
            id: LvmId::from_random_bytes([n; 32]),
            device: String::new(),
            dev_size: 0,
            pe_start: 2048,
            pe_count: 100,
        };
        let lv = Lv {
            name: "two".into(),
            id: LvmId::from_random_bytes([9; 32]),
            creation_time: 0,
            creation_host: String::new(),
            segments: vec![
                Segment {
                    start_extent: 0,
                    extent_count: 49,
                    pv: 1,
                    pv_start: 0,
                },
                Segment {
                    start_extent: 49,
                    extent_count: 14,
                    pv: 0,
                    pv_start: 2,
                },
            ],
        };
        let vg = Vg {
            name: "mv".into(),
            id: LvmId::from_random_bytes([7; 32]),
            seqno: 1,
            extent_size: 8192,
            max_lv: 0,
            max_pv: 0,
            pvs: vec![pv(1), pv(2)],
            lvs: vec![lv.clone()],
        };
        let lines: Vec<String> = linear_table(&vg, &lv, &["7:1".into(), "7:2".into()])
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            ["0 401408 linear 7:2 2048", "401408 114688 linear 7:1 18432"]
        );
        assert_eq!(linear_table(&vg, &lv, &["7:1".into()]), None);
    }
}
