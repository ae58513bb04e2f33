//! Planning against real disks and running the plan's actions in order,
//! reporting each step; also mounting an already applied layout and
//! unmounting it again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use landfall_proto::layout::{plan_with, Content, Layout, Plan, PlanOptions};

use super::action::{Action, Context};
use super::error::DiskError;
use super::keys::{self, LuksPassphrases};
use super::mapper;
use super::mounting::{self, MountStepError};
use super::options::{ApplyOptions, ApplyReport, PartitionNode};
use super::probe;
use super::resolve::OpenDisk;
use crate::steps::{error_chain, StepEvent};

/// Probe the open disks and plan the layout on them for an install: a disk
/// that holds the layout is kept only if `opts` trusts it (this install's
/// disk GUID, or `keep_existing`).
pub fn plan_layout(
    layout: &Layout,
    disks: &BTreeMap<String, OpenDisk>,
    opts: &PlanOptions,
) -> Result<Plan, DiskError> {
    let mut facts = BTreeMap::new();
    for (k, d) in disks {
        facts.insert(k.clone(), probe::facts(d).map_err(DiskError::Probe)?);
    }
    Ok(plan_with(layout, &facts, opts)?)
}

/// The actions of a full apply, in order.
pub fn actions(plan: &Plan, opts: &ApplyOptions) -> Vec<Action> {
    let mut out = Vec::new();
    for d in &plan.disks {
        out.push(Action::Wipe {
            disk: d.key.clone(),
        });
        if d.gpt {
            out.push(Action::WriteTable {
                disk: d.key.clone(),
            });
            out.push(Action::Reread {
                disk: d.key.clone(),
            });
        }
    }
    for d in &plan.disks {
        for p in d.partitions.iter().filter(|p| {
            p.fs_type().is_some()
                && !matches!(p.content, Some(Content::Luks(_) | Content::LvmPv(_)))
        }) {
            out.push(Action::Format {
                disk: d.key.clone(),
                number: p.number,
            });
        }
    }
    out.extend(mapper_actions(plan));
    for path in mapper::formatted_devices(plan) {
        out.push(Action::FormatMapper { path });
    }
    for d in &plan.disks {
        for p in &d.partitions {
            if matches!(&p.content, Some(Content::Btrfs(b)) if !b.subvolumes.is_empty() || !b.swap.is_empty())
            {
                out.push(Action::BtrfsVolumes {
                    disk: d.key.clone(),
                    number: p.number,
                });
            }
        }
    }
    for path in mapper::formatted_devices(plan) {
        if matches!(mapper::content_at(plan, &path), Some(Content::Btrfs(b)) if !b.subvolumes.is_empty() || !b.swap.is_empty())
        {
            out.push(Action::MapperBtrfsVolumes { path });
        }
    }
    out.extend(mount_actions(plan, opts));
    out
}

/// The device-mapper steps: LUKS on partitions, the volume groups, then
/// LUKS on LVs (a VG's PVs are partitions or LUKS on partitions).
fn mapper_actions(plan: &Plan) -> Vec<Action> {
    let on_lv = |name: &str| {
        matches!(
            mapper::find_luks(plan, name),
            Some((_, mapper::LuksSite::Lv { .. }))
        )
    };
    let luks = keys::luks_contents(plan);
    let mut out: Vec<Action> = luks
        .iter()
        .filter(|l| !on_lv(&l.name))
        .map(|l| Action::Luks {
            name: l.name.clone(),
        })
        .collect();
    out.extend(plan.volume_groups.iter().map(|v| Action::VolumeGroup {
        name: v.name.clone(),
    }));
    out.extend(
        luks.iter()
            .filter(|l| on_lv(&l.name))
            .map(|l| Action::Luks {
                name: l.name.clone(),
            }),
    );
    out
}

