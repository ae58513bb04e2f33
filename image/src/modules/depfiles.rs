//! Writes the metadata files for the selected modules, in depmod's formats.
//!
//! All paths are relative to `lib/modules/<version>/` and name plain `.ko`
//! files (compressed sources are stored decompressed). Lines are in load
//! order (every module after its dependencies).
//!
//! `modules.dep` — one line per module:
//! ```text
//! kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko
//! kernel/lib/crc16.ko:
//! ```
//! After the colon: ALL hard dependencies, transitively, ordered so that
//! loading them from the last to the first, then the module itself, loads
//! each one after everything it needs (what modprobe and busybox do).
//!
//! `modules.alias` — one line per alias of a selected module, in the
//! module's own order; PATTERN is an fnmatch glob, NAME the module name
//! with `_` (its `name=`):
//! ```text
//! alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
//! alias fs-ext4 ext4
//! ```
//!
//! `modules.softdep` — modules with `softdep=` in their modinfo:
//! ```text
//! softdep ext4 pre: crypto-crc32c
//! ```
//! PRE/POST entries are module names or aliases (resolve via modules.alias).

use landfall_formats::kmod::{alias_line, dep_line};

use super::select::ModuleSelection;

/// The `modules.dep` text.
pub fn modules_dep(selection: &ModuleSelection) -> String {
    let mut out = String::new();
    for module in &selection.modules {
        out.push_str(&dep_line(
            &module.image_path(),
            module.dep_closure.iter().map(String::as_str),
        ));
    }
    out
}

/// The `modules.alias` text.
pub fn modules_alias(selection: &ModuleSelection) -> String {
    let mut out = String::from("# Aliases extracted from modules themselves.\n");
    for module in &selection.modules {
        let name = module_name(module);
        for alias in &module.module.info.aliases {
            if let Some(line) = alias_line(alias, &name) {
                out.push_str(&line);
            }
        }
    }
    out
}

/// The `modules.softdep` text.
pub fn modules_softdep(selection: &ModuleSelection) -> String {
    let mut out = String::from("# Soft dependencies extracted from modules themselves.\n");
    for module in &selection.modules {
        for entry in &module.module.info.softdeps {
            out.push_str(&format!("softdep {} {entry}\n", module_name(module)));
        }
    }
    out
}

/// The module's `name=`, or its normalised file name.
fn module_name(module: &super::select::SelectedModule) -> String {
    module
        .module
        .info
        .name
        .clone()
        .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
        .unwrap_or_else(|| module.name().to_owned())
}
