//! btrfs subvolumes and swapfiles made through the kernel
//! (`landfall_agent::disk::btrfs_volumes` and the disk engine's
//! `BtrfsVolumes`, `Mount` and `SwapFile` steps), on loop devices, checked by
//! btrfs-progs (`btrfs subvolume list`, `inspect-internal map-swapfile`,
//! `check --readonly`), `lsattr`, `swapon` and /proc/self/mountinfo.
//!
//! The filesystem is made by Debian's `mkfs.btrfs` partitioned by `sgdisk`
//! as disko does, so the engine's steps are tested on their own: a
//! partition that already holds a btrfs is not formatted again.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use landfall_agent::disk::{self, btrfs_volumes, ApplyOptions};
use landfall_proto::layout::{Btrfs, Content, Layout};

fn layout(name: &str) -> Layout {
    Layout::from_json(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn btrfs_of(l: &Layout) -> Btrfs {
    l.disks[0]
        .partitions
        .iter()
        .find_map(|p| match &p.content {
            Some(Content::Btrfs(b)) => Some(b.clone()),
            _ => None,
        })
        .unwrap()
}

fn subvolume_list(dev: &str) -> Vec<String> {
    let top = BtrfsTop::mount(dev);
    let out = tool_ok("btrfs", "btrfs-progs", &["subvolume", "list", top.p()]);
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.split(" path ").nth(1))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Check a swapfile the way people would: NOCOW (lsattr `C`), its extents
/// usable as swap (map-swapfile), swapon accepts it.
fn check_swapfile(path: &Path, size: u64) {
    let p = path.to_str().unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().len(), size, "{p}");
    let attrs = tool_ok("lsattr", "e2fsprogs", &[p]);
    let flags = attrs.split_whitespace().next().unwrap();
    assert!(flags.contains('C'), "{p} is not NOCOW: {attrs}");
    tool_ok(
        "btrfs",
        "btrfs-progs",
        &["inspect-internal", "map-swapfile", p],
    );
    let blk = blkid(p, true);
    assert_eq!(blk.get("TYPE").map(String::as_str), Some("swap"), "{blk:?}");
}

#[test]
fn subvolumes_and_swapfiles_of_disko_btrfs_subvolumes_on_a_debian_btrfs() {
    let img = Image::new(512 << 20);
    let lo = Loop::attach(&img.path, 512);
    tool_ok("mkfs.btrfs", "btrfs-progs", &["-q", "-f", &lo.dev]);
    let b = btrfs_of(&layout("disko-btrfs-subvolumes.json"));
    let made = btrfs_volumes::ensure(Path::new(&lo.dev), &b).unwrap();
    let made: Vec<String> = made.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        made,
        vec![
            "subvolume home",
            "subvolume home/user",
            "subvolume nix",
            "subvolume rootfs",
            "subvolume swap",
            "subvolume test",
            "swapfile swapfile",
            "swapfile swapfile1",
            "swapfile swap/swapfile",
            "swapfile swap/rel-path",
        ]
    );
    assert_eq!(
        subvolume_list(&lo.dev),
        vec!["home", "home/user", "nix", "rootfs", "swap", "test"]
    );
    {
        let top = BtrfsTop::mount(&lo.dev);
        for f in ["swapfile", "swapfile1", "swap/swapfile", "swap/rel-path"] {
            let path = top.path.join(f);
            check_swapfile(&path, 20 << 20);
            tool_ok("swapon", "mount", &[path.to_str().unwrap()]);
            let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
            assert!(swaps.contains(path.to_str().unwrap()), "{swaps}");
            tool_ok("swapoff", "mount", &[path.to_str().unwrap()]);
        }
    }
    btrfs_check_clean(&lo.dev);
    // Nothing is missing any more: a second run creates nothing.
    assert!(btrfs_volumes::missing(Path::new(&lo.dev), &b)
        .unwrap()
        .is_empty());
    assert!(btrfs_volumes::ensure(Path::new(&lo.dev), &b)
        .unwrap()
        .is_empty());
}

/// Partition and format as disko would with sgdisk and Debian's mkfs.btrfs.
fn disko_like_btrfs_disk(lo: &Loop) {
    tool_ok(
        "sgdisk",
        "gdisk",
        &[
            "--align-end",
            "--new=1:0:-0",
            "--change-name=1:disk-main-root",
            "--typecode=1:8300",
            &lo.dev,
        ],
    );
    tool_ok("partx", "util-linux", &["-a", &lo.dev]);
    tool_ok(
        "mkfs.btrfs",
        "btrfs-progs",
        &["-q", "-f", "-L", "nixos", &lo.part(1)],
    );
}

