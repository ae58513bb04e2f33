//! The contents landfall supports — `filesystem` (ext4, vfat), `swap`, `btrfs`
//! (in [`super::btrfs`]), `luks` (in [`super::luks`]), `lvm_pv` (in
//! [`super::lvm`]) — and
//! `nodev` entries (tmpfs), with their mountpoints, mount options and the
//! `extraArgs` our formatters understand (`-L`/`-U` for ext4 and swap,
//! `-n`/`-i` for vfat); everything else is an error naming the field.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::LayoutError;
use super::json::{as_obj, err, join, no_hooks, opt_bool, opt_int, opt_str, str_list, Obj};
use super::model::{Content, Filesystem, FsFormat, Nodev, Swap};
use super::typecode;

/// Content types disko knows that landfall does not create.
const UNSUPPORTED_CONTENT: &[&str] = &[
    "mdraid", "zfs", "bcachefs", "bcache", "verity", "table", "gpt",
];

pub(super) fn check_mountpoint(mp: &str, path: &str) -> Result<(), LayoutError> {
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

pub(super) fn mount_options(o: &Obj, path: &str) -> Result<Vec<String>, LayoutError> {
    let opts = str_list(o, "mountOptions", path)?.unwrap_or_else(|| vec!["defaults".to_string()]);
    if let Some(i) = opts.iter().position(|s| s.is_empty() || s.contains(',')) {
        return Err(err(
            &format!("{path}.mountOptions.{i}"),
            "a mount option must be non-empty and hold no comma",
        ));
    }
    Ok(opts)
}

/// Where a content lies, for the nestings landfall refuses (LUKS in LUKS, a
/// PV in an LV).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Nest {
    pub in_luks: bool,
    pub in_lv: bool,
}

pub(super) fn parse_content(v: &Value, path: &str, nest: Nest) -> Result<Content, LayoutError> {
    let o = as_obj(v, path)?;
    no_hooks(o, path)?;
    let t = opt_str(o, "type", path)?.ok_or_else(|| err(&join(path, "type"), "missing"))?;
    match t {
        "filesystem" => parse_filesystem(o, path).map(Content::Filesystem),
        "swap" => parse_swap(o, path).map(Content::Swap),
        "btrfs" => super::btrfs::parse_btrfs(o, path).map(Content::Btrfs),
        "luks" => super::luks::parse_luks(o, path, nest).map(Content::Luks),
        "lvm_pv" => super::lvm::parse_lvm_pv(o, path, nest).map(Content::LvmPv),
        t if UNSUPPORTED_CONTENT.contains(&t) => Err(err(
            &join(path, "type"),
            format!(
                "content type \"{t}\" is not supported by landfall (supported: filesystem, swap, btrfs, luks, lvm_pv)"
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

pub(super) fn parse_nodev(key: &str, v: &Value, path: &str) -> Result<Nodev, LayoutError> {
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
