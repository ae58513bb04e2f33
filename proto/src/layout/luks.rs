//! disko's `type = "luks"` content (its `lib/types/luks.nix`): the
//! device-mapper name, where the keys come from, the cryptsetup words of
//! `extraFormatArgs`/`extraOpenArgs` landfall honours, the `settings` that
//! change nothing on disk, and the content inside.
//!
//! Invariants of the [`Luks`] this returns: `name` is a valid dm name; at
//! least one key source (a key file, a password file or the prompt); key
//! file paths are absolute; the content is not LUKS again. Settings that
//! would change what landfall must write (`keyFileSize`, `header`, `fido2`…)
//! are errors naming the field, never dropped. Pure: the agent's
//! `dm::luks2::args` accepts the same words.

use serde_json::Value;

use super::content::{parse_content, Nest};
use super::error::LayoutError;
use super::json::{as_obj, err, join, kind, opt_bool, opt_str, str_list, Obj};
use super::model::{Luks, LuksArgs};

/// The kernel's `DM_NAME_LEN` (128) with its NUL.
pub const MAX_DM_NAME_BYTES: usize = 127;
/// The longest LUKS2 label (48 bytes with the NUL).
pub const MAX_LUKS_LABEL_BYTES: usize = 47;

/// `settings` entries that only shape the NixOS configuration
/// (`boot.initrd.luks.devices.<name>`), not the disk landfall writes.
const HARMLESS_SETTINGS: &[&str] = &[
    "allowDiscards",
    "bypassWorkqueues",
    "crypttabExtraOpts",
    "fallbackToPassword",
    "keyFileTimeout",
    "preLVM",
    "preOpenCommands",
    "postOpenCommands",
    "tryEmptyPassphrase",
    "device",
];

/// A device-mapper name the kernel and crypttab take, or why not.
pub fn check_dm_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a device-mapper name must not be empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("\"{name}\" is not a device-mapper name"));
    }
    if name.len() > MAX_DM_NAME_BYTES {
        return Err(format!(
            "\"{name}\" is longer than the {MAX_DM_NAME_BYTES} bytes of a device-mapper name"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "\"{name}\" holds {c:?}; a device-mapper name has no '/', space or control character"
        ));
    }
    Ok(())
}

fn key_path(p: &str, path: &str) -> Result<String, LayoutError> {
    if !p.starts_with('/') || p.contains('\0') {
        return Err(err(
            path,
            format!("\"{p}\" is not an absolute path on the target"),
        ));
    }
    Ok(p.to_string())
}

fn number(arg: &str, value: &str, min: u32, path: &str) -> Result<u32, LayoutError> {
    match value.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(err(
            path,
            format!("\"{value}\" is not a valid value for {arg} (a whole number, at least {min})"),
        )),
    }
}

/// Parse cryptsetup words as landfall honours them (the same set as the
/// agent's `dm::luks2::args`); `path` is the list's field path.
pub fn parse_luks_args(args: &[String], path: &str) -> Result<LuksArgs, LayoutError> {
    let mut out = LuksArgs::default();
    let mut i = 0;
    while i < args.len() {
        let word = args[i].as_str();
        let apath = format!("{path}.{i}");
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (word, None),
        };
        let takes_value = matches!(
            name,
            "--label"
                | "--pbkdf-memory"
                | "--iter-time"
                | "-i"
                | "--pbkdf-force-iterations"
                | "--type"
        );
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i)
                        .map(String::as_str)
                        .ok_or_else(|| err(&apath, format!("\"{name}\" needs a value")))?
                }
            }
        } else if inline.is_some() {
            return Err(unsupported(word, &apath));
        } else {
            ""
        };
        match name {
            "--label" => {
                if value.len() > MAX_LUKS_LABEL_BYTES || value.contains('\0') {
                    return Err(err(
                        &apath,
                        format!(
                            "LUKS label \"{value}\" is longer than {MAX_LUKS_LABEL_BYTES} bytes"
                        ),
                    ));
                }
                out.label = Some(value.to_string());
            }
            "--pbkdf-memory" => out.pbkdf_memory_kib = Some(number(name, value, 32, &apath)?),
            "--iter-time" | "-i" => out.iter_time_ms = Some(number(name, value, 1, &apath)?),
            "--pbkdf-force-iterations" => {
                out.force_iterations = Some(number(name, value, 4, &apath)?)
            }
            "--type" if value == "luks2" => {}
            "--type" => return Err(unsupported(&format!("--type {value}"), &apath)),
            "--allow-discards" => out.allow_discards = true,
            "--perf-no_read_workqueue" => out.no_read_workqueue = true,
            "--perf-no_write_workqueue" => out.no_write_workqueue = true,
            _ => return Err(unsupported(word, &apath)),
        }
        i += 1;
    }
    Ok(out)
}

