//! The layout as landfall understands it: disko's `disko.devices` reduced to
//! what we support, every default resolved, partitions in disko's order.
//!
//! Invariants (upheld by [`super::parse`]): partitions are sorted as disko sorts
//! them and `number` is the 1-based position; labels, mountpoints and disk
//! devices are unique; type GUIDs are known and upper case.

use serde::{Deserialize, Serialize};

use super::units::Size;

/// A whole layout: the disks and the `nodev` (in-memory) filesystems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Sorted by attribute name.
    pub disks: Vec<Disk>,
    /// Sorted by attribute name.
    pub nodev: Vec<Nodev>,
}

/// A `disk` entry with a GPT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// The attribute name (`main` in `disk.main`).
    pub key: String,
    /// disko's `name` option (default: the key with `/` turned into `_`); part of default labels.
    pub name: String,
    /// The device path from the layout (`/dev/nvme0n1`); the agent may override it.
    pub device: String,
    /// disko's `destroy`: false means existing data must not be wiped.
    pub destroy: bool,
    /// Whether the disk gets a GPT (`content.type = "gpt"`); without content
    /// disko only wipes the disk.
    pub gpt: bool,
    /// In disko's order; `partitions[i].number == i + 1`.
    pub partitions: Vec<Partition>,
}

/// A GPT partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// The attribute name (`ESP`).
    pub key: String,
    /// disko's `name` option (default: the key).
    pub name: String,
    /// 1-based partition number (position in disko's order).
    pub number: u32,
    pub priority: i64,
    /// GPT partition name; `/dev/disk/by-partlabel/<label>`.
    pub label: String,
    /// As written (`EF00`, or a GUID).
    pub type_code: String,
    /// Upper-case type GUID.
    pub type_guid: String,
    pub size: Size,
    /// sgdisk START as written (`0`).
    pub start: String,
    /// sgdisk END as written or derived from `size` (`+512M`, `-0`).
    pub end: String,
    /// `--set-alignment` value, 0 for sgdisk's own.
    pub alignment: u64,
    /// Partition GUID; `None` means a random one.
    pub uuid: Option<String>,
    /// GPT attribute bit numbers to set.
    pub attributes: Vec<u8>,
    pub content: Option<Content>,
}

/// What goes inside a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Content {
    Filesystem(Filesystem),
    Swap(Swap),
    Btrfs(Btrfs),
}

/// Filesystems the agent formats itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsFormat {
    Ext4,
    Vfat,
}

impl FsFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FsFormat::Ext4 => "ext4",
            FsFormat::Vfat => "vfat",
        }
    }
}

/// `content.type = "filesystem"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filesystem {
    pub format: FsFormat,
    pub mountpoint: Option<String>,
    pub mount_options: Vec<String>,
    /// From `extraArgs` `-L` (ext4) / `-n` (vfat).
    pub label: Option<String>,
    /// From `extraArgs` `-U` (ext4, a UUID) / `-i` (vfat, 8 hex digits).
    pub uuid: Option<String>,
}

/// `content.type = "swap"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swap {
    /// From `extraArgs` `-L`.
    pub label: Option<String>,
    /// From `extraArgs` `-U`.
    pub uuid: Option<String>,
    /// `discardPolicy`: `once`, `pages` or `both`.
    pub discard_policy: Option<String>,
    /// swapon priority.
    pub priority: Option<i64>,
    pub random_encryption: bool,
}

/// `content.type = "btrfs"` on one device: the filesystem, its top-level
/// mount, its subvolumes (parents before children) and its swapfiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Btrfs {
    /// From `extraArgs` `-L`/`--label`.
    pub label: Option<String>,
    /// From `extraArgs` `--csum`/`--checksum`; `None` is mkfs.btrfs's default (crc32c).
    pub csum: Option<BtrfsCsum>,
    /// From `extraArgs` `-m`/`--metadata`; `None` is mkfs.btrfs's default.
    pub metadata: Option<BtrfsProfile>,
    /// From `extraArgs` `-d`/`--data`; `None` is mkfs.btrfs's default.
    pub data: Option<BtrfsProfile>,
    /// Where the top level (subvolume id 5) is mounted, without `subvol=`.
    pub mountpoint: Option<String>,
    pub mount_options: Vec<String>,
    /// Sorted so that every subvolume comes after the subvolumes its path lies in.
    pub subvolumes: Vec<Subvolume>,
    /// Swapfiles in the top level (`swap`), by attribute name.
    pub swap: Vec<Swapfile>,
}

/// Checksum algorithms of `mkfs.btrfs --csum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BtrfsCsum {
    Crc32c,
    Xxhash,
    Sha256,
    Blake2,
}

/// Block group profiles possible on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BtrfsProfile {
    Single,
    Dup,
}

/// `subvolumes.<key>`: a subvolume of the top level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subvolume {
    /// The attribute name.
    pub key: String,
    /// disko's `name` as written (`/home/user`, `@nix`); what `subvol=` gets.
    pub name: String,
    /// `name` relative to the top level: no leading `/`, no empty, `.` or
    /// `..` component, each component at most 255 bytes.
    pub path: String,
    pub mountpoint: Option<String>,
    pub mount_options: Vec<String>,
    /// Swapfiles inside this subvolume, by attribute name.
    pub swap: Vec<Swapfile>,
}

/// `swap.<key>`: a swapfile as `btrfs filesystem mkswapfile` makes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swapfile {
    /// The attribute name.
    pub key: String,
    /// A file name in the subvolume (or top level) that holds it.
    pub path: String,
    /// As written (`20M`).
    pub size: String,
    /// `size` in bytes, a whole number of 4 KiB pages.
    pub size_bytes: u64,
    /// swapon priority (0-32767); `None` lets the kernel choose.
    pub priority: Option<i64>,
    pub options: Vec<String>,
}

impl Btrfs {
    /// Every swapfile with the subvolume that holds it (`None`: the top level).
    pub fn swapfiles(&self) -> impl Iterator<Item = (Option<&Subvolume>, &Swapfile)> {
        self.swap.iter().map(|f| (None, f)).chain(
            self.subvolumes
                .iter()
                .flat_map(|s| s.swap.iter().map(move |f| (Some(s), f))),
        )
    }
}

/// A `nodev` entry: a filesystem without a device (tmpfs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nodev {
    pub key: String,
    pub fs_type: String,
    pub device: String,
    pub mountpoint: Option<String>,
    pub mount_options: Vec<String>,
}
