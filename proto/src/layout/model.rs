//! The layout as landfall understands it: disko's `disko.devices` reduced to
//! what we support, every default resolved, partitions in disko's order.
//!
//! Invariants (upheld by [`super::parse`]): partitions are sorted as disko sorts
//! them and `number` is the 1-based position; labels, mountpoints and disk
//! devices are unique; type GUIDs are known and upper case. Mountpoints are
//! unique across partitions, LUKS contents, LVs and btrfs subvolumes; LUKS
//! names and LV device-mapper names are unique and valid; every `lvm_pv`
//! names a VG of `lvm_vgs` and every VG has a PV.

use serde::{Deserialize, Serialize};

use super::units::Size;

/// A whole layout: the disks and the `nodev` (in-memory) filesystems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Sorted by attribute name.
    pub disks: Vec<Disk>,
    /// Sorted by attribute name.
    pub nodev: Vec<Nodev>,
    /// `lvm_vg`, sorted by attribute name; each named by at least one
    /// `lvm_pv` content and no two with one name.
    #[serde(default)]
    pub lvm_vgs: Vec<VolumeGroup>,
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
    Luks(Luks),
    #[serde(rename = "lvm_pv")]
    LvmPv(LvmPv),
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

/// `content.type = "luks"`: a LUKS2 container opened as `/dev/mapper/<name>`.
/// Keys are named here (files on the target, or a prompt), never held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Luks {
    /// The device-mapper name: a valid, layout-unique dm name.
    pub name: String,
    /// `settings.keyFile` or else `keyFile`: a key file on the target.
    pub key_file: Option<String>,
    /// `passwordFile`: a file on the target holding the passphrase.
    pub password_file: Option<String>,
    /// `askPassword`: the controller asks for the passphrase.
    pub ask_password: bool,
    /// `additionalKeyFiles`: further keyslots, in order.
    pub additional_key_files: Vec<String>,
    /// `settings.allowDiscards` or `--allow-discards` in `extraOpenArgs`.
    pub allow_discards: bool,
    /// `settings.bypassWorkqueues` (both `--perf-no_*_workqueue`) or those
    /// in `extraOpenArgs`.
    pub no_read_workqueue: bool,
    pub no_write_workqueue: bool,
    /// `extraFormatArgs`, as accepted.
    pub format_args: LuksArgs,
    /// `extraOpenArgs`, as accepted.
    pub open_args: LuksArgs,
    /// `initrdUnlock`: the installed system unlocks it in stage 1.
    pub initrd_unlock: bool,
    /// Not a `luks` itself (no LUKS in LUKS).
    pub content: Option<Box<Content>>,
}

/// The cryptsetup words of `extraFormatArgs`/`extraOpenArgs` landfall honours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LuksArgs {
    /// `--label`: at most 47 bytes.
    pub label: Option<String>,
    /// `--pbkdf-memory` in KiB (at least 32).
    pub pbkdf_memory_kib: Option<u32>,
    /// `--iter-time`/`-i` in ms (at least 1).
    pub iter_time_ms: Option<u32>,
    /// `--pbkdf-force-iterations` (at least 4).
    pub force_iterations: Option<u32>,
    pub allow_discards: bool,
    pub no_read_workqueue: bool,
    pub no_write_workqueue: bool,
}

/// `content.type = "lvm_pv"`: the device becomes a PV of `vg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvmPv {
    /// The `name` of a `lvm_vg` of the layout.
    pub vg: String,
}

/// An `lvm_vg` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeGroup {
    /// The attribute name.
    pub key: String,
    /// disko's `name` (default: the key); a name `vgcreate` accepts.
    pub name: String,
    /// In disko's creation order: by `priority`, then attribute name.
    pub lvs: Vec<LogicalVolume>,
}

/// `lvs.<key>`: a linear LV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogicalVolume {
    /// The attribute name.
    pub key: String,
    /// disko's `name` (default: the key); a name `lvcreate -n` accepts,
    /// unique in its VG.
    pub name: String,
    /// As written (`10M`, `100%`, `50%FREE`).
    pub size: String,
    /// `size` as lvcreate reads it.
    pub request: LvSize,
    /// As evaluated, or disko's default (1000, plus 251 when `size` holds `100%`).
    pub priority: i64,
    /// Not lvm_pv (no VG inside a VG).
    pub content: Option<Content>,
}

/// An LV size as disko's `lvcreate` call reads it: `-L` when the size has no
/// `%`, else `-l` (a bare `N%` meaning `N%FREE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LvSize {
    /// `-L`: 512-byte sectors (lvcreate rounds up to whole extents).
    Sectors(u64),
    /// `-l N%FREE`: of the space still free when the LV is created.
    PercentFree(u32),
    /// `-l N%VG`.
    PercentVg(u32),
    /// `-l N%PVS`.
    PercentPvs(u32),
}

impl Content {
    /// Every mountpoint inside this content, with its field path below `path`.
    pub fn mountpoints(&self, path: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self {
            Content::Filesystem(fs) => {
                if let Some(mp) = &fs.mountpoint {
                    out.push((mp.clone(), format!("{path}.mountpoint")));
                }
            }
            Content::Btrfs(b) => {
                if let Some(mp) = &b.mountpoint {
                    out.push((mp.clone(), format!("{path}.mountpoint")));
                }
                for s in &b.subvolumes {
                    if let Some(mp) = &s.mountpoint {
                        out.push((
                            mp.clone(),
                            format!("{path}.subvolumes.{}.mountpoint", s.key),
                        ));
                    }
                }
            }
            Content::Luks(l) => {
                if let Some(c) = &l.content {
                    out.extend(c.mountpoints(&format!("{path}.content")));
                }
            }
            Content::Swap(_) | Content::LvmPv(_) => {}
        }
        out
    }
}
