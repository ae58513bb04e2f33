//! From a [`Layout`] and what the agent found on each disk to a [`Plan`]: the
//! exact sector ranges sgdisk would give, what exists now and would be
//! destroyed, what will be created (partitions, then the LUKS devices to
//! open and the VGs and LVs to create), and the mounts in order — parents
//! first, whatever their source: a partition, a device-mapper device
//! (`/dev/mapper/<luks name>`, `/dev/<vg>/<lv>`) or none. Serialisable (the
//! agent sends it to the controller) and renderable for a person.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::LayoutError;
use super::model::{Content, Layout, LvSize, Partition};
use super::ownership::PlanOptions;
use super::sectors::{Geometry, NewPartition, SectorError, SgdiskTable};
use super::units::{human_bytes, Position};

/// What the agent knows of one disk before touching it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskFacts {
    /// The device actually used (`/dev/loop3`, `/dev/nvme0n1`).
    pub path: String,
    pub geometry: Geometry,
    pub existing: ExistingDisk,
}

/// What is on a disk now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingDisk {
    /// `gpt` or `mbr`, if a valid table was found.
    pub table: Option<String>,
    pub partitions: Vec<ExistingPartition>,
    /// Signatures found on the whole disk (outside partitions): `ext4`, `LVM2_member`, …
    pub signatures: Vec<String>,
    /// The GPT's disk GUID, upper case, when a GPT was read.
    #[serde(default)]
    pub disk_guid: Option<String>,
}

/// One partition found on a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingPartition {
    pub number: u32,
    pub first_lba: u64,
    pub last_lba: u64,
    pub type_guid: String,
    pub label: String,
    pub part_uuid: String,
    /// The filesystem found inside (`ext4`, `vfat`, `swap`, …).
    pub fs_type: Option<String>,
    pub fs_label: Option<String>,
    pub fs_uuid: Option<String>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub disks: Vec<DiskPlan>,
    /// In mount order (by mountpoint, byte order: parents first).
    pub mounts: Vec<MountPlan>,
    pub swaps: Vec<SwapPlan>,
    /// Swapfiles on btrfs, activated after the mounts.
    #[serde(default)]
    pub swapfiles: Vec<SwapfilePlan>,
    /// LUKS devices to format and open, outer ones first.
    #[serde(default)]
    pub luks: Vec<LuksPlan>,
    /// Volume groups to create, in the layout's (attribute) order.
    #[serde(default)]
    pub volume_groups: Vec<VgPlan>,
    /// Swap on device-mapper devices (a LUKS device or an LV).
    #[serde(default)]
    pub mapper_swaps: Vec<MapperSwapPlan>,
}

/// One LUKS device to format and open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LuksPlan {
    /// The dm name: opened as `/dev/mapper/<name>`.
    pub name: String,
    /// Where the container lies (`/dev/disk/by-partlabel/…`, `/dev/pool/lv`).
    pub device: String,
    /// Where the key comes from, for a person (never the key).
    pub key_source: String,
    /// Further keyslots from these files.
    pub additional_key_files: Vec<String>,
    /// What lies inside (`ext4`, `LVM2_member`, …), if anything.
    pub inner: Option<String>,
}

/// One volume group to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VgPlan {
    pub name: String,
    /// Its PVs' devices, in layout order.
    pub pvs: Vec<String>,
    /// Extents of all PVs together, each PV from [`LVM_PE_START`].
    pub extent_count: u64,
    /// In creation order.
    pub lvs: Vec<LvPlan>,
}

/// One LV to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvPlan {
    pub name: String,
    /// As written (`10M`, `100%FREE`).
    pub size: String,
    pub request: LvSize,
    /// Extents (of [`LVM_EXTENT_BYTES`]) lvcreate gives it, in order, on
    /// fresh PVs.
    pub extents: u64,
    /// `/dev/<vg>/<lv>`.
    pub path: String,
    /// What lies inside (`ext4`, `crypto_LUKS`, …), if anything.
    pub inner: Option<String>,
    /// The content the agent makes on it.
    #[serde(default)]
    pub content: Option<Content>,
}

