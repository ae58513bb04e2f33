//! disko's `type = "lvm_pv"` content and its `lvm_vg` device class (its
//! `lib/types/lvm_pv.nix` and `lvm_vg.nix`): which VG a PV joins, the VGs
//! with their linear LVs in disko's creation order, and lvm2's name and size
//! rules, as pure functions (the agent's `dm::lvm2::names` and `size` apply
//! the same rules when it writes).
//!
//! Invariants of the [`VolumeGroup`]s this returns: VG and LV names pass
//! lvm's `validate_name` (and the LV restrictions), LV names are unique in
//! their VG, every size parses, `lvm_type` is null, `extraArgs` empty, and
//! LVs are sorted by `priority` then attribute name (Nix's stable `lib.sort`
//! over `attrValues`).

use std::collections::BTreeSet;

use serde_json::Value;

use super::content::{parse_content, Nest};
use super::error::LayoutError;
use super::json::{as_obj, err, join, no_hooks, opt_int, opt_str, sorted, str_list, Obj};
use super::model::{LogicalVolume, LvSize, LvmPv, VolumeGroup};

/// lvm's `NAME_LEN` (128) with its NUL.
pub const MAX_LVM_NAME_BYTES: usize = 127;
/// LV names may not start with these (lvm's reserved prefixes).
const RESERVED_PREFIXES: [&str; 2] = ["pvmove", "snapshot"];
/// LV names may not contain these (lvm's component and internal suffixes).
const RESERVED_STRINGS: [&str; 17] = [
    "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_wcorig", "_mimage", "_mlog", "_rimage",
    "_rmeta", "_tdata", "_tmeta", "_vdata", "_imeta", "_iorig", "_pmspare", "_vorigin",
];

/// lvm's `validate_name`: what VG and LV names both must pass.
pub fn check_lvm_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an lvm name must not be empty".into());
    }
    if name.starts_with('-') {
        return Err(format!("\"{name}\" starts with '-'"));
    }
    if name == "." || name == ".." {
        return Err(format!("\"{name}\" is not a name"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')))
    {
        return Err(format!(
            "\"{name}\": {c:?} is not allowed (only letters, digits, '.', '_', '-' and '+')"
        ));
    }
    if name.len() > MAX_LVM_NAME_BYTES {
        return Err(format!(
            "\"{name}\" is {} bytes, longer than {MAX_LVM_NAME_BYTES}",
            name.len()
        ));
    }
    Ok(())
}

/// An LV name `lvcreate -n` accepts (`apply_lvname_restrictions` too).
pub fn check_lv_name(name: &str) -> Result<(), String> {
    check_lvm_name(name)?;
    if let Some(p) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Err(format!(
            "\"{name}\": names starting \"{p}\" are reserved by lvm"
        ));
    }
    if let Some(s) = RESERVED_STRINGS.iter().find(|s| name.contains(*s)) {
        return Err(format!(
            "\"{name}\": names including \"{s}\" are reserved by lvm"
        ));
    }
    Ok(())
}

/// The device-mapper name lvm gives `vg/lv` (`-` doubled inside each).
pub fn lvm_dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

impl LvSize {
    /// Read a disko `size` the way disko's `lvcreate` call does: `-l` when it
    /// holds `%` (a trailing `%` meaning `%FREE`), else `-L` (a decimal number
    /// with an optional `kmgtpe`/`b`/`s` unit, MiB without one).
    pub fn parse(size: &str) -> Result<LvSize, String> {
        if let Some((number, kind)) = size.split_once('%') {
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "\"{size}\": lvcreate -l takes a whole percentage (10%, 50%FREE, 100%VG)"
                ));
            }
            let n: u32 = number
                .parse()
                .ok()
                .filter(|&n| n < u32::MAX)
                .ok_or_else(|| format!("\"{size}\": the percentage is too big"))?;
            return match kind.to_ascii_uppercase().as_str() {
                "" | "F" | "FR" | "FREE" => Ok(LvSize::PercentFree(n)),
                "V" | "VG" => Ok(LvSize::PercentVg(n)),
                "P" | "PV" | "PVS" => Ok(LvSize::PercentPvs(n)),
                _ => Err(format!(
                    "\"{size}\": %{kind} is not supported for a new LV (use %FREE, %VG or %PVS)"
                )),
            };
        }
        let end = size
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(size.len());
        let (number, unit) = size.split_at(end);
        let v: f64 = number
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("\"{size}\" is not a size (e.g. 10M, 2G, 100%FREE)"))?;
        let sectors = match unit.to_ascii_lowercase().as_str() {
            "" => v * 2048.0,
            "s" => v,
            "b" => {
                if v.fract() != 0.0 || !(v as u64).is_multiple_of(512) {
                    return Err(format!("\"{size}\" is not a multiple of 512 bytes"));
                }
                v / 512.0
            }
            u @ ("k" | "m" | "g" | "t" | "p" | "e") => {
                let power = "kmgtpe".find(u).unwrap_or(0) as i32;
                v * 1024f64.powi(power) * 2.0
            }
            _ => return Err(format!("\"{size}\" has an unknown unit \"{unit}\"")),
        };
        if sectors >= (u64::MAX >> 9) as f64 {
            return Err(format!("\"{size}\" is too big"));
        }
        if sectors < 1.0 {
            return Err(format!("\"{size}\" is empty"));
        }
        Ok(LvSize::Sectors(sectors as u64))
    }
}

