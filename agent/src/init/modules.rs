//! Kernel module loading for the RAM image: every device's `modalias` is matched
//! against `modules.alias`, and matching modules are loaded with finit_module(2),
//! dependencies first from `modules.dep`. Also loads the filesystem modules later
//! steps need. A missing index or a module that fails to load is logged and
//! skipped — the agent must come up regardless. As modprobe does, a module gets
//! the `module.param=value` words of the kernel command line that name it
//! (`nvme_core.io_timeout=4294967295`, which cloud images set for network disks).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use landfall_formats::kmod::{module_name, parse_modules_alias, providers, Alias, ModulesDep};
/// The modules loaded by name: at boot (filesystems), and when a layout needs
/// them (btrfs, device-mapper). landfall-image builds its `DEFAULT_MODULES` from
/// the same lists, so the image carries each one.
pub use landfall_formats::kmod::{BTRFS_MODULES, DEVICE_MAPPER_MODULES, FILESYSTEM_MODULES};

/// The parsed module index of one kernel (`modules.dep` and `modules.alias`,
/// read with landfall-formats' `kmod`, the definitions the image writes them by).
#[derive(Debug, Default)]
pub struct ModuleIndex {
    dir: PathBuf,
    dep: ModulesDep,
    aliases: Vec<Alias>,
}

impl ModuleIndex {
    /// Reads `modules.dep` and `modules.alias` from `dir` (/lib/modules/<release>).
    /// A missing `modules.dep` is an error; a missing `modules.alias` is logged and
    /// leaves alias matching empty.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let dep = fs::read_to_string(dir.join("modules.dep"))?;
        let alias = match fs::read_to_string(dir.join("modules.alias")) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(
                    "No modules.alias in {} ({e}): hardware drivers will not be matched",
                    dir.display()
                );
                String::new()
            }
        };
        Ok(Self::parse(dir, &dep, &alias))
    }

    pub fn parse(dir: &Path, dep: &str, alias: &str) -> Self {
        ModuleIndex {
            dir: dir.to_path_buf(),
            dep: ModulesDep::parse(dep),
            aliases: parse_modules_alias(alias),
        }
    }

    /// Module names whose alias pattern matches `modalias`.
    pub fn match_alias(&self, modalias: &str) -> Vec<String> {
        providers(&self.aliases, modalias)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// `name` and its dependencies, dependencies first, each once.
    pub fn load_order(&self, name: &str) -> Vec<String> {
        self.dep.load_order(name)
    }

    fn path_of(&self, name: &str) -> Option<PathBuf> {
        self.dep.path_of(name).map(|p| self.dir.join(p))
    }
}

