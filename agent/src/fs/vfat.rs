//! vfat through the `fatfs` crate's formatter: FAT32 whenever the volume is
//! large enough for it (an ESP), otherwise the FAT12/16 fatfs picks; a random
//! volume id and the label (case kept, as mkfs.fat does). The start of the device is cleared first so no old
//! signature (an ext4 superblock at 1 KiB, say) survives in the reserved sectors.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};

use fatfs::{FatType, FormatVolumeOptions};

use super::{device, FormatReport, VfatOptions};
use crate::sys::blk::{self, BlkError};

pub const MAX_LABEL: usize = 11;
/// Smallest volume accepted (fatfs's FAT12 needs a handful of clusters).
pub const MIN_BYTES: u64 = 64 * 1024;
const WIPE_BYTES: u64 = 1 << 20;

/// Errors of the vfat writer.
#[derive(Debug, thiserror::Error)]
pub enum VfatError {
    #[error("Cannot read the device geometry")]
    Geometry(#[source] BlkError),
    #[error("Device too small for vfat: {size} bytes, at least {MIN_BYTES} bytes are needed")]
    TooSmall { size: u64 },
    #[error("Label {label:?} is not 1 to {MAX_LABEL} printable ASCII characters")]
    BadLabel { label: String },
    #[error("Cannot clear the start of the device")]
    Wipe(#[source] io::Error),
    #[error("The FAT formatter failed")]
    Format(#[source] io::Error),
    #[error("Cannot record the free cluster count in the FSInfo sector")]
    FsInfo(#[source] io::Error),
    #[error("Cannot flush the device")]
    Sync(#[source] io::Error),
}

/// The 11-byte, space-padded label field. The case is kept as given, as
/// mkfs.fat keeps it, so `/dev/disk/by-label/<label>` is what the user wrote.
pub fn label_field(label: &str) -> Result<[u8; 11], VfatError> {
    let bad = || VfatError::BadLabel {
        label: label.to_owned(),
    };
    if label.is_empty() || label.len() > MAX_LABEL {
        return Err(bad());
    }
    if !label
        .bytes()
        .all(|b| (0x20..0x7F).contains(&b) && !b"\"*+,./:;<=>?[\\]|".contains(&b))
    {
        return Err(bad());
    }
    let mut f = [b' '; 11];
    for (d, s) in f.iter_mut().zip(label.bytes()) {
        *d = s;
    }
    Ok(f)
}

/// The volume id as blkid prints it: `XXXX-XXXX`.
pub fn volume_id_string(id: u32) -> String {
    format!("{:04X}-{:04X}", id >> 16, id & 0xFFFF)
}

/// fatfs leaves FAT32's FSInfo free-cluster count "unknown", which fsck.fat
/// reports; count the free clusters once (reading the FAT only) and store it.
fn record_free_clusters(dev: &File) -> io::Result<()> {
    let mut disk = dev;
    disk.seek(SeekFrom::Start(0))?;
    let fs = fatfs::FileSystem::new(disk, fatfs::FsOptions::new().update_accessed_date(false))?;
    fs.stats()?;
    fs.unmount()
}

/// Format `dev` as vfat.
pub fn format(dev: &File, opts: &VfatOptions) -> Result<FormatReport, VfatError> {
    let label = opts.label.as_deref().map(label_field).transpose()?;
    let size = blk::device_size(dev).map_err(VfatError::Geometry)?;
    if size < MIN_BYTES {
        return Err(VfatError::TooSmall { size });
    }
    let sector = blk::logical_sector_size(dev).map_err(VfatError::Geometry)?;
    let volume_id = opts.volume_id.unwrap_or_else(|| {
        let r = uuid::Uuid::new_v4();
        let b = r.as_bytes();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    });
    device::zero_range(dev, 0, size.min(WIPE_BYTES)).map_err(VfatError::Wipe)?;
    let total_sectors =
        u32::try_from(size / u64::from(sector)).map_err(|_| VfatError::TooSmall { size })?;
    let options = |fat_type: Option<FatType>| {
        let mut o = FormatVolumeOptions::new()
            .bytes_per_sector(sector as u16)
            .total_sectors(total_sectors)
            .volume_id(volume_id);
        if let Some(l) = label {
            o = o.volume_label(l);
        }
        if let Some(t) = fat_type {
            o = o.fat_type(t);
        }
        o
    };
    // FAT32 when the cluster count allows it, else what fatfs picks for the size.
    let attempt = |fat_type: Option<FatType>| -> io::Result<()> {
        let mut disk = dev;
        disk.seek(SeekFrom::Start(0))?;
        fatfs::format_volume(disk, options(fat_type))
    };
    if attempt(Some(FatType::Fat32)).is_err() {
        attempt(None).map_err(VfatError::Format)?;
    }
    record_free_clusters(dev).map_err(VfatError::FsInfo)?;
    dev.sync_all().map_err(VfatError::Sync)?;
    Ok(FormatReport {
        fs_type: "vfat",
        size_bytes: u64::from(total_sectors) * u64::from(sector),
        uuid: volume_id_string(volume_id),
        label: opts.label.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(&label_field("esp").unwrap(), b"esp        ");
        assert_eq!(&label_field("NIXBOOT").unwrap(), b"NIXBOOT    ");
        assert!(label_field("").is_err());
        assert!(label_field("twelve_chars").is_err());
        assert!(label_field("a/b").is_err());
    }

    #[test]
    fn volume_id_format() {
        assert_eq!(volume_id_string(0x1234_ABCD), "1234-ABCD");
        assert_eq!(volume_id_string(0xF), "0000-000F");
    }
}
