//! `build_image` on the Debian kernel, with the initrd unpacked by the
//! standard tools (`zstd -d`, GNU `cpio -i`) and checked file by file.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

use common::{kernel_tree, pseudo_random_bytes, require_tool, run};
use landfall_image::{build_image, ImageError, ImageSpec};

/// The contents are what these tests check: a fast zstd level (level 19, what
/// a kexeced image gets, is booted by the harness tier's `image_boot`).
const FAST: i32 = 3;

#[test]
fn image_unpacks_with_zstd_and_cpio() {
    require_tool("zstd", "zstd");
    require_tool("cpio", "cpio");
    let kernel = kernel_tree();
    let work = tempfile::tempdir().unwrap();
    // A 10 MB incompressible dummy agent: the worst case for the initrd size.
    let agent = pseudo_random_bytes(10 * 1000 * 1000, 42);
    let agent_path = work.path().join("landfall-agent");
    fs::write(&agent_path, &agent).unwrap();
    let out = work.path().join("out");
    let spec = ImageSpec {
        kernel: kernel.bzimage.clone(),
        modules_dir: kernel.modules_dir.clone(),
        agent: agent_path,
        extra_modules: vec!["btrfs".into()],
        out_dir: out.clone(),
        zstd_level: FAST,
    };
    let started = std::time::Instant::now();
    let report = build_image(&spec).unwrap();
    eprintln!("{report}built in {:.1?}", started.elapsed());

    assert_eq!(report.kernel_version, kernel.version);
    assert_eq!(
        fs::read(out.join("bzImage")).unwrap(),
        fs::read(&kernel.bzimage).unwrap()
    );
    let initrd = fs::read(out.join("initrd")).unwrap();
    assert_eq!(initrd.len() as u64, report.initrd_size);
    assert_eq!(initrd.len() % 4, 0, "initrd padded for appended archives");
    assert!(
        report.modules.iter().any(|m| m == "btrfs"),
        "extra module included"
    );
    assert!(
        report.modules.iter().any(|m| m == "xor"),
        "btrfs dependency included"
    );

    // The initrd is one zstd frame, then up to 3 NULs so that appended
    // archives start 4-aligned (the kernel skips NULs between archives; the
    // zstd CLI does not, so it gets the frame alone).
    let frame_len = zstd::zstd_safe::find_frame_compressed_size(&initrd).expect("one zstd frame");
    let padding = &initrd[frame_len..];
    assert!(
        padding.len() < 4 && padding.iter().all(|&b| b == 0),
        "after the frame only NUL padding, found {padding:?}"
    );
    let frame_path = work.path().join("initrd.zst");
    fs::write(&frame_path, &initrd[..frame_len]).unwrap();

    // Independent unpacking: zstd CLI, then GNU cpio.
    let cpio = run(Command::new("zstd").args(["-d", "-c"]).arg(&frame_path)).stdout;
    assert_eq!(cpio.len() as u64, report.initrd_uncompressed_size);
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let mut child = Command::new("cpio")
        .args(["-idm", "--no-absolute-filenames", "--quiet"])
        .current_dir(&root)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &cpio).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "cpio -i failed");

    let meta = |p: &str| fs::symlink_metadata(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert!(
        fs::read(root.join("init")).unwrap() == agent,
        "/init is the agent"
    );
    assert_eq!(meta("init").permissions().mode(), 0o100755);
    assert!(meta("dev/console").file_type().is_char_device());
    assert_eq!(meta("dev/console").rdev(), (5 << 8) | 1);
    for dir in ["proc", "sys", "run", "mnt", "etc", "dev"] {
        assert_eq!(meta(dir).permissions().mode(), 0o040755, "{dir}");
    }
    assert_eq!(meta("tmp").permissions().mode(), 0o041777);

    let modules = root.join("lib/modules").join(&kernel.version);
    let dep = fs::read_to_string(modules.join("modules.dep")).unwrap();
    assert_eq!(dep.lines().count(), report.modules.len());
    for line in dep.lines() {
        let (module, deps) = line.split_once(':').unwrap();
        for path in std::iter::once(module).chain(deps.split_whitespace()) {
            let shipped = fs::read(modules.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            let original = fs::read(kernel.modules_dir.join(path)).unwrap();
            assert!(shipped == original, "{path} differs from the kernel tree");
        }
    }
    let alias = fs::read_to_string(modules.join("modules.alias")).unwrap();
    assert!(
        alias.lines().any(|l| l == "alias fs-ext4 ext4"),
        "fs-ext4 alias"
    );
    assert!(alias
        .lines()
        .any(|l| l.starts_with("alias virtio:d00000001v") && l.ends_with(" virtio_net")));
    assert!(modules.join("modules.softdep").is_file());
    assert_eq!(
        fs::read(modules.join("modules.builtin")).unwrap(),
        fs::read(kernel.modules_dir.join("modules.builtin")).unwrap()
    );
}

#[test]
fn same_inputs_give_identical_initrds() {
    let kernel = kernel_tree();
    let work = tempfile::tempdir().unwrap();
    let agent = work.path().join("agent");
    fs::write(&agent, b"\x7fELF not really").unwrap();
    let spec = |out: &str| ImageSpec {
        kernel: kernel.bzimage.clone(),
        modules_dir: kernel.modules_dir.clone(),
        agent: agent.clone(),
        extra_modules: vec![],
        out_dir: work.path().join(out),
        zstd_level: FAST,
    };
    build_image(&spec("a")).unwrap();
    build_image(&spec("b")).unwrap();
    assert!(
        fs::read(work.path().join("a/initrd")).unwrap()
            == fs::read(work.path().join("b/initrd")).unwrap(),
        "initrd is not reproducible"
    );
}

#[test]
fn bad_inputs_are_typed_errors() {
    let kernel = kernel_tree();
    let work = tempfile::tempdir().unwrap();
    let empty = work.path().join("empty");
    fs::write(&empty, b"").unwrap();
    let spec = ImageSpec {
        kernel: kernel.bzimage.clone(),
        modules_dir: kernel.modules_dir.clone(),
        agent: empty.clone(),
        extra_modules: vec![],
        out_dir: work.path().join("out"),
        zstd_level: FAST,
    };
    assert!(matches!(build_image(&spec), Err(ImageError::EmptyAgent(_))));
    let missing = ImageSpec {
        agent: work.path().join("nope"),
        ..spec.clone()
    };
    assert!(matches!(
        build_image(&missing),
        Err(ImageError::ReadAgent { .. })
    ));
    // Modules of another version than the kernel's.
    let other = work.path().join("9.9.9-other");
    fs::create_dir(&other).unwrap();
    let mismatch = ImageSpec {
        modules_dir: other,
        ..spec.clone()
    };
    assert!(matches!(
        build_image(&mismatch),
        Err(ImageError::VersionMismatch { .. })
    ));
    assert!(
        !work.path().join("out").exists(),
        "nothing written on failure"
    );
}
