//! The destructive steps of an apply, in the shape nix-installer uses: each
//! has a description (shown before anything is touched), a check of whether
//! its work is already done, and an execute.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use landfall_proto::layout::{
    matches_existing, Btrfs, Content, DiskPlan, MountPlan, MountSource, Plan, SwapfilePlan,
};
use serde::{Deserialize, Serialize};

use super::btrfs_volumes;
use super::error::DiskError;
use super::format::{self, expected_type};
use super::keys::LuksKey;
use super::mapper::{self, LuksOutcome, LuksSite, MapperError, VgOutcome};
use super::mounting;
use super::options::ApplyOptions;
use super::partition_sync::{self, WantedPartition};
use super::probe;
use super::resolve::OpenDisk;
use super::table;
use super::wipe;
use crate::fs::FormatReport;
use crate::sys::mount as sysmount;

/// One step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Erase old signatures on the disk and where the new partitions go.
    Wipe { disk: String },
    /// Write the GPT and protective MBR.
    WriteTable { disk: String },
    /// Make the kernel show the new partitions and their device nodes.
    Reread { disk: String },
    /// Make the partition's filesystem (or swap).
    Format { disk: String, number: u32 },
    /// Create the missing subvolumes and swapfiles of a btrfs partition.
    BtrfsVolumes { disk: String, number: u32 },
    /// Mount `plan.mounts[index]` under the root.
    Mount { index: usize },
    /// Activate a swap partition.
    Swapon { disk: String, number: u32 },
    /// Activate `plan.swapfiles[index]` (its subvolume mounted under the root).
    SwapFile { index: usize },
    /// Format (or, on a re-run, open with its key) the LUKS device `name` and
    /// open it as `/dev/mapper/<name>`.
    Luks { name: String },
    /// Write (or extend) the volume group `name` and activate its LVs.
    VolumeGroup { name: String },
    /// Make the filesystem (or swap) planned on a device-mapper device
    /// (`/dev/mapper/<luks>`, `/dev/<vg>/<lv>`).
    FormatMapper { path: String },
    /// Create the missing subvolumes and swapfiles of a btrfs on a
    /// device-mapper device.
    MapperBtrfsVolumes { path: String },
    /// Activate `plan.mapper_swaps[index]`.
    MapperSwapon { index: usize },
}

/// What the steps share while an apply runs.
pub(crate) struct Context<'a> {
    pub plan: &'a Plan,
    pub disks: &'a BTreeMap<String, OpenDisk>,
    pub opts: &'a ApplyOptions,
    /// Device node of each partition, filled by `Reread`.
    pub nodes: BTreeMap<(String, u32), PathBuf>,
    pub formatted: Vec<(String, u32, FormatReport)>,
    /// Subvolumes and swapfiles made by `BtrfsVolumes` (`subvolume nix`).
    pub created: Vec<String>,
    /// The LUKS keys, resolved before the first step.
    pub keys: BTreeMap<String, LuksKey>,
    /// What each `Luks` step did.
    pub luks: Vec<(String, LuksOutcome)>,
    /// What each `VolumeGroup` step did.
    pub volume_groups: Vec<(String, VgOutcome)>,
    /// `(vg, lv)` made by this run: a LUKS header found there is not reused.
    pub new_lvs: BTreeSet<(String, String)>,
    /// Filesystems made on device-mapper devices: `(path, report)`.
    pub formatted_mapper: Vec<(String, FormatReport)>,
}

impl<'a> Context<'a> {
    fn disk(&self, key: &str) -> Result<(&DiskPlan, &OpenDisk), DiskError> {
        let plan = self.plan.disks.iter().find(|d| d.key == key);
        match (plan, self.disks.get(key)) {
            (Some(p), Some(o)) => Ok((p, o)),
            _ => Err(DiskError::UnknownDisk(key.to_string())),
        }
    }

