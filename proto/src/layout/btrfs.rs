//! disko's `type = "btrfs"` content (its `lib/types/btrfs.nix`): the
//! `mkfs.btrfs` arguments landfall's formatter honours, the top-level mount,
//! the subvolumes and the swapfiles.
//!
//! Invariants of the [`Btrfs`] this returns: subvolume paths are valid and
//! unique and sorted parents first; swapfiles have a mountpoint to be found
//! at, a page-multiple size and a distinct path; swapfiles only with the
//! `single` data profile (the kernel refuses others). Anything landfall
//! would not honour is an error naming the field, never dropped.

use std::collections::BTreeSet;

use serde_json::Value;

use super::content::{check_mountpoint, mount_options};
use super::error::LayoutError;
use super::json::{as_obj, err, join, opt_int, opt_str, sorted, str_list, Obj};
use super::model::{Btrfs, BtrfsCsum, BtrfsProfile, Subvolume, Swapfile};

/// The longest file name btrfs takes (BTRFS_NAME_LEN).
pub const MAX_NAME_BYTES: usize = 255;
/// `mkfs.btrfs` refuses labels of 256 bytes or more (BTRFS_LABEL_SIZE - 1).
pub const MAX_LABEL_BYTES: usize = 255;
/// The swap page size of x86_64; swapfile sizes are rounded down to it.
pub const SWAP_PAGE: u64 = 4096;
/// mkswap (and so the kernel's swapon) wants at least ten pages.
pub const MIN_SWAPFILE_BYTES: u64 = 10 * SWAP_PAGE;
/// Swap options that change nothing landfall does on disk or at swapon.
const SWAP_OPTIONS: &[&str] = &["defaults", "sw", "nofail"];

pub(super) fn parse_btrfs(o: &Obj, path: &str) -> Result<Btrfs, LayoutError> {
    let args = MkfsArgs::parse(o, path)?;
    let mountpoint = opt_str(o, "mountpoint", path)?.map(str::to_string);
    if let Some(mp) = &mountpoint {
        check_mountpoint(mp, &join(path, "mountpoint"))?;
    }
    let mount_options = mount_options(o, path)?;
    let swap = parse_swap_set(o, path, mountpoint.as_deref())?;
    let mut subvolumes = Vec::new();
    let spath = join(path, "subvolumes");
    if let Some(v) = o.get("subvolumes").filter(|v| !v.is_null()) {
        for (key, v) in sorted(as_obj(v, &spath)?) {
            subvolumes.push(parse_subvolume(key, v, &join(&spath, key))?);
        }
    }
    let mut seen = BTreeSet::new();
    for s in &subvolumes {
        if !seen.insert(s.path.as_str()) {
            return Err(err(
                &format!("{spath}.{}.name", s.key),
                format!("subvolume \"{}\" is named twice", s.path),
            ));
        }
    }
    // Parents first: component-wise order puts "a" before "a/b".
    subvolumes.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    let fs = Btrfs {
        label: args.label,
        csum: args.csum,
        metadata: args.metadata,
        data: args.data,
        mountpoint,
        mount_options,
        subvolumes,
        swap,
    };
    if fs.data == Some(BtrfsProfile::Dup) {
        if let Some((s, f)) = fs.swapfiles().next() {
            let at = match s {
                Some(s) => format!("{spath}.{}.swap.{}", s.key, f.key),
                None => format!("{}.{}", join(path, "swap"), f.key),
            };
            return Err(err(
                &at,
                "a btrfs swapfile needs the single data profile, but extraArgs ask for -d dup",
            ));
        }
    }
    Ok(fs)
}

/// What `extraArgs` of the filesystem ask for.
#[derive(Default)]
struct MkfsArgs {
    label: Option<String>,
    csum: Option<BtrfsCsum>,
    metadata: Option<BtrfsProfile>,
    data: Option<BtrfsProfile>,
}

