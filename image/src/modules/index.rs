//! The modules of one kernel: found by walking `lib/modules/<version>`, read on
//! demand (decompressed, `.modinfo` parsed), and an alias table built lazily.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::decompress::{decompress, Compression, DecompressError};
use super::elf::{modinfo_section, ElfError};
use super::modinfo::ModInfo;
use landfall_formats::kmod::{
    alias_matches, module_name as normalize_module_name, parse_modules_alias, providers, Alias,
};

/// Deepest directory nesting we follow (guards against symlink loops).
const MAX_DEPTH: usize = 16;

/// Why the modules directory could not be indexed or a module read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The directory does not exist or cannot be listed.
    #[error("Listing modules directory {path}")]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The directory name is not a kernel version.
    #[error("Modules directory {0} has no version name")]
    NoVersion(PathBuf),
    /// A module file could not be read.
    #[error("Reading module {path}")]
    ReadModule {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A compressed module could not be decompressed.
    #[error("Decompressing module {path}")]
    Decompress {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: DecompressError,
    },
    /// A module's ELF image has no readable `.modinfo`.
    #[error("Reading .modinfo of {path}")]
    Modinfo {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: ElfError,
    },
    /// A metadata file (modules.builtin, modules.alias) could not be read.
    #[error("Reading {path}")]
    ReadMetadata {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// One module file in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Normalised name (`-` → `_`).
    pub name: String,
    /// Path relative to the modules directory, as found (with `.xz` etc.).
    pub rel_path: String,
    /// How the file is compressed.
    pub compression: Compression,
}

impl ModuleFile {
    /// The path the module gets inside the image: `rel_path` without its
    /// compression suffix, since the image stores plain `.ko` files.
    pub fn image_path(&self) -> String {
        let suffix = self.compression.suffix();
        self.rel_path
            .strip_suffix(suffix)
            .unwrap_or(&self.rel_path)
            .to_owned()
    }
}

/// A module read from disk: plain ELF bytes and its parsed `.modinfo`.
#[derive(Debug, Clone)]
pub struct LoadedModule {
    /// Where it came from.
    pub file: ModuleFile,
    /// The decompressed `.ko`.
    pub data: Vec<u8>,
    /// Its `.modinfo`.
    pub info: ModInfo,
}

/// Every module of one kernel, by normalised name.
#[derive(Debug)]
pub struct ModuleIndex {
    root: PathBuf,
    version: String,
    modules: BTreeMap<String, ModuleFile>,
    builtin: BTreeSet<String>,
    builtin_aliases: Vec<(String, String)>,
    aliases: OnceCell<Result<Vec<Alias>, String>>,
}

impl ModuleIndex {
    /// Walks `modules_dir` (`…/lib/modules/<version>`) for `.ko[.xz|.zst|.gz]`
    /// files and reads `modules.builtin` / `modules.builtin.modinfo` if present.
    /// When two files have the same module name, the one under `updates/`
    /// wins, otherwise the first in path order (depmod's rule, simplified).
    pub fn scan(modules_dir: &Path) -> Result<ModuleIndex, IndexError> {
        let version = modules_dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| IndexError::NoVersion(modules_dir.to_owned()))?
            .to_owned();
        let mut files = Vec::new();
        walk(modules_dir, "", 0, &mut files)?;
        files.sort_by(|a: &ModuleFile, b| a.rel_path.cmp(&b.rel_path));
        let mut modules: BTreeMap<String, ModuleFile> = BTreeMap::new();
        for file in files {
            let replace = match modules.get(&file.name) {
                None => true,
                Some(existing) => {
                    file.rel_path.starts_with("updates/")
                        && !existing.rel_path.starts_with("updates/")
                }
            };
            if replace {
                modules.insert(file.name.clone(), file);
            }
        }
        let builtin = match read_optional(&modules_dir.join("modules.builtin"))? {
            Some(text) => String::from_utf8_lossy(&text)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(normalize_module_name)
                .collect(),
            None => BTreeSet::new(),
        };
        let builtin_aliases = match read_optional(&modules_dir.join("modules.builtin.modinfo"))? {
            Some(data) => parse_builtin_aliases(&data),
            None => Vec::new(),
        };
        Ok(ModuleIndex {
            root: modules_dir.to_owned(),
            version,
            modules,
            builtin,
            builtin_aliases,
            aliases: OnceCell::new(),
        })
    }

    /// The kernel version (the directory's name).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The modules directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The module file of a name (either spelling of `-`/`_`).
    pub fn get(&self, name: &str) -> Option<&ModuleFile> {
        self.modules.get(&normalize_module_name(name))
    }

    /// Number of module files found.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// True when no module file was found.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// Whether `modules.builtin` lists the name.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize_module_name(name))
    }

    /// Whether a built-in module provides the alias (from `modules.builtin.modinfo`).
    pub fn builtin_provides(&self, alias: &str) -> bool {
        self.builtin_aliases
            .iter()
            .any(|(pattern, _)| alias_matches(pattern, alias))
    }

    /// Reads, decompresses and parses one module.
    pub fn load(&self, file: &ModuleFile) -> Result<LoadedModule, IndexError> {
        let path = self.root.join(&file.rel_path);
        let raw = fs::read(&path).map_err(|source| IndexError::ReadModule {
            path: path.clone(),
            source,
        })?;
        let data = decompress(raw, file.compression).map_err(|source| IndexError::Decompress {
            path: path.clone(),
            source,
        })?;
        let section = modinfo_section(&mut data.as_slice())
            .map_err(|source| IndexError::Modinfo { path, source })?;
        Ok(LoadedModule {
            file: file.clone(),
            data,
            info: ModInfo::parse(&section),
        })
    }

    /// Names of the modules whose aliases match `alias`, in name order.
    ///
    /// Uses the tree's own `modules.alias` when it has one; otherwise reads
    /// every module's `.modinfo` once (plain modules: only the ELF headers
    /// and the section; compressed ones are decompressed).
    pub fn providers_of(&self, alias: &str) -> Result<Vec<String>, IndexError> {
        let table = self.aliases.get_or_init(|| self.build_alias_table());
        let table = table.as_ref().map_err(|message| IndexError::ReadMetadata {
            path: self.root.join("modules.alias"),
            source: io::Error::other(message.clone()),
        })?;
        let mut names: Vec<String> = providers(table, alias)
            .into_iter()
            .filter(|name| self.modules.contains_key(*name))
            .map(str::to_owned)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn build_alias_table(&self) -> Result<Vec<Alias>, String> {
        let alias_file = self.root.join("modules.alias");
        if let Some(text) = read_optional(&alias_file).map_err(|e| e.to_string())? {
            return Ok(parse_modules_alias(&String::from_utf8_lossy(&text)));
        }
        let mut table = Vec::new();
        for file in self.modules.values() {
            let info = match file.compression {
                Compression::None => {
                    let path = self.root.join(&file.rel_path);
                    let mut handle = File::open(&path).map_err(|e| format!("{path:?}: {e}"))?;
                    match modinfo_section(&mut handle) {
                        Ok(section) => ModInfo::parse(&section),
                        // A broken module only loses its aliases.
                        Err(_) => continue,
                    }
                }
                _ => match self.load(file) {
                    Ok(loaded) => loaded.info,
                    Err(_) => continue,
                },
            };
            for pattern in info.aliases {
                table.push(Alias {
                    pattern,
                    module: file.name.clone(),
                });
            }
        }
        Ok(table)
    }
}

