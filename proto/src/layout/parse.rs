//! Reading `disko.devices` JSON — the evaluated form (every default filled in,
//! hooks and all, from `nix eval --json`) and the hand-written form with the
//! defaults left out — into a validated [`Layout`].
//!
//! Lenient where disko versions differ (missing or unknown keys), strict where
//! the meaning would change: unsupported types, non-empty hooks, non-empty
//! `mdadm`/`zpool`/`lvm_vg`/`bcachefs_filesystems`, bad sizes, types,
//! mountpoints and duplicates are errors naming the field.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::LayoutError;
use super::model::{Content, Disk, Filesystem, FsFormat, Layout, Nodev, Partition, Swap};
use super::typecode;
use super::units::{Position, Size};

type Obj = Map<String, Value>;

fn err(path: &str, msg: impl Into<String>) -> LayoutError {
    LayoutError::new(path, msg)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj, LayoutError> {
    v.as_object().ok_or_else(|| {
        err(
            path,
            format!("expected an attribute set, found {}", kind(v)),
        )
    })
}

/// Entries in the byte order of their names (Nix's attribute order), whatever
/// order serde_json's map keeps.
fn sorted(o: &Obj) -> Vec<(&String, &Value)> {
    let mut v: Vec<_> = o.iter().collect();
    v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    v
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an attribute set",
    }
}

/// A string field; absent or null gives `None`.
fn opt_str<'a>(o: &'a Obj, key: &str, path: &str) -> Result<Option<&'a str>, LayoutError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(err(
            &join(path, key),
            format!("expected a string, found {}", kind(v)),
        )),
    }
}

fn opt_int(o: &Obj, key: &str, path: &str) -> Result<Option<i64>, LayoutError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            err(
                &join(path, key),
                format!("expected an integer, found {}", kind(v)),
            )
        }),
    }
}

fn opt_bool(o: &Obj, key: &str, path: &str) -> Result<Option<bool>, LayoutError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(err(
            &join(path, key),
            format!("expected a boolean, found {}", kind(v)),
        )),
    }
}

fn str_list(o: &Obj, key: &str, path: &str) -> Result<Option<Vec<String>>, LayoutError> {
    let p = join(path, key);
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    err(
                        &format!("{p}.{i}"),
                        format!("expected a string, found {}", kind(v)),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(err(
            &p,
            format!("expected a list of strings, found {}", kind(v)),
        )),
    }
}

/// Hooks are shell code disko runs; landfall runs none, so a non-empty one is refused.
fn no_hooks(o: &Obj, path: &str) -> Result<(), LayoutError> {
    for (k, v) in o {
        if k.ends_with("Hook") && !matches!(v, Value::Null) && v.as_str() != Some("") {
            return Err(err(
                &join(path, k),
                "hooks (shell commands) are not supported by landfall",
            ));
        }
    }
    Ok(())
}

/// The device classes landfall does not support must be empty.
const UNSUPPORTED_CLASSES: &[(&str, &str)] = &[
    ("mdadm", "mdadm arrays"),
    ("zpool", "ZFS pools"),
    ("lvm_vg", "LVM volume groups"),
    ("bcachefs_filesystems", "bcachefs filesystems"),
];

