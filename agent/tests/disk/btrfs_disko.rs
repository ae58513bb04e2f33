//! disko's `btrfs-subvolumes` and `btrfs-only-root-subvolume` examples (as
//! disko evaluates them) applied by `landfall-agent disk apply` to image
//! files: partitions, labels and type codes as disko makes them, a btrfs
//! formatted by the native mkfs, the subvolumes and swapfiles, and
//! `btrfs check` clean. The ESP is vfat, which this host's kernel cannot
//! mount, so the apply runs with `--no-mount` (the subvolume step mounts
//! only the btrfs top level); mounts with `subvol=` are checked in
//! `disk/btrfs_volumes.rs` on a layout without an ESP.

use crate::common;

use common::*;

fn apply(layout: &str, img: &Image) -> String {
    let (ok, out, err) = apply_main(&fixture(layout), img.p(), &[]);
    assert!(ok, "apply failed:\n{out}\n{err}");
    out
}

/// The test's own loop device with its partitions added by partx.
fn attach(img: &Image) -> Loop {
    let lo = Loop::attach(&img.path, 512);
    tool_ok("partx", "util-linux", &["-a", &lo.dev]);
    lo
}

fn check_table(lo: &Loop) {
    sgdisk_verify(&lo.dev);
    let rows = sgdisk_table(&lo.dev);
    let got: Vec<(&str, &str)> = rows.iter().map(|r| (r.3.as_str(), r.4.as_str())).collect();
    assert_eq!(
        got,
        vec![("EF00", "disk-main-ESP"), ("8300", "disk-main-root")]
    );
    fsck_fat_clean(&lo.part(1));
    let root = blkid(&lo.part(2), true);
    assert_eq!(
        root.get("TYPE").map(String::as_str),
        Some("btrfs"),
        "{root:?}"
    );
}

#[test]
fn disko_btrfs_subvolumes_applies_and_a_rerun_changes_nothing() {
    let img = Image::new(2 << 30);
    let out = apply("disko-btrfs-subvolumes.json", &img);
    assert!(out.contains("applied: "), "{out}");
    {
        let lo = attach(&img);
        check_table(&lo);
        {
            let top = BtrfsTop::mount(&lo.part(2));
            let list = tool_ok("btrfs", "btrfs-progs", &["subvolume", "list", top.p()]);
            let mut paths: Vec<&str> = list
                .lines()
                .filter_map(|l| l.split(" path ").nth(1))
                .collect();
            paths.sort();
            assert_eq!(
                paths,
                vec!["home", "home/user", "nix", "rootfs", "swap", "test"]
            );
            for f in ["swapfile", "swapfile1", "swap/swapfile", "swap/rel-path"] {
                let p = top.path.join(f);
                assert_eq!(std::fs::metadata(&p).unwrap().len(), 20 << 20, "{f}");
                let attrs = tool_ok("lsattr", "e2fsprogs", &[p.to_str().unwrap()]);
                assert!(
                    attrs.split_whitespace().next().unwrap().contains('C'),
                    "{attrs}"
                );
                tool_ok(
                    "btrfs",
                    "btrfs-progs",
                    &["inspect-internal", "map-swapfile", p.to_str().unwrap()],
                );
                tool_ok("swapon", "mount", &[p.to_str().unwrap()]);
                tool_ok("swapoff", "mount", &[p.to_str().unwrap()]);
            }
        }
        btrfs_check_clean(&lo.part(2));
    }
    let before = img.sha256();
    let out = apply("disko-btrfs-subvolumes.json", &img);
    assert!(
        out.contains("already applied: the disks hold this layout; nothing was destroyed"),
        "{out}"
    );
    assert_eq!(img.sha256(), before, "a re-run must not write");
}

#[test]
fn disko_btrfs_only_root_subvolume_applies() {
    let img = Image::new(2 << 30);
    apply("disko-btrfs-only-root-subvolume.json", &img);
    let lo = attach(&img);
    check_table(&lo);
    {
        let top = BtrfsTop::mount(&lo.part(2));
        let list = tool_ok("btrfs", "btrfs-progs", &["subvolume", "list", top.p()]);
        assert_eq!(list.trim(), "", "no subvolumes: {list}");
        std::fs::write(top.path.join("file"), b"written").unwrap();
    }
    {
        let top = BtrfsTop::mount(&lo.part(2));
        assert_eq!(std::fs::read(top.path.join("file")).unwrap(), b"written");
    }
    btrfs_check_clean(&lo.part(2));
}