fn apply_btrfs_root(lo: &Loop, root: &Path) -> disk::ApplyReport {
    let l = layout("btrfs-root.json");
    let overrides: BTreeMap<String, PathBuf> =
        [("main".to_string(), PathBuf::from(&lo.dev))].into();
    let disks = disk::open_disks(&l, &overrides, true, 512).unwrap();
    let plan = disk::plan_layout(
        &l,
        &disks,
        &landfall_proto::layout::PlanOptions::keep_existing(),
    )
    .unwrap();
    let opts = ApplyOptions {
        root: root.to_path_buf(),
        mount: true,
        swapon: true,
        force: false,
    };
    disk::apply(&plan, &disks, &opts, &mut |_| {})
        .unwrap_or_else(|e| panic!("{}", landfall_agent::steps::error_chain(&e)))
}

fn unmount_all(root: &Path) {
    let l = layout("btrfs-root.json");
    let swapfile = root.join("swap/swapfile");
    let _ = std::process::Command::new("swapoff")
        .arg(&swapfile)
        .status();
    for mp in ["swap", "nix", "home", ""] {
        let _ = std::process::Command::new("umount")
            .arg(root.join(mp))
            .status();
    }
    drop(l);
}

/// One mountinfo line of `target`: (fs type, mount options, super options).
fn mountinfo(target: &Path) -> Option<(String, String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let dash = f.iter().position(|x| *x == "-")?;
        (Path::new(f[4]) == target).then(|| {
            (
                f[dash + 1].to_string(),
                f[5].to_string(),
                f[dash + 3].to_string(),
            )
        })
    })
}

/// The subvolumes of `btrfs-root.json` mounted under `root` with their
/// options (as /proc/self/mountinfo shows them) and its swapfile active with
/// priority 5.
fn check_mounted(root: &Path) {
    for (mp, subvol, opt) in [
        ("", "/root", "compress=zstd"),
        ("home", "/home", ""),
        ("nix", "/nix", "compress=zstd"),
        ("swap", "/swap", ""),
    ] {
        let (ty, mount_opts, super_opts) =
            mountinfo(&root.join(mp)).unwrap_or_else(|| panic!("{mp} not mounted"));
        assert_eq!(ty, "btrfs");
        assert!(
            super_opts
                .split(',')
                .any(|o| o == format!("subvol={subvol}")),
            "{mp}: {super_opts}"
        );
        if !opt.is_empty() {
            assert!(
                super_opts.split(',').any(|o| o.starts_with(opt)),
                "{mp}: {super_opts}"
            );
        }
        if mp == "nix" {
            assert!(
                mount_opts.split(',').any(|o| o == "noatime"),
                "{mount_opts}"
            );
        }
    }
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
    let sf = root.join("swap/swapfile");
    let line = swaps
        .lines()
        .find(|l| l.starts_with(sf.to_str().unwrap()))
        .unwrap_or_else(|| panic!("swapfile not active: {swaps}"));
    assert!(
        line.split_whitespace().any(|w| w == "5"),
        "priority 5: {line}"
    );
    check_swapfile(&sf, 64 << 20);
}

#[test]
fn apply_mounts_subvolumes_with_their_options_and_a_rerun_adds_only_the_missing() {
    let img = Image::new(1 << 30);
    let lo = Loop::attach(&img.path, 512);
    disko_like_btrfs_disk(&lo);
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();

    let r = apply_btrfs_root(&lo, root);
    let result = std::panic::catch_unwind(|| {
        assert!(
            r.already_applied,
            "the disk already held the table and the btrfs"
        );
        assert!(
            r.formatted.is_empty(),
            "nothing may be formatted: {:?}",
            r.formatted
        );
        assert_eq!(
            r.created,
            vec![
                "subvolume @snapshots/daily",
                "subvolume home",
                "subvolume home/user",
                "subvolume nix",
                "subvolume root",
                "subvolume swap",
                "swapfile swap/swapfile",
            ]
        );
        check_mounted(root);
    });
    unmount_all(root);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
    assert_eq!(
        subvolume_list(&lo.part(1)),
        vec![
            "@snapshots/daily",
            "home",
            "home/user",
            "nix",
            "root",
            "swap"
        ]
    );
    // The nested subvolume's parent is a plain directory, as disko's mkdir -p makes it.
    {
        let top = BtrfsTop::mount(&lo.part(1));
        let m = std::fs::metadata(top.path.join("@snapshots")).unwrap();
        assert!(m.is_dir());
        assert_ne!(std::os::unix::fs::MetadataExt::ino(&m), 256);
        tool_ok(
            "btrfs",
            "btrfs-progs",
            &[
                "subvolume",
                "delete",
                top.path.join("home/user").to_str().unwrap(),
            ],
        );
        std::fs::write(top.path.join("nix/marker"), b"kept").unwrap();
    }
    btrfs_check_clean(&lo.part(1));

    // Second run: only the deleted subvolume is created, nothing formatted.
    let r = apply_btrfs_root(&lo, root);
    let kept = std::fs::read(root.join("nix/marker"));
    unmount_all(root);
    assert!(r.formatted.is_empty(), "{:?}", r.formatted);
    assert_eq!(r.created, vec!["subvolume home/user"]);
    assert_eq!(kept.unwrap(), b"kept");
    assert_eq!(
        subvolume_list(&lo.part(1)),
        vec![
            "@snapshots/daily",
            "home",
            "home/user",
            "nix",
            "root",
            "swap"
        ]
    );
    btrfs_check_clean(&lo.part(1));
}

