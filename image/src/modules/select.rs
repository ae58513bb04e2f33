//! Picks the wanted modules and everything they need, in load order.
//!
//! - `depends=` (hard dependencies) must be present, or built in; otherwise the
//!   image would be broken and selection fails.
//! - `softdep=` `pre:`/`post:` entries are pulled in too. They may name an
//!   alias (ext4 says `pre: crypto-crc32c`), which is resolved to every module
//!   providing it. One that nothing provides is reported, not fatal.
//! - A wanted name that is no module file is reported as built-in (listed in
//!   `modules.builtin`) or absent; a wanted name that is an alias is resolved.

use std::collections::{BTreeMap, BTreeSet};

use super::index::{IndexError, LoadedModule, ModuleIndex};
use landfall_formats::kmod::module_name as normalize_module_name;

/// Why a selection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// Reading a module failed.
    #[error("Reading the modules tree")]
    Index(#[from] IndexError),
    /// A module depends on one that is neither present nor built in.
    #[error("Module {module} depends on {dependency}, which this kernel has neither as a file nor built in")]
    MissingDependency {
        /// The module with the dependency.
        module: String,
        /// The missing dependency.
        dependency: String,
    },
    /// Hard dependencies form a cycle (a broken tree; depmod refuses it too).
    #[error("Dependency cycle through module {0}")]
    Cycle(String),
}

/// One module chosen for the image.
#[derive(Debug, Clone)]
pub struct SelectedModule {
    /// The module as read from the tree.
    pub module: LoadedModule,
    /// Normalised names of its direct hard dependencies present as files.
    pub depends: Vec<String>,
    /// Image paths of all its hard dependencies, transitively, ordered as
    /// depmod orders them: loading from the LAST entry to the first loads
    /// every module after the ones it needs.
    pub dep_closure: Vec<String>,
}

impl SelectedModule {
    /// Normalised module name.
    pub fn name(&self) -> &str {
        &self.module.file.name
    }

    /// Path relative to `lib/modules/<version>` inside the image.
    pub fn image_path(&self) -> String {
        self.module.file.image_path()
    }
}

/// The result of [`select_modules`].
#[derive(Debug, Clone, Default)]
pub struct ModuleSelection {
    /// Chosen modules in a valid load order (dependencies first).
    pub modules: Vec<SelectedModule>,
    /// Wanted names that are built into the kernel (or whose alias a built-in provides).
    pub builtin: Vec<String>,
    /// Wanted names this kernel has neither as a module nor built in.
    pub absent: Vec<String>,
    /// `(module, softdep)` pairs where nothing provides the soft dependency.
    pub unresolved_softdeps: Vec<(String, String)>,
}

impl ModuleSelection {
    /// Names of the chosen modules, in load order.
    pub fn names(&self) -> Vec<String> {
        self.modules.iter().map(|m| m.name().to_owned()).collect()
    }
}

