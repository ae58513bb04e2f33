//! The plan for a person: each disk, what is on it now and will be destroyed,
//! the partitions that will be created (sectors, size, type, content), the
//! mounts under the root and the swap.

use std::fmt::Write as _;

use super::model::Content;
use super::plan::{MountSource, Plan, LVM_EXTENT_BYTES};
use super::typecode;
use super::units::human_bytes;

fn type_text(guid: &str) -> String {
    match typecode::type_name(guid) {
        Some(n) => n.to_string(),
        None => guid.to_string(),
    }
}

/// What the plan says of a disk that holds the layout but carries another
/// install's ID (or none).
pub const FOREIGN_LAYOUT: &str =
    "holds this layout but was not formatted by this install; it will be wiped and recreated";

/// The plan for a person: what exists and will be destroyed, what will be created.
pub fn render(plan: &Plan, root: &str) -> String {
    let mut s = String::new();
    for d in &plan.disks {
        let ss = u64::from(d.geometry.logical_sector_size);
        let _ = writeln!(
            s,
            "disk {} → {} ({}, {}-byte sectors)",
            d.key,
            d.path,
            human_bytes(d.geometry.size_bytes),
            ss
        );
        if d.already_applied {
            let _ = writeln!(s, "  already applied: the partition table and filesystems match; nothing will be destroyed");
            let ours = d.disk_guid.is_some() && d.disk_guid == d.existing.disk_guid;
            if d.gpt && d.keep_existing && !ours {
                let _ = writeln!(
                    s,
                    "  kept with --keep-existing: this install did not format it, its contents are trusted as they are"
                );
            }
        } else {
            if d.foreign_layout {
                let _ = writeln!(s, "  {FOREIGN_LAYOUT} (--keep-existing keeps it)");
            }
            let table = d.existing.table.as_deref().unwrap_or("no partition table");
            if d.existing.table.is_none() && d.existing.signatures.is_empty() {
                let _ = writeln!(s, "  now: blank (no partition table, no known signatures)");
            } else {
                let _ = writeln!(
                    s,
                    "  now: {table}, {} partition(s) — WILL BE DESTROYED",
                    d.existing.partitions.len()
                );
            }
            for e in &d.existing.partitions {
                let _ = writeln!(
                    s,
                    "    {:>2} {:<36} {:>12}-{:<12} {:>10}  {}  {}",
                    e.number,
                    e.label,
                    e.first_lba,
                    e.last_lba,
                    human_bytes(
                        (e.last_lba.saturating_add(1))
                            .saturating_sub(e.first_lba)
                            .saturating_mul(ss)
                    ),
                    type_text(&e.type_guid),
                    match (&e.fs_type, &e.fs_label) {
                        (Some(t), Some(l)) => format!("{t} \"{l}\""),
                        (Some(t), None) => t.clone(),
                        _ => "-".to_string(),
                    }
                );
            }
            for sig in &d.existing.signatures {
                let _ = writeln!(s, "    signature on the disk: {sig}");
            }
        }
        if !d.gpt {
            let _ = writeln!(
                s,
                "  the layout has no partition table here: the disk is only wiped"
            );
            continue;
        }
        let _ = writeln!(
            s,
            "  {} GPT:",
            if d.already_applied {
                "keeps"
            } else {
                "will create"
            }
        );
        for p in &d.partitions {
            let what = match &p.content {
                Some(Content::Filesystem(fs)) => format!(
                    "{}{}",
                    fs.format.as_str(),
                    fs.mountpoint
                        .as_ref()
                        .map(|m| format!(" at {m}"))
                        .unwrap_or_default()
                ),
                Some(Content::Swap(_)) => "swap".to_string(),
                Some(Content::Btrfs(b)) => {
                    let names: Vec<&str> = b.subvolumes.iter().map(|s| s.path.as_str()).collect();
                    format!(
                        "btrfs{}{}",
                        b.mountpoint
                            .as_ref()
                            .map(|m| format!(" at {m}"))
                            .unwrap_or_default(),
                        if names.is_empty() {
                            String::new()
                        } else {
                            format!(", subvolumes {}", names.join(" "))
                        }
                    )
                }
                Some(Content::Luks(l)) => format!("LUKS2 → /dev/mapper/{}", l.name),
                Some(Content::LvmPv(pv)) => format!("LVM PV of {}", pv.vg),
                None => "-".to_string(),
            };
            let _ = writeln!(
                s,
                "    {:>2} {:<36} {:>12}-{:<12} {:>10}  {}  {}",
                p.number,
                p.label,
                p.first_lba,
                p.last_lba,
                human_bytes(p.sectors() * ss),
                type_text(&p.type_guid),
                what
            );
        }
    }
    for l in &plan.luks {
        let _ = writeln!(
            s,
            "LUKS2 {} on {} → /dev/mapper/{} ({}, key from {}{})",
            l.name,
            l.device,
            l.name,
            l.inner.as_deref().unwrap_or("empty"),
            l.key_source,
            if l.additional_key_files.is_empty() {
                String::new()
            } else {
                format!(", more keys: {}", l.additional_key_files.join(" "))
            }
        );
    }
    for vg in &plan.volume_groups {
        let _ = writeln!(
            s,
            "volume group {} on {} ({} in 4 MiB extents):",
            vg.name,
            vg.pvs.join(" "),
            human_bytes(vg.extent_count * LVM_EXTENT_BYTES)
        );
        for lv in &vg.lvs {
            let _ = writeln!(
                s,
                "    {:<20} {:>10} {:>10}  {:<28} {}",
                lv.name,
                lv.size,
                human_bytes(lv.extents * LVM_EXTENT_BYTES),
                lv.path,
                lv.inner.as_deref().unwrap_or("-")
            );
        }
    }
    if !plan.mounts.is_empty() {
        let _ = writeln!(s, "mounts under {root}:");
        for m in &plan.mounts {
            let src = match &m.source {
                MountSource::Partition { label, .. } => format!("/dev/disk/by-partlabel/{label}"),
                MountSource::Nodev { device } => device.clone(),
                MountSource::Mapper { path, .. } => path.clone(),
            };
            let _ = writeln!(
                s,
                "  {:<20} {:<6} {:<40} {}",
                m.mountpoint,
                m.fs_type,
                src,
                m.options.join(",")
            );
        }
    }
    for w in &plan.swaps {
        let _ = writeln!(s, "swap: /dev/disk/by-partlabel/{}", w.label);
    }
    for w in &plan.mapper_swaps {
        let _ = writeln!(s, "swap: {}", w.path);
    }
    for w in &plan.swapfiles {
        let _ = writeln!(
            s,
            "swapfile: {root}{} ({}, on {})",
            w.location,
            human_bytes(w.size_bytes),
            w.mapper
                .clone()
                .unwrap_or_else(|| format!("/dev/disk/by-partlabel/{}", w.label))
        );
    }
    s
}