    fn mount(&self, index: usize) -> Result<&'a MountPlan, DiskError> {
        self.plan.mounts.get(index).ok_or(DiskError::NoMount(index))
    }

    fn swapfile(&self, index: usize) -> Result<&'a SwapfilePlan, DiskError> {
        self.plan
            .swapfiles
            .get(index)
            .ok_or(DiskError::NoSwapfile(index))
    }

    /// The device a LUKS container lies on, and whether this run left what
    /// was there before (so a header found there may be reused).
    fn luks_device(&self, site: &LuksSite) -> Result<(PathBuf, bool), DiskError> {
        match site {
            LuksSite::Partition { disk, number } => {
                let (d, _) = self.disk(disk)?;
                let kept = d.already_applied && !self.opts.force;
                Ok((self.node(disk, *number)?, kept))
            }
            LuksSite::Lv { vg, lv } => Ok((
                mapper::lv_node(vg, lv),
                !self.new_lvs.contains(&(vg.clone(), lv.clone())),
            )),
        }
    }

    fn pv_devices(&self, vg: &str) -> Vec<PathBuf> {
        mapper::pv_devices(self.plan, vg, &|disk, number| {
            self.nodes.get(&(disk.to_string(), number)).cloned()
        })
    }

    fn mapper_content(&self, path: &str) -> Result<&'a Content, DiskError> {
        mapper::content_at(self.plan, path)
            .ok_or_else(|| DiskError::Mapper(MapperError::NoContent(path.to_string())))
    }

    fn node(&self, disk: &str, number: u32) -> Result<PathBuf, DiskError> {
        self.nodes
            .get(&(disk.to_string(), number))
            .cloned()
            .ok_or_else(|| DiskError::NoNode {
                disk: disk.to_string(),
                number,
            })
    }
}

fn wanted(d: &DiskPlan) -> Vec<WantedPartition> {
    let ss = u64::from(d.geometry.logical_sector_size);
    d.partitions
        .iter()
        .map(|p| WantedPartition {
            number: p.number,
            start: p.first_lba * ss,
            length: p.sectors() * ss,
        })
        .collect()
}

fn btrfs_content(d: &DiskPlan, number: u32) -> Option<&Btrfs> {
    match content(d, number) {
        Some(Content::Btrfs(b)) => Some(b),
        _ => None,
    }
}

fn content(d: &DiskPlan, number: u32) -> Option<&Content> {
    d.partitions
        .iter()
        .find(|p| p.number == number)
        .and_then(|p| p.content.as_ref())
}

