//! The pure planner: PV sizes and LV requests in disko's order in, the extents
//! each LV gets out — what `pvcreate`, `vgcreate` and disko's sequence of
//! `lvcreate` calls would produce with lvm2 2.03.16's defaults (1 MiB
//! `pe_start`, 4 MiB extents). No I/O.
//!
//! Allocation follows lvm's `normal` policy for a linear LV: from each PV take
//! the smallest free area that holds everything still needed, or else its
//! largest; use the PV offering the most (the earlier PV on a tie); repeat
//! until the LV is complete. On fresh PVs this fills them in order.

use std::collections::HashSet;

use super::error::LvmError;
use super::model::{Segment, Vg};
use super::names::{check_lv_name, check_vg_name, dm_name, dm_name_fits};
use super::size::LvSize;
use super::{DEFAULT_EXTENT_SECTORS, DEFAULT_PE_START_SECTORS, SECTOR};

/// One LV of a disko `lvm_vg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvRequest {
    pub name: String,
    /// disko's `size` string (`"100M"`, `"50%"`, `"100%FREE"`, ...).
    pub size: String,
    /// disko's `lvm_type`; anything but `None` is refused.
    pub lvm_type: Option<String>,
}

/// Where a PV's extents are, in 512-byte sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvGeometry {
    /// The device path, recorded as lvm's `device` hint.
    pub device: String,
    pub dev_size: u64,
    pub pe_start: u64,
    pub pe_count: u64,
}

/// The extents one LV gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvPlan {
    pub name: String,
    pub segments: Vec<Segment>,
}

impl LvPlan {
    pub fn extents(&self) -> u64 {
        self.segments.iter().map(|s| s.extent_count).sum()
    }
}

/// A whole new VG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgPlan {
    pub name: String,
    /// Extent size in sectors.
    pub extent_size: u64,
    pub pvs: Vec<PvGeometry>,
    pub lvs: Vec<LvPlan>,
}

impl VgPlan {
    pub fn extent_count(&self) -> u64 {
        self.pvs.iter().map(|p| p.pe_count).sum()
    }

    pub fn free_count(&self) -> u64 {
        self.extent_count() - self.lvs.iter().map(LvPlan::extents).sum::<u64>()
    }
}

/// disko's creation order: by `priority` (smaller first; disko's default is
/// 1000, plus 251 when the size contains `100%`), and within one priority by
/// attribute name, as Nix's stable `lib.sort` over `attrValues` leaves them.
/// Items are `(attribute name, priority, request)`.
pub fn disko_order(mut lvs: Vec<(String, i64, LvRequest)>) -> Vec<LvRequest> {
    lvs.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    lvs.into_iter().map(|(_, _, lv)| lv).collect()
}

/// The priority disko gives an LV that sets none.
pub fn disko_default_priority(size: &str) -> i64 {
    1000 + if size.contains("100%") { 251 } else { 0 }
}

/// Refuse two VGs with one name (disko keys VGs by attribute, but `name`
/// can make two alike).
pub fn check_vg_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), LvmError> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(LvmError::DuplicateVg(name.to_string()));
        }
    }
    Ok(())
}

/// The layout of a PV made by `pvcreate` on a device of `bytes` bytes.
pub fn pv_geometry(device: &str, bytes: u64, extent_size: u64) -> Result<PvGeometry, LvmError> {
    let dev_size = bytes / SECTOR;
    let pe_start = DEFAULT_PE_START_SECTORS;
    let pe_count = dev_size.saturating_sub(pe_start) / extent_size;
    if pe_count == 0 {
        return Err(LvmError::PvTooSmall {
            device: device.to_string(),
            bytes,
            extent_bytes: extent_size * SECTOR,
        });
    }
    Ok(PvGeometry {
        device: device.to_string(),
        dev_size,
        pe_start,
        pe_count,
    })
}