fn unsupported(word: &str, path: &str) -> LayoutError {
    err(
        path,
        format!(
            "unsupported cryptsetup argument \"{word}\" (supported: --label, --pbkdf-memory, --iter-time/-i, --pbkdf-force-iterations, --type luks2, --allow-discards, --perf-no_read_workqueue, --perf-no_write_workqueue)"
        ),
    )
}

pub(super) fn parse_luks(o: &Obj, path: &str, nest: Nest) -> Result<Luks, LayoutError> {
    if nest.in_luks {
        return Err(err(
            &join(path, "type"),
            "LUKS inside LUKS is not supported by landfall",
        ));
    }
    let name = opt_str(o, "name", path)?
        .ok_or_else(|| err(&join(path, "name"), "missing (the /dev/mapper name)"))?
        .to_string();
    check_dm_name(&name).map_err(|m| err(&join(path, "name"), m))?;

    let spath = join(path, "settings");
    let mut settings_key = None;
    let mut allow_discards = false;
    let mut bypass = false;
    if let Some(s) = o.get("settings").filter(|v| !v.is_null()) {
        let s = as_obj(s, &spath)?;
        for (k, v) in s {
            let kpath = join(&spath, k);
            match k.as_str() {
                "keyFile" => {
                    settings_key = opt_str(s, k, &spath)?
                        .map(|p| key_path(p, &kpath))
                        .transpose()?
                }
                "allowDiscards" => allow_discards = opt_bool(s, k, &spath)?.unwrap_or(false),
                "bypassWorkqueues" => bypass = opt_bool(s, k, &spath)?.unwrap_or(false),
                k if HARMLESS_SETTINGS.contains(&k) => {}
                "keyFileSize" | "keyFileOffset" if v.is_null() => {}
                _ => {
                    return Err(err(
                        &kpath,
                        format!(
                            "LUKS setting \"{k}\" ({}) is not supported by landfall (supported: keyFile, {})",
                            kind(v),
                            HARMLESS_SETTINGS.join(", ")
                        ),
                    ))
                }
            }
        }
    }
    let top_key = opt_str(o, "keyFile", path)?
        .map(|p| key_path(p, &join(path, "keyFile")))
        .transpose()?;
    if let (Some(a), Some(b)) = (&settings_key, &top_key) {
        if a != b {
            return Err(err(
                &join(path, "keyFile"),
                format!(
                    "\"{b}\" differs from settings.keyFile \"{a}\" (set only settings.keyFile)"
                ),
            ));
        }
    }
    let key_file = settings_key.or(top_key);
    let password_file = opt_str(o, "passwordFile", path)?
        .map(|p| key_path(p, &join(path, "passwordFile")))
        .transpose()?;
    // disko's default: ask when no key is given any other way.
    let ask_password =
        opt_bool(o, "askPassword", path)?.unwrap_or(key_file.is_none() && password_file.is_none());
    if !ask_password && key_file.is_none() && password_file.is_none() {
        return Err(err(
            &join(path, "askPassword"),
            "is false, but neither settings.keyFile nor passwordFile gives a key",
        ));
    }
    let apath = join(path, "additionalKeyFiles");
    let additional_key_files = str_list(o, "additionalKeyFiles", path)?
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, p)| key_path(p, &format!("{apath}.{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let fa = str_list(o, "extraFormatArgs", path)?.unwrap_or_default();
    let format_args = parse_luks_args(&fa, &join(path, "extraFormatArgs"))?;
    let oa = str_list(o, "extraOpenArgs", path)?.unwrap_or_default();
    let open_args = parse_luks_args(&oa, &join(path, "extraOpenArgs"))?;
    let initrd_unlock = opt_bool(o, "initrdUnlock", path)?.unwrap_or(true);
    let content = match o.get("content") {
        None | Some(Value::Null) => None,
        Some(c) => Some(Box::new(parse_content(
            c,
            &join(path, "content"),
            Nest {
                in_luks: true,
                ..nest
            },
        )?)),
    };
    Ok(Luks {
        name,
        key_file,
        password_file,
        ask_password,
        additional_key_files,
        allow_discards: allow_discards || open_args.allow_discards,
        no_read_workqueue: bypass || open_args.no_read_workqueue,
        no_write_workqueue: bypass || open_args.no_write_workqueue,
        format_args,
        open_args,
        initrd_unlock,
        content,
    })
}