/// Every `modalias` under /sys/devices.
pub fn device_modaliases() -> BTreeSet<String> {
    fn walk(dir: &Path, depth: usize, out: &mut BTreeSet<String>) {
        if depth > 12 {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            if ft.is_dir() && !ft.is_symlink() {
                walk(&p, depth + 1, out);
            } else if ft.is_file() && e.file_name() == "modalias" {
                if let Ok(s) = fs::read_to_string(&p) {
                    let s = s.trim();
                    if !s.is_empty() {
                        out.insert(s.to_string());
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(Path::new("/sys/devices"), 0, &mut out);
    out
}

/// Loads modules, remembering what was tried.
pub struct ModuleLoader {
    index: ModuleIndex,
    tried: HashSet<String>,
    builtin: HashSet<String>,
    /// Normalised module name → its parameters from the kernel command line.
    params: HashMap<String, String>,
}

/// The `module.param=value` words of a kernel command line, per normalised
/// module name, as modprobe collects them: `param=value` joined by spaces in
/// command-line order. Quoted values (`mod.p="a b"`) keep their quotes, which
/// the kernel's own parameter parser understands. Words without a dot before
/// the first `=` are the kernel's own and are left out.
pub fn cmdline_params(cmdline: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for word in split_cmdline(cmdline) {
        let key = word.split('=').next().unwrap_or("");
        let Some((module, param)) = key.split_once('.') else {
            continue;
        };
        if module.is_empty() || param.is_empty() {
            continue;
        }
        let setting = &word[module.len() + 1..];
        let e = out.entry(module_name(module)).or_default();
        if !e.is_empty() {
            e.push(' ');
        }
        e.push_str(setting);
    }
    out
}

/// Splits a command line into words; double quotes group spaces, as the kernel's parser does.
fn split_cmdline(s: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match (c, start) {
            ('"', _) => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            (c, Some(st)) if c.is_whitespace() && !quoted => {
                words.push(&s[st..i]);
                start = None;
            }
            (c, None) if !c.is_whitespace() => start = Some(i),
            _ => {}
        }
    }
    if let Some(st) = start {
        words.push(&s[st..]);
    }
    words
}

impl ModuleLoader {
    pub fn new(index: ModuleIndex) -> Self {
        let builtin = fs::read_to_string(index.dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .map(module_name)
            .collect();
        Self {
            index,
            tried: HashSet::new(),
            builtin,
            params: HashMap::new(),
        }
    }

    /// Gives modules the parameters `cmdline` names for them (see [`cmdline_params`]).
    pub fn with_cmdline(mut self, cmdline: &str) -> Self {
        self.params = cmdline_params(cmdline);
        self
    }

    /// Loads `name` with its dependencies; returns how many modules were newly loaded.
    pub fn load(&mut self, name: &str) -> usize {
        let mut loaded = 0;
        for m in self.index.load_order(name) {
            if !self.tried.insert(m.clone()) || self.builtin.contains(&m) {
                continue;
            }
            let Some(path) = self.index.path_of(&m) else {
                tracing::debug!("Module {m} is not in this image");
                continue;
            };
            let mut params = self.params.get(&m).map(String::as_str).unwrap_or("");
            let mut result = finit(&path, params);
            if result == Err(nix::errno::Errno::EINVAL) && !params.is_empty() {
                // A bad value must not cost the machine its disk driver.
                tracing::warn!(
                    "Module {m} refused the command line's parameters {params}; loading it without them"
                );
                params = "";
                result = finit(&path, params);
            }
            match result {
                Ok(()) => {
                    if params.is_empty() {
                        tracing::debug!("Loaded module {m}");
                    } else {
                        tracing::info!("Loaded module {m} with {params}");
                    }
                    loaded += 1;
                }
                Err(nix::errno::Errno::EEXIST) => {}
                // The module is for hardware or firmware this machine lacks (crc32c-intel
                // without SSE4.2, efivarfs under BIOS): nothing is wrong.
                Err(nix::errno::Errno::ENODEV) => {
                    tracing::info!("Module {m}: not for this machine")
                }
                Err(e) => tracing::warn!("Module {m} failed to load ({}): {e}", path.display()),
            }
        }
        loaded
    }

    /// Matches every device against the aliases and loads what matches, repeating
    /// while new drivers reveal new devices (a PCI bridge, a virtio bus).
    pub fn load_for_hardware(&mut self) -> usize {
        let mut total = 0;
        for _round in 0..6 {
            let mut wanted = BTreeSet::new();
            for alias in device_modaliases() {
                wanted.extend(self.index.match_alias(&alias));
            }
            let new: usize = wanted.iter().map(|m| self.load(m)).sum();
            total += new;
            if new == 0 {
                break;
            }
        }
        total
    }
}

fn finit(path: &Path, params: &str) -> nix::Result<()> {
    let f = File::open(path)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let params = std::ffi::CString::new(params).map_err(|_| nix::errno::Errno::EINVAL)?;
    nix::kmod::finit_module(&f, &params, nix::kmod::ModuleInitFlags::empty())
}

/// A loader for the running kernel's modules (`/lib/modules/$(uname -r)`),
/// with the command line's module parameters; `None` (logged) without an index.
fn running_kernel_loader() -> Option<ModuleLoader> {
    let release = crate::sys::uname::kernel_release();
    let dir = Path::new("/lib/modules").join(&release);
    let index = match ModuleIndex::load(&dir) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(
                "No module index in {} ({e}): loading no modules",
                dir.display()
            );
            return None;
        }
    };
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    Some(ModuleLoader::new(index).with_cmdline(&cmdline))
}

/// Loads `names` and their dependencies for a step that needs them now (btrfs
/// for a layout with btrfs content): the image carries such modules, and the
/// agent loads them only when a layout asks. Modules already loaded or built
/// in count as nothing; a missing one is logged — the step's own syscall then
/// fails with a clear error. Returns how many modules were newly loaded.
pub fn load_on_demand(names: &[&str]) -> usize {
    let Some(mut loader) = running_kernel_loader() else {
        return 0;
    };
    let n = names.iter().map(|m| loader.load(m)).sum();
    if n > 0 {
        tracing::info!("Loaded {n} modules for {}", names.join(", "));
    }
    n
}

/// Loads device-mapper and the dm-crypt ciphers ([`DEVICE_MAPPER_MODULES`]) for
/// the running kernel; returns how many were newly loaded. Safe to call again:
/// modules already in the kernel are skipped. Whether device-mapper then works
/// shows when `/dev/mapper/control` opens.
pub fn load_for_device_mapper() -> usize {
    load_on_demand(DEVICE_MAPPER_MODULES)
}

/// Loads hardware drivers and filesystem modules for the running kernel.
pub fn load_all() {
    let Some(mut loader) = running_kernel_loader() else {
        return;
    };
    let hw = loader.load_for_hardware();
    let fs: usize = FILESYSTEM_MODULES.iter().map(|m| loader.load(m)).sum();
    tracing::info!("Loaded {hw} hardware and {fs} filesystem modules");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_parameters_per_module() {
        let p = cmdline_params(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 nvme_core.io_timeout=600 nvme-core.max_retries=9 \
             panic=10 foo.bar=\"a b\" nvme.poll_queues=2 .x=1 y.=2 landfall.debug",
        );
        assert_eq!(p["nvme_core"], "io_timeout=600 max_retries=9");
        assert_eq!(p["foo"], "bar=\"a b\"");
        assert_eq!(p["nvme"], "poll_queues=2");
        assert_eq!(p["landfall"], "debug");
        assert_eq!(p.len(), 4, "{p:?}");
    }

    #[test]
    fn dependencies_come_first_once() {
        let dep = "kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko kernel/lib/crc64.ko\n\
                   kernel/drivers/nvme/host/nvme-core.ko: kernel/lib/crc64.ko\n\
                   kernel/lib/crc64.ko:\n";
        let alias = "alias pci:v*d*sv*sd*bc01sc08i02* nvme\n# comment\n";
        let idx = ModuleIndex::parse(Path::new("/x"), dep, alias);
        assert_eq!(idx.load_order("nvme"), vec!["crc64", "nvme_core", "nvme"]);
        assert_eq!(
            idx.match_alias("pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"),
            vec!["nvme"]
        );
        assert!(idx.match_alias("usb:v1234").is_empty());
    }

    #[test]
    fn missing_alias_index_is_not_fatal_and_missing_dep_is_reported() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("modules.dep"), "kernel/fs/ext4/ext4.ko:\n").unwrap();
        let idx = ModuleIndex::load(d.path()).unwrap();
        assert!(idx.match_alias("pci:v00001AF4d00001000").is_empty());
        assert_eq!(idx.load_order("ext4"), vec!["ext4"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(ModuleIndex::load(empty.path()).is_err());
    }

    #[test]
    fn a_module_that_fails_to_load_is_skipped() {
        // Not an ELF object: finit_module refuses it (or we lack the privilege);
        // either way the loader logs it and goes on, trying it only once.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("kernel")).unwrap();
        std::fs::write(d.path().join("kernel/bogus.ko"), b"not a module").unwrap();
        std::fs::write(d.path().join("modules.dep"), "kernel/bogus.ko:\n").unwrap();
        let mut loader = ModuleLoader::new(ModuleIndex::load(d.path()).unwrap());
        assert_eq!(loader.load("bogus"), 0);
        assert_eq!(loader.load("bogus"), 0);
    }
}