fn mount_actions(plan: &Plan, opts: &ApplyOptions) -> Vec<Action> {
    let mut out = Vec::new();
    if opts.mount {
        out.extend((0..plan.mounts.len()).map(|index| Action::Mount { index }));
    }
    if opts.swapon {
        out.extend(plan.swaps.iter().map(|s| Action::Swapon {
            disk: s.disk.clone(),
            number: s.number,
        }));
        // A swapfile is found through its subvolume's mount.
        out.extend((0..plan.mapper_swaps.len()).map(|index| Action::MapperSwapon { index }));
        if opts.mount {
            out.extend((0..plan.swapfiles.len()).map(|index| Action::SwapFile { index }));
        }
    }
    out
}

fn run(
    plan: &Plan,
    disks: &BTreeMap<String, OpenDisk>,
    opts: &ApplyOptions,
    steps: Vec<Action>,
    passphrases: &LuksPassphrases,
    on_event: &mut dyn FnMut(&StepEvent),
) -> Result<ApplyReport, DiskError> {
    // Every key is read before any step writes.
    let keys = keys::resolve_keys(plan, passphrases).map_err(DiskError::Keys)?;
    let own: Vec<PathBuf> = disks.values().map(|d| d.path.clone()).collect();
    mapper::refuse_foreign_vgs(plan, &own).map_err(DiskError::Mapper)?;
    load_modules_for(plan);
    let already_applied = plan.already_applied() && !opts.force;
    let mut cx = Context {
        plan,
        disks,
        opts,
        nodes: BTreeMap::new(),
        formatted: Vec::new(),
        created: Vec::new(),
        keys,
        luks: Vec::new(),
        volume_groups: Vec::new(),
        new_lvs: Default::default(),
        formatted_mapper: Vec::new(),
    };
    let total = steps.len();
    // Every disk the plan rewrites must be writable and unused before the first
    // step touches any disk.
    for step in &steps {
        if let Action::Wipe { disk } | Action::WriteTable { disk } = step {
            if step.is_done(&cx)?.is_none() {
                let o = disks
                    .get(disk)
                    .ok_or_else(|| DiskError::UnknownDisk(disk.clone()))?;
                super::in_use::refuse_unwritable(o)?;
            }
        }
    }
    let (mut executed, mut skipped) = (0, 0);
    for (index, step) in steps.iter().enumerate() {
        let description = step.description(plan);
        let fail = |e: &DiskError, on_event: &mut dyn FnMut(&StepEvent)| {
            on_event(&StepEvent::Failed {
                index,
                total,
                description: description.clone(),
                reason: error_chain(e),
            });
        };
        let done = match step.is_done(&cx) {
            Ok(d) => d,
            Err(e) => {
                fail(&e, on_event);
                return Err(e);
            }
        };
        // A skipped re-read still needs the node paths for later steps.
        let skip_result = match (&done, step) {
            (Some(_), Action::Reread { .. }) => step.execute(&mut cx),
            _ => Ok(()),
        };
        if let Err(e) = skip_result {
            fail(&e, on_event);
            return Err(e);
        }
        if let Some(reason) = done {
            skipped += 1;
            on_event(&StepEvent::Skipped {
                index,
                total,
                description,
                reason,
            });
            continue;
        }
        on_event(&StepEvent::Started {
            index,
            total,
            description: description.clone(),
        });
        let t0 = Instant::now();
        if let Err(e) = step.execute(&mut cx) {
            fail(&e, on_event);
            return Err(e);
        }
        executed += 1;
        on_event(&StepEvent::Finished {
            index,
            total,
            description,
            duration: t0.elapsed(),
        });
    }
    let partitions = plan
        .disks
        .iter()
        .flat_map(|d| d.partitions.iter().map(move |p| (d, p)))
        .filter_map(|(d, p)| {
            cx.nodes
                .get(&(d.key.clone(), p.number))
                .map(|node| PartitionNode {
                    disk: d.key.clone(),
                    number: p.number,
                    label: p.label.clone(),
                    node: node.clone(),
                })
        })
        .collect();
    Ok(ApplyReport {
        already_applied,
        executed,
        skipped,
        partitions,
        formatted: cx.formatted,
        created: cx.created,
        luks: cx.luks,
        volume_groups: cx.volume_groups,
        formatted_mapper: cx.formatted_mapper,
    })
}