impl Action {
    /// One line for the plan and the progress events.
    pub fn description(&self, plan: &Plan) -> String {
        let path = |k: &str| {
            plan.disks
                .iter()
                .find(|d| d.key == k)
                .map(|d| d.path.clone())
                .unwrap_or_default()
        };
        let label = |k: &str, n: u32| {
            plan.disks
                .iter()
                .find(|d| d.key == k)
                .and_then(|d| d.partitions.iter().find(|p| p.number == n))
                .map(|p| p.label.clone())
                .unwrap_or_default()
        };
        match self {
            Action::Wipe { disk } => {
                format!(
                    "Wipe signatures on {} (disk {disk}) and where its new partitions go",
                    path(disk)
                )
            }
            Action::WriteTable { disk } => {
                let n = plan
                    .disks
                    .iter()
                    .find(|d| &d.key == disk)
                    .map_or(0, |d| d.partitions.len());
                format!("Write a GPT with {n} partition(s) to {}", path(disk))
            }
            Action::Reread { disk } => {
                format!("Tell the kernel about the partitions of {}", path(disk))
            }
            Action::Format { disk, number } => {
                let t = plan
                    .disks
                    .iter()
                    .find(|d| &d.key == disk)
                    .and_then(|d| content(d, *number))
                    .map(expected_type)
                    .unwrap_or("?");
                format!(
                    "Format partition {number} ({}) of {} as {t}",
                    label(disk, *number),
                    path(disk)
                )
            }
            Action::Mount { index } => match plan.mounts.get(*index) {
                Some(m) => format!(
                    "Mount {} ({}) on {}",
                    source_text(&m.source),
                    m.fs_type,
                    m.mountpoint
                ),
                None => format!("Mount #{index}"),
            },
            Action::Swapon { disk, number } => format!("Activate swap on {}", label(disk, *number)),
            Action::BtrfsVolumes { disk, number } => {
                let b = plan
                    .disks
                    .iter()
                    .find(|d| &d.key == disk)
                    .and_then(|d| btrfs_content(d, *number));
                format!(
                    "Create the {} subvolume(s) and {} swapfile(s) of partition {number} ({}) where missing",
                    b.map_or(0, |b| b.subvolumes.len()),
                    b.map_or(0, |b| b.swapfiles().count()),
                    label(disk, *number)
                )
            }
            Action::SwapFile { index } => match plan.swapfiles.get(*index) {
                Some(f) => format!("Activate swapfile {}", f.location),
                None => format!("Activate swapfile #{index}"),
            },
            Action::Luks { name } => match plan.luks.iter().find(|l| &l.name == name) {
                Some(l) => format!(
                    "Format LUKS2 on {} (key from {}) and open it as /dev/mapper/{name}, or open the one there",
                    l.device, l.key_source
                ),
                None => format!("Open LUKS {name}"),
            },
            Action::VolumeGroup { name } => {
                match plan.volume_groups.iter().find(|v| &v.name == name) {
                    Some(v) => format!(
                        "Create volume group {name} on {} with {} LV(s) where missing, and activate them",
                        v.pvs.join(", "),
                        v.lvs.len()
                    ),
                    None => format!("Create volume group {name}"),
                }
            }
            Action::FormatMapper { path } => {
                let t = mapper::content_at(plan, path)
                    .map(expected_type)
                    .unwrap_or("?");
                format!("Format {path} as {t}")
            }
            Action::MapperBtrfsVolumes { path } => {
                let b = match mapper::content_at(plan, path) {
                    Some(Content::Btrfs(b)) => Some(b),
                    _ => None,
                };
                format!(
                    "Create the {} subvolume(s) and {} swapfile(s) of the btrfs on {path} where missing",
                    b.map_or(0, |b| b.subvolumes.len()),
                    b.map_or(0, |b| b.swapfiles().count()),
                )
            }
            Action::MapperSwapon { index } => match plan.mapper_swaps.get(*index) {
                Some(s) => format!("Activate swap on {}", s.path),
                None => format!("Activate mapper swap #{index}"),
            },
        }
    }

