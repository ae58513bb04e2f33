//! Reading `disko.devices` JSON — the evaluated form (every default filled in,
//! hooks and all, from `nix eval --json`) and the hand-written form with the
//! defaults left out — into a validated [`Layout`].
//!
//! Lenient where disko versions differ (missing or unknown keys), strict where
//! the meaning would change: unsupported types, non-empty hooks, non-empty
//! `mdadm`/`zpool`/`bcachefs_filesystems`, bad sizes, types,
//! mountpoints and duplicates are errors naming the field. Across the whole
//! layout: every `lvm_pv` names an `lvm_vg` and every VG has a PV; VG names,
//! LUKS (and LV) device-mapper names, labels, mountpoints and disk devices are
//! unique.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::content::{parse_content, parse_nodev, Nest};
use super::error::LayoutError;
use super::json::{as_obj, err, join, no_hooks, opt_bool, opt_int, opt_str, sorted, Obj};
use super::model::{Content, Disk, Layout, Partition};
use super::typecode;
use super::units::{Position, Size};

/// The device classes landfall does not support must be empty.
const UNSUPPORTED_CLASSES: &[(&str, &str)] = &[
    ("mdadm", "mdadm arrays"),
    ("zpool", "ZFS pools"),
    ("bcachefs_filesystems", "bcachefs filesystems"),
];

impl Layout {
    /// Parse `disko.devices` JSON (either the devices set itself or a document
    /// with it under `disko.devices`).
    pub fn from_json(text: &str) -> Result<Layout, LayoutError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| err("", format!("not valid JSON: {e}")))?;
        Layout::from_value(&v)
    }

    /// Parse an already decoded JSON value; see [`Layout::from_json`].
    pub fn from_value(v: &Value) -> Result<Layout, LayoutError> {
        let mut root = as_obj(v, "")?;
        if let Some(devices) = root.get("disko").and_then(|d| d.get("devices")) {
            root = as_obj(devices, "disko.devices")?;
        }
        for (class, what) in UNSUPPORTED_CLASSES {
            if let Some(v) = root.get(*class) {
                if !as_obj(v, class)?.is_empty() {
                    return Err(err(class, format!("{what} are not supported by landfall")));
                }
            }
        }
        for key in root.keys() {
            if !["disk", "nodev", "lvm_vg"].contains(&key.as_str())
                && !UNSUPPORTED_CLASSES.iter().any(|(c, _)| c == key)
            {
                return Err(err(
                    key,
                    "unknown device class (expected disk, lvm_vg or nodev)",
                ));
            }
        }
        let mut disks = Vec::new();
        if let Some(d) = root.get("disk") {
            for (key, v) in sorted(as_obj(d, "disk")?) {
                disks.push(parse_disk(key, v, &join("disk", key))?);
            }
        }
        let mut nodev = Vec::new();
        if let Some(n) = root.get("nodev") {
            for (key, v) in sorted(as_obj(n, "nodev")?) {
                nodev.push(parse_nodev(key, v, &join("nodev", key))?);
            }
        }
        let mut lvm_vgs = Vec::new();
        if let Some(n) = root.get("lvm_vg") {
            for (key, v) in sorted(as_obj(n, "lvm_vg")?) {
                lvm_vgs.push(super::lvm::parse_vg(key, v, &join("lvm_vg", key))?);
            }
        }
        let layout = Layout {
            disks,
            nodev,
            lvm_vgs,
        };
        check_unique(&layout)?;
        check_dm(&layout)?;
        Ok(layout)
    }
}