/// Apply a plan: wipe, GPT, kernel re-read, format, then mounts (and swap if
/// asked), skipping every step whose work is already done. Disks that already
/// hold the layout are not touched unless `opts.force`.
pub fn apply(
    plan: &Plan,
    disks: &BTreeMap<String, OpenDisk>,
    opts: &ApplyOptions,
    on_event: &mut dyn FnMut(&StepEvent),
) -> Result<ApplyReport, DiskError> {
    apply_with_keys(plan, disks, opts, &LuksPassphrases::new(), on_event)
}

/// [`apply`] with the passphrases of the layout's `askPassword` LUKS devices.
pub fn apply_with_keys(
    plan: &Plan,
    disks: &BTreeMap<String, OpenDisk>,
    opts: &ApplyOptions,
    passphrases: &LuksPassphrases,
    on_event: &mut dyn FnMut(&StepEvent),
) -> Result<ApplyReport, DiskError> {
    run(
        plan,
        disks,
        opts,
        actions(plan, opts),
        passphrases,
        on_event,
    )
}

/// The kernel modules a plan's content needs beyond what the agent loads at
/// boot (btrfs), loaded before any step mounts it. Only in the RAM image,
/// which carries them but has no modprobe for the kernel to call; on a normal
/// system the kernel loads a filesystem's module itself at mount time.
fn load_modules_for(plan: &Plan) {
    let btrfs = plan
        .disks
        .iter()
        .flat_map(|d| &d.partitions)
        .any(|p| matches!(p.content, Some(Content::Btrfs(_))));
    if btrfs && crate::init::in_ram_image() {
        crate::init::modules::load_on_demand(crate::init::modules::BTRFS_MODULES);
    }
    let dm = !plan.luks.is_empty() || !plan.volume_groups.is_empty();
    if dm && (crate::init::in_ram_image() || !Path::new("/sys/class/misc/device-mapper").exists()) {
        crate::init::modules::load_for_device_mapper();
    }
}

/// Mount an already applied layout (disko's "mount" mode): re-read, mounts, swap.
pub fn mount_layout(
    plan: &Plan,
    disks: &BTreeMap<String, OpenDisk>,
    opts: &ApplyOptions,
    on_event: &mut dyn FnMut(&StepEvent),
) -> Result<ApplyReport, DiskError> {
    mount_layout_with_keys(plan, disks, opts, &LuksPassphrases::new(), on_event)
}

/// [`mount_layout`] with the passphrases of `askPassword` LUKS devices: the
/// LUKS devices are opened and the volume groups activated before mounting.
pub fn mount_layout_with_keys(
    plan: &Plan,
    disks: &BTreeMap<String, OpenDisk>,
    opts: &ApplyOptions,
    passphrases: &LuksPassphrases,
    on_event: &mut dyn FnMut(&StepEvent),
) -> Result<ApplyReport, DiskError> {
    if let Some(d) = plan.disks.iter().find(|d| !d.already_applied) {
        return Err(DiskError::NotApplied(d.key.clone()));
    }
    let mut steps: Vec<Action> = plan
        .disks
        .iter()
        .filter(|d| d.gpt)
        .map(|d| Action::Reread {
            disk: d.key.clone(),
        })
        .collect();
    steps.extend(mapper_actions(plan));
    steps.extend(mount_actions(
        plan,
        &ApplyOptions {
            mount: true,
            ..opts.clone()
        },
    ));
    run(plan, disks, opts, steps, passphrases, on_event)
}