/// Swap on a device-mapper device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapperSwapPlan {
    /// `/dev/mapper/<name>` or `/dev/<vg>/<lv>`.
    pub path: String,
    pub via: MapperVia,
    pub priority: Option<i64>,
    pub discard_policy: Option<String>,
}

/// What happens to one disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskPlan {
    pub key: String,
    pub path: String,
    pub geometry: Geometry,
    pub destroy: bool,
    pub existing: ExistingDisk,
    /// Whether a GPT is written (false: the disk is only wiped).
    pub gpt: bool,
    pub partitions: Vec<PartitionPlan>,
    /// The disk already holds exactly this table and these filesystems, and
    /// this install formatted it (or `keep_existing`).
    pub already_applied: bool,
    /// The GPT disk GUID to write: derived from the install ID (see
    /// [`super::ownership`]); `None`: a random one.
    #[serde(default)]
    pub disk_guid: Option<String>,
    /// The disk holds this layout but was not formatted by this install: it
    /// is wiped and recreated like any other.
    #[serde(default)]
    pub foreign_layout: bool,
    /// `--keep-existing`: a disk holding the layout is kept whoever formatted it.
    #[serde(default)]
    pub keep_existing: bool,
}

impl DiskPlan {
    /// Whether the disk found now (`now`, probed again at apply time) may be
    /// kept: it holds this install's disk GUID, or `keep_existing`.
    pub fn trusts(&self, now: &ExistingDisk) -> bool {
        self.keep_existing
            || match (&self.disk_guid, &now.disk_guid) {
                (Some(want), Some(found)) => want.eq_ignore_ascii_case(found),
                _ => false,
            }
    }
}

/// One partition to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlan {
    pub number: u32,
    pub key: String,
    pub label: String,
    pub type_guid: String,
    /// `None`: a random GUID.
    pub part_uuid: Option<String>,
    /// GPT attribute bits.
    pub attributes: u64,
    pub first_lba: u64,
    pub last_lba: u64,
    pub content: Option<Content>,
}

impl PartitionPlan {
    pub fn sectors(&self) -> u64 {
        self.last_lba - self.first_lba + 1
    }
    /// The filesystem type blkid reports once formatted; `None` when nothing
    /// is formatted (no content, or swap with `randomEncryption`, which NixOS
    /// sets up at every boot and disko does not mkswap). A LUKS partition is
    /// `crypto_LUKS`, an `lvm_pv` one `LVM2_member`.
    pub fn fs_type(&self) -> Option<&'static str> {
        self.content.as_ref().and_then(content_fs_type)
    }
}

/// The type blkid reports for a content once made; see [`PartitionPlan::fs_type`].
pub fn content_fs_type(c: &Content) -> Option<&'static str> {
    match c {
        Content::Filesystem(fs) => Some(fs.format.as_str()),
        Content::Swap(s) if !s.random_encryption => Some("swap"),
        Content::Swap(_) => None,
        Content::Btrfs(_) => Some("btrfs"),
        Content::Luks(_) => Some("crypto_LUKS"),
        Content::LvmPv(_) => Some("LVM2_member"),
    }
}

/// Where a mount comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSource {
    Partition {
        disk: String,
        number: u32,
        label: String,
    },
    Nodev {
        device: String,
    },
    /// A device-mapper device the plan opens or creates.
    Mapper {
        /// `/dev/mapper/<name>` or `/dev/<vg>/<lv>`.
        path: String,
        via: MapperVia,
    },
}

/// What makes a device-mapper device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapperVia {
    Luks { name: String },
    Lvm { vg: String, lv: String },
}

/// One mount, relative to the install root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPlan {
    pub mountpoint: String,
    pub source: MountSource,
    pub fs_type: String,
    pub options: Vec<String>,
}

/// One swap partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapPlan {
    pub disk: String,
    pub number: u32,
    pub label: String,
    pub priority: Option<i64>,
    pub discard_policy: Option<String>,
}

