//! The disk engine: a disko layout becomes GPT partitions, filesystems and
//! mounts, written by the agent itself (no sgdisk, mkfs, wipefs, partprobe).
//!
//! [`plan_layout`] opens nothing for writing: it probes each disk ([`probe`])
//! and asks [`landfall_proto::layout::plan`] for the plan. [`apply`] turns the
//! plan into [`Action`]s — wipe, GPT, kernel re-read, format, mount, swapon —
//! each with a description, an is-done check and an execute, and reports each
//! step as a [`StepEvent`](crate::steps::StepEvent). LUKS and LVM contents go through [`mapper`] (keys
//! resolved by [`keys`] before the first write). Errors are typed; nothing
//! here knows about gRPC.

mod action;
mod apply;
pub mod btrfs_volumes;
mod error;
pub mod format;
pub mod in_use;
pub mod keys;
pub mod mapper;
pub mod mounting;
pub mod open_disk;
mod options;
pub mod partition_sync;
pub mod present;
pub mod probe;
pub mod resolve;
pub mod signatures;
pub mod table;
pub mod wipe;

pub use action::Action;
pub use apply::{
    actions, apply, apply_with_keys, close_layout, mount_layout, mount_layout_with_keys,
    plan_layout, swapoff_layout, unmount_layout,
};
pub use error::DiskError;
pub use keys::LuksPassphrases;
pub use options::{ApplyOptions, ApplyReport, PartitionNode};
pub use resolve::{open_disks, parse_overrides, require_block_devices, OpenDisk};
