//! Native filesystem writers: ext4 and btrfs (our own code), vfat (the `fatfs` crate's
//! formatter) and swap (the v1 SWAPSPACE2 header). Each takes an open
//! read-write block device or image file and returns what it made.

pub mod btrfs;
pub mod device;
pub mod ext4;
pub mod swap;
pub mod vfat;

use std::fs::File;

pub use self::btrfs::BtrfsError;
pub use self::ext4::Ext4Error;
pub use self::swap::SwapError;
pub use self::vfat::VfatError;

/// Options of [`format_ext4`].
#[derive(Debug, Clone, Default)]
pub struct Ext4Options {
    /// Up to 16 bytes.
    pub label: Option<String>,
    /// Random when `None`.
    pub uuid: Option<[u8; 16]>,
}

/// Checksum of a btrfs filesystem (`mkfs.btrfs --csum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BtrfsCsum {
    #[default]
    Crc32c,
    Xxhash,
    Sha256,
    Blake2,
}

/// Block group profile of btrfs metadata or data on a single device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BtrfsProfile {
    Single,
    Dup,
}

/// Options of [`format_btrfs`].
#[derive(Debug, Clone, Default)]
pub struct BtrfsOptions {
    /// Up to 255 bytes.
    pub label: Option<String>,
    /// The filesystem UUID (fsid); random when `None`.
    pub uuid: Option<[u8; 16]>,
    pub csum: BtrfsCsum,
    /// `None`: mkfs.btrfs's default for one device, DUP.
    pub metadata: Option<BtrfsProfile>,
    /// `None`: mkfs.btrfs's default for one device, single.
    pub data: Option<BtrfsProfile>,
}

/// Options of [`format_vfat`].
#[derive(Debug, Clone, Default)]
pub struct VfatOptions {
    /// Up to 11 ASCII characters, case kept (as mkfs.fat does).
    pub label: Option<String>,
    /// Random when `None`.
    pub volume_id: Option<u32>,
}

/// Options of [`format_swap`].
#[derive(Debug, Clone, Default)]
pub struct SwapOptions {
    /// Up to 16 bytes.
    pub label: Option<String>,
    /// Random when `None`.
    pub uuid: Option<[u8; 16]>,
}

/// What a writer made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatReport {
    pub fs_type: &'static str,
    /// Bytes the filesystem covers.
    pub size_bytes: u64,
    /// The UUID as blkid prints it (`xxxxxxxx-xxxx-…`, or `XXXX-XXXX` for vfat).
    pub uuid: String,
    pub label: Option<String>,
}

/// Errors of the writers.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("Cannot format ext4")]
    Ext4(#[from] Ext4Error),
    #[error("Cannot format btrfs")]
    Btrfs(#[from] BtrfsError),
    #[error("Cannot format vfat")]
    Vfat(#[from] VfatError),
    #[error("Cannot format swap")]
    Swap(#[from] SwapError),
}

/// Format `dev` as ext4 (see [`ext4`]).
pub fn format_ext4(dev: &File, opts: &Ext4Options) -> Result<FormatReport, FsError> {
    Ok(ext4::format(dev, opts)?)
}

/// Format `dev` as btrfs (see [`btrfs`]).
pub fn format_btrfs(dev: &File, opts: &BtrfsOptions) -> Result<FormatReport, FsError> {
    Ok(btrfs::format(dev, opts)?)
}

/// Format `dev` as vfat (see [`vfat`]).
pub fn format_vfat(dev: &File, opts: &VfatOptions) -> Result<FormatReport, FsError> {
    Ok(vfat::format(dev, opts)?)
}

/// Write a swap header on `dev` (see [`swap`]).
pub fn format_swap(dev: &File, opts: &SwapOptions) -> Result<FormatReport, FsError> {
    Ok(swap::format(dev, opts)?)
}
