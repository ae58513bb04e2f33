//! The busybox initramfs: read back by the independent `cpio` tool, modules in
//! dependency order.

use std::process::Command;

use landfall_tests::initramfs::cpio::NewcWriter;
use landfall_tests::initramfs::modules;
use landfall_tests::{debian_kernel, is_static_elf, BusyboxInitramfs};

fn cpio_tool() -> &'static str {
    assert!(
        landfall_tests::fixtures::find_in_path("cpio").is_some(),
        "cpio is missing: install the Debian package cpio"
    );
    "cpio"
}

#[test]
fn newc_round_trips_through_gnu_cpio() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = NewcWriter::new(Vec::new());
    w.directory("etc", 0o755).unwrap();
    w.file("etc/hello", 0o640, b"hello world\n").unwrap();
    w.file("odd", 0o755, &[1, 2, 3, 4, 5]).unwrap();
    w.symlink("etc/link", "hello").unwrap();
    let archive = w.finish().unwrap();
    std::fs::write(dir.path().join("a.cpio"), &archive).unwrap();

    let list = Command::new(cpio_tool())
        .args(["-t", "--quiet", "-F"])
        .arg(dir.path().join("a.cpio"))
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "etc\netc/hello\nodd\netc/link\n"
    );

    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let extract = Command::new("cpio")
        .args(["-i", "-d", "--quiet", "--no-absolute-filenames", "-F"])
        .arg(dir.path().join("a.cpio"))
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(extract.status.success(), "{extract:?}");
    assert_eq!(
        std::fs::read(out.join("etc/hello")).unwrap(),
        b"hello world\n"
    );
    assert_eq!(std::fs::read(out.join("odd")).unwrap(), [1, 2, 3, 4, 5]);
    assert_eq!(
        std::fs::read_link(out.join("etc/link")).unwrap().to_str(),
        Some("hello")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("etc/hello"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn nvme_needs_its_dependencies_first() {
    let kernel = debian_kernel().unwrap();
    let files = modules::resolve(&kernel.modules, &["nvme"]).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| modules::module_name(f).unwrap())
        .collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} missing from {names:?}"))
    };
    assert_eq!(names.last().map(String::as_str), Some("nvme"));
    assert!(pos("nvme_core") < pos("nvme"));
    for dep in modules::depends(&files[pos("nvme_core")]).unwrap() {
        assert!(
            pos(&dep) < pos("nvme_core"),
            "{dep} after nvme_core: {names:?}"
        );
    }
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
}

#[test]
fn a_missing_module_is_named() {
    let kernel = debian_kernel().unwrap();
    let err = modules::resolve(&kernel.modules, &["landfall_no_such_module"]).unwrap_err();
    assert!(err.to_string().contains("landfall_no_such_module"), "{err}");
}

#[test]
fn busybox_image_holds_init_busybox_and_modules() {
    let kernel = debian_kernel().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = BusyboxInitramfs::new()
        .unwrap()
        .modules(&kernel, &["nvme"])
        .unwrap()
        .script("echo hi")
        .file("/etc/motd", "welcome\n", 0o644)
        .write(&dir.path().join("initrd"))
        .unwrap();
    let list = Command::new(cpio_tool())
        .args(["-t", "--quiet", "-F"])
        .arg(&image)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    for want in [
        "init",
        "bin/busybox",
        "bin/sh",
        "dev/console",
        "etc/motd",
        "lib/modules/nvme.ko",
        "lib/modules/nvme-core.ko",
    ] {
        assert!(names.lines().any(|l| l == want), "{want} missing: {names}");
    }
    assert!(is_static_elf(&std::fs::read("/bin/busybox").unwrap()));
}

/// A dynamically linked Debian binary added with `executable` runs in a chroot
/// of the unpacked image: its libraries and loader came along.
#[test]
fn dynamic_executables_bring_their_libraries() {
    let zstd = std::path::Path::new("/usr/bin/zstd");
    assert!(zstd.is_file(), "install the Debian package zstd");
    let dir = tempfile::tempdir().unwrap();
    let image = BusyboxInitramfs::new()
        .unwrap()
        .executable(zstd, "/usr/bin/zstd")
        .unwrap()
        .write(&dir.path().join("initrd"))
        .unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let extract = Command::new(cpio_tool())
        .args(["-i", "-d", "--quiet", "--no-absolute-filenames", "-F"])
        .arg(&image)
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(extract.status.success(), "{extract:?}");
    assert!(root.join("lib64/ld-linux-x86-64.so.2").is_file());
    let run = Command::new("chroot")
        .arg(&root)
        .args(["/usr/bin/zstd", "-V"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("Zstandard"),
        "{run:?}"
    );
}