/// One btrfs swapfile: made in its subvolume by the format steps, activated
/// at `location` under the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapfilePlan {
    pub disk: String,
    pub number: u32,
    pub label: String,
    /// The subvolume path holding it (`swap`); `None`: the top level.
    pub subvolume: Option<String>,
    /// The file name in that subvolume.
    pub file: String,
    /// Where NixOS finds it: the subvolume's mountpoint joined with `file`.
    pub location: String,
    /// The device-mapper device holding the btrfs, when not the partition itself.
    #[serde(default)]
    pub mapper: Option<String>,
    pub size_bytes: u64,
    pub priority: Option<i64>,
}

/// The digest that binds a confirmation to the plan that was shown: the
/// SHA-256 (hex) of a `PlanReply.plan_json`. The controller sends it with the
/// confirmed ApplyLayout; the agent, which plans again at apply time, refuses
/// when its own plan's digest differs (the disks changed in between). The plan
/// serialises deterministically (no hash maps), so an unchanged machine gives
/// the same digest.
pub fn plan_digest(plan_json: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(plan_json.as_bytes()))
}

impl Plan {
    /// The plan as the agent sends it (`PlanReply.plan_json`) and as
    /// [`Plan::digest`] hashes it: one serialisation for both.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// [`plan_digest`] of [`Plan::to_json`].
    pub fn digest(&self) -> String {
        plan_digest(&self.to_json())
    }

    /// Whether applying would change anything on any disk.
    pub fn is_destructive(&self) -> bool {
        self.disks.iter().any(|d| !d.already_applied)
    }
    pub fn already_applied(&self) -> bool {
        !self.is_destructive()
    }
}

fn part_path(disk: &str, p: &Partition) -> String {
    format!("disk.{disk}.content.partitions.{}", p.key)
}

fn sector_error(e: SectorError, disk: &str, p: &Partition, geo: Geometry) -> LayoutError {
    let path = part_path(disk, p);
    let end_field = if p.end == p.size.default_end() {
        "size"
    } else {
        "end"
    };
    let ss = u64::from(geo.logical_sector_size);
    match e {
        SectorError::DiskTooSmall => LayoutError::new(
            format!("disk.{disk}"),
            format!("the disk ({}) is too small for a GPT", human_bytes(geo.size_bytes)),
        ),
        SectorError::StartNotFree { start } => LayoutError::new(
            format!("{path}.start"),
            format!("\"{}\" resolves to sector {start}, which is not free", p.start),
        ),
        SectorError::EndBeforeStart { start, end } => LayoutError::new(
            format!("{path}.{end_field}"),
            format!("ends at sector {end}, before its start {start}"),
        ),
        SectorError::NoRoom { start, end, free_until } => LayoutError::new(
            format!("{path}.{end_field}"),
            format!(
                "\"{}\" does not fit: sectors {start}-{end} ({}) but the free space from {start} ends at {free_until} ({} available; disk {})",
                if end_field == "size" { p.size.as_str() } else { &p.end },
                // `end` may be far beyond any disk ("30E"): saturate, never overflow.
                human_bytes(end.saturating_sub(start).saturating_add(1).saturating_mul(ss)),
                human_bytes(free_until.saturating_add(1).saturating_sub(start).saturating_mul(ss)),
                human_bytes(geo.size_bytes),
            ),
        ),
    }
}

/// LUKS2's default data offset (cryptsetup's and the agent's): the opened
/// device is this much smaller than its container.
pub const LUKS2_DATA_OFFSET: u64 = 16 << 20;
/// lvm2's defaults for a new PV and VG: data from 1 MiB, 4 MiB extents.
pub const LVM_PE_START: u64 = 1 << 20;
pub const LVM_EXTENT_BYTES: u64 = 4 << 20;

/// The smallest ext4 the agent's writer makes (8 MiB) and the smallest swap
/// area (ten 4 KiB pages), checked before anything is written.
pub const MIN_EXT4_BYTES: u64 = 8 << 20;
pub const MIN_SWAP_BYTES: u64 = 10 * 4096;
/// The smallest device mkfs.btrfs 6.2 formats (its "minimum size for each
/// btrfs device"); the native writer needs less, so this bound is the one
/// checked before anything is written.
pub const MIN_BTRFS_BYTES: u64 = 114_294_784;