    /// `Some(reason)` when the work is already done.
    pub(crate) fn is_done(&self, cx: &Context<'_>) -> Result<Option<String>, DiskError> {
        match self {
            Action::Wipe { disk } => {
                let (d, o) = cx.disk(disk)?;
                if !cx.opts.force && d.gpt {
                    let now = probe::existing(&o.file, o.geometry).map_err(DiskError::Probe)?;
                    // Only a disk this install formatted (or --keep-existing)
                    // is left as it is: another copy of the layout is wiped.
                    if matches_existing(&d.partitions, &now) && d.trusts(&now) {
                        return Ok(Some("the disk already holds this layout".into()));
                    }
                }
                let ss = u64::from(d.geometry.logical_sector_size);
                probe::drop_cache(&o.file).map_err(DiskError::Probe)?;
                let mut clean =
                    wipe::is_wiped(&o.file, 0, d.geometry.size_bytes).map_err(DiskError::Wipe)?;
                for p in &d.partitions {
                    clean &= wipe::is_wiped(&o.file, p.first_lba * ss, p.sectors() * ss)
                        .map_err(DiskError::Wipe)?;
                }
                Ok(clean.then(|| "no signatures found".into()))
            }
            Action::WriteTable { disk } => {
                let (d, o) = cx.disk(disk)?;
                let now = probe::existing(&o.file, o.geometry).map_err(DiskError::Probe)?;
                let table_only: Vec<_> = d
                    .partitions
                    .iter()
                    .map(|p| landfall_proto::layout::PartitionPlan {
                        content: None,
                        ..p.clone()
                    })
                    .collect();
                Ok((matches_existing(&table_only, &now) && d.trusts(&now))
                    .then(|| "the partition table already matches".into()))
            }
            Action::Reread { disk } => {
                let (d, o) = cx.disk(disk)?;
                let in_sync =
                    partition_sync::in_sync(&o.path, &wanted(d)).map_err(DiskError::Kernel)?;
                Ok(in_sync.then(|| "the kernel already shows these partitions".into()))
            }
            Action::Format { disk, number } => {
                let (d, o) = cx.disk(disk)?;
                let Some(c) = content(d, *number) else {
                    return Ok(Some("no content".into()));
                };
                let p =
                    d.partitions
                        .iter()
                        .find(|p| p.number == *number)
                        .ok_or(DiskError::NoNode {
                            disk: disk.clone(),
                            number: *number,
                        })?;
                let ss = u64::from(d.geometry.logical_sector_size);
                probe::drop_cache(&o.file).map_err(DiskError::Probe)?;
                let found = probe::filesystem_at(&o.file, p.first_lba * ss, p.sectors() * ss, ss)
                    .map_err(DiskError::Probe)?;
                Ok(found
                    .filter(|f| format::matches(c, f))
                    .map(|f| format!("already {}", f.kind)))
            }
            Action::Mount { index } => {
                let m = cx.mount(*index)?;
                let t = mounting::target(&cx.opts.root, &m.mountpoint);
                let done = mounting::is_mounted(&t, &m.fs_type).map_err(DiskError::Mount)?;
                Ok(done.then(|| format!("{} is already mounted", t.display())))
            }
            Action::Swapon { disk, number } => {
                let node = cx.node(disk, *number)?;
                let done = mounting::is_swap_active(&node).map_err(DiskError::Mount)?;
                Ok(done.then(|| "already active".into()))
            }
            Action::BtrfsVolumes { disk, number } => {
                let (d, _) = cx.disk(disk)?;
                let Some(b) = btrfs_content(d, *number) else {
                    return Ok(Some("not btrfs".into()));
                };
                if b.subvolumes.is_empty() && b.swap.is_empty() {
                    return Ok(Some("no subvolumes or swapfiles".into()));
                }
                let node = cx.node(disk, *number)?;
                let missing = btrfs_volumes::missing(&node, b).map_err(DiskError::Btrfs)?;
                Ok(missing
                    .is_empty()
                    .then(|| "every subvolume and swapfile is there".into()))
            }
            Action::SwapFile { index } => {
                let f = cx.swapfile(*index)?;
                let path = mounting::target(&cx.opts.root, &f.location);
                let done = mounting::is_swap_active(&path).map_err(DiskError::Mount)?;
                Ok(done.then(|| "already active".into()))
            }
            Action::Luks { name } => {
                let open = mapper::is_open(name).map_err(DiskError::Mapper)?;
                Ok(open.then(|| format!("/dev/mapper/{name} is already open")))
            }
            Action::VolumeGroup { name } => {
                let pvs = cx.pv_devices(name);
                let ready =
                    mapper::volume_group_ready(cx.plan, name, &pvs).map_err(DiskError::Mapper)?;
                Ok(ready.then(|| "the volume group has every LV, all active".into()))
            }
            Action::FormatMapper { path } => {
                let c = cx.mapper_content(path)?;
                let node = mapper::node_of(cx.plan, path);
                let file = std::fs::File::open(&node).map_err(DiskError::Probe)?;
                probe::drop_cache(&file).map_err(DiskError::Probe)?;
                let size = crate::sys::blk::device_size(&file)
                    .map_err(|e| DiskError::Probe(std::io::Error::other(e)))?;
                let found = probe::filesystem_at(&file, 0, size, 512).map_err(DiskError::Probe)?;
                Ok(found
                    .filter(|f| format::matches(c, f))
                    .map(|f| format!("already {}", f.kind)))
            }
            Action::MapperBtrfsVolumes { path } => {
                let Content::Btrfs(b) = cx.mapper_content(path)? else {
                    return Ok(Some("not btrfs".into()));
                };
                let node = mapper::node_of(cx.plan, path);
                let missing = btrfs_volumes::missing(&node, b).map_err(DiskError::Btrfs)?;
                Ok(missing
                    .is_empty()
                    .then(|| "every subvolume and swapfile is there".into()))
            }
            Action::MapperSwapon { index } => {
                let s = cx
                    .plan
                    .mapper_swaps
                    .get(*index)
                    .ok_or(DiskError::NoSwapfile(*index))?;
                let node = mapper::node_of(cx.plan, &s.path);
                let done = mapper::is_swap_on(&node).map_err(DiskError::Probe)?;
                Ok(done.then(|| "already active".into()))
            }
        }
    }