fn parse_disk(key: &str, v: &Value, path: &str) -> Result<Disk, LayoutError> {
    let o = as_obj(v, path)?;
    no_hooks(o, path)?;
    if let Some(t) = opt_str(o, "type", path)? {
        if t != "disk" {
            return Err(err(
                &join(path, "type"),
                format!("expected \"disk\", found \"{t}\""),
            ));
        }
    }
    let name = opt_str(o, "name", path)?
        .map(str::to_string)
        .unwrap_or_else(|| key.replace('/', "_"));
    let device = opt_str(o, "device", path)?
        .ok_or_else(|| {
            err(
                &join(path, "device"),
                "missing (the disk's device path, e.g. /dev/nvme0n1)",
            )
        })?
        .to_string();
    let destroy = opt_bool(o, "destroy", path)?.unwrap_or(true);
    let cpath = join(path, "content");
    let gpt = !matches!(o.get("content"), None | Some(Value::Null));
    let partitions = match o.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(c) => {
            let co = as_obj(c, &cpath)?;
            no_hooks(co, &cpath)?;
            match opt_str(co, "type", &cpath)? {
                Some("gpt") => {}
                Some("table") => {
                    return Err(err(
                        &join(&cpath, "type"),
                        "the legacy \"table\" type is not supported; use \"gpt\"",
                    ))
                }
                Some(t) => {
                    return Err(err(
                        &join(&cpath, "type"),
                        format!("\"{t}\" directly on a disk is not supported; use \"gpt\""),
                    ))
                }
                None => return Err(err(&join(&cpath, "type"), "missing (expected \"gpt\")")),
            }
            parse_partitions(co, &name, &cpath)?
        }
    };
    Ok(Disk {
        key: key.to_string(),
        name,
        device,
        destroy,
        gpt,
        partitions,
    })
}

/// Default label: `disk-<disk>-<partition>`, or the first 36 hex digits of its
/// sha256 when longer than 36 bytes (disko's `lib/types/gpt.nix`).
pub fn default_label(disk_name: &str, partition_name: &str) -> String {
    let label = format!("disk-{disk_name}-{partition_name}");
    if label.len() > 36 {
        let digest = Sha256::digest(label.as_bytes());
        hex::encode(digest)[..36].to_string()
    } else {
        label
    }
}

fn parse_partitions(gpt: &Obj, disk_name: &str, path: &str) -> Result<Vec<Partition>, LayoutError> {
    let ppath = join(path, "partitions");
    let parts = match gpt.get("partitions") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(p) => as_obj(p, &ppath)?,
    };
    let mut out = Vec::new();
    let mut rest_seen: Option<String> = None;
    for (key, v) in sorted(parts) {
        let p = parse_partition(key, v, disk_name, &join(&ppath, key))?;
        if p.size == Size::Rest {
            if let Some(first) = &rest_seen {
                return Err(err(
                    &join(&join(&ppath, key), "size"),
                    format!(
                        "a second 100% partition (\"{first}\" already takes the rest of the disk)"
                    ),
                ));
            }
            rest_seen = Some(key.clone());
        }
        out.push(p);
    }
    // disko: lib.sort by priority, a stable sort over attrValues (key order).
    out.sort_by_key(|p| p.priority);
    let mut names = BTreeSet::new();
    for (i, p) in out.iter_mut().enumerate() {
        if !names.insert(p.name.clone()) {
            return Err(err(
                &join(&join(&ppath, &p.key), "name"),
                format!("duplicate partition name \"{}\"", p.name),
            ));
        }
        p.number = i as u32 + 1;
    }
    Ok(out)
}