/// Plan a new VG named `vg` on PVs `(device, bytes)` (vgcreate's order) with
/// `lvs` in creation order.
pub fn plan_vg(vg: &str, pvs: &[(String, u64)], lvs: &[LvRequest]) -> Result<VgPlan, LvmError> {
    check_vg_name(vg).map_err(|problem| LvmError::InvalidVgName {
        name: vg.to_string(),
        problem,
    })?;
    if pvs.is_empty() {
        return Err(LvmError::NoPvs(vg.to_string()));
    }
    let mut devices = HashSet::new();
    for (device, _) in pvs {
        if !devices.insert(device.as_str()) {
            return Err(LvmError::DuplicatePv {
                device: device.clone(),
            });
        }
    }
    let extent_size = DEFAULT_EXTENT_SECTORS;
    let geometry = pvs
        .iter()
        .map(|(device, bytes)| pv_geometry(device, *bytes, extent_size))
        .collect::<Result<Vec<_>, _>>()?;
    let counts: Vec<u64> = geometry.iter().map(|p| p.pe_count).collect();
    let planned = plan_lvs(vg, extent_size, &counts, &[], &[], lvs)?;
    Ok(VgPlan {
        name: vg.to_string(),
        extent_size,
        pvs: geometry,
        lvs: planned,
    })
}

/// The LVs of `lvs` that `vg` lacks, placed in its free space as lvcreate
/// would place them (for re-runs: existing LVs are kept as they are).
pub fn plan_additions(vg: &Vg, lvs: &[LvRequest]) -> Result<Vec<LvPlan>, LvmError> {
    let counts: Vec<u64> = vg.pvs.iter().map(|p| p.pe_count).collect();
    let used: Vec<Segment> = vg
        .lvs
        .iter()
        .flat_map(|lv| lv.segments.iter().cloned())
        .collect();
    let existing: Vec<&str> = vg.lvs.iter().map(|lv| lv.name.as_str()).collect();
    plan_lvs(&vg.name, vg.extent_size, &counts, &used, &existing, lvs)
}

/// Validate every request, then allocate the ones not in `existing`.
fn plan_lvs(
    vg: &str,
    extent_size: u64,
    pe_counts: &[u64],
    used: &[Segment],
    existing: &[&str],
    lvs: &[LvRequest],
) -> Result<Vec<LvPlan>, LvmError> {
    let mut names = HashSet::new();
    let mut sizes = Vec::with_capacity(lvs.len());
    for lv in lvs {
        check_lv_name(&lv.name).map_err(|problem| LvmError::InvalidLvName {
            vg: vg.to_string(),
            lv: lv.name.clone(),
            problem,
        })?;
        if !dm_name_fits(vg, &lv.name) {
            return Err(LvmError::DmNameTooLong(dm_name(vg, &lv.name)));
        }
        if !names.insert(lv.name.as_str()) {
            return Err(LvmError::DuplicateLv {
                vg: vg.to_string(),
                lv: lv.name.clone(),
            });
        }
        if let Some(kind) = &lv.lvm_type {
            return Err(LvmError::UnsupportedType {
                vg: vg.to_string(),
                lv: lv.name.clone(),
                kind: kind.clone(),
            });
        }
        let size = LvSize::from_disko(&lv.size).map_err(|reason| LvmError::BadSize {
            vg: vg.to_string(),
            lv: lv.name.clone(),
            size: lv.size.clone(),
            reason,
        })?;
        sizes.push(size);
    }

    let mut free = FreeSpace::new(pe_counts, used);
    let total: u64 = pe_counts.iter().sum();
    let mut planned = Vec::new();
    for (lv, size) in lvs.iter().zip(sizes) {
        if existing.contains(&lv.name.as_str()) {
            continue;
        }
        let free_count = free.total();
        let needed = size.extents(extent_size, total, free_count);
        if needed == 0 {
            return Err(LvmError::ZeroExtents {
                vg: vg.to_string(),
                lv: lv.name.clone(),
                size: lv.size.clone(),
            });
        }
        if needed > free_count {
            return Err(LvmError::InsufficientSpace {
                vg: vg.to_string(),
                lv: lv.name.clone(),
                needed,
                needed_bytes: needed * extent_size * SECTOR,
                free: free_count,
            });
        }
        planned.push(LvPlan {
            name: lv.name.clone(),
            segments: free.allocate(needed),
        });
    }
    Ok(planned)
}

/// Free extent ranges `(start, len)` of each PV, sorted by start.
struct FreeSpace(Vec<Vec<(u64, u64)>>);

