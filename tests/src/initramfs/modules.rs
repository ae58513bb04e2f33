//! Kernel modules with their dependencies, in load order.
//!
//! The fetched Debian kernel package is unpacked, not installed, so it has no
//! `modules.dep`: dependencies are read from each module's own `depends=`
//! field with the host's `modinfo -F depends FILE` (Debian package `kmod`).
//! [`resolve`] returns every module a set of names needs, dependencies first,
//! each once.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use landfall_formats::kmod;

/// A module could not be found or inspected.
#[derive(thiserror::Error)]
pub enum ModuleError {
    /// No file for this module under the modules folder.
    #[error("Kernel module {name} not found under {dir}")]
    NotFound { name: String, dir: PathBuf },
    /// Walking the modules folder failed.
    #[error("Cannot list kernel modules under {dir}")]
    List {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `modinfo` could not run (Debian package kmod).
    #[error("Cannot run modinfo on {file} (install the Debian package kmod)")]
    Modinfo {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `modinfo` ran and failed.
    #[error("modinfo failed on {file}: {stderr}")]
    ModinfoFailed { file: PathBuf, stderr: String },
}
crate::debug_as_display!(ModuleError);

/// The module name of a file such as `nvme-core.ko` or `e1000.ko.zst`
/// (landfall-formats' rule, the one the image and the agent use).
pub fn module_name(file: &Path) -> Option<String> {
    kmod::module_file_name(file.file_name()?.to_str()?)
}

/// Every module file under `dir`, by canonical name.
pub fn index(dir: &Path) -> Result<HashMap<String, PathBuf>, ModuleError> {
    let mut found = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| ModuleError::List {
            dir: d.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| ModuleError::List {
                dir: d.clone(),
                source,
            })?;
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                stack.push(path);
            } else if let Some(name) = module_name(&path) {
                found.entry(name).or_insert(path);
            }
        }
    }
    Ok(found)
}

/// The `depends=` list of one module file.
pub fn depends(file: &Path) -> Result<Vec<String>, ModuleError> {
    let out = Command::new("modinfo")
        .args(["-F", "depends"])
        .arg(file)
        .output()
        .map_err(|source| ModuleError::Modinfo {
            file: file.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(ModuleError::ModinfoFailed {
            file: file.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(kmod::module_name)
        .collect())
}

/// The files of `names` and all their dependencies, dependencies first.
pub fn resolve(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>, ModuleError> {
    let index = index(dir)?;
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for name in names {
        visit(&index, dir, &kmod::module_name(name), &mut seen, &mut order)?;
    }
    Ok(order)
}

fn visit(
    index: &HashMap<String, PathBuf>,
    dir: &Path,
    name: &str,
    seen: &mut HashSet<String>,
    order: &mut Vec<PathBuf>,
) -> Result<(), ModuleError> {
    // Marked before recursing: module dependencies form no cycles, and this
    // keeps a broken module from looping forever.
    if !seen.insert(name.to_owned()) {
        return Ok(());
    }
    let file = index.get(name).ok_or_else(|| ModuleError::NotFound {
        name: name.to_owned(),
        dir: dir.to_path_buf(),
    })?;
    for dep in depends(file)? {
        visit(index, dir, &dep, seen, order)?;
    }
    order.push(file.clone());
    Ok(())
}
