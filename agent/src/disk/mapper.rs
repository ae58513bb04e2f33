//! The device-mapper layer of an apply: LUKS containers formatted (or, on a
//! re-run, opened), LVM volume groups written (or extended) and their LVs
//! activated as linear devices with their `/dev/VG/LV` links, the contents
//! that live on those devices found by their path, and all of it closed
//! again before a reboot.
//!
//! Invariants:
//! - A LUKS header is reused only where this run did not wipe (the disk
//!   already held the layout, or the LV already existed) and, when the
//!   layout gives `--label`, only with that label; a key that does not open
//!   such a header is an error and nothing is reformatted.
//! - Keys are used from `Zeroizing` buffers; the crypt table (which holds the
//!   volume key) is zeroed once the kernel has it; nothing here logs a key.
//! - Devices are closed dependants first: a device still open (mounted, a
//!   PV of an active LV, swap) is never removed.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use landfall_proto::layout::{Content, Luks, LuksArgs, Plan};
use zeroize::Zeroize;

use super::keys::LuksKey;
use crate::dm::device::{link_lvm_name, unlink_lvm_name, DeviceError, Mapper};
use crate::dm::luks2::{self, ExtraArgs, FormatOptions, Luks2Error, OpenOptions as CryptOpen};
use crate::dm::lvm2::{self, LvRequest, LvmError, Outcome, VgLayout};
use crate::sys::dm::Target;

/// How many bytes at the start of a new LV are zeroed (lvcreate's `-Z y`).
pub const NEW_LV_ZERO_BYTES: u64 = 4096;

/// Errors of the device-mapper steps.
#[derive(Debug, thiserror::Error)]
pub enum MapperError {
    #[error("Device-mapper request failed")]
    Device(#[from] DeviceError),
    #[error("Cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot size {path}")]
    Size {
        path: PathBuf,
        #[source]
        source: crate::sys::blk::BlkError,
    },
    #[error("LUKS {name} on {device}")]
    Luks {
        name: String,
        device: PathBuf,
        #[source]
        source: Luks2Error,
    },
    #[error("LUKS {name} on {device}: the key does not open the LUKS2 header already there (label {label:?}); it was not reformatted. Give the key it was made with, or wipe the disk first")]
    WrongKey {
        name: String,
        device: PathBuf,
        label: String,
    },
    #[error("The crypt table of {name} is malformed")]
    Table {
        name: String,
        #[source]
        source: crate::sys::dm::DmError,
    },
    #[error("Volume group {vg}")]
    Lvm {
        vg: String,
        #[source]
        source: LvmError,
    },
    #[error("LV {vg}/{lv}: a segment names a PV without a device")]
    NoLvTable { vg: String, lv: String },
    #[error("Cannot zero the start of the new LV {path}")]
    Zero {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("The plan has no LUKS device {0}")]
    UnknownLuks(String),
    #[error("The plan has no volume group {0}")]
    UnknownVg(String),
    #[error("The plan puts nothing on {0}")]
    NoContent(String),
    #[error("No LUKS key was resolved for {0}")]
    NoKey(String),
    #[error("Volume group {vg} already exists on {device}, which is not a disk of this layout: two VGs would share one name; rename the layout's VG or wipe {device} first. Nothing was written to any disk")]
    VgNameTaken { vg: String, device: PathBuf },
}

/// Where a LUKS container lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LuksSite {
    Partition { disk: String, number: u32 },
    Lv { vg: String, lv: String },
}

/// The LUKS content named `name` and where it lies.
pub fn find_luks<'a>(plan: &'a Plan, name: &str) -> Option<(&'a Luks, LuksSite)> {
    for d in &plan.disks {
        for p in &d.partitions {
            if let Some(Content::Luks(l)) = &p.content {
                if l.name == name {
                    let site = LuksSite::Partition {
                        disk: d.key.clone(),
                        number: p.number,
                    };
                    return Some((l, site));
                }
            }
        }
    }
    for vg in &plan.volume_groups {
        for lv in &vg.lvs {
            if let Some(Content::Luks(l)) = &lv.content {
                if l.name == name {
                    let site = LuksSite::Lv {
                        vg: vg.name.clone(),
                        lv: lv.name.clone(),
                    };
                    return Some((l, site));
                }
            }
        }
    }
    None
}