impl MkfsArgs {
    fn parse(o: &Obj, path: &str) -> Result<MkfsArgs, LayoutError> {
        let args = str_list(o, "extraArgs", path)?.unwrap_or_default();
        let mut out = MkfsArgs::default();
        let mut i = 0;
        while i < args.len() {
            let apath = format!("{path}.extraArgs.{i}");
            // `--label=x` and `-Lx` spell the same thing as `--label x`.
            let (flag, inline) = split_arg(&args[i]);
            if matches!(flag, "-f" | "--force") && inline.is_none() {
                i += 1;
                continue;
            }
            if !matches!(
                flag,
                "-L" | "--label" | "--csum" | "--checksum" | "-m" | "--metadata" | "-d" | "--data"
            ) {
                return Err(err(
                    &apath,
                    format!(
                        "unsupported mkfs.btrfs argument \"{}\" (supported: -f, -L/--label, --csum/--checksum, -m/--metadata, -d/--data)",
                        args[i]
                    ),
                ));
            }
            let value = match inline {
                Some(v) => v.to_string(),
                None => {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .ok_or_else(|| err(&apath, format!("\"{flag}\" needs a value")))?
                }
            };
            match flag {
                "-L" | "--label" => {
                    if value.len() > MAX_LABEL_BYTES || value.contains('\0') {
                        return Err(err(
                            &apath,
                            format!(
                                "btrfs label \"{value}\" is longer than {MAX_LABEL_BYTES} bytes"
                            ),
                        ));
                    }
                    out.label = Some(value);
                }
                "--csum" | "--checksum" => out.csum = Some(csum(&value, &apath)?),
                "-m" | "--metadata" => out.metadata = Some(profile(&value, &apath)?),
                _ => out.data = Some(profile(&value, &apath)?),
            }
            i += 1;
        }
        Ok(out)
    }
}

fn split_arg(a: &str) -> (&str, Option<&str>) {
    if let Some((f, v)) = a.strip_prefix("--").and_then(|r| r.split_once('=')) {
        return (&a[..f.len() + 2], Some(v));
    }
    if a.len() > 2 && a.starts_with('-') && !a.starts_with("--") && a.is_char_boundary(2) {
        return (&a[..2], Some(&a[2..]));
    }
    (a, None)
}

fn csum(v: &str, path: &str) -> Result<BtrfsCsum, LayoutError> {
    match v.to_ascii_lowercase().as_str() {
        "crc32c" => Ok(BtrfsCsum::Crc32c),
        "xxhash" | "xxhash64" => Ok(BtrfsCsum::Xxhash),
        "sha256" => Ok(BtrfsCsum::Sha256),
        "blake2" | "blake2b" => Ok(BtrfsCsum::Blake2),
        _ => Err(err(
            path,
            format!("unknown btrfs checksum \"{v}\" (crc32c, xxhash, sha256, blake2)"),
        )),
    }
}

fn profile(v: &str, path: &str) -> Result<BtrfsProfile, LayoutError> {
    match v.to_ascii_lowercase().as_str() {
        "single" => Ok(BtrfsProfile::Single),
        "dup" => Ok(BtrfsProfile::Dup),
        _ => Err(err(
            path,
            format!("btrfs profile \"{v}\" is not supported on one device (single, dup)"),
        )),
    }
}

/// A subvolume name as disko takes it (`/home/user`, `@nix`, `root`) turned
/// into its path below the top level, or why it cannot be one.
pub fn subvolume_path(name: &str) -> Result<String, String> {
    let rel = name.strip_prefix('/').unwrap_or(name);
    if rel.is_empty() {
        return Err(format!(
            "\"{name}\" names the top level, not a subvolume (use the btrfs mountpoint)"
        ));
    }
    for c in rel.split('/') {
        match c {
            "" => return Err(format!("\"{name}\" has an empty path component")),
            "." | ".." => return Err(format!("\"{name}\" must not contain . or .. components")),
            c if c.len() > MAX_NAME_BYTES => {
                return Err(format!(
                    "\"{name}\" has a component longer than {MAX_NAME_BYTES} bytes"
                ))
            }
            c if c.contains('\0') => return Err(format!("\"{name}\" contains a NUL byte")),
            _ => {}
        }
    }
    Ok(rel.to_string())
}