fn check_content_size(disk: &str, p: &Partition, bytes: u64) -> Result<(), LayoutError> {
    if let Some(Content::Btrfs(b)) = &p.content {
        if bytes < MIN_BTRFS_BYTES {
            let field = if p.end == p.size.default_end() {
                "size"
            } else {
                "end"
            };
            return Err(LayoutError::new(
                format!("{}.{field}", part_path(disk, p)),
                format!(
                    "{} is too small for btrfs (at least {}, as mkfs.btrfs requires)",
                    human_bytes(bytes),
                    human_bytes(MIN_BTRFS_BYTES)
                ),
            ));
        }
        let mut total: u64 = 0;
        for (s, f) in b.swapfiles() {
            total = total.saturating_add(f.size_bytes);
            if total > bytes {
                let at = match s {
                    Some(s) => format!("subvolumes.{}.swap.{}", s.key, f.key),
                    None => format!("swap.{}", f.key),
                };
                return Err(LayoutError::new(
                    format!("{}.content.{at}.size", part_path(disk, p)),
                    format!(
                        "swapfile of {} does not fit: the btrfs partition holds {} ({} of swapfiles with this one)",
                        human_bytes(f.size_bytes),
                        human_bytes(bytes),
                        human_bytes(total)
                    ),
                ));
            }
        }
        return Ok(());
    }
    let (min, what) = match &p.content {
        Some(Content::Filesystem(fs)) if fs.format == super::model::FsFormat::Ext4 => {
            (MIN_EXT4_BYTES, "ext4")
        }
        Some(Content::Swap(_)) => (MIN_SWAP_BYTES, "swap"),
        _ => return Ok(()),
    };
    if bytes < min {
        let field = if p.end == p.size.default_end() {
            "size"
        } else {
            "end"
        };
        return Err(LayoutError::new(
            format!("{}.{field}", part_path(disk, p)),
            format!(
                "{} is too small for {what} (at least {})",
                human_bytes(bytes),
                human_bytes(min)
            ),
        ));
    }
    Ok(())
}

/// The smallest device a content fits on, and its name, for contents on
/// device-mapper devices; `None`: no bound.
fn dm_content_min(c: &Content) -> Option<(u64, &'static str)> {
    match c {
        Content::Filesystem(fs) if fs.format == super::model::FsFormat::Ext4 => {
            Some((MIN_EXT4_BYTES, "ext4"))
        }
        Content::Swap(_) => Some((MIN_SWAP_BYTES, "swap")),
        Content::Btrfs(_) => Some((MIN_BTRFS_BYTES, "btrfs")),
        Content::Luks(_) => Some((
            LUKS2_DATA_OFFSET + 512,
            "LUKS2 (its 16 MiB header and data)",
        )),
        Content::LvmPv(_) => Some((
            LVM_PE_START + LVM_EXTENT_BYTES,
            "an LVM PV (1 MiB + one extent)",
        )),
        Content::Filesystem(_) => None,
    }
}

/// `c` (at `path`, its size set by the field `field`) and what it holds fit
/// `bytes`: a LUKS container leaves 16 MiB less to its content.
fn check_dm_fit(c: &Content, bytes: u64, field: &str) -> Result<(), LayoutError> {
    if let Some((min, what)) = dm_content_min(c) {
        if bytes < min {
            return Err(LayoutError::new(
                field,
                format!(
                    "{} is too small for {what} (at least {})",
                    human_bytes(bytes),
                    human_bytes(min)
                ),
            ));
        }
    }
    if let Content::Luks(l) = c {
        if let Some(inner) = &l.content {
            check_dm_fit(inner, bytes - LUKS2_DATA_OFFSET, field)?;
        }
    }
    Ok(())
}