impl FreeSpace {
    fn new(pe_counts: &[u64], used: &[Segment]) -> Self {
        let areas = pe_counts
            .iter()
            .enumerate()
            .map(|(pv, &count)| {
                let mut taken: Vec<(u64, u64)> = used
                    .iter()
                    .filter(|s| s.pv == pv)
                    .map(|s| (s.pv_start, s.pv_start + s.extent_count))
                    .collect();
                taken.sort_unstable();
                let mut areas = Vec::new();
                let mut at = 0;
                for (start, end) in taken {
                    if start > at {
                        areas.push((at, start - at));
                    }
                    at = at.max(end);
                }
                if count > at {
                    areas.push((at, count - at));
                }
                areas
            })
            .collect();
        Self(areas)
    }

    fn total(&self) -> u64 {
        self.0.iter().flatten().map(|a| a.1).sum()
    }

    /// Take `needed` extents (the caller checked they are free).
    fn allocate(&mut self, mut needed: u64) -> Vec<Segment> {
        let mut segments = Vec::new();
        let mut le = 0;
        while needed > 0 {
            // Per PV: the smallest area that fits, else the largest.
            let mut best: Option<(usize, usize, u64)> = None; // (pv, area index, used)
            for (pv, areas) in self.0.iter().enumerate() {
                let fitting = areas
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.1 >= needed)
                    .min_by_key(|(i, a)| (a.1, *i));
                let pick = fitting.or_else(|| {
                    areas
                        .iter()
                        .enumerate()
                        .max_by_key(|(i, a)| (a.1, std::cmp::Reverse(*i)))
                });
                if let Some((i, a)) = pick {
                    let used = a.1.min(needed);
                    if used > 0 && best.is_none_or(|b| used > b.2) {
                        best = Some((pv, i, used));
                    }
                }
            }
            let Some((pv, i, used)) = best else {
                break;
            };
            let (start, len) = self.0[pv][i];
            segments.push(Segment {
                start_extent: le,
                extent_count: used,
                pv,
                pv_start: start,
            });
            if used == len {
                self.0[pv].remove(i);
            } else {
                self.0[pv][i] = (start + used, len - used);
            }
            le += used;
            needed -= used;
        }
        segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    fn lv(name: &str, size: &str) -> LvRequest {
        LvRequest {
            name: name.into(),
            size: size.into(),
            lvm_type: None,
        }
    }

    fn extents(plan: &VgPlan) -> Vec<(&str, u64)> {
        plan.lvs
            .iter()
            .map(|l| (l.name.as_str(), l.extents()))
            .collect()
    }

    /// lvm-sizes-sort.json: `aaa` 1M, `root` 100M, `zzz` 1M (priority 1000)
    /// then `home` 100%FREE (1251) on the 2G disk's `primary` partition.
    fn sizes_sort_lvs() -> Vec<LvRequest> {
        disko_order(vec![
            ("aaa".into(), 1000, lv("aaa", "1M")),
            ("home".into(), 1251, lv("home", "100%FREE")),
            ("root".into(), 1000, lv("root", "100M")),
            ("zzz".into(), 1000, lv("zzz", "1M")),
        ])
    }