fn walk(dir: &Path, rel: &str, depth: usize, out: &mut Vec<ModuleFile>) -> Result<(), IndexError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let list_err = |source| IndexError::ListDir {
        path: dir.to_owned(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // `build` and `source` point at kernel headers, not modules.
        if depth == 0 && (name == "build" || name == "source") {
            continue;
        }
        let path = entry.path();
        // Follow symlinks: NixOS module trees are often symlink farms.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if meta.is_dir() {
            walk(&path, &child_rel, depth + 1, out)?;
        } else if meta.is_file() {
            if let Some(compression) = Compression::from_file_name(&name) {
                out.push(ModuleFile {
                    name: normalize_module_name(&name),
                    rel_path: child_rel,
                    compression,
                });
            }
        }
    }
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, IndexError> {
    match fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IndexError::ReadMetadata {
            path: path.to_owned(),
            source,
        }),
    }
}

/// `module.alias=pattern` strings of `modules.builtin.modinfo`.
fn parse_builtin_aliases(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter_map(|raw| std::str::from_utf8(raw).ok())
        .filter_map(|text| {
            let (key, pattern) = text.split_once('=')?;
            let (module, field) = key.split_once('.')?;
            (field == "alias").then(|| (pattern.to_owned(), module.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_modinfo_aliases_are_parsed() {
        let data =
            b"crc32c_generic.alias=crypto-crc32c\0crc32c_generic.license=GPL\0x.alias=fs-x\0";
        assert_eq!(
            parse_builtin_aliases(data),
            [
                ("crypto-crc32c".to_owned(), "crc32c_generic".to_owned()),
                ("fs-x".to_owned(), "x".to_owned())
            ]
        );
    }

    #[test]
    fn image_path_drops_compression_suffix() {
        let file = ModuleFile {
            name: "ext4".into(),
            rel_path: "kernel/fs/ext4/ext4.ko.xz".into(),
            compression: Compression::Xz,
        };
        assert_eq!(file.image_path(), "kernel/fs/ext4/ext4.ko");
    }
}