/// The sector ranges of a disk's partitions, as `sgdisk --align-end --new`
/// would give them, in partition-number order.
pub fn partition_ranges(
    disk_key: &str,
    parts: &[Partition],
    geo: Geometry,
) -> Result<Vec<(u64, u64)>, LayoutError> {
    let ss = geo.logical_sector_size;
    if ss < 512 || !ss.is_power_of_two() {
        return Err(LayoutError::new(
            format!("disk.{disk_key}"),
            format!("unsupported logical sector size {ss}"),
        ));
    }
    let first = parts.first();
    let mut table = SgdiskTable::cleared(geo).map_err(|e| match first {
        Some(p) => sector_error(e, disk_key, p, geo),
        None => LayoutError::new(
            format!("disk.{disk_key}"),
            "the disk is too small for a GPT",
        ),
    })?;
    parts
        .iter()
        .map(|p| {
            // Parse checked these already; an error here is still reported, not a panic.
            let bad = |f: &str, v: &str| {
                LayoutError::new(
                    format!("{}.{f}", part_path(disk_key, p)),
                    format!("\"{v}\" is not an sgdisk position"),
                )
            };
            let start = Position::parse(&p.start).ok_or_else(|| bad("start", &p.start))?;
            let end = Position::parse(&p.end).ok_or_else(|| bad("end", &p.end))?;
            table
                .add(&NewPartition {
                    start: &start,
                    end: &end,
                    alignment: p.alignment,
                })
                .map_err(|e| sector_error(e, disk_key, p, geo))
        })
        .collect()
}

/// Facts for every disk of `layout` as a blank disk of `size_bytes` with
/// 512-byte sectors, named `/dev/<key>`: a plan made without a machine
/// (tests, and what-if plans).
pub fn blank_disk_facts(layout: &Layout, size_bytes: u64) -> BTreeMap<String, DiskFacts> {
    layout
        .disks
        .iter()
        .map(|d| {
            let f = DiskFacts {
                path: format!("/dev/{}", d.key),
                geometry: Geometry {
                    size_bytes,
                    logical_sector_size: 512,
                },
                existing: ExistingDisk::default(),
            };
            (d.key.clone(), f)
        })
        .collect()
}

/// Plan a layout against the facts of its disks (keyed by the layout's disk
/// key), keeping any disk that holds it and recording no install: what-if
/// plans. An install plans with [`plan_with`].
pub fn plan(layout: &Layout, facts: &BTreeMap<String, DiskFacts>) -> Result<Plan, LayoutError> {
    plan_with(layout, facts, &PlanOptions::keep_existing())
}