    /// Do the work.
    pub(crate) fn execute(&self, cx: &mut Context<'_>) -> Result<(), DiskError> {
        match self {
            Action::Wipe { disk } => {
                let (d, o) = cx.disk(disk)?;
                super::in_use::refuse_unwritable(o)?;
                let ss = u64::from(d.geometry.logical_sector_size);
                wipe::wipe_range(&o.file, 0, d.geometry.size_bytes).map_err(DiskError::Wipe)?;
                for p in &d.partitions {
                    wipe::wipe_range(&o.file, p.first_lba * ss, p.sectors() * ss)
                        .map_err(DiskError::Wipe)?;
                }
                o.file.sync_all().map_err(DiskError::Wipe)?;
                Ok(())
            }
            Action::WriteTable { disk } => {
                let (d, o) = cx.disk(disk)?;
                super::in_use::refuse_unwritable(o)?;
                table::write_table(&o.file, d).map_err(DiskError::Table)?;
                Ok(())
            }
            Action::Reread { disk } => {
                let (d, o) = cx.disk(disk)?;
                let nodes = partition_sync::sync_partitions(&o.file, &o.path, &wanted(d))
                    .map_err(DiskError::Kernel)?;
                for (n, path) in nodes {
                    cx.nodes.insert((disk.clone(), n), path);
                }
                Ok(())
            }
            Action::Format { disk, number } => {
                let (d, _) = cx.disk(disk)?;
                let Some(c) = content(d, *number).cloned() else {
                    return Ok(());
                };
                let node = cx.node(disk, *number)?;
                let report = format::format_partition(&node, &c).map_err(DiskError::Format)?;
                cx.formatted.push((disk.clone(), *number, report));
                Ok(())
            }
            Action::Mount { index } => {
                let m = cx.mount(*index)?;
                let t = mounting::target(&cx.opts.root, &m.mountpoint);
                mounting::make_mountpoint(&t).map_err(DiskError::Mount)?;
                let source = match &m.source {
                    MountSource::Partition { disk, number, .. } => {
                        cx.node(disk, *number)?.to_string_lossy().into_owned()
                    }
                    MountSource::Nodev { device } => device.clone(),
                    MountSource::Mapper { path, .. } => mapper::node_of(cx.plan, path)
                        .to_string_lossy()
                        .into_owned(),
                };
                let opts = sysmount::parse_options(&m.options);
                sysmount::mount(&source, &t, &m.fs_type, &opts)
                    .map_err(|e| DiskError::Mount(mounting::MountStepError::Mount(e)))?;
                Ok(())
            }
            Action::Swapon { disk, number } => {
                let node = cx.node(disk, *number)?;
                let swap = cx
                    .plan
                    .swaps
                    .iter()
                    .find(|s| &s.disk == disk && s.number == *number);
                let flags = sysmount::swap_flags(
                    swap.and_then(|s| s.priority),
                    swap.and_then(|s| s.discard_policy.as_deref()),
                );
                sysmount::swapon(&node, flags)
                    .map_err(|e| DiskError::Mount(mounting::MountStepError::Mount(e)))?;
                Ok(())
            }
            Action::BtrfsVolumes { disk, number } => {
                let (d, _) = cx.disk(disk)?;
                let Some(b) = btrfs_content(d, *number) else {
                    return Ok(());
                };
                let node = cx.node(disk, *number)?;
                let made = btrfs_volumes::ensure(&node, b).map_err(DiskError::Btrfs)?;
                cx.created.extend(made.iter().map(|m| m.to_string()));
                Ok(())
            }
            Action::SwapFile { index } => {
                let f = cx.swapfile(*index)?;
                let path = mounting::target(&cx.opts.root, &f.location);
                let flags = sysmount::swap_flags(f.priority, None);
                sysmount::swapon(&path, flags)
                    .map_err(|e| DiskError::Mount(mounting::MountStepError::Mount(e)))?;
                Ok(())
            }
            Action::Luks { name } => {
                let (l, site) = mapper::find_luks(cx.plan, name)
                    .ok_or_else(|| DiskError::Mapper(MapperError::UnknownLuks(name.clone())))?;
                let (device, kept) = cx.luks_device(&site)?;
                let key = cx
                    .keys
                    .get(name)
                    .ok_or_else(|| DiskError::Mapper(MapperError::NoKey(name.clone())))?;
                let outcome =
                    mapper::open_luks(l, &device, key, kept).map_err(DiskError::Mapper)?;
                cx.luks.push((name.clone(), outcome));
                Ok(())
            }
            Action::VolumeGroup { name } => {
                let pvs = cx.pv_devices(name);
                let done =
                    mapper::apply_volume_group(cx.plan, name, pvs).map_err(DiskError::Mapper)?;
                for lv in &done.new_lvs {
                    cx.new_lvs.insert((name.clone(), lv.clone()));
                }
                cx.volume_groups.push((name.clone(), done));
                Ok(())
            }
            Action::FormatMapper { path } => {
                let c = cx.mapper_content(path)?.clone();
                let node = mapper::node_of(cx.plan, path);
                let report = format::format_partition(&node, &c).map_err(DiskError::Format)?;
                cx.formatted_mapper.push((path.clone(), report));
                Ok(())
            }
            Action::MapperBtrfsVolumes { path } => {
                let Content::Btrfs(b) = cx.mapper_content(path)? else {
                    return Ok(());
                };
                let node = mapper::node_of(cx.plan, path);
                let made = btrfs_volumes::ensure(&node, b).map_err(DiskError::Btrfs)?;
                cx.created.extend(made.iter().map(|m| m.to_string()));
                Ok(())
            }
            Action::MapperSwapon { index } => {
                let s = cx
                    .plan
                    .mapper_swaps
                    .get(*index)
                    .ok_or(DiskError::NoSwapfile(*index))?;
                let node = mapper::node_of(cx.plan, &s.path);
                let flags = sysmount::swap_flags(s.priority, s.discard_policy.as_deref());
                sysmount::swapon(&node, flags)
                    .map_err(|e| DiskError::Mount(mounting::MountStepError::Mount(e)))?;
                Ok(())
            }
        }
    }
}

fn source_text(s: &MountSource) -> String {
    match s {
        MountSource::Partition { label, .. } => format!("/dev/disk/by-partlabel/{label}"),
        MountSource::Nodev { device } => device.clone(),
        MountSource::Mapper { path, .. } => path.clone(),
    }
}