/// Content types disko knows that landfall does not create.
const UNSUPPORTED_CONTENT: &[&str] = &[
    "luks", "lvm_pv", "mdraid", "btrfs", "zfs", "bcachefs", "bcache", "verity", "table", "gpt",
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
            if !["disk", "nodev"].contains(&key.as_str())
                && !UNSUPPORTED_CLASSES.iter().any(|(c, _)| c == key)
            {
                return Err(err(key, "unknown device class (expected disk or nodev)"));
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
        let layout = Layout { disks, nodev };
        check_unique(&layout)?;
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
        Some(c) => Some(parse_content(c, &join(path, "content"))?),
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

fn check_mountpoint(mp: &str, path: &str) -> Result<(), LayoutError> {
    if !mp.starts_with('/') {
        return Err(err(path, format!("\"{mp}\" does not start with /")));
    }
    if mp.split('/').any(|c| c == "." || c == "..") || mp.contains('\0') {
        return Err(err(
            path,
            format!("\"{mp}\" must not contain . or .. components"),
        ));
    }
    Ok(())
}

fn mount_options(o: &Obj, path: &str) -> Result<Vec<String>, LayoutError> {
    let opts = str_list(o, "mountOptions", path)?.unwrap_or_else(|| vec!["defaults".to_string()]);
    if let Some(i) = opts.iter().position(|s| s.is_empty() || s.contains(',')) {
        return Err(err(
            &format!("{path}.mountOptions.{i}"),
            "a mount option must be non-empty and hold no comma",
        ));
    }
    Ok(opts)
}

fn parse_content(v: &Value, path: &str) -> Result<Content, LayoutError> {
    let o = as_obj(v, path)?;
    no_hooks(o, path)?;
    let t = opt_str(o, "type", path)?.ok_or_else(|| err(&join(path, "type"), "missing"))?;
    match t {
        "filesystem" => parse_filesystem(o, path).map(Content::Filesystem),
        "swap" => parse_swap(o, path).map(Content::Swap),
        t if UNSUPPORTED_CONTENT.contains(&t) => Err(err(
            &join(path, "type"),
            format!(
                "content type \"{t}\" is not supported by landfall (supported: filesystem, swap)"
            ),
        )),
        t => Err(err(
            &join(path, "type"),
            format!("unknown content type \"{t}\""),
        )),
    }
}

/// Pairs of `extraArgs` (`-L`, `value`) the named options of our formatters take.
fn extra_args(
    o: &Obj,
    path: &str,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, LayoutError> {
    let args = str_list(o, "extraArgs", path)?.unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        let flag = &args[i];
        let apath = format!("{path}.extraArgs.{i}");
        if !allowed.contains(&flag.as_str()) {
            return Err(err(
                &apath,
                format!(
                    "unsupported mkfs argument \"{flag}\" (supported: {})",
                    allowed.join(" ")
                ),
            ));
        }
        let value = args
            .get(i + 1)
            .ok_or_else(|| err(&apath, format!("\"{flag}\" needs a value")))?;
        out.insert(flag.clone(), value.clone());
        i += 2;
    }
    Ok(out)
}

fn check_uuid(u: &str, path: &str) -> Result<(), LayoutError> {
    if typecode::is_guid(u) {
        Ok(())
    } else {
        Err(err(path, format!("\"{u}\" is not a UUID")))
    }
}

fn parse_filesystem(o: &Obj, path: &str) -> Result<Filesystem, LayoutError> {
    let format = match opt_str(o, "format", path)? {
        Some("ext4") => FsFormat::Ext4,
        Some("vfat") => FsFormat::Vfat,
        Some(f) => {
            return Err(err(
                &join(path, "format"),
                format!("format \"{f}\" is not supported by landfall (supported: ext4, vfat)"),
            ))
        }
        None => return Err(err(&join(path, "format"), "missing")),
    };
    let mountpoint = opt_str(o, "mountpoint", path)?.map(str::to_string);
    if let Some(mp) = &mountpoint {
        check_mountpoint(mp, &join(path, "mountpoint"))?;
    }
    let mount_options = mount_options(o, path)?;
    let (label, uuid) = match format {
        FsFormat::Ext4 => {
            let a = extra_args(o, path, &["-L", "-U"])?;
            if let Some(l) = a.get("-L").filter(|l| l.len() > 16) {
                return Err(err(
                    &join(path, "extraArgs"),
                    format!("ext4 label \"{l}\" is longer than 16 bytes"),
                ));
            }
            if let Some(u) = a.get("-U") {
                check_uuid(u, &join(path, "extraArgs"))?;
            }
            (a.get("-L").cloned(), a.get("-U").cloned())
        }
        FsFormat::Vfat => {
            let a = extra_args(o, path, &["-n", "-i"])?;
            if let Some(l) = a.get("-n").filter(|l| l.len() > 11 || !l.is_ascii()) {
                return Err(err(
                    &join(path, "extraArgs"),
                    format!("vfat label \"{l}\" is not up to 11 ASCII characters"),
                ));
            }
            if let Some(i) = a
                .get("-i")
                .filter(|i| i.len() != 8 || u32::from_str_radix(i, 16).is_err())
            {
                return Err(err(
                    &join(path, "extraArgs"),
                    format!("vfat volume id \"{i}\" is not 8 hex digits"),
                ));
            }
            (a.get("-n").cloned(), a.get("-i").cloned())
        }
    };
    Ok(Filesystem {
        format,
        mountpoint,
        mount_options,
        label,
        uuid,
    })
}

fn parse_swap(o: &Obj, path: &str) -> Result<Swap, LayoutError> {
    let a = extra_args(o, path, &["-L", "-U"])?;
    if let Some(u) = a.get("-U") {
        check_uuid(u, &join(path, "extraArgs"))?;
    }
    if let Some(l) = a.get("-L").filter(|l| l.len() > 16) {
        return Err(err(
            &join(path, "extraArgs"),
            format!("swap label \"{l}\" is longer than 16 bytes"),
        ));
    }
    let discard_policy = opt_str(o, "discardPolicy", path)?.map(str::to_string);
    if let Some(d) = &discard_policy {
        if !["once", "pages", "both"].contains(&d.as_str()) {
            return Err(err(
                &join(path, "discardPolicy"),
                format!("\"{d}\" is not once, pages or both"),
            ));
        }
    }
    if opt_bool(o, "resumeDevice", path)? == Some(true) {
        // Only changes the NixOS configuration, not what is on disk.
    }
    mount_options(o, path)?;
    Ok(Swap {
        label: a.get("-L").cloned(),
        uuid: a.get("-U").cloned(),
        discard_policy,
        priority: opt_int(o, "priority", path)?,
        random_encryption: opt_bool(o, "randomEncryption", path)?.unwrap_or(false),
    })
}

/// nodev filesystem types the agent mounts.
const NODEV_TYPES: &[&str] = &["tmpfs", "ramfs"];

fn parse_nodev(key: &str, v: &Value, path: &str) -> Result<Nodev, LayoutError> {
    let o = as_obj(v, path)?;
    no_hooks(o, path)?;
    if let Some(t) = opt_str(o, "type", path)? {
        if t != "nodev" {
            return Err(err(
                &join(path, "type"),
                format!("expected \"nodev\", found \"{t}\""),
            ));
        }
    }
    let fs_type = opt_str(o, "fsType", path)?
        .ok_or_else(|| err(&join(path, "fsType"), "missing"))?
        .to_string();
    if !NODEV_TYPES.contains(&fs_type.as_str()) {
        return Err(err(
            &join(path, "fsType"),
            format!("\"{fs_type}\" is not supported (supported: tmpfs, ramfs)"),
        ));
    }
    let device = opt_str(o, "device", path)?.unwrap_or("none").to_string();
    let mountpoint = match o.get("mountpoint") {
        None => Some(key.to_string()),
        Some(Value::Null) => None,
        Some(_) => opt_str(o, "mountpoint", path)?.map(str::to_string),
    };
    if let Some(mp) = &mountpoint {
        check_mountpoint(mp, &join(path, "mountpoint"))?;
    }
    let mount_options = mount_options(o, path)?;
    Ok(Nodev {
        key: key.to_string(),
        fs_type,
        device,
        mountpoint,
        mount_options,
    })
}

/// Labels (by-partlabel is global), mountpoints and devices must be unique.
fn check_unique(layout: &Layout) -> Result<(), LayoutError> {
    let mut labels: BTreeMap<&str, String> = BTreeMap::new();
    let mut mounts: BTreeMap<&str, String> = BTreeMap::new();
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
            if let Some(Content::Filesystem(fs)) = &p.content {
                if let Some(mp) = &fs.mountpoint {
                    let mpath = format!("{ppath}.content.mountpoint");
                    if let Some(other) = mounts.insert(mp, mpath.clone()) {
                        return Err(err(
                            &mpath,
                            format!("duplicate mountpoint \"{mp}\" (also {other})"),
                        ));
                    }
                }
            }
        }
    }
    for n in &layout.nodev {
        if let Some(mp) = &n.mountpoint {
            let mpath = format!("nodev.{}.mountpoint", n.key);
            if let Some(other) = mounts.insert(mp, mpath.clone()) {
                return Err(err(
                    &mpath,
                    format!("duplicate mountpoint \"{mp}\" (also {other})"),
                ));
            }
        }
    }
    Ok(())
}
