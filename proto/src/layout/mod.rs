//! The platform-neutral disko layout model: parsing `disko.devices` JSON
//! ([`Layout::from_json`]), validation with errors naming the field
//! ([`LayoutError`]), disko's partition order and labels, sgdisk's sector
//! arithmetic ([`partition_ranges`]) and the plan ([`plan`], [`render`]).
//!
//! No I/O here: the agent supplies what it found on each disk
//! ([`DiskFacts`]); the controller uses the same code to show a plan.

mod btrfs;
mod content;
mod error;
mod json;
mod model;
mod parse;
mod plan;
mod render;
mod sectors;
pub mod typecode;
mod units;

pub use error::LayoutError;
pub use model::{
    Btrfs, BtrfsCsum, BtrfsProfile, Content, Disk, Filesystem, FsFormat, Layout, Nodev, Partition,
    Subvolume, Swap, Swapfile,
};
pub use parse::default_label;
pub use plan::{
    matches_existing, partition_ranges, plan, DiskFacts, DiskPlan, ExistingDisk, ExistingPartition,
    MountPlan, MountSource, PartitionPlan, Plan, SwapPlan, SwapfilePlan,
};
pub use render::render;
pub use sectors::Geometry;
pub use units::{human_bytes, Position, Sign, Size};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_btrfs;