fn parse_partition(
    key: &str,
    v: &Value,
    disk_name: &str,
    path: &str,
) -> Result<Partition, LayoutError> {
    let o = as_obj(v, path)?;
    no_hooks(o, path)?;
    if let Some(h) = o.get("hybrid") {
        if !h.is_null() {
            return Err(err(
                &join(path, "hybrid"),
                "hybrid MBR entries are not supported by landfall",
            ));
        }
    }
    let content = match o.get("content") {
        None | Some(Value::Null) => None,
        Some(c) => Some(parse_content(c, &join(path, "content"), Nest::default())?),
    };
    let name = opt_str(o, "name", path)?.unwrap_or(key).to_string();
    let size_text = opt_str(o, "size", path)?.unwrap_or("0");
    let size = Size::parse(size_text).ok_or_else(|| {
        err(
            &join(path, "size"),
            format!("\"{size_text}\" is not a size (expected [0-9]+[KMGTP]? or 100%)"),
        )
    })?;
    let default_type = if matches!(content, Some(Content::Swap(_))) {
        "8200"
    } else {
        "8300"
    };
    let type_code = opt_str(o, "type", path)?
        .unwrap_or(default_type)
        .to_string();
    if !typecode::is_type_syntax(&type_code) {
        return Err(err(
            &join(path, "type"),
            format!("\"{type_code}\" is not a type (expected 4 hex digits or a GUID)"),
        ));
    }
    let type_guid = typecode::type_guid(&type_code).ok_or_else(|| {
        err(
            &join(path, "type"),
            format!("unknown partition type code \"{type_code}\""),
        )
    })?;
    let priority = match opt_int(o, "priority", path)? {
        Some(p) => p,
        None if size == Size::Rest => 9001,
        None if type_code == "EF02" => 100,
        None => 1000,
    };
    let label = match opt_str(o, "label", path)? {
        Some(l) => l.to_string(),
        None => default_label(disk_name, &name),
    };
    if label.encode_utf16().count() > 36 {
        return Err(err(
            &join(path, "label"),
            format!("\"{label}\" is longer than the 36 characters a GPT name holds"),
        ));
    }
    if label.is_empty() {
        return Err(err(&join(path, "label"), "empty label"));
    }
    let start = opt_str(o, "start", path)?.unwrap_or("0").to_string();
    let end = opt_str(o, "end", path)?
        .map(str::to_string)
        .unwrap_or_else(|| size.default_end());
    let start_pos = Position::parse(&start).ok_or_else(|| {
        err(
            &join(path, "start"),
            format!("\"{start}\" is not an sgdisk position"),
        )
    })?;
    let end_pos = Position::parse(&end).ok_or_else(|| {
        err(
            &join(path, "end"),
            format!("\"{end}\" is not an sgdisk position"),
        )
    })?;
    let alignment = match opt_int(o, "alignment", path)? {
        Some(a) if a < 0 => return Err(err(&join(path, "alignment"), "must not be negative")),
        Some(a) if a > 0 => a as u64,
        _ if start_pos.sector_suffix || end_pos.sector_suffix => 1,
        _ => 0,
    };
    let uuid = opt_str(o, "uuid", path)?.map(str::to_string);
    if let Some(u) = &uuid {
        if !typecode::is_guid(u) {
            return Err(err(&join(path, "uuid"), format!("\"{u}\" is not a GUID")));
        }
    }
    let mut attributes = Vec::new();
    if let Some(a) = o.get("attributes").filter(|a| !a.is_null()) {
        let list = a
            .as_array()
            .ok_or_else(|| err(&join(path, "attributes"), "expected a list of bit numbers"))?;
        for (i, bit) in list.iter().enumerate() {
            match bit.as_u64() {
                Some(b) if b < 64 => attributes.push(b as u8),
                _ => {
                    return Err(err(
                        &format!("{path}.attributes.{i}"),
                        "expected a bit number 0-63",
                    ))
                }
            }
        }
        attributes.sort_unstable();
        attributes.dedup();
    }
    Ok(Partition {
        key: key.to_string(),
        name,
        number: 0,
        priority,
        label,
        type_code,
        type_guid,
        size,
        start,
        end,
        alignment,
        uuid,
        attributes,
        content,
    })
}

/// Labels (by-partlabel is global), mountpoints and devices must be unique.
fn check_unique(layout: &Layout) -> Result<(), LayoutError> {
    let mut labels: BTreeMap<&str, String> = BTreeMap::new();
    let mut mounts: BTreeMap<String, String> = BTreeMap::new();
    let mut devices: BTreeMap<&str, String> = BTreeMap::new();
    for d in &layout.disks {
        let dpath = join("disk", &d.key);
        if let Some(other) = devices.insert(&d.device, dpath.clone()) {
            return Err(err(
                &join(&dpath, "device"),
                format!("device {} is also used by {other}", d.device),
            ));
        }
        for p in &d.partitions {
            let ppath = format!("{dpath}.content.partitions.{}", p.key);
            if let Some(other) = labels.insert(&p.label, ppath.clone()) {
                return Err(err(
                    &join(&ppath, "label"),
                    format!("duplicate label \"{}\" (also {other})", p.label),
                ));
            }
            let here = p
                .content
                .as_ref()
                .map(|c| c.mountpoints(&format!("{ppath}.content")))
                .unwrap_or_default();
            for (mp, mpath) in here {
                if let Some(other) = mounts.insert(mp.clone(), mpath.clone()) {
                    return Err(err(
                        &mpath,
                        format!("duplicate mountpoint \"{mp}\" (also {other})"),
                    ));
                }
            }
        }
    }
    for vg in &layout.lvm_vgs {
        for lv in &vg.lvs {
            let cpath = format!("lvm_vg.{}.lvs.{}.content", vg.key, lv.key);
            for (mp, mpath) in lv.content.iter().flat_map(|c| c.mountpoints(&cpath)) {
                if let Some(other) = mounts.insert(mp.clone(), mpath.clone()) {
                    return Err(err(
                        &mpath,
                        format!("duplicate mountpoint \"{mp}\" (also {other})"),
                    ));
                }
            }
        }
    }
    for n in &layout.nodev {
        if let Some(mp) = &n.mountpoint {
            let mpath = format!("nodev.{}.mountpoint", n.key);
            if let Some(other) = mounts.insert(mp.clone(), mpath.clone()) {
                return Err(err(
                    &mpath,
                    format!("duplicate mountpoint \"{mp}\" (also {other})"),
                ));
            }
        }
    }
    Ok(())
}