/// Selects `wanted` (module names or aliases) and their dependencies.
pub fn select_modules(
    index: &ModuleIndex,
    wanted: &[impl AsRef<str>],
) -> Result<ModuleSelection, SelectError> {
    let mut selection = ModuleSelection::default();
    let mut loaded: BTreeMap<String, LoadedModule> = BTreeMap::new();
    let mut queue: Vec<String> = Vec::new();

    for raw in wanted {
        let raw = raw.as_ref().trim();
        if raw.is_empty() {
            continue;
        }
        let name = normalize_module_name(raw);
        if index.get(&name).is_some() {
            queue.push(name);
        } else if index.is_builtin(&name) || index.builtin_provides(raw) {
            push_unique(&mut selection.builtin, raw);
        } else {
            let providers = index.providers_of(raw)?;
            if providers.is_empty() {
                push_unique(&mut selection.absent, raw);
            }
            queue.extend(providers);
        }
    }

    while let Some(name) = queue.pop() {
        if loaded.contains_key(&name) {
            continue;
        }
        let Some(file) = index.get(&name) else {
            continue;
        };
        let module = index.load(file)?;
        for dependency in &module.info.depends {
            let dep = normalize_module_name(dependency);
            if index.get(&dep).is_some() {
                queue.push(dep);
            } else if !index.is_builtin(&dep) {
                return Err(SelectError::MissingDependency {
                    module: name.clone(),
                    dependency: dependency.clone(),
                });
            }
        }
        let soft = module
            .info
            .softdep_pre
            .iter()
            .chain(&module.info.softdep_post);
        for softdep in soft {
            let dep = normalize_module_name(softdep);
            if index.get(&dep).is_some() {
                queue.push(dep);
                continue;
            }
            if index.is_builtin(&dep) || index.builtin_provides(softdep) {
                continue;
            }
            let providers = index.providers_of(softdep)?;
            if providers.is_empty() {
                selection
                    .unresolved_softdeps
                    .push((name.clone(), softdep.clone()));
            }
            queue.extend(providers);
        }
        loaded.insert(name, module);
    }

    let order = load_order(&loaded, index)?;
    let position: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    for name in &order {
        let Some(module) = loaded.get(name).cloned() else {
            continue;
        };
        let depends = present_deps(&module, index);
        let mut closure = BTreeSet::new();
        let mut stack = depends.clone();
        while let Some(dep) = stack.pop() {
            if let Some(dep_module) = loaded.get(&dep) {
                if closure.insert(dep) {
                    stack.extend(present_deps(dep_module, index));
                }
            }
        }
        let mut closure: Vec<(usize, &LoadedModule)> = closure
            .iter()
            .filter_map(|dep| Some((*position.get(dep.as_str())?, loaded.get(dep)?)))
            .collect();
        closure.sort_by_key(|(position, _)| std::cmp::Reverse(*position));
        let dep_closure = closure
            .iter()
            .map(|(_, dep)| dep.file.image_path())
            .collect();
        selection.modules.push(SelectedModule {
            module,
            depends,
            dep_closure,
        });
    }
    Ok(selection)
}

/// Direct hard dependencies that exist as files (built-ins need no loading).
fn present_deps(module: &LoadedModule, index: &ModuleIndex) -> Vec<String> {
    let mut deps: Vec<String> = module
        .info
        .depends
        .iter()
        .map(|d| normalize_module_name(d))
        .filter(|d| index.get(d).is_some())
        .collect();
    deps.sort();
    deps.dedup();
    deps
}

