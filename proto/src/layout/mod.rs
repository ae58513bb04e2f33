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
    plan_digest, plan_with, DiskFacts, DiskPlan, ExistingDisk, ExistingPartition, LuksPlan, LvPlan,
    MapperSwapPlan, MapperVia, MountPlan, MountSource, PartitionPlan, Plan, SwapPlan, SwapfilePlan,
    VgPlan, LUKS2_DATA_OFFSET, LVM_EXTENT_BYTES, LVM_PE_START,
};
pub use render::{render, FOREIGN_LAYOUT};
pub use sectors::Geometry;
pub use units::{human_bytes, Position, Sign, Size};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_btrfs;
#[cfg(test)]
mod tests_dm;
