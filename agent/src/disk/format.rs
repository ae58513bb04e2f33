//! Making the filesystem a partition's content asks for, through the native
//! writers in [`crate::fs`], and recognising one that is already there.

use std::fs::{File, OpenOptions};
use std::path::Path;

use landfall_proto::layout::{Btrfs, BtrfsCsum, BtrfsProfile, Content, FsFormat};

use crate::fs::{self, BtrfsOptions, Ext4Options, FormatReport, FsError, SwapOptions, VfatOptions};

use super::signatures::Signature;

/// Errors of the format step.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("Cannot open {path}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Bad UUID {0}")]
    Uuid(String),
    #[error("Bad vfat volume id {0}")]
    VolumeId(String),
    #[error("Formatting {path} failed")]
    Format {
        path: std::path::PathBuf,
        #[source]
        source: FsError,
    },
    #[error("{0} content is not applied by this agent yet")]
    NotYet(&'static str),
    #[error("Cannot flush {path}")]
    Sync {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn uuid_bytes(s: &str) -> Result<[u8; 16], FormatError> {
    uuid::Uuid::parse_str(s)
        .map(|u| *u.as_bytes())
        .map_err(|_| FormatError::Uuid(s.to_string()))
}

/// The blkid TYPE a content produces.
pub fn expected_type(content: &Content) -> &'static str {
    match content {
        Content::Filesystem(f) => f.format.as_str(),
        Content::Swap(_) => "swap",
        Content::Btrfs(_) => "btrfs",
        Content::Luks(_) => "crypto_LUKS",
        Content::LvmPv(_) => "LVM2_member",
    }
}

/// The device-mapper contents this agent does not make yet, by name.
pub fn not_yet(content: &Content) -> Option<&'static str> {
    match content {
        Content::Luks(_) => Some("LUKS"),
        Content::LvmPv(_) => Some("LVM"),
        Content::Filesystem(_) | Content::Swap(_) | Content::Btrfs(_) => None,
    }
}

/// Whether `found` is what `content` asks for (type, and label/UUID if fixed).
pub fn matches(content: &Content, found: &Signature) -> bool {
    if found.kind != expected_type(content) {
        return false;
    }
    let (label, uuid) = match content {
        Content::Filesystem(f) => (f.label.as_deref(), f.uuid.as_deref()),
        Content::Swap(s) => (s.label.as_deref(), s.uuid.as_deref()),
        Content::Btrfs(b) => (b.label.as_deref(), None),
        Content::Luks(_) | Content::LvmPv(_) => (None, None),
    };
    let label_ok = label.is_none_or(|l| {
        found
            .label
            .as_deref()
            .is_some_and(|f| f.eq_ignore_ascii_case(l))
    });
    let uuid_ok = uuid.is_none_or(|u| {
        found
            .uuid
            .as_deref()
            .is_some_and(|f| f.replace('-', "").eq_ignore_ascii_case(&u.replace('-', "")))
    });
    label_ok && uuid_ok
}

/// The native mkfs.btrfs with what the layout's `extraArgs` ask for.
fn format_btrfs(dev: &File, fs: &Btrfs) -> Result<FormatReport, FsError> {
    let profile = |p: Option<BtrfsProfile>| {
        p.map(|p| match p {
            BtrfsProfile::Single => fs::BtrfsProfile::Single,
            BtrfsProfile::Dup => fs::BtrfsProfile::Dup,
        })
    };
    fs::format_btrfs(
        dev,
        &BtrfsOptions {
            label: fs.label.clone(),
            uuid: None,
            csum: match fs.csum {
                None | Some(BtrfsCsum::Crc32c) => fs::BtrfsCsum::Crc32c,
                Some(BtrfsCsum::Xxhash) => fs::BtrfsCsum::Xxhash,
                Some(BtrfsCsum::Sha256) => fs::BtrfsCsum::Sha256,
                Some(BtrfsCsum::Blake2) => fs::BtrfsCsum::Blake2,
            },
            metadata: profile(fs.metadata),
            data: profile(fs.data),
        },
    )
}

/// Format the partition at `node` with the content's filesystem.
pub fn format_partition(node: &Path, content: &Content) -> Result<FormatReport, FormatError> {
    if let Some(what) = not_yet(content) {
        return Err(FormatError::NotYet(what));
    }
    let dev: File = OpenOptions::new()
        .read(true)
        .write(true)
        .open(node)
        .map_err(|source| FormatError::Open {
            path: node.to_path_buf(),
            source,
        })?;
    let fmt_err = |source| FormatError::Format {
        path: node.to_path_buf(),
        source,
    };
    let report = match content {
        Content::Btrfs(b) => format_btrfs(&dev, b).map_err(fmt_err)?,
        Content::Filesystem(f) => match f.format {
            FsFormat::Ext4 => {
                let uuid = f.uuid.as_deref().map(uuid_bytes).transpose()?;
                fs::format_ext4(
                    &dev,
                    &Ext4Options {
                        label: f.label.clone(),
                        uuid,
                    },
                )
                .map_err(fmt_err)?
            }
            FsFormat::Vfat => {
                let volume_id = match f.uuid.as_deref() {
                    Some(id) => Some(
                        u32::from_str_radix(id, 16)
                            .map_err(|_| FormatError::VolumeId(id.to_string()))?,
                    ),
                    None => None,
                };
                fs::format_vfat(
                    &dev,
                    &VfatOptions {
                        label: f.label.clone(),
                        volume_id,
                    },
                )
                .map_err(fmt_err)?
            }
        },
        Content::Swap(s) => {
            let uuid = s.uuid.as_deref().map(uuid_bytes).transpose()?;
            fs::format_swap(
                &dev,
                &SwapOptions {
                    label: s.label.clone(),
                    uuid,
                },
            )
            .map_err(fmt_err)?
        }
        Content::Luks(_) | Content::LvmPv(_) => {
            return Err(FormatError::NotYet(
                not_yet(content).unwrap_or("device-mapper"),
            ))
        }
    };
    dev.sync_all().map_err(|source| FormatError::Sync {
        path: node.to_path_buf(),
        source,
    })?;
    Ok(report)
}