/// Depth-first post-order over hard dependencies, names visited in sorted
/// order, so the result is deterministic and every module follows its deps.
fn load_order(
    loaded: &BTreeMap<String, LoadedModule>,
    index: &ModuleIndex,
) -> Result<Vec<String>, SelectError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    let mut order = Vec::new();
    for (root, root_module) in loaded {
        if marks.contains_key(root.as_str()) {
            continue;
        }
        // Explicit stack of (name, next dependency index) to avoid recursion.
        let mut stack: Vec<(&str, Vec<String>, usize)> =
            vec![(root.as_str(), present_deps(root_module, index), 0)];
        marks.insert(root.as_str(), Mark::Visiting);
        while let Some((name, deps, next)) = stack.last_mut() {
            if let Some(dep) = deps.get(*next).cloned() {
                *next += 1;
                let Some((key, module)) = loaded.get_key_value(&dep) else {
                    continue;
                };
                match marks.get(key.as_str()) {
                    Some(Mark::Done) => {}
                    Some(Mark::Visiting) => return Err(SelectError::Cycle(dep)),
                    None => {
                        marks.insert(key.as_str(), Mark::Visiting);
                        stack.push((key.as_str(), present_deps(module, index), 0));
                    }
                }
            } else {
                let name = *name;
                marks.insert(name, Mark::Done);
                order.push(name.to_owned());
                stack.pop();
            }
        }
    }
    Ok(order)
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::depfiles::{modules_alias, modules_dep, modules_softdep};
    use crate::modules::test_elf::tiny_elf;
    use std::fs;
    use std::path::Path;

    fn module(root: &Path, rel: &str, modinfo: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, tiny_elf(modinfo.replace(';', "\0").as_bytes())).unwrap();
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("6.9.0-test");
        module(&root, "kernel/a/top-level.ko", "name=top_level;depends=mid,base;alias=fs-top;softdep=pre: crypto-x post: nothing-provides-this");
        module(&root, "kernel/b/mid.ko", "name=mid;depends=base;");
        module(&root, "kernel/b/base.ko", "name=base;depends=;");
        module(
            &root,
            "kernel/c/x-impl.ko",
            "name=x_impl;depends=;alias=crypto-x;alias=x",
        );
        module(&root, "kernel/d/broken.ko", "name=broken;depends=ghost;");
        module(
            &root,
            "kernel/e/uses-builtin.ko",
            "name=uses_builtin;depends=bi;",
        );
        module(&root, "kernel/f/cyc1.ko", "name=cyc1;depends=cyc2;");
        module(&root, "kernel/f/cyc2.ko", "name=cyc2;depends=cyc1;");
        fs::write(
            root.join("modules.builtin"),
            "kernel/net/packet/af_packet.ko\nkernel/z/bi.ko\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn selects_dependencies_softdeps_and_reports_the_rest() {
        let dir = tree();
        let index = ModuleIndex::scan(&dir.path().join("6.9.0-test")).unwrap();
        assert_eq!(index.version(), "6.9.0-test");
        let sel = select_modules(
            &index,
            &["top-level", "af_packet", "nonexistent", "uses_builtin"],
        )
        .unwrap();
        assert_eq!(
            sel.names(),
            ["base", "mid", "top_level", "uses_builtin", "x_impl"]
        );
        assert_eq!(sel.builtin, ["af_packet"]);
        assert_eq!(sel.absent, ["nonexistent"]);
        assert_eq!(
            sel.unresolved_softdeps,
            [("top_level".to_owned(), "nothing-provides-this".to_owned())]
        );

        let dep = modules_dep(&sel);
        assert_eq!(
            dep,
            "kernel/b/base.ko:\n\
             kernel/b/mid.ko: kernel/b/base.ko\n\
             kernel/a/top-level.ko: kernel/b/mid.ko kernel/b/base.ko\n\
             kernel/e/uses-builtin.ko:\n\
             kernel/c/x-impl.ko:\n"
        );
        let alias = modules_alias(&sel);
        assert!(alias.contains("\nalias fs-top top_level\n"), "{alias}");
        assert!(
            alias.contains("\nalias crypto-x x_impl\nalias x x_impl\n"),
            "{alias}"
        );
        assert_eq!(alias.lines().filter(|l| l.starts_with("alias ")).count(), 3);
        assert_eq!(
            modules_softdep(&sel).lines().nth(1),
            Some("softdep top_level pre: crypto-x post: nothing-provides-this")
        );
    }

    #[test]
    fn wanted_alias_resolves_to_its_provider() {
        let dir = tree();
        let index = ModuleIndex::scan(&dir.path().join("6.9.0-test")).unwrap();
        let sel = select_modules(&index, &["crypto-x"]).unwrap();
        assert_eq!(sel.names(), ["x_impl"]);
    }

    #[test]
    fn missing_hard_dependency_and_cycles_fail() {
        let dir = tree();
        let index = ModuleIndex::scan(&dir.path().join("6.9.0-test")).unwrap();
        assert!(matches!(
            select_modules(&index, &["broken"]),
            Err(SelectError::MissingDependency { dependency, .. }) if dependency == "ghost"
        ));
        assert!(matches!(
            select_modules(&index, &["cyc1"]),
            Err(SelectError::Cycle(_))
        ));
    }
}