/// Plan a layout for an install: a disk holding the layout counts as
/// already applied only if `opts` trusts it (this install's disk GUID, or
/// `keep_existing`); any other is destroyed and recreated.
pub fn plan_with(
    layout: &Layout,
    facts: &BTreeMap<String, DiskFacts>,
    opts: &PlanOptions,
) -> Result<Plan, LayoutError> {
    let mut disks = Vec::new();
    let mut acc = Acc::default();
    let mut paths: BTreeMap<&str, &str> = BTreeMap::new();
    for d in &layout.disks {
        let f = facts.get(&d.key).ok_or_else(|| {
            LayoutError::new(
                format!("disk.{}.device", d.key),
                format!("no facts for disk {} ({})", d.key, d.device),
            )
        })?;
        if let Some(other) = paths.insert(&f.path, &d.key) {
            return Err(LayoutError::new(
                format!("disk.{}.device", d.key),
                format!("{} is also disk.{other}", f.path),
            ));
        }
        let ranges = partition_ranges(&d.key, &d.partitions, f.geometry)?;
        let ss = u64::from(f.geometry.logical_sector_size);
        for (p, (first, last)) in d.partitions.iter().zip(&ranges) {
            let bytes = (last - first + 1) * ss;
            check_content_size(&d.key, p, bytes)?;
            if let Some(c @ Content::Luks(_)) = &p.content {
                let field = if p.end == p.size.default_end() {
                    "size"
                } else {
                    "end"
                };
                check_dm_fit(c, bytes, &format!("{}.{field}", part_path(&d.key, p)))?;
            }
        }
        let partitions: Vec<PartitionPlan> = d
            .partitions
            .iter()
            .zip(ranges)
            .map(|(p, (first, last))| PartitionPlan {
                number: p.number,
                key: p.key.clone(),
                label: p.label.clone(),
                type_guid: p.type_guid.clone(),
                part_uuid: p.uuid.as_ref().map(|u| u.to_ascii_uppercase()),
                attributes: p.attributes.iter().fold(0u64, |acc, b| acc | (1u64 << b)),
                first_lba: first,
                last_lba: last,
                content: p.content.clone(),
            })
            .collect();
        for p in &partitions {
            if let Some(c) = &p.content {
                let at = At {
                    disk: &d.key,
                    number: p.number,
                    label: &p.label,
                    source: MountSource::Partition {
                        disk: d.key.clone(),
                        number: p.number,
                        label: p.label.clone(),
                    },
                    device: format!("/dev/disk/by-partlabel/{}", p.label),
                    bytes: p.sectors() * ss,
                };
                acc.content(c, &at);
            }
        }
        let holds_layout = if d.gpt {
            matches_existing(&partitions, &f.existing)
        } else {
            f.existing.table.is_none() && f.existing.signatures.is_empty()
        };
        // A blank disk (no GPT) has nothing to distrust.
        let trusted = !d.gpt || opts.trusts(&d.key, f.existing.disk_guid.as_deref());
        let already_applied = holds_layout && trusted;
        let foreign_layout = holds_layout && !trusted;
        if !d.destroy && foreign_layout {
            return Err(LayoutError::new(
                format!("disk.{}.destroy", d.key),
                format!(
                    "is false, but {} holds this layout and was not formatted by this install (--keep-existing keeps it)",
                    f.path
                ),
            ));
        }
        if !d.destroy && !already_applied && !f.existing.partitions.is_empty() {
            return Err(LayoutError::new(
                format!("disk.{}.destroy", d.key),
                format!("is false, but {} holds a different partition table", f.path),
            ));
        }
        disks.push(DiskPlan {
            key: d.key.clone(),
            path: f.path.clone(),
            geometry: f.geometry,
            destroy: d.destroy,
            existing: f.existing.clone(),
            gpt: d.gpt,
            partitions,
            already_applied,
            disk_guid: if d.gpt { opts.disk_guid(&d.key) } else { None },
            foreign_layout,
            keep_existing: opts.keep_existing,
        });
    }
    for vg in &layout.lvm_vgs {
        let pv_sizes = acc.pvs.get(&vg.name).cloned().unwrap_or_default();
        let extent_count: u64 = pv_sizes
            .iter()
            .map(|(_, b)| b.saturating_sub(LVM_PE_START) / LVM_EXTENT_BYTES)
            .sum();
        let mut free = extent_count;
        let mut lvs = Vec::new();
        for lv in &vg.lvs {
            let path = format!("/dev/{}/{}", vg.name, lv.name);
            let extents = lv_extents(lv.request, extent_count, free);
            let field = format!("lvm_vg.{}.lvs.{}.size", vg.key, lv.key);
            if extents == 0 {
                return Err(LayoutError::new(
                    field,
                    format!(
                        "\"{}\" gives no extents: volume group {} has {} free of {}",
                        lv.size,
                        vg.name,
                        human_bytes(free * LVM_EXTENT_BYTES),
                        human_bytes(extent_count * LVM_EXTENT_BYTES)
                    ),
                ));
            }
            if extents > free {
                return Err(LayoutError::new(
                    field,
                    format!(
                        "\"{}\" ({}) does not fit: volume group {} has {} free of {} when this LV is created",
                        lv.size,
                        human_bytes(extents * LVM_EXTENT_BYTES),
                        vg.name,
                        human_bytes(free * LVM_EXTENT_BYTES),
                        human_bytes(extent_count * LVM_EXTENT_BYTES)
                    ),
                ));
            }
            free -= extents;
            if let Some(c) = &lv.content {
                check_dm_fit(c, extents * LVM_EXTENT_BYTES, &field)?;
                let at = At {
                    disk: "",
                    number: 0,
                    label: "",
                    source: MountSource::Mapper {
                        path: path.clone(),
                        via: MapperVia::Lvm {
                            vg: vg.name.clone(),
                            lv: lv.name.clone(),
                        },
                    },
                    device: path.clone(),
                    bytes: extents * LVM_EXTENT_BYTES,
                };
                acc.content(c, &at);
            }
            lvs.push(LvPlan {
                name: lv.name.clone(),
                size: lv.size.clone(),
                request: lv.request,
                extents,
                path,
                inner: lv
                    .content
                    .as_ref()
                    .and_then(content_fs_type)
                    .map(str::to_string),
                content: lv.content.clone(),
            });
        }
        acc.volume_groups.push(VgPlan {
            name: vg.name.clone(),
            pvs: pv_sizes.into_iter().map(|(d, _)| d).collect(),
            extent_count,
            lvs,
        });
    }
    let Acc {
        mut mounts,
        swaps,
        swapfiles,
        luks,
        volume_groups,
        mapper_swaps,
        ..
    } = acc;
    for n in &layout.nodev {
        if let Some(mp) = &n.mountpoint {
            mounts.push(MountPlan {
                mountpoint: mp.clone(),
                source: MountSource::Nodev {
                    device: n.device.clone(),
                },
                fs_type: n.fs_type.clone(),
                options: n.mount_options.clone(),
            });
        }
    }
    mounts.sort_by(|a, b| a.mountpoint.as_bytes().cmp(b.mountpoint.as_bytes()));
    Ok(Plan {
        disks,
        mounts,
        swaps,
        swapfiles,
        luks,
        volume_groups,
        mapper_swaps,
    })
}

