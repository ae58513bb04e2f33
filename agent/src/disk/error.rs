//! The disk engine's error: one variant per step that can fail, each
//! carrying the step's own typed error as its source.

use landfall_proto::layout::LayoutError;

use super::btrfs_volumes::BtrfsVolumeError;
use super::format::FormatError;
use super::keys::KeyError;
use super::mapper::MapperError;
use super::mounting::MountStepError;
use super::partition_sync::KernelError;
use super::resolve::ResolveError;
use super::table::TableError;

/// Errors of the disk engine, each naming the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("Invalid layout")]
    Layout(#[from] LayoutError),
    #[error("Cannot open the disks")]
    Resolve(#[from] ResolveError),
    #[error("Cannot read what is on the disk")]
    Probe(#[source] std::io::Error),
    #[error("Cannot wipe old signatures")]
    Wipe(#[source] std::io::Error),
    #[error("Cannot write the partition table")]
    Table(#[source] TableError),
    #[error("Cannot make the kernel see the partitions")]
    Kernel(#[source] KernelError),
    #[error("Cannot format")]
    Format(#[source] FormatError),
    #[error("Mount step failed")]
    Mount(#[source] MountStepError),
    #[error("Cannot lay out btrfs subvolumes and swapfiles")]
    Btrfs(#[source] BtrfsVolumeError),
    #[error("The plan has no swapfile #{0}")]
    NoSwapfile(usize),
    #[error("The plan has no disk {0}")]
    UnknownDisk(String),
    #[error("The plan has no mount #{0}")]
    NoMount(usize),
    #[error("No device node for partition {number} of disk {disk}")]
    NoNode { disk: String, number: u32 },
    #[error("{disk} is in use ({users}); unmount and swapoff first")]
    Busy { disk: String, users: String },
    #[error("{disk} is read-only (the kernel's ro flag): the layout cannot be written to it; nothing was written to any disk")]
    ReadOnly { disk: String },
    #[error("Cannot use the LUKS keys")]
    Keys(#[source] KeyError),
    #[error("Device-mapper step failed")]
    Mapper(#[source] MapperError),
    #[error("The layout is not applied on disk {0}; run apply first")]
    NotApplied(String),
}