/// The node of an LV: `/dev/mapper/VG-LV`.
pub fn lv_node(vg: &str, lv: &str) -> PathBuf {
    PathBuf::from("/dev/mapper").join(lvm2::dm_name(vg, lv))
}

/// The node a plan path names: `/dev/mapper/NAME` as is, `/dev/VG/LV` as
/// `/dev/mapper/VG-LV` (no udev makes the link in every environment).
pub fn node_of(plan: &Plan, path: &str) -> PathBuf {
    for vg in &plan.volume_groups {
        for lv in &vg.lvs {
            if lv.path == path {
                return lv_node(&vg.name, &lv.name);
            }
        }
    }
    PathBuf::from(path)
}

/// The content planned on the device-mapper device at `path`
/// (`/dev/mapper/<luks>` or `/dev/<vg>/<lv>`).
pub fn content_at<'a>(plan: &'a Plan, path: &str) -> Option<&'a Content> {
    if let Some(name) = path.strip_prefix("/dev/mapper/") {
        if let Some((l, _)) = find_luks(plan, name) {
            return l.content.as_deref();
        }
    }
    plan.volume_groups
        .iter()
        .flat_map(|vg| &vg.lvs)
        .find(|lv| lv.path == path)
        .and_then(|lv| lv.content.as_ref())
}

/// The device-mapper devices carrying a filesystem or swap, in plan order:
/// LUKS contents first (on partitions, then on LVs), then LV contents.
pub fn formatted_devices(plan: &Plan) -> Vec<String> {
    let makes_fs = |c: &Content| {
        matches!(
            c,
            Content::Filesystem(_) | Content::Btrfs(_) | Content::Swap(_)
        ) && landfall_proto::layout::content_fs_type(c).is_some()
    };
    let mut out = Vec::new();
    for l in super::keys::luks_contents(plan) {
        if l.content.as_deref().is_some_and(makes_fs) {
            out.push(format!("/dev/mapper/{}", l.name));
        }
    }
    for vg in &plan.volume_groups {
        for lv in &vg.lvs {
            if lv.content.as_ref().is_some_and(makes_fs) {
                out.push(lv.path.clone());
            }
        }
    }
    out
}

fn extra_args(a: &LuksArgs) -> ExtraArgs {
    ExtraArgs {
        label: a.label.clone(),
        pbkdf_memory_kib: a.pbkdf_memory_kib,
        iter_time_ms: a.iter_time_ms,
        force_iterations: a.force_iterations,
        allow_discards: a.allow_discards,
        no_read_workqueue: a.no_read_workqueue,
        no_write_workqueue: a.no_write_workqueue,
    }
}

fn open_rw(path: &Path) -> Result<File, MapperError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| MapperError::Open {
            path: path.to_path_buf(),
            source,
        })
}

