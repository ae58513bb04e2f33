//! `landfall-agent mkfs ext4|btrfs|vfat|swap PATH [--label L] [--uuid U]`
//! (btrfs also `--csum`, `--metadata`, `--data`): the native filesystem
//! writers from the command line.

use std::fs::OpenOptions;
use std::path::PathBuf;

use anyhow::{bail, Context};
use landfall_agent::fs::{
    self, BtrfsCsum, BtrfsOptions, BtrfsProfile, Ext4Options, SwapOptions, VfatOptions,
};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FsType {
    Ext4,
    Btrfs,
    Vfat,
    Swap,
}

#[derive(clap::Args, Debug)]
pub struct MkfsArgs {
    /// Filesystem to make.
    #[arg(value_enum)]
    fs_type: FsType,
    /// Block device or image file (must exist).
    path: PathBuf,
    /// Filesystem label (ext4/swap: 16 bytes, btrfs: 255 bytes, vfat: 11 characters).
    #[arg(long, short = 'L')]
    label: Option<String>,
    /// UUID (ext4/btrfs/swap: xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx; vfat: XXXX-XXXX volume id).
    #[arg(long, short = 'U')]
    uuid: Option<String>,
    /// btrfs only: checksum algorithm.
    #[arg(long, value_enum)]
    csum: Option<CsumArg>,
    /// btrfs only: metadata profile (default dup).
    #[arg(long, short = 'm', value_enum)]
    metadata: Option<ProfileArg>,
    /// btrfs only: data profile (default single).
    #[arg(long, short = 'd', value_enum)]
    data: Option<ProfileArg>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CsumArg {
    Crc32c,
    Xxhash,
    Sha256,
    Blake2,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ProfileArg {
    Single,
    Dup,
}

impl From<CsumArg> for BtrfsCsum {
    fn from(c: CsumArg) -> BtrfsCsum {
        match c {
            CsumArg::Crc32c => BtrfsCsum::Crc32c,
            CsumArg::Xxhash => BtrfsCsum::Xxhash,
            CsumArg::Sha256 => BtrfsCsum::Sha256,
            CsumArg::Blake2 => BtrfsCsum::Blake2,
        }
    }
}

impl From<ProfileArg> for BtrfsProfile {
    fn from(p: ProfileArg) -> BtrfsProfile {
        match p {
            ProfileArg::Single => BtrfsProfile::Single,
            ProfileArg::Dup => BtrfsProfile::Dup,
        }
    }
}

fn parse_uuid(s: &str) -> anyhow::Result<[u8; 16]> {
    Ok(*uuid::Uuid::parse_str(s)
        .with_context(|| format!("Invalid UUID {s:?}"))?
        .as_bytes())
}

fn parse_volume_id(s: &str) -> anyhow::Result<u32> {
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    if hex.len() != 8 {
        bail!("Invalid vfat volume id {s:?}: expected XXXX-XXXX");
    }
    u32::from_str_radix(&hex, 16).with_context(|| format!("Invalid vfat volume id {s:?}"))
}

pub fn run(args: &MkfsArgs) -> anyhow::Result<()> {
    if !args.path.exists() {
        bail!("{} does not exist", args.path.display());
    }
    let btrfs_only = args.csum.is_some() || args.metadata.is_some() || args.data.is_some();
    if btrfs_only && !matches!(args.fs_type, FsType::Btrfs) {
        bail!("--csum, --metadata and --data are for btrfs only");
    }
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&args.path)
        .with_context(|| format!("Cannot open {} for writing", args.path.display()))?;
    let report = match args.fs_type {
        FsType::Ext4 => {
            let uuid = args.uuid.as_deref().map(parse_uuid).transpose()?;
            fs::format_ext4(
                &dev,
                &Ext4Options {
                    label: args.label.clone(),
                    uuid,
                },
            )
        }
        FsType::Btrfs => {
            let uuid = args.uuid.as_deref().map(parse_uuid).transpose()?;
            fs::format_btrfs(
                &dev,
                &BtrfsOptions {
                    label: args.label.clone(),
                    uuid,
                    csum: args.csum.map(BtrfsCsum::from).unwrap_or_default(),
                    metadata: args.metadata.map(BtrfsProfile::from),
                    data: args.data.map(BtrfsProfile::from),
                },
            )
        }
        FsType::Vfat => {
            let volume_id = args.uuid.as_deref().map(parse_volume_id).transpose()?;
            fs::format_vfat(
                &dev,
                &VfatOptions {
                    label: args.label.clone(),
                    volume_id,
                },
            )
        }
        FsType::Swap => {
            let uuid = args.uuid.as_deref().map(parse_uuid).transpose()?;
            fs::format_swap(
                &dev,
                &SwapOptions {
                    label: args.label.clone(),
                    uuid,
                },
            )
        }
    }
    .with_context(|| format!("Cannot make a filesystem on {}", args.path.display()))?;
    println!(
        "{}: {} filesystem, {} bytes, UUID {}, label {}",
        args.path.display(),
        report.fs_type,
        report.size_bytes,
        report.uuid,
        report.label.as_deref().unwrap_or("(none)")
    );
    Ok(())
}
