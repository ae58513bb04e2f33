//! What an apply is asked to do ([`ApplyOptions`]) and what it reports
//! ([`ApplyReport`], [`PartitionNode`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::mapper::{LuksOutcome, VgOutcome};
use crate::fs::FormatReport;

/// How to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOptions {
    /// Where the layout's `/` goes (default `/mnt`).
    pub root: PathBuf,
    /// Mount the filesystems (and nodev entries) under `root`.
    pub mount: bool,
    /// Activate swap partitions.
    pub swapon: bool,
    /// Wipe and rewrite even a disk that already holds the layout.
    pub force: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/mnt"),
            mount: true,
            swapon: false,
            force: false,
        }
    }
}

/// A partition's device node after apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionNode {
    pub disk: String,
    pub number: u32,
    pub label: String,
    pub node: PathBuf,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Every disk already held the layout before the run (nothing destroyed).
    pub already_applied: bool,
    pub executed: usize,
    pub skipped: usize,
    pub partitions: Vec<PartitionNode>,
    /// `(disk, number, report)` of each filesystem made.
    pub formatted: Vec<(String, u32, FormatReport)>,
    /// btrfs subvolumes and swapfiles created (`subvolume home`, `swapfile swap/swapfile`).
    pub created: Vec<String>,
    /// What each LUKS step did, by LUKS name.
    pub luks: Vec<(String, LuksOutcome)>,
    /// What each volume group step did, by VG name.
    pub volume_groups: Vec<(String, VgOutcome)>,
    /// Filesystems made on device-mapper devices: `(path, report)`.
    pub formatted_mapper: Vec<(String, FormatReport)>,
}