/// Every content of the layout with its field path, nested ones included.
fn contents(layout: &Layout) -> Vec<(&Content, String)> {
    fn walk<'a>(c: &'a Content, path: String, out: &mut Vec<(&'a Content, String)>) {
        if let Content::Luks(l) = c {
            if let Some(inner) = &l.content {
                walk(inner, format!("{path}.content"), out);
            }
        }
        out.push((c, path));
    }
    let mut out = Vec::new();
    for d in &layout.disks {
        for p in &d.partitions {
            if let Some(c) = &p.content {
                let path = format!("disk.{}.content.partitions.{}.content", d.key, p.key);
                walk(c, path, &mut out);
            }
        }
    }
    for vg in &layout.lvm_vgs {
        for lv in &vg.lvs {
            if let Some(c) = &lv.content {
                walk(
                    c,
                    format!("lvm_vg.{}.lvs.{}.content", vg.key, lv.key),
                    &mut out,
                );
            }
        }
    }
    out
}

/// VGs and their PVs agree; VG names and device-mapper names are unique.
fn check_dm(layout: &Layout) -> Result<(), LayoutError> {
    let mut vg_names: BTreeMap<&str, &str> = BTreeMap::new();
    for vg in &layout.lvm_vgs {
        if let Some(other) = vg_names.insert(&vg.name, &vg.key) {
            return Err(err(
                &format!("lvm_vg.{}.name", vg.key),
                format!(
                    "two volume groups are named \"{}\" (also lvm_vg.{other})",
                    vg.name
                ),
            ));
        }
    }
    // LV device-mapper names, which LUKS names must not take.
    let mut dm: BTreeMap<String, String> = BTreeMap::new();
    for vg in &layout.lvm_vgs {
        for lv in &vg.lvs {
            let name = super::lvm::lvm_dm_name(&vg.name, &lv.name);
            let path = format!("lvm_vg.{}.lvs.{}.name", vg.key, lv.key);
            if name.len() > super::luks::MAX_DM_NAME_BYTES {
                return Err(err(
                    &path,
                    format!(
                        "its device-mapper name \"{name}\" is longer than {} bytes",
                        super::luks::MAX_DM_NAME_BYTES
                    ),
                ));
            }
            dm.insert(name, path);
        }
    }
    let mut with_pv: BTreeSet<&str> = BTreeSet::new();
    for (c, path) in contents(layout) {
        match c {
            Content::LvmPv(pv) => {
                if !vg_names.contains_key(pv.vg.as_str()) {
                    return Err(err(
                        &join(&path, "vg"),
                        format!(
                            "names volume group \"{}\", which the layout does not define under lvm_vg",
                            pv.vg
                        ),
                    ));
                }
                with_pv.insert(vg_names[pv.vg.as_str()]);
            }
            Content::Luks(l) => {
                if let Some(other) = dm.insert(l.name.clone(), join(&path, "name")) {
                    return Err(err(
                        &join(&path, "name"),
                        format!("device-mapper name \"{}\" is also {other}", l.name),
                    ));
                }
            }
            _ => {}
        }
    }
    for vg in &layout.lvm_vgs {
        if !with_pv.contains(vg.key.as_str()) {
            return Err(err(
                &format!("lvm_vg.{}", vg.key),
                format!(
                    "volume group \"{}\" has no physical volume (no lvm_pv content names it)",
                    vg.name
                ),
            ));
        }
    }
    Ok(())
}