fn parse_subvolume(key: &str, v: &Value, path: &str) -> Result<Subvolume, LayoutError> {
    let o = as_obj(v, path)?;
    if let Some(t) = opt_str(o, "type", path)? {
        if t != "btrfs_subvol" {
            return Err(err(
                &join(path, "type"),
                format!("expected \"btrfs_subvol\", found \"{t}\""),
            ));
        }
    }
    let name = opt_str(o, "name", path)?.unwrap_or(key).to_string();
    let name_field = if o.contains_key("name") {
        join(path, "name")
    } else {
        path.to_string()
    };
    let rel = subvolume_path(&name).map_err(|m| err(&name_field, m))?;
    if name.contains(',') {
        return Err(err(
            &name_field,
            format!("\"{name}\" holds a comma, which the subvol= mount option cannot carry"),
        ));
    }
    let extra = str_list(o, "extraArgs", path)?.unwrap_or_default();
    if let Some(a) = extra.first() {
        return Err(err(
            &format!("{path}.extraArgs.0"),
            format!("unsupported btrfs subvolume create argument \"{a}\""),
        ));
    }
    let mountpoint = opt_str(o, "mountpoint", path)?.map(str::to_string);
    if let Some(mp) = &mountpoint {
        check_mountpoint(mp, &join(path, "mountpoint"))?;
    }
    let mount_options = mount_options(o, path)?;
    let swap = parse_swap_set(o, path, mountpoint.as_deref())?;
    Ok(Subvolume {
        key: key.to_string(),
        name,
        path: rel,
        mountpoint,
        mount_options,
        swap,
    })
}

/// A swapfile size as disko allows it (`[0-9]+[KMGTP]`), in bytes rounded
/// down to whole pages.
pub fn swapfile_bytes(size: &str) -> Option<u64> {
    let unit = size.chars().last()?;
    let exp = match unit {
        'K' => 1,
        'M' => 2,
        'G' => 3,
        'T' => 4,
        'P' => 5,
        _ => return None,
    };
    let digits = &size[..size.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << (10 * exp))
        .map(|b| b / SWAP_PAGE * SWAP_PAGE)
}

fn parse_swap_set(
    o: &Obj,
    path: &str,
    mountpoint: Option<&str>,
) -> Result<Vec<Swapfile>, LayoutError> {
    let spath = join(path, "swap");
    let Some(set) = o.get("swap").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Swapfile> = Vec::new();
    for (key, v) in sorted(as_obj(set, &spath)?) {
        let fpath = join(&spath, key);
        let f = as_obj(v, &fpath)?;
        if mountpoint.is_none() {
            return Err(err(
                &fpath,
                "a swapfile needs a mountpoint on its subvolume (NixOS finds it at mountpoint/path)",
            ));
        }
        let size = opt_str(f, "size", &fpath)?
            .ok_or_else(|| err(&join(&fpath, "size"), "missing"))?
            .to_string();
        let size_bytes = swapfile_bytes(&size).ok_or_else(|| {
            err(
                &join(&fpath, "size"),
                format!("\"{size}\" is not a size (expected [0-9]+[KMGTP])"),
            )
        })?;
        if size_bytes < MIN_SWAPFILE_BYTES {
            return Err(err(
                &join(&fpath, "size"),
                format!("\"{size}\" is smaller than the 40 KiB (ten pages) swap needs"),
            ));
        }
        let file = opt_str(f, "path", &fpath)?.unwrap_or(key);
        let file = file.strip_prefix('/').unwrap_or(file).to_string();
        if file.is_empty()
            || file.contains('/')
            || file == "."
            || file == ".."
            || file.contains('\0')
            || file.len() > MAX_NAME_BYTES
        {
            return Err(err(
                &join(&fpath, "path"),
                format!(
                    "\"{file}\" is not a file name (a swapfile lies directly in its subvolume)"
                ),
            ));
        }
        if let Some(other) = out.iter().find(|s| s.path == file) {
            return Err(err(
                &join(&fpath, "path"),
                format!("\"{file}\" is also swap.{}", other.key),
            ));
        }
        let priority = opt_int(f, "priority", &fpath)?;
        if let Some(p) = priority.filter(|p| !(0..=32767).contains(p)) {
            return Err(err(
                &join(&fpath, "priority"),
                format!("{p} is not a swap priority (0-32767)"),
            ));
        }
        let options = str_list(f, "options", &fpath)?.unwrap_or_else(|| vec!["defaults".into()]);
        if let Some(i) = options
            .iter()
            .position(|x| !SWAP_OPTIONS.contains(&x.as_str()))
        {
            return Err(err(
                &format!("{fpath}.options.{i}"),
                format!(
                    "swap option \"{}\" is not supported by landfall (supported: {})",
                    options[i],
                    SWAP_OPTIONS.join(", ")
                ),
            ));
        }
        out.push(Swapfile {
            key: key.to_string(),
            path: file,
            size,
            size_bytes,
            priority,
            options,
        });
    }
    Ok(out)
}
