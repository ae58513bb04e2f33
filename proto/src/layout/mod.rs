//! The platform-neutral disko layout model: parsing `disko.devices` JSON
//! ([`Layout::from_json`]), validation with errors naming the field
//! ([`LayoutError`]), disko's partition order and labels, sgdisk's sector
//! arithmetic ([`partition_ranges`]) and the plan ([`plan`], [`render`]).
//! Contents include device-mapper ones: `luks` (a LUKS2 container opened as
//! `/dev/mapper/<name>`) and `lvm_pv` with the `lvm_vg` class (VGs of linear
//! LVs in disko's order, sized as lvm2 sizes them on fresh PVs); their mounts
//! come from [`MountSource::Mapper`].
//!
//! No I/O here: the agent supplies what it found on each disk
//! ([`DiskFacts`]); the controller uses the same code to show a plan.

mod btrfs;
mod content;
mod error;
mod json;
mod luks;
mod lvm;
mod model;
mod ownership;
mod parse;
mod plan;
mod render;
mod sectors;
pub mod typecode;
mod units;

pub use error::LayoutError;
pub use luks::{check_dm_name, parse_luks_args};
pub use lvm::{check_lv_name, check_lvm_name, lvm_dm_name};
pub use model::{
    Btrfs, BtrfsCsum, BtrfsProfile, Content, Disk, Filesystem, FsFormat, Layout, LogicalVolume,
    Luks, LuksArgs, LvSize, LvmPv, Nodev, Partition, Subvolume, Swap, Swapfile, VolumeGroup,
};
pub use ownership::{install_disk_guid, PlanOptions};
pub use parse::default_label;
pub use plan::{
    blank_disk_facts, content_fs_type, lv_extents, matches_existing, partition_ranges, plan,
    plan_with, DiskFacts, DiskPlan, ExistingDisk, ExistingPartition, LuksPlan, LvPlan,
    MapperSwapPlan, MapperVia, MountPlan, MountSource, PartitionPlan, Plan, SwapPlan, SwapfilePlan,
    VgPlan, LUKS2_DATA_OFFSET, LVM_EXTENT_BYTES, LVM_PE_START,
};
pub use render::{render, FOREIGN_LAYOUT};
pub use sectors::Geometry;
pub use units::{human_bytes, Position, Sign, Size};

/// The digest that binds a confirmation to the plan that was shown: the
/// SHA-256 (hex) of a `PlanReply.plan_json`. The controller sends it with the
/// confirmed ApplyLayout; the agent, which plans again at apply time, refuses
/// when its own plan's digest differs (the disks changed in between). The plan
/// serialises deterministically (no hash maps), so an unchanged machine gives
/// the same digest.
pub fn plan_digest(plan_json: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(plan_json.as_bytes()))
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    #[test]
    fn the_same_plan_twice_has_one_digest_and_a_change_another() {
        let layout = Layout::from_json(
            r#"{"disk":{"main":{"device":"/dev/vda","content":{"type":"gpt","partitions":{
                "root":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}}}}}}}"#,
        )
        .unwrap();
        let facts = blank_disk_facts(&layout, 1 << 30);
        let json = |p: &Plan| serde_json::to_string(p).unwrap();
        let a = plan(&layout, &facts).unwrap();
        let b = plan(&layout, &facts).unwrap();
        assert_eq!(plan_digest(&json(&a)), plan_digest(&json(&b)));
        assert_eq!(plan_digest(&json(&a)).len(), 64);
        let bigger = blank_disk_facts(&layout, 2 << 30);
        let c = plan(&layout, &bigger).unwrap();
        assert_ne!(plan_digest(&json(&a)), plan_digest(&json(&c)));
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_btrfs;
#[cfg(test)]
mod tests_dm;