/// Unmount the plan's mounts under `root`, deepest first; returns how many.
pub fn unmount_layout(plan: &Plan, root: &Path) -> Result<usize, DiskError> {
    let mut n = 0;
    for m in plan.mounts.iter().rev() {
        let t = mounting::target(root, &m.mountpoint);
        if mounting::is_mounted(&t, &m.fs_type).map_err(DiskError::Mount)? {
            crate::sys::mount::unmount(&t)
                .map_err(|e| DiskError::Mount(MountStepError::Mount(e)))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Deactivate the plan's active swapfiles (under `root`) and swap partitions;
/// returns how many (what PID 1 does before reboot).
pub fn swapoff_layout(
    plan: &Plan,
    disks: &BTreeMap<String, OpenDisk>,
    root: &Path,
) -> Result<usize, DiskError> {
    let mut n = 0;
    for f in &plan.swapfiles {
        let path = mounting::target(root, &f.location);
        if mounting::is_swap_active(&path).map_err(DiskError::Mount)? {
            crate::sys::mount::swapoff(&path)
                .map_err(|e| DiskError::Mount(MountStepError::Mount(e)))?;
            n += 1;
        }
    }
    for s in &plan.swaps {
        let disk = disks
            .get(&s.disk)
            .ok_or_else(|| DiskError::UnknownDisk(s.disk.clone()))?;
        let nodes =
            super::partition_sync::partition_nodes(&disk.path).map_err(DiskError::Kernel)?;
        let Some(node) = nodes.get(&s.number) else {
            continue;
        };
        if mounting::is_swap_active(node).map_err(DiskError::Mount)? {
            crate::sys::mount::swapoff(node)
                .map_err(|e| DiskError::Mount(MountStepError::Mount(e)))?;
            n += 1;
        }
    }
    for s in &plan.mapper_swaps {
        let node = mapper::node_of(plan, &s.path);
        if node.exists() && mapper::is_swap_on(&node).map_err(DiskError::Probe)? {
            crate::sys::mount::swapoff(&node)
                .map_err(|e| DiskError::Mount(MountStepError::Mount(e)))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Close the plan's device-mapper devices (its LVs, then its LUKS devices)
/// once nothing holds them: after [`unmount_layout`] and
/// [`swapoff_layout`]. Returns the names closed; a device still in use is
/// an error naming it.
pub fn close_layout(plan: &Plan) -> Result<Vec<String>, DiskError> {
    let names = mapper::plan_devices(plan);
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let (closed, left) = mapper::close_devices(Some(&names)).map_err(DiskError::Mapper)?;
    if let Some((name, why)) = left.first() {
        return Err(DiskError::Busy {
            disk: format!("/dev/mapper/{name}"),
            users: why.clone(),
        });
    }
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use landfall_proto::layout::blank_disk_facts;

    fn seed_plan() -> Plan {
        let text = include_str!("../../../tests/fixtures/layouts/ext4-tmpfs-swap.json");
        let layout = Layout::from_json(text).unwrap();
        landfall_proto::layout::plan(&layout, &blank_disk_facts(&layout, 1 << 30)).unwrap()
    }

    #[test]
    fn actions_come_in_order_and_swapon_only_when_asked() {
        let p = seed_plan();
        let a = actions(&p, &ApplyOptions::default());
        let d = |k: &str| k.to_string();
        assert_eq!(
            a,
            vec![
                Action::Wipe { disk: d("data") },
                Action::WriteTable { disk: d("data") },
                Action::Reread { disk: d("data") },
                Action::Wipe { disk: d("sys") },
                Action::WriteTable { disk: d("sys") },
                Action::Reread { disk: d("sys") },
                Action::Format {
                    disk: d("data"),
                    number: 1
                },
                Action::Format {
                    disk: d("sys"),
                    number: 2
                },
                Action::Format {
                    disk: d("sys"),
                    number: 3
                },
                Action::Mount { index: 0 },
                Action::Mount { index: 1 },
                Action::Mount { index: 2 },
            ]
        );
        let mps: Vec<&str> = p.mounts.iter().map(|m| m.mountpoint.as_str()).collect();
        assert_eq!(mps, vec!["/", "/home", "/tmp"]);
        let with_swap = actions(
            &p,
            &ApplyOptions {
                swapon: true,
                mount: false,
                ..ApplyOptions::default()
            },
        );
        assert_eq!(
            with_swap.last(),
            Some(&Action::Swapon {
                disk: d("sys"),
                number: 2
            })
        );
        assert!(!with_swap.iter().any(|a| matches!(a, Action::Mount { .. })));
        assert_eq!(
            a[6].description(&p),
            "Format partition 1 (disk-data-home) of /dev/data as ext4"
        );
    }
}
