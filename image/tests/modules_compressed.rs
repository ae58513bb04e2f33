//! Compressed module trees, as NixOS (`.ko.xz`) and newer distributions
//! (`.ko.zst`, `.ko.gz`) ship them, made from the Debian modules with the
//! standard command-line compressors.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{kernel_tree, require_tool, run};
use landfall_image::modules::{modules_dep, select_modules, ModuleIndex};

/// ext4's closure plus its soft dependency providers.
const MODULES: &[&str] = &[
    "kernel/fs/ext4/ext4.ko",
    "kernel/fs/jbd2/jbd2.ko",
    "kernel/fs/mbcache.ko",
    "kernel/lib/crc16.ko",
    "kernel/crypto/crc32c_generic.ko",
    "kernel/arch/x86/crypto/crc32c-intel.ko",
];

/// Copies MODULES from the Debian tree, compressing each with one of the tools.
fn compressed_tree(dest: &Path) {
    let kernel = kernel_tree();
    // The kernel's own `make modules_install` flags for xz, then xz's defaults (CRC64).
    let tools: [(&str, &[&str]); 4] = [
        ("xz", &["--check=crc32", "--lzma2=dict=1MiB"]),
        ("zstd", &["-q", "--rm"]),
        ("gzip", &["-n"]),
        ("xz", &[]),
    ];
    for (i, rel) in MODULES.iter().enumerate() {
        let target = dest.join(rel);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(kernel.modules_dir.join(rel), &target).unwrap();
        let (tool, args) = tools[i % tools.len()];
        run(Command::new(tool).args(args).arg(&target));
        assert!(!target.exists(), "{tool} left {rel} uncompressed");
    }
    fs::copy(
        kernel.modules_dir.join("modules.builtin"),
        dest.join("modules.builtin"),
    )
    .unwrap();
}

#[test]
fn xz_zstd_and_gzip_modules_are_selected_and_stored_plain() {
    require_tool("xz", "xz-utils");
    require_tool("zstd", "zstd");
    require_tool("gzip", "gzip");
    let kernel = kernel_tree();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join(&kernel.version);
    compressed_tree(&dir);

    let index = ModuleIndex::scan(&dir).unwrap();
    assert_eq!(index.len(), MODULES.len());
    let selection = select_modules(&index, &["ext4"]).unwrap();
    let mut names = selection.names();
    names.sort();
    assert_eq!(
        names,
        [
            "crc16",
            "crc32c_generic",
            "crc32c_intel",
            "ext4",
            "jbd2",
            "mbcache"
        ],
        "ext4, its deps, and the providers of its softdep crypto-crc32c"
    );
    for module in &selection.modules {
        let original = fs::read(kernel.modules_dir.join(module.image_path())).unwrap();
        assert!(
            module.image_path().ends_with(".ko"),
            "{}",
            module.image_path()
        );
        assert!(
            module.module.data == original,
            "{} differs after decompression",
            module.name()
        );
    }
    let dep = modules_dep(&selection);
    assert!(
        dep.contains("kernel/fs/ext4/ext4.ko: "),
        "plain .ko paths in modules.dep:\n{dep}"
    );
    assert!(
        !dep.contains(".xz") && !dep.contains(".zst") && !dep.contains(".gz"),
        "{dep}"
    );
}

#[test]
fn existing_modules_alias_is_used_for_softdeps() {
    require_tool("xz", "xz-utils");
    require_tool("zstd", "zstd");
    require_tool("gzip", "gzip");
    let kernel = kernel_tree();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join(&kernel.version);
    compressed_tree(&dir);
    // A depmod'ed tree (as NixOS ships): the alias table comes from the file,
    // so a provider named only there is found.
    fs::write(
        dir.join("modules.alias"),
        "alias crypto-crc32c crc32c_generic\n",
    )
    .unwrap();
    let index = ModuleIndex::scan(&dir).unwrap();
    let selection = select_modules(&index, &["ext4"]).unwrap();
    let names = selection.names();
    assert!(names.contains(&"crc32c_generic".to_owned()));
    assert!(!names.contains(&"crc32c_intel".to_owned()), "{names:?}");
}
