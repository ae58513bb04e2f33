//! Reading and writing the GPT (with its protective MBR) through the `gpt`
//! crate: 128 entries, the first usable sector right after the array, as
//! `sgdisk --clear` makes it; partition names are the labels.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};

use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::partition::Partition as GptPartition;
use gpt::partition_types::{OperatingSystem, Type};
use gpt::GptConfig;
use landfall_proto::layout::{DiskPlan, ExistingPartition};

use super::signatures::{is_mbr, read_at};

/// Errors of the partition-table step.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("Logical sector size {0} is not supported by the GPT writer (512 or 4096)")]
    SectorSize(u32),
    #[error("Bad GUID {0}")]
    Guid(String),
    #[error("Cannot create the GPT")]
    Create(#[source] gpt::GptError),
    #[error("Cannot set the partitions")]
    Partitions(#[source] gpt::GptError),
    #[error("Cannot write the GPT")]
    Write(#[source] gpt::GptError),
    #[error("Cannot write the protective MBR")]
    Mbr(#[source] gpt::mbr::MBRError),
    #[error("Cannot flush the device")]
    Sync(#[source] io::Error),
    #[error("Cannot duplicate the device handle")]
    Dup(#[source] io::Error),
}

fn lb_size(ss: u32) -> Result<LogicalBlockSize, TableError> {
    match ss {
        512 => Ok(LogicalBlockSize::Lb512),
        4096 => Ok(LogicalBlockSize::Lb4096),
        other => Err(TableError::SectorSize(other)),
    }
}

fn guid(s: &str) -> Result<uuid::Uuid, TableError> {
    uuid::Uuid::parse_str(s).map_err(|_| TableError::Guid(s.to_string()))
}

/// Write a fresh GPT holding the planned partitions, then the protective MBR.
/// Returns the partition GUIDs used, by number.
pub fn write_table(dev: &File, disk: &DiskPlan) -> Result<BTreeMap<u32, String>, TableError> {
    let ss = disk.geometry.logical_sector_size;
    let lb = lb_size(ss)?;
    let mut parts = BTreeMap::new();
    let mut guids = BTreeMap::new();
    for p in &disk.partitions {
        let part_guid = match &p.part_uuid {
            Some(u) => guid(u)?,
            None => uuid::Uuid::new_v4(),
        };
        guids.insert(
            p.number,
            part_guid.hyphenated().to_string().to_ascii_uppercase(),
        );
        parts.insert(
            p.number,
            GptPartition {
                part_type_guid: Type {
                    guid: guid(&p.type_guid)?,
                    os: OperatingSystem::None,
                },
                part_guid,
                first_lba: p.first_lba,
                last_lba: p.last_lba,
                flags: p.attributes,
                name: p.label.clone(),
            },
        );
    }
    // This install's disk GUID (see landfall_proto::layout's ownership), else random.
    let disk_guid = disk.disk_guid.as_deref().map(guid).transpose()?;
    let handle = dev.try_clone().map_err(TableError::Dup)?;
    let mut gdisk = GptConfig::new()
        .writable(true)
        .logical_block_size(lb)
        .change_partition_count(true)
        .create_from_device(handle, disk_guid)
        .map_err(TableError::Create)?;
    gdisk
        .update_partitions(parts)
        .map_err(TableError::Partitions)?;
    let mut handle = gdisk.write().map_err(TableError::Write)?;
    let sectors = disk.geometry.size_bytes / u64::from(ss);
    let mbr_size = u32::try_from(sectors.saturating_sub(1)).unwrap_or(u32::MAX);
    ProtectiveMBR::with_lb_size(mbr_size)
        .overwrite_lba0(&mut handle)
        .map_err(TableError::Mbr)?;
    handle.seek(SeekFrom::Start(0)).map_err(TableError::Sync)?;
    handle.sync_all().map_err(TableError::Sync)?;
    Ok(guids)
}

/// A partition table found on a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundTable {
    /// `gpt` or `mbr`.
    pub kind: String,
    /// The GPT's disk GUID, upper case (`None` for MBR).
    pub disk_guid: Option<String>,
    /// The GPT's partitions (none for MBR).
    pub partitions: Vec<ExistingPartition>,
}

/// The table found on a disk, or `None`: the agent's one GPT reader (the
/// inventory's partition names and GUIDs come from here too). The `gpt` crate
/// checks both headers' CRCs and falls back to the backup, so a table the
/// kernel would not use is not reported either; an MBR counts as one by
/// [`is_mbr`].
pub fn read_table(dev: &File, ss: u32) -> io::Result<Option<FoundTable>> {
    let Ok(lb) = lb_size(ss) else { return Ok(None) };
    let mut handle = dev.try_clone()?;
    // The `gpt` crate asserts (panics) on entry sizes other than 128, which
    // the UEFI spec allows (found by fuzzing): such a table is one it cannot
    // read, like a table with a bad CRC. Check both headers first; a panic
    // from anything else in the crate is caught the same way.
    let last = handle.seek(SeekFrom::End(0))?.saturating_sub(u64::from(ss));
    let mut entry_size_ok = true;
    for at in [u64::from(ss), last] {
        let h = read_at(dev, at, 88)?;
        entry_size_ok &= &h[..8] != b"EFI PART" || h[84..88] == 128u32.to_le_bytes();
    }
    let unreadable = || Err(io::Error::other("unreadable GPT").into());
    let opened = if entry_size_ok {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            GptConfig::new()
                .writable(false)
                .logical_block_size(lb)
                .open_from_device(handle)
        }))
        .unwrap_or_else(|_| unreadable())
    } else {
        unreadable()
    };
    match opened {
        Ok(g) => {
            let parts = g
                .partitions()
                .iter()
                // Like the kernel's GPT parser, skip entries that cannot be a
                // partition: an end before the start (found by fuzzing).
                .filter(|(_, p)| p.is_used() && p.first_lba <= p.last_lba)
                .map(|(n, p)| ExistingPartition {
                    number: *n,
                    first_lba: p.first_lba,
                    last_lba: p.last_lba,
                    type_guid: p
                        .part_type_guid
                        .guid
                        .hyphenated()
                        .to_string()
                        .to_ascii_uppercase(),
                    label: p.name.clone(),
                    part_uuid: p.part_guid.hyphenated().to_string().to_ascii_uppercase(),
                    fs_type: None,
                    fs_label: None,
                    fs_uuid: None,
                })
                .collect();
            Ok(Some(FoundTable {
                kind: "gpt".to_string(),
                disk_guid: Some(g.guid().hyphenated().to_string().to_ascii_uppercase()),
                partitions: parts,
            }))
        }
        Err(_) => {
            if is_mbr(&read_at(dev, 0, 512)?) {
                Ok(Some(FoundTable {
                    kind: "mbr".to_string(),
                    disk_guid: None,
                    partitions: Vec::new(),
                }))
            } else {
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/run.sh disk_probe`: a GPT entry whose last LBA is before
    /// its first was reported as an existing partition.
    #[test]
    fn an_entry_ending_before_it_starts_is_not_a_partition() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(1 << 20).unwrap();
        let linux = Type {
            guid: guid("0FC63DAF-8483-4772-8E79-3D69D8477DE4").unwrap(),
            os: OperatingSystem::None,
        };
        let part = |first_lba, last_lba, name: &str| GptPartition {
            part_type_guid: linux.clone(),
            part_guid: uuid::Uuid::new_v4(),
            first_lba,
            last_lba,
            flags: 0,
            name: name.into(),
        };
        let mut gdisk = GptConfig::new()
            .writable(true)
            .logical_block_size(LogicalBlockSize::Lb512)
            .create_from_device(f.try_clone().unwrap(), None)
            .unwrap();
        gdisk
            .update_partitions(BTreeMap::from([
                (1, part(2048, 4095, "good")),
                (2, part(1500, 100, "inverted")),
            ]))
            .unwrap();
        gdisk.write().unwrap();
        let found = read_table(&f, 512).unwrap().unwrap();
        let (table, parts) = (found.kind, found.partitions);
        assert_eq!(table, "gpt");
        let labels: Vec<_> = parts.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["good"]);
    }

    fn gpt_image(parts: &[(u64, u64)]) -> File {
        let f = tempfile::tempfile().unwrap();
        f.set_len(1 << 20).unwrap();
        let linux = Type {
            guid: guid("0FC63DAF-8483-4772-8E79-3D69D8477DE4").unwrap(),
            os: OperatingSystem::None,
        };
        let mut gdisk = GptConfig::new()
            .writable(true)
            .logical_block_size(LogicalBlockSize::Lb512)
            .create_from_device(f.try_clone().unwrap(), None)
            .unwrap();
        let map = parts
            .iter()
            .enumerate()
            .map(|(i, &(first_lba, last_lba))| {
                let p = GptPartition {
                    part_type_guid: linux.clone(),
                    part_guid: uuid::Uuid::new_v4(),
                    first_lba,
                    last_lba,
                    flags: 0,
                    name: format!("p{}", i + 1),
                };
                (i as u32 + 1, p)
            })
            .collect();
        gdisk.update_partitions(map).unwrap();
        gdisk.write().unwrap();
        f
    }

    /// GUIDs are stored mixed-endian; read back they must read as written
    /// (the inventory's type and partition GUIDs come from here). Zeros are
    /// no table at all.
    #[test]
    fn guids_read_back_as_written_and_zeros_are_no_table() {
        let blank = tempfile::tempfile().unwrap();
        blank.set_len(1 << 20).unwrap();
        assert_eq!(read_table(&blank, 512).unwrap(), None);
        let f = gpt_image(&[(2048, 4095)]);
        let found = read_table(&f, 512).unwrap().unwrap();
        assert_eq!(found.kind, "gpt");
        assert_eq!(
            found.partitions[0].type_guid,
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        );
        // The first bytes on disk are the first field, little-endian.
        let entry = read_at(&f, 1024, 16).unwrap();
        assert_eq!(entry[..4], [0xAF, 0x3D, 0xC6, 0x0F]);
    }

    /// Found by `fuzz/run.sh disk_probe`: partitions reaching past any device
    /// made the probe fail (pread EINVAL) or overflow; the disk must still be
    /// probed, so that it can be planned and wiped.
    #[test]
    fn partitions_beyond_the_device_are_probed_without_error() {
        let f = gpt_image(&[
            (2048, 4095),
            (1 << 62, u64::MAX),
            (u64::MAX / 512, u64::MAX / 512 + 8),
        ]);
        let geo = landfall_proto::layout::Geometry {
            size_bytes: 1 << 20,
            logical_sector_size: 512,
        };
        let found = crate::disk::probe::existing(&f, geo).unwrap();
        assert_eq!(found.table.as_deref(), Some("gpt"));
        assert_eq!(found.partitions.len(), 3);
        assert!(found.partitions.iter().all(|p| p.fs_type.is_none()));
        assert_eq!(read_at(&f, u64::MAX - 2, 8).unwrap(), [0; 8]);
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// Found by `fuzz/run.sh disk_probe`: the `gpt` crate panics on a valid
    /// header whose entries are 256 bytes; reading the table must not.
    #[test]
    fn a_gpt_with_256_byte_entries_does_not_panic() {
        use std::os::unix::fs::FileExt;
        let f = gpt_image(&[(2048, 4095)]);
        let mut hdr = read_at(&f, 512, 92).unwrap();
        hdr[80..84].copy_from_slice(&64u32.to_le_bytes());
        hdr[84..88].copy_from_slice(&256u32.to_le_bytes());
        let entries = read_at(&f, 1024, 64 * 256).unwrap();
        hdr[88..92].copy_from_slice(&crc32(&entries).to_le_bytes());
        hdr[16..20].fill(0);
        let crc = crc32(&hdr);
        hdr[16..20].copy_from_slice(&crc.to_le_bytes());
        f.write_all_at(&hdr, 512).unwrap();
        let found = read_table(&f, 512).unwrap();
        assert_ne!(found.map(|t| t.kind).as_deref(), Some("gpt"));
    }
}
