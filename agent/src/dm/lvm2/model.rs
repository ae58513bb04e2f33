//! A volume group's metadata as lvm2's text format holds it: the VG, its PVs
//! (`pv0`, `pv1`, ... in VG order) and its linear LVs. Sizes and offsets are in
//! 512-byte sectors, extent numbers count extents.
//!
//! Invariant kept by the constructors and checked by the reader: every
//! segment's PV index names a PV of the VG, and the segments of an LV are
//! contiguous in the LV (`start_extent` = sum of the earlier counts).

use super::id::LvmId;
use super::plan::{LvPlan, VgPlan};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vg {
    pub name: String,
    pub id: LvmId,
    pub seqno: u32,
    /// Extent size in sectors.
    pub extent_size: u64,
    pub max_lv: u32,
    pub max_pv: u32,
    pub pvs: Vec<Pv>,
    pub lvs: Vec<Lv>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pv {
    pub id: LvmId,
    /// The device path hint (`device = "..."`).
    pub device: String,
    pub dev_size: u64,
    pub pe_start: u64,
    pub pe_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lv {
    pub name: String,
    pub id: LvmId,
    pub creation_time: u64,
    pub creation_host: String,
    pub segments: Vec<Segment>,
}

/// A linear run of extents: LV extents `start_extent..+extent_count` live on
/// PV `pv` (index into `Vg::pvs`) from its extent `pv_start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub start_extent: u64,
    pub extent_count: u64,
    pub pv: usize,
    pub pv_start: u64,
}

/// Who and when, for the LVs a commit creates.
#[derive(Debug, Clone)]
pub struct Creation {
    pub host: String,
    /// Seconds since the epoch.
    pub time: u64,
}

impl Lv {
    pub fn extents(&self) -> u64 {
        self.segments.iter().map(|s| s.extent_count).sum()
    }

    pub fn from_plan(plan: &LvPlan, id: LvmId, creation: &Creation) -> Self {
        Self {
            name: plan.name.clone(),
            id,
            creation_time: creation.time,
            creation_host: creation.host.clone(),
            segments: plan.segments.clone(),
        }
    }
}

impl Vg {
    /// The metadata of a planned VG: seqno 1, fresh ids, lvm's defaults.
    pub fn from_plan(
        plan: &VgPlan,
        mut new_id: impl FnMut() -> LvmId,
        creation: &Creation,
    ) -> Self {
        Self {
            name: plan.name.clone(),
            id: new_id(),
            seqno: 1,
            extent_size: plan.extent_size,
            max_lv: 0,
            max_pv: 0,
            pvs: plan
                .pvs
                .iter()
                .map(|g| Pv {
                    id: new_id(),
                    device: g.device.clone(),
                    dev_size: g.dev_size,
                    pe_start: g.pe_start,
                    pe_count: g.pe_count,
                })
                .collect(),
            lvs: plan
                .lvs
                .iter()
                .map(|lv| Lv::from_plan(lv, new_id(), creation))
                .collect(),
        }
    }

    pub fn extent_count(&self) -> u64 {
        self.pvs.iter().map(|p| p.pe_count).sum()
    }

    pub fn free_count(&self) -> u64 {
        self.extent_count() - self.lvs.iter().map(Lv::extents).sum::<u64>()
    }

    pub fn lv(&self, name: &str) -> Option<&Lv> {
        self.lvs.iter().find(|lv| lv.name == name)
    }
}
