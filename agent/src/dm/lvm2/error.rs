//! The one error type of the LVM2 module: each variant names the step that
//! failed and what the person has to change.

use std::io;
use std::path::PathBuf;

use super::names::NameProblem;

#[derive(Debug, thiserror::Error)]
pub enum LvmError {
    #[error("Volume group name {name:?} is invalid: {problem}")]
    InvalidVgName { name: String, problem: NameProblem },
    #[error("Logical volume name {vg}/{lv:?} is invalid: {problem}")]
    InvalidLvName {
        vg: String,
        lv: String,
        problem: NameProblem,
    },
    #[error("Two volume groups are named {0:?}")]
    DuplicateVg(String),
    #[error("Volume group {vg:?} has two logical volumes named {lv:?}")]
    DuplicateLv { vg: String, lv: String },
    #[error("Device {device} is listed as a physical volume twice")]
    DuplicatePv { device: String },
    #[error(
        "Logical volume {vg}/{lv}: lvm_type {kind:?} is not supported; landfall creates linear LVs only (thin pools, raid and mirror are refused)"
    )]
    UnsupportedType {
        vg: String,
        lv: String,
        kind: String,
    },
    #[error("Logical volume {vg}/{lv}: size {size:?} is not a size lvcreate accepts: {reason}")]
    BadSize {
        vg: String,
        lv: String,
        size: String,
        reason: String,
    },
    #[error("Logical volume {vg}/{lv}: size {size:?} comes to 0 extents")]
    ZeroExtents {
        vg: String,
        lv: String,
        size: String,
    },
    #[error(
        "Logical volume {vg}/{lv} needs {needed} extents ({needed_bytes} bytes) but volume group {vg} has only {free} free"
    )]
    InsufficientSpace {
        vg: String,
        lv: String,
        needed: u64,
        needed_bytes: u64,
        free: u64,
    },
    #[error("Volume group {0:?} has no physical volumes")]
    NoPvs(String),
    #[error("Physical volume {device}: {bytes} bytes is too small for a 1 MiB header and one {extent_bytes}-byte extent")]
    PvTooSmall {
        device: String,
        bytes: u64,
        extent_bytes: u64,
    },
    #[error("Device-mapper name {0:?} is longer than 127 bytes")]
    DmNameTooLong(String),
    #[error("{step} {path}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not an LVM2 physical volume: {reason}")]
    BadLabel { path: PathBuf, reason: String },
    #[error("{path}: the LVM2 metadata area is damaged: {reason}")]
    BadMetadataArea { path: PathBuf, reason: String },
    #[error("LVM2 metadata text, line {line}: {reason}")]
    BadMetadataText { line: usize, reason: String },
    #[error("{path} is a physical volume of volume group {found:?}, not {wanted:?}; refusing to overwrite it")]
    ForeignVg {
        path: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("{path} is an LVM2 physical volume in no volume group; refusing to overwrite it")]
    OrphanPv { path: PathBuf },
    #[error("Volume group {vg:?} exists on {existing:?} but the layout puts it on {wanted:?}")]
    PvSetMismatch {
        vg: String,
        existing: Vec<String>,
        wanted: Vec<String>,
    },
    #[error(
        "Volume group {vg:?}: metadata of {bytes} bytes does not fit its {area}-byte metadata area"
    )]
    MetadataTooLarge { vg: String, bytes: u64, area: u64 },
    #[error("No random bytes for an LVM2 id")]
    Random(#[source] io::Error),
}
