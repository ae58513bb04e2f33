//! The disk engine: a disko layout becomes GPT partitions, filesystems and
//! mounts, written by the agent itself (no sgdisk, mkfs, wipefs, partprobe).
//!
//! [`plan_layout`] opens nothing for writing: it probes each disk ([`probe`])
//! and asks [`landfall_proto::layout::plan`] for the plan. [`apply`] turns the
//! plan into [`Action`]s — wipe, GPT, kernel re-read, format, mount, swapon —
//! each with a description, an is-done check and an execute, and reports each
//! step as a [`StepEvent`]. LUKS and LVM contents go through [`mapper`] (keys
//! resolved by [`keys`] before the first write). Errors are typed; nothing
//! here knows about gRPC.

mod action;
mod apply;
pub mod btrfs_volumes;
mod events;
pub mod format;
pub mod kernel;
pub mod keys;
pub mod mapper;
pub mod mounting;
pub mod probe;
pub mod refuse;
pub mod resolve;
pub mod signatures;
pub mod table;
pub mod wipe;

pub use action::Action;
pub use apply::{
    actions, apply, apply_with_keys, close_layout, error_chain, mount_layout,
    mount_layout_with_keys, plan_layout, swapoff_layout, unmount_layout, ApplyOptions, ApplyReport,
    DiskError, PartitionNode,
};
pub use events::StepEvent;
pub use keys::LuksPassphrases;
pub use resolve::{open_disks, parse_overrides, OpenDisk};
