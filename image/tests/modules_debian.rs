//! Module selection on the real Debian kernel tree, checked against kmod's
//! own `depmod` run over the selected modules.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Command;

use common::{kernel_tree, require_tool, run};
use landfall_image::modules::{
    modules_alias, modules_dep, modules_softdep, normalize_module_name, select_modules,
    ModuleIndex, ModuleSelection, DEFAULT_MODULES,
};

fn default_selection() -> (ModuleIndex, ModuleSelection) {
    let kernel = kernel_tree();
    let index = ModuleIndex::scan(&kernel.modules_dir).unwrap();
    assert!(index.len() > 1000, "only {} modules found", index.len());
    let selection = select_modules(&index, DEFAULT_MODULES).unwrap();
    (index, selection)
}

/// `path: dep dep` lines keyed by module name, deps as names in file order.
fn parse_dep(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(module, deps)| {
            (
                normalize_module_name(module),
                deps.split_whitespace().map(normalize_module_name).collect(),
            )
        })
        .collect()
}

#[test]
fn default_set_pulls_dependencies_and_reports_builtins() {
    let (_, selection) = default_selection();
    let names: BTreeSet<String> = selection.names().into_iter().collect();
    for expected in [
        "ext4",
        "jbd2",
        "mbcache",
        "crc16",
        "vfat",
        "fat",
        "nvme",
        "nvme_core",
        "virtio_net",
        "net_failover",
        "failover",
        "e1000e",
        "mlx5_core",
        "scsi_mod",
        "sd_mod",
        "ahci",
        "libahci",
        "libata",
        "crc32c_generic",
        "crc32c_intel",
        "efivarfs",
        "loop",
        "dm_mod",
        // dm-crypt for LUKS2's aes-xts-plain64, and what it needs.
        "dm_crypt",
        "xts",
        "ecb",
        "aesni_intel",
        "crypto_simd",
        "cryptd",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        selection.builtin.iter().any(|n| n == "af_packet"),
        "{:?}",
        selection.builtin
    );
    // The generic AES cipher dm-crypt falls back to without AES-NI is built in.
    assert!(
        selection.builtin.iter().any(|n| n == "aes_generic"),
        "{:?}",
        selection.builtin
    );
    assert!(
        selection.absent.is_empty(),
        "absent: {:?}",
        selection.absent
    );
    // ext4 soft-depends on the alias crypto-crc32c, provided by crc32c_generic/intel.
    assert!(
        selection.unresolved_softdeps.is_empty(),
        "{:?}",
        selection.unresolved_softdeps
    );
    eprintln!("{} modules selected: {:?}", names.len(), selection.names());
}

#[test]
fn modules_dep_lists_dependencies_in_loadable_order() {
    let (_, selection) = default_selection();
    let deps = parse_dep(&modules_dep(&selection));
    assert_eq!(deps.len(), selection.modules.len());
    assert_eq!(
        deps["ext4"].iter().collect::<BTreeSet<_>>(),
        ["crc16", "jbd2", "mbcache"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
            .iter()
            .collect()
    );
    // Loading each line's deps from last to first, then the module, must only
    // ever load modules whose own deps are already loaded.
    for (module, list) in &deps {
        let mut loaded = BTreeSet::new();
        for dep in list.iter().rev().chain(std::iter::once(module)) {
            for needed in &deps[dep] {
                assert!(
                    loaded.contains(needed),
                    "{module}: {dep} loaded before {needed}"
                );
            }
            loaded.insert(dep.clone());
        }
    }
}

#[test]
fn generated_files_agree_with_kmod_depmod() {
    require_tool("depmod", "kmod");
    let (index, selection) = default_selection();
    let base = tempfile::tempdir().unwrap();
    let version = index.version();
    let dir = base.path().join("lib/modules").join(version);
    for module in &selection.modules {
        let path = dir.join(module.image_path());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, &module.module.data).unwrap();
    }
    fs::copy(
        index.root().join("modules.builtin"),
        dir.join("modules.builtin"),
    )
    .unwrap();
    run(Command::new("depmod")
        .arg("-b")
        .arg(base.path())
        .arg(version));

    let theirs = parse_dep(&fs::read_to_string(dir.join("modules.dep")).unwrap());
    let ours = parse_dep(&modules_dep(&selection));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "same modules"
    );
    for (module, deps) in &ours {
        let ours: BTreeSet<_> = deps.iter().collect();
        let theirs: BTreeSet<_> = theirs[module].iter().collect();
        assert_eq!(ours, theirs, "dependencies of {module}");
    }

    let alias_lines = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("alias "))
            .map(str::to_owned)
            .collect()
    };
    let theirs = alias_lines(&fs::read_to_string(dir.join("modules.alias")).unwrap());
    let ours = alias_lines(&modules_alias(&selection));
    assert!(ours.len() > 500, "only {} aliases", ours.len());
    assert_eq!(ours, theirs, "modules.alias");

    let softdep_lines = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("softdep "))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        softdep_lines(&modules_softdep(&selection)),
        softdep_lines(&fs::read_to_string(dir.join("modules.softdep")).unwrap()),
        "modules.softdep"
    );
}

#[test]
fn unknown_and_builtin_names_are_reported_not_fatal() {
    let kernel = kernel_tree();
    let index = ModuleIndex::scan(&kernel.modules_dir).unwrap();
    let selection =
        select_modules(&index, &["af-packet", "no_such_module_xyz", "fs-vfat"]).unwrap();
    assert_eq!(selection.builtin, ["af-packet"]);
    assert_eq!(selection.absent, ["no_such_module_xyz"]);
    assert!(
        selection.names().contains(&"vfat".to_owned()),
        "alias fs-vfat resolves to vfat"
    );
}