fn size_of(file: &File, path: &Path) -> Result<u64, MapperError> {
    crate::sys::blk::device_size(file).map_err(|source| MapperError::Size {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether a device-mapper device named `name` exists.
pub fn is_open(name: &str) -> Result<bool, MapperError> {
    let mapper = Mapper::open()?;
    Ok(mapper.list()?.iter().any(|d| d.name == name))
}

/// What [`open_luks`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LuksOutcome {
    /// Formatted anew; the LUKS UUID.
    Formatted { uuid: String },
    /// An existing header opened with the key; the LUKS UUID.
    Reopened { uuid: String },
}

/// Format (unless `may_reuse` and a matching header opens with the key) and
/// open LUKS `l` on `device` as `/dev/mapper/<name>`.
pub fn open_luks(
    l: &Luks,
    device: &Path,
    key: &LuksKey,
    may_reuse: bool,
) -> Result<LuksOutcome, MapperError> {
    let luks_err = |source| MapperError::Luks {
        name: l.name.clone(),
        device: device.to_path_buf(),
        source,
    };
    let dev = open_rw(device)?;
    let format_args = extra_args(&l.format_args);
    let existing = luks2::read::Header::read(&dev).ok();
    let reuse = existing.as_ref().filter(|h| {
        may_reuse
            && format_args
                .label
                .as_deref()
                .is_none_or(|want| h.binary.label == want)
    });
    let (unlocked, outcome) = match reuse {
        Some(h) => {
            let unlocked = match luks2::unlock::unlock_header(h, &dev, &key.primary) {
                Ok(u) => u,
                Err(Luks2Error::WrongKey) => {
                    return Err(MapperError::WrongKey {
                        name: l.name.clone(),
                        device: device.to_path_buf(),
                        label: h.binary.label.clone(),
                    })
                }
                Err(e) => return Err(luks_err(e)),
            };
            let uuid = unlocked.uuid.clone();
            tracing::info!(
                "LUKS {} on {}: opened the existing header {uuid} with keyslot {}",
                l.name,
                device.display(),
                unlocked.keyslot
            );
            (unlocked, LuksOutcome::Reopened { uuid })
        }
        None => {
            let mut opts = FormatOptions::for_this_machine();
            opts.label = format_args.label.clone();
            opts.pbkdf = format_args.pbkdf();
            let formatted = luks2::luks_format(&dev, &key.primary, &opts).map_err(luks_err)?;
            tracing::info!(
                "LUKS {} on {}: formatted {} (argon2id, {} KiB, {} iterations, {} lanes)",
                l.name,
                device.display(),
                formatted.uuid,
                formatted.cost.memory_kib,
                formatted.cost.time,
                formatted.cost.lanes
            );
            for extra in &key.additional {
                let slot =
                    luks2::add_keyslot(&dev, &key.primary, extra, &opts).map_err(luks_err)?;
                tracing::info!("LUKS {}: added keyslot {slot}", l.name);
            }
            let unlocked = luks2::unlock_device(&dev, &key.primary).map_err(luks_err)?;
            (
                unlocked,
                LuksOutcome::Formatted {
                    uuid: formatted.uuid,
                },
            )
        }
    };
    let size = size_of(&dev, device)?;
    let open = CryptOpen {
        allow_discards: l.allow_discards,
        no_read_workqueue: l.no_read_workqueue,
        no_write_workqueue: l.no_write_workqueue,
    };
    let line = unlocked.dm_crypt_table(&device.to_string_lossy(), size, &open);
    let mut target = Target::parse(&line).map_err(|source| MapperError::Table {
        name: l.name.clone(),
        source,
    })?;
    drop(line);
    let uuid = format!("CRYPT-LUKS2-{}-{}", unlocked.uuid.replace('-', ""), l.name);
    let mapper = Mapper::open()?;
    let made = mapper.create_device(&l.name, Some(&uuid), std::slice::from_ref(&target));
    target.params.zeroize();
    made?;
    Ok(outcome)
}

/// The devices of VG `vg`'s PVs, in the plan's order: a partition's node
/// (through `node`), or `/dev/mapper/<luks>` for a PV inside LUKS.
pub fn pv_devices(
    plan: &Plan,
    vg: &str,
    node: &dyn Fn(&str, u32) -> Option<PathBuf>,
) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in &plan.disks {
        for p in &d.partitions {
            match &p.content {
                Some(Content::LvmPv(pv)) if pv.vg == vg => {
                    if let Some(n) = node(&d.key, p.number) {
                        out.push(n);
                    }
                }
                Some(Content::Luks(l)) => {
                    if matches!(l.content.as_deref(), Some(Content::LvmPv(pv)) if pv.vg == vg) {
                        out.push(PathBuf::from("/dev/mapper").join(&l.name));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// What [`apply_volume_group`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgOutcome {
    pub outcome: Outcome,
    /// LVs made by this run (their start zeroed).
    pub new_lvs: Vec<String>,
    /// LVs activated by this run.
    pub activated: Vec<String>,
}

/// Write or extend VG `name` on `pvs` and activate every LV of it.
pub fn apply_volume_group(
    plan: &Plan,
    name: &str,
    pvs: Vec<PathBuf>,
) -> Result<VgOutcome, MapperError> {
    let vg = plan
        .volume_groups
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| MapperError::UnknownVg(name.to_string()))?;
    let layout = VgLayout {
        name: name.to_string(),
        pvs,
        lvs: vg
            .lvs
            .iter()
            .map(|lv| LvRequest {
                name: lv.name.clone(),
                size: lv.size.clone(),
                lvm_type: None,
            })
            .collect(),
    };
    let lvm_err = |source| MapperError::Lvm {
        vg: name.to_string(),
        source,
    };
    let applied = lvm2::apply_vg(&layout).map_err(lvm_err)?;
    let new_lvs: Vec<String> = match &applied.outcome {
        Outcome::Created => applied.vg.lvs.iter().map(|l| l.name.clone()).collect(),
        Outcome::Extended { added } => added.clone(),
        Outcome::Unchanged => Vec::new(),
    };
    let devices: Vec<String> = applied
        .pv_paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mapper = Mapper::open()?;
    let live: BTreeSet<String> = mapper.list()?.into_iter().map(|d| d.name).collect();
    let mut activated = Vec::new();
    for lv in &applied.vg.lvs {
        let dm = lvm2::dm_name(&applied.vg.name, &lv.name);
        if !live.contains(&dm) {
            let table = lvm2::linear_table(&applied.vg, lv, &devices).ok_or_else(|| {
                MapperError::NoLvTable {
                    vg: name.to_string(),
                    lv: lv.name.clone(),
                }
            })?;
            let targets = table
                .iter()
                .map(|t| Target::parse(&t.to_string()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| MapperError::Table {
                    name: dm.clone(),
                    source,
                })?;
            let uuid = lvm2::dm_uuid(&applied.vg.id, &lv.id);
            mapper.create_device(&dm, Some(&uuid), &targets)?;
            activated.push(lv.name.clone());
        }
        link_lvm_name(Path::new("/dev"), &dm)?;
    }
    for lv in &new_lvs {
        let path = lv_node(name, lv);
        let file = open_rw(&path)?;
        let len = NEW_LV_ZERO_BYTES.min(size_of(&file, &path)?);
        let zero = |source| MapperError::Zero {
            path: path.clone(),
            source,
        };
        file.write_all_at(&vec![0u8; len as usize], 0)
            .map_err(zero)?;
        file.sync_all().map_err(zero)?;
    }
    Ok(VgOutcome {
        outcome: applied.outcome,
        new_lvs,
        activated,
    })
}

/// Whether VG `name` is on `pvs` with every planned LV, all of them active.
pub fn volume_group_ready(plan: &Plan, name: &str, pvs: &[PathBuf]) -> Result<bool, MapperError> {
    let Some(vg) = plan.volume_groups.iter().find(|v| v.name == name) else {
        return Err(MapperError::UnknownVg(name.to_string()));
    };
    let Some(first) = pvs.first() else {
        return Ok(false);
    };
    let on_disk = match lvm2::read_pv(first) {
        Ok(Some(pv)) => pv.vg,
        _ => None,
    };
    let Some(found) = on_disk else {
        return Ok(false);
    };
    if found.vg.name != name || found.vg.pvs.len() != pvs.len() {
        return Ok(false);
    }
    let mapper = Mapper::open()?;
    let live: BTreeSet<String> = mapper.list()?.into_iter().map(|d| d.name).collect();
    Ok(vg.lvs.iter().all(|lv| {
        found.vg.lvs.iter().any(|l| l.name == lv.name)
            && live.contains(&lvm2::dm_name(name, &lv.name))
    }))
}

/// Whether `node` (any path to a block device) is an active swap area.
pub fn is_swap_on(node: &Path) -> Result<bool, io::Error> {
    let want = std::fs::metadata(node)?.rdev();
    let text = std::fs::read_to_string("/proc/swaps")?;
    Ok(crate::sys::mountinfo::parse_swaps(&text)
        .iter()
        .any(|d| std::fs::metadata(d).is_ok_and(|m| m.rdev() == want)))
}

/// What [`close_devices`] did: the names closed, and each device left with
/// the reason.
pub type Closed = (Vec<String>, Vec<(String, String)>);

/// Close device-mapper devices, dependants first: repeatedly remove every
/// device of `names` (every device, when `None`) that nothing holds open,
/// until none is left or none can go. Returns the removed names and, for
/// each one left, why.
pub fn close_devices(names: Option<&BTreeSet<String>>) -> Result<Closed, MapperError> {
    let mapper = Mapper::open()?;
    let mut removed = Vec::new();
    loop {
        let wanted: Vec<String> = mapper
            .list()?
            .into_iter()
            .map(|d| d.name)
            .filter(|n| names.is_none_or(|w| w.contains(n)))
            .collect();
        let mut progress = false;
        let mut left = Vec::new();
        for name in wanted {
            let status = mapper.status(&name)?;
            if status.open_count > 0 {
                left.push((name, format!("still open ({} users)", status.open_count)));
                continue;
            }
            match mapper.remove_device(&name) {
                Ok(()) => {
                    unlink_lvm_name(Path::new("/dev"), &name)?;
                    tracing::info!("Closed device-mapper device {name}");
                    removed.push(name);
                    progress = true;
                }
                Err(e) => left.push((name, crate::steps::error_chain(&e))),
            }
        }
        if !progress || left.is_empty() {
            return Ok((removed, left));
        }
    }
}

/// The kernel name of a block device (`vda` for `/dev/vda`, `loop3`).
fn kernel_name(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    Some(real.file_name()?.to_string_lossy().into_owned())
}

/// Refuse a plan whose VG name is already taken by a PV on a device outside
/// the layout's disks (`own`): lvm would then see two VGs with one name.
/// Reads every block device's LVM label (not the layout's disks and their
/// partitions, nor the plan's own device-mapper devices); devices that
/// cannot be read are skipped.
pub fn refuse_foreign_vgs(plan: &Plan, own: &[PathBuf]) -> Result<(), MapperError> {
    if plan.volume_groups.is_empty() {
        return Ok(());
    }
    let own: BTreeSet<String> = own.iter().filter_map(|p| kernel_name(p)).collect();
    let ours = plan_devices(plan);
    let Ok(entries) = std::fs::read_dir("/sys/class/block") else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let sys = e.path();
        let parent = std::fs::canonicalize(&sys)
            .ok()
            .filter(|_| sys.join("partition").exists())
            .and_then(|p| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .map(|d| d.to_string_lossy().into_owned())
            });
        if own.contains(&name) || parent.is_some_and(|p| own.contains(&p)) {
            continue;
        }
        if let Ok(dm) = std::fs::read_to_string(sys.join("dm/name")) {
            if ours.contains(dm.trim()) {
                continue;
            }
        }
        let device = PathBuf::from("/dev").join(&name);
        let Ok(Some(pv)) = lvm2::read_pv(&device) else {
            continue;
        };
        if let Some(found) = pv.vg {
            if plan.volume_groups.iter().any(|v| v.name == found.vg.name) {
                return Err(MapperError::VgNameTaken {
                    vg: found.vg.name,
                    device,
                });
            }
        }
    }
    Ok(())
}

/// The device-mapper names a plan opens: its LUKS devices and its LVs.
pub fn plan_devices(plan: &Plan) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = super::keys::luks_contents(plan)
        .into_iter()
        .map(|l| l.name.clone())
        .collect();
    for vg in &plan.volume_groups {
        for lv in &vg.lvs {
            out.insert(lvm2::dm_name(&vg.name, &lv.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use landfall_proto::layout::{blank_disk_facts, plan, Layout};

    fn planned(text: &str) -> Plan {
        let layout = Layout::from_json(text).unwrap();
        plan(&layout, &blank_disk_facts(&layout, 4 << 30)).unwrap()
    }

    const LUKS_LVM: &str = include_str!("../../../tests/fixtures/layouts/disko-luks-lvm.json");

    #[test]
    fn luks_lvm_devices_contents_and_pvs_are_found_by_path() {
        let p = planned(LUKS_LVM);
        let (l, site) = find_luks(&p, "crypted").unwrap();
        assert_eq!(l.key_file.as_deref(), Some("/tmp/secret.key"));
        assert!(
            matches!(site, LuksSite::Partition { number: 2, .. }),
            "{site:?}"
        );
        assert!(matches!(
            content_at(&p, "/dev/mapper/crypted"),
            Some(Content::LvmPv(_))
        ));
        assert!(matches!(
            content_at(&p, "/dev/pool/root"),
            Some(Content::Filesystem(_))
        ));
        assert_eq!(
            node_of(&p, "/dev/pool/root"),
            PathBuf::from("/dev/mapper/pool-root")
        );
        assert_eq!(
            formatted_devices(&p),
            vec!["/dev/pool/home".to_string(), "/dev/pool/root".to_string()]
        );
        let pvs = pv_devices(&p, "pool", &|_, _| None);
        assert_eq!(pvs, vec![PathBuf::from("/dev/mapper/crypted")]);
        let names = plan_devices(&p);
        assert!(
            names.contains("crypted") && names.contains("pool-root"),
            "{names:?}"
        );
    }
}