pub(super) fn parse_lvm_pv(o: &Obj, path: &str, nest: Nest) -> Result<LvmPv, LayoutError> {
    if nest.in_lv {
        return Err(err(
            &join(path, "type"),
            "a PV inside an LV (a VG stacked on a VG) is not supported by landfall",
        ));
    }
    let vg = opt_str(o, "vg", path)?
        .ok_or_else(|| err(&join(path, "vg"), "missing (the volume group to join)"))?
        .to_string();
    Ok(LvmPv { vg })
}

pub(super) fn parse_vg(key: &str, v: &Value, path: &str) -> Result<VolumeGroup, LayoutError> {
    let o = as_obj(v, path)?;
    no_hooks(o, path)?;
    if let Some(t) = opt_str(o, "type", path)? {
        if t != "lvm_vg" {
            return Err(err(
                &join(path, "type"),
                format!("expected \"lvm_vg\", found \"{t}\""),
            ));
        }
    }
    let name = opt_str(o, "name", path)?.unwrap_or(key).to_string();
    check_lvm_name(&name).map_err(|m| err(&join(path, "name"), m))?;
    let lpath = join(path, "lvs");
    let mut lvs = Vec::new();
    if let Some(l) = o.get("lvs").filter(|v| !v.is_null()) {
        for (k, v) in sorted(as_obj(l, &lpath)?) {
            lvs.push(parse_lv(k, v, &join(&lpath, k))?);
        }
    }
    let mut names = BTreeSet::new();
    for lv in &lvs {
        if !names.insert(lv.name.as_str()) {
            return Err(err(
                &format!("{lpath}.{}.name", lv.key),
                format!("LV \"{}\" is named twice in VG \"{name}\"", lv.name),
            ));
        }
    }
    // Stable: equal priorities keep attribute-name order.
    lvs.sort_by_key(|lv| lv.priority);
    Ok(VolumeGroup {
        key: key.to_string(),
        name,
        lvs,
    })
}

fn parse_lv(key: &str, v: &Value, path: &str) -> Result<LogicalVolume, LayoutError> {
    let o = as_obj(v, path)?;
    no_hooks(o, path)?;
    let name = opt_str(o, "name", path)?.unwrap_or(key).to_string();
    check_lv_name(&name).map_err(|m| err(&join(path, "name"), m))?;
    if let Some(t) = opt_str(o, "lvm_type", path)? {
        let why = match t {
            "thin-pool" | "thinlv" => {
                "thin pools and thin volumes are not supported by landfall yet"
            }
            _ => "only linear LVs are supported by landfall",
        };
        return Err(err(
            &join(path, "lvm_type"),
            format!("lvm_type \"{t}\": {why} (lvm_type must be null)"),
        ));
    }
    if let Some(p) = opt_str(o, "pool", path)? {
        return Err(err(
            &join(path, "pool"),
            format!("thin pool \"{p}\": thin volumes are not supported by landfall yet"),
        ));
    }
    let extra = str_list(o, "extraArgs", path)?.unwrap_or_default();
    if let Some(a) = extra.first() {
        return Err(err(
            &format!("{path}.extraArgs.0"),
            format!(
                "lvcreate argument \"{a}\" is not supported by landfall (extraArgs must be empty)"
            ),
        ));
    }
    let size = opt_str(o, "size", path)?
        .ok_or_else(|| err(&join(path, "size"), "missing"))?
        .to_string();
    let request = LvSize::parse(&size).map_err(|m| err(&join(path, "size"), m))?;
    let priority =
        opt_int(o, "priority", path)?.unwrap_or(1000 + if size.contains("100%") { 251 } else { 0 });
    let content = match o.get("content") {
        None | Some(Value::Null) => None,
        Some(c) => Some(parse_content(
            c,
            &join(path, "content"),
            Nest {
                in_lv: true,
                in_luks: false,
            },
        )?),
    };
    Ok(LogicalVolume {
        key: key.to_string(),
        name,
        size,
        request,
        priority,
        content,
    })
}