/// Each bad btrfs layout is refused by `landfall-agent disk apply` with an
/// error naming the field, and the disk is byte-identical afterwards.
#[test]
fn bad_btrfs_layouts_are_refused_and_leave_the_disk_untouched() {
    let img = Image::new(256 << 20);
    {
        let lo = Loop::attach(&img.path, 512);
        disko_like_btrfs_disk(&lo);
    }
    let before = img.sha256();
    let one = |fields: &str| {
        format!(
            r#"{{"disk":{{"main":{{"device":"/dev/vda","content":{{"type":"gpt","partitions":{{"root":{{"size":"100%","content":{{"type":"btrfs",{fields}}}}}}}}}}}}}}}"#
        )
    };
    let c = "disk.main.content.partitions.root.content";
    let cases = [
        (
            one(r#""subvolumes":{"/a/../b":{}}"#),
            format!("{c}.subvolumes./a/../b"),
            "must not contain . or ..",
        ),
        (
            one(r#""subvolumes":{"x":{"name":"/a//b"}}"#),
            format!("{c}.subvolumes.x.name"),
            "empty path component",
        ),
        (
            one(r#""subvolumes":{"a":{"mountpoint":"/"},"b":{"mountpoint":"/"}}"#),
            format!("{c}.subvolumes.b.mountpoint"),
            "duplicate mountpoint \"/\"",
        ),
        (
            one(r#""subvolumes":{"s":{"mountpoint":"/s","swap":{"f":{"size":"1G"}}}}"#),
            format!("{c}.subvolumes.s.swap.f.size"),
            "does not fit",
        ),
        (
            one(r#""extraArgs":["-O","quota"]"#),
            format!("{c}.extraArgs.0"),
            "unsupported mkfs.btrfs argument \"-O\"",
        ),
        (
            one(r#""subvolumes":{"s":{"mountpoint":"/s","swap":{"f":{"size":"2.5G"}}}}"#),
            format!("{c}.subvolumes.s.swap.f.size"),
            "is not a size",
        ),
    ];
    for (json, field, msg) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layout.json");
        std::fs::write(&path, &json).unwrap();
        let (ok, out, err) = apply_main(&path, img.p(), &[]);
        assert!(!ok, "{json} was accepted:\n{out}");
        assert!(err.contains(&field) && err.contains(msg), "{json}:\n{err}");
        assert_eq!(img.sha256(), before, "{json} changed the disk");
    }
}

/// A blank disk: the native mkfs.btrfs formats it (label from `-L`), then the
/// subvolumes, mounts and swapfile as above; `btrfs check` clean after use.
#[test]
fn apply_on_a_blank_disk_formats_natively_then_lays_out_subvolumes() {
    let img = Image::new(1 << 30);
    let lo = Loop::attach(&img.path, 512);
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    let r = apply_btrfs_root(&lo, root);
    let result = std::panic::catch_unwind(|| {
        assert!(!r.already_applied);
        let kinds: Vec<(u32, &str, Option<&str>)> = r
            .formatted
            .iter()
            .map(|(_, n, f)| (*n, f.fs_type, f.label.as_deref()))
            .collect();
        assert_eq!(kinds, vec![(1, "btrfs", Some("nixos"))]);
        assert_eq!(r.created.len(), 7, "{:?}", r.created);
        check_mounted(root);
        std::fs::write(root.join("home/file"), b"home data").unwrap();
    });
    unmount_all(root);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
    // The agent added the partition node (BLKPG) on this loop device.
    let blk = blkid(&lo.part(1), true);
    assert_eq!(
        blk.get("LABEL").map(String::as_str),
        Some("nixos"),
        "{blk:?}"
    );
    assert_eq!(
        subvolume_list(&lo.part(1)),
        vec![
            "@snapshots/daily",
            "home",
            "home/user",
            "nix",
            "root",
            "swap"
        ]
    );
    {
        let top = BtrfsTop::mount(&lo.part(1));
        assert_eq!(
            std::fs::read(top.path.join("home/file")).unwrap(),
            b"home data"
        );
    }
    btrfs_check_clean(&lo.part(1));
}