/// The extents lvcreate gives a request in a VG of `total` extents of which
/// `free` are free: `-L` rounded up to whole extents, percentages rounded
/// down (never more than is free).
pub fn lv_extents(request: LvSize, total: u64, free: u64) -> u64 {
    let extent_sectors = LVM_EXTENT_BYTES / 512;
    let percent = |p: u32, base: u64| (u64::from(p).saturating_mul(base) / 100).min(free);
    match request {
        LvSize::Sectors(s) => s.div_ceil(extent_sectors),
        LvSize::PercentFree(p) => percent(p, free),
        LvSize::PercentVg(p) | LvSize::PercentPvs(p) => percent(p, total),
    }
}

/// Where a content lies: its partition (for partition-keyed steps), its mount
/// source and its device path.
struct At<'a> {
    disk: &'a str,
    number: u32,
    label: &'a str,
    source: MountSource,
    device: String,
    /// The device's size in bytes.
    bytes: u64,
}

/// The plan's lists, filled content by content.
#[derive(Default)]
struct Acc {
    mounts: Vec<MountPlan>,
    swaps: Vec<SwapPlan>,
    swapfiles: Vec<SwapfilePlan>,
    luks: Vec<LuksPlan>,
    volume_groups: Vec<VgPlan>,
    mapper_swaps: Vec<MapperSwapPlan>,
    /// VG name → its PVs' devices and sizes in bytes.
    pvs: BTreeMap<String, Vec<(String, u64)>>,
}