    #[test]
    fn disko_order_is_priority_then_attribute_name() {
        let names: Vec<String> = sizes_sort_lvs().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["aaa", "root", "zzz", "home"]);
        assert_eq!(disko_default_priority("100%FREE"), 1251);
        assert_eq!(disko_default_priority("50%"), 1000);
    }

    #[test]
    fn lvm_sizes_sort_on_a_whole_2g_pv() {
        // What pvcreate/vgcreate/lvcreate gave on a 2 GiB loop device:
        // aaa 1, root 25, zzz 1, home 484 of 511 extents.
        let plan = plan_vg("pool", &[("/dev/loop0".into(), 2 * GIB)], &sizes_sort_lvs()).unwrap();
        assert_eq!(plan.pvs[0].pe_start, 2048);
        assert_eq!(plan.pvs[0].pe_count, 511);
        assert_eq!(
            extents(&plan),
            [("aaa", 1), ("root", 25), ("zzz", 1), ("home", 484)]
        );
        let home = &plan.lvs[3].segments;
        assert_eq!(home.len(), 1);
        assert_eq!((home[0].pv, home[0].pv_start), (0, 27));
        assert_eq!(plan.free_count(), 0);
    }

    #[test]
    fn percent_of_free_rounds_down_and_full_takes_the_rest() {
        let plan = plan_vg(
            "vg",
            &[("/dev/x".into(), 2 * GIB)],
            &[lv("a", "50%"), lv("b", "10%VG"), lv("c", "100%FREE")],
        )
        .unwrap();
        // 511 extents: a = floor(511/2) = 255, b = floor(51.1) = 51, c = 205.
        assert_eq!(extents(&plan), [("a", 255), ("b", 51), ("c", 205)]);
    }

    #[test]
    fn two_pvs_follow_lvm_normal_allocation() {
        // Seen with lvm2 2.03.16 on a 100 MiB and a 200 MiB PV: one -> pv0:0-1,
        // two (252 MiB) -> pv1:0-48 then pv0:2-15, three -> pv0:16-18,
        // four (50%FREE) -> pv0:19-20, five (100%FREE) -> pv0:21-23.
        let plan = plan_vg(
            "mv",
            &[("/dev/a".into(), 100 * MIB), ("/dev/b".into(), 200 * MIB)],
            &[
                lv("one", "8M"),
                lv("two", "250M"),
                lv("three", "12M"),
                lv("four", "50%FREE"),
                lv("five", "100%FREE"),
            ],
        )
        .unwrap();
        let seg = |i: usize| -> Vec<(usize, u64, u64)> {
            plan.lvs[i]
                .segments
                .iter()
                .map(|s| (s.pv, s.pv_start, s.extent_count))
                .collect()
        };
        assert_eq!(seg(0), [(0, 0, 2)]);
        assert_eq!(seg(1), [(1, 0, 49), (0, 2, 14)]);
        assert_eq!(plan.lvs[1].segments[1].start_extent, 49);
        assert_eq!(seg(2), [(0, 16, 3)]);
        assert_eq!(seg(3), [(0, 19, 2)]);
        assert_eq!(seg(4), [(0, 21, 3)]);
    }

    #[test]
    fn refuses_lvs_larger_than_the_vg() {
        let err = plan_vg(
            "pool",
            &[("/dev/x".into(), GIB)],
            &[lv("root", "800M"), lv("home", "400M")],
        )
        .unwrap_err();
        assert!(
            matches!(err, LvmError::InsufficientSpace { ref lv, needed: 100, free: 55, .. } if lv == "home"),
            "{err}"
        );
    }

    #[test]
    fn refuses_what_lvm_would_refuse() {
        let one = |lvs: &[LvRequest]| plan_vg("pool", &[("/dev/x".into(), GIB)], lvs).unwrap_err();
        assert!(matches!(
            one(&[lv("snapshot0", "1M")]),
            LvmError::InvalidLvName { .. }
        ));
        assert!(matches!(
            one(&[lv("a", "1M"), lv("a", "2M")]),
            LvmError::DuplicateLv { .. }
        ));
        assert!(matches!(one(&[lv("a", "lots")]), LvmError::BadSize { .. }));
        assert!(matches!(
            one(&[lv("a", "100%FREE"), lv("b", "100%FREE")]),
            LvmError::ZeroExtents { .. }
        ));
        for kind in ["thin-pool", "thinlv", "raid1", "mirror"] {
            let mut thin = lv("t", "1G");
            thin.lvm_type = Some(kind.into());
            let err = one(&[thin]);
            assert!(matches!(err, LvmError::UnsupportedType { .. }), "{kind}");
            assert!(err.to_string().contains(kind));
        }
        assert!(matches!(
            plan_vg("a/b", &[("/dev/x".into(), GIB)], &[]).unwrap_err(),
            LvmError::InvalidVgName { .. }
        ));
        assert!(matches!(
            plan_vg("pool", &[("/dev/x".into(), 4 * MIB)], &[]).unwrap_err(),
            LvmError::PvTooSmall { .. }
        ));
        assert!(matches!(
            check_vg_names(["pool", "data", "pool"]).unwrap_err(),
            LvmError::DuplicateVg(ref n) if n == "pool"
        ));
    }
}