impl Acc {
    fn content(&mut self, c: &Content, at: &At) {
        let mapper = match &at.source {
            MountSource::Mapper { path, via } => Some((path.clone(), via.clone())),
            _ => None,
        };
        match c {
            Content::Filesystem(fs) => {
                if let Some(mp) = &fs.mountpoint {
                    self.mounts.push(MountPlan {
                        mountpoint: mp.clone(),
                        source: at.source.clone(),
                        fs_type: fs.format.as_str().to_string(),
                        options: fs.mount_options.clone(),
                    });
                }
            }
            Content::Btrfs(b) => {
                if let Some(mp) = &b.mountpoint {
                    self.mounts.push(MountPlan {
                        mountpoint: mp.clone(),
                        source: at.source.clone(),
                        fs_type: "btrfs".to_string(),
                        options: b.mount_options.clone(),
                    });
                }
                for s in &b.subvolumes {
                    if let Some(mp) = &s.mountpoint {
                        let mut options = s.mount_options.clone();
                        options.push(format!("subvol={}", s.name));
                        self.mounts.push(MountPlan {
                            mountpoint: mp.clone(),
                            source: at.source.clone(),
                            fs_type: "btrfs".to_string(),
                            options,
                        });
                    }
                }
                for (s, f) in b.swapfiles() {
                    // Parse refuses swapfiles without a mountpoint.
                    let mp = match s {
                        Some(s) => s.mountpoint.as_deref(),
                        None => b.mountpoint.as_deref(),
                    }
                    .unwrap_or("/");
                    self.swapfiles.push(SwapfilePlan {
                        disk: at.disk.to_string(),
                        number: at.number,
                        label: at.label.to_string(),
                        subvolume: s.map(|s| s.path.clone()),
                        file: f.path.clone(),
                        location: format!("{}/{}", mp.trim_end_matches('/'), f.path),
                        size_bytes: f.size_bytes,
                        priority: f.priority,
                        mapper: mapper.as_ref().map(|m| m.0.clone()),
                    });
                }
            }
            Content::Swap(s) if s.random_encryption => {}
            Content::Swap(s) => match mapper {
                Some((path, via)) => self.mapper_swaps.push(MapperSwapPlan {
                    path,
                    via,
                    priority: s.priority,
                    discard_policy: s.discard_policy.clone(),
                }),
                None => self.swaps.push(SwapPlan {
                    disk: at.disk.to_string(),
                    number: at.number,
                    label: at.label.to_string(),
                    priority: s.priority,
                    discard_policy: s.discard_policy.clone(),
                }),
            },
            Content::LvmPv(pv) => {
                self.pvs
                    .entry(pv.vg.clone())
                    .or_default()
                    .push((at.device.clone(), at.bytes));
            }
            Content::Luks(l) => {
                let path = format!("/dev/mapper/{}", l.name);
                let key_source = match (&l.key_file, &l.password_file) {
                    (Some(k), _) => format!("key file {k}"),
                    (None, Some(p)) => format!("password file {p}"),
                    (None, None) => "a passphrase asked for on the terminal".to_string(),
                };
                self.luks.push(LuksPlan {
                    name: l.name.clone(),
                    device: at.device.clone(),
                    key_source,
                    additional_key_files: l.additional_key_files.clone(),
                    inner: l
                        .content
                        .as_deref()
                        .and_then(content_fs_type)
                        .map(str::to_string),
                });
                if let Some(inner) = &l.content {
                    let inner_at = At {
                        disk: at.disk,
                        number: at.number,
                        label: at.label,
                        source: MountSource::Mapper {
                            path: path.clone(),
                            via: MapperVia::Luks {
                                name: l.name.clone(),
                            },
                        },
                        device: path,
                        bytes: at.bytes.saturating_sub(LUKS2_DATA_OFFSET),
                    };
                    self.content(inner, &inner_at);
                }
            }
        }
    }
}

/// Same partitions (number, label, type, range, fixed GUID) and the expected
/// filesystems present.
pub fn matches_existing(planned: &[PartitionPlan], existing: &ExistingDisk) -> bool {
    existing.table.as_deref() == Some("gpt")
        && existing.partitions.len() == planned.len()
        && planned.iter().all(|p| {
            existing.partitions.iter().any(|e| {
                e.number == p.number
                    && e.label == p.label
                    && e.type_guid.eq_ignore_ascii_case(&p.type_guid)
                    && e.first_lba == p.first_lba
                    && e.last_lba == p.last_lba
                    && p.part_uuid
                        .as_ref()
                        .is_none_or(|u| u.eq_ignore_ascii_case(&e.part_uuid))
                    && p.fs_type().is_none_or(|t| e.fs_type.as_deref() == Some(t))
            })
        })
}
