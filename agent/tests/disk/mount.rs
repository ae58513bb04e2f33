//! Mounting: the agent mounts ext4 partitions of two disks and a tmpfs under a
//! root in mountpoint order with their options, the host kernel takes a tree
//! of files, e2fsck stays clean, `disk mount` mounts the applied layout again,
//! and `--swapon` activates swap.

use crate::common;

use std::path::Path;

use common::*;

/// `(fs_type, source, per-mount options)` of what is mounted at `target`.
fn mounted(target: &Path) -> Option<(String, String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        (Path::new(f[4]) == target).then(|| (r[0].to_string(), r[1].to_string(), f[5].to_string()))
    })
}

/// Unmounts everything under a root on drop, deepest first.
struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        for sub in ["tmp", "home", ""] {
            let _ = std::process::Command::new("umount")
                .arg(self.0.join(sub))
                .status();
        }
    }
}

/// Turns swap off on drop.
struct SwapOff(String);
impl Drop for SwapOff {
    fn drop(&mut self) {
        let _ = std::process::Command::new("swapoff").arg(&self.0).status();
    }
}

fn write_tree(dir: &Path) {
    for i in 0..20 {
        let d = dir.join(format!("d{i}/sub"));
        std::fs::create_dir_all(&d).unwrap();
        for j in 0..10 {
            std::fs::write(d.join(format!("f{j}")), vec![(i * j) as u8; 1000 * j + 1]).unwrap();
        }
    }
    std::os::unix::fs::symlink("d0/sub/f1", dir.join("link")).unwrap();
}

fn check_tree(dir: &Path) {
    for i in 0..20 {
        for j in 0..10 {
            let data = std::fs::read(dir.join(format!("d{i}/sub/f{j}"))).unwrap();
            assert_eq!(data, vec![(i * j) as u8; 1000 * j + 1]);
        }
    }
    assert_eq!(
        std::fs::read_link(dir.join("link")).unwrap(),
        Path::new("d0/sub/f1")
    );
}

#[test]
fn apply_mounts_two_disks_and_tmpfs_then_mount_again() {
    let sys = Image::new(256 << 20);
    let data = Image::new(128 << 20);
    let lsys = Loop::attach(&sys.path, 512);
    let ldata = Loop::attach(&data.path, 4096);
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let layout = fixture("ext4-tmpfs-swap.json");
    let disks = [format!("sys={}", lsys.dev), format!("data={}", ldata.dev)];
    let base = [
        "--layout",
        layout.to_str().unwrap(),
        "--disk",
        &disks[0],
        "--disk",
        &disks[1],
        "--root",
        r.to_str().unwrap(),
    ];
    {
        let _guard = Unmount(r);
        let mut args = vec!["disk", "apply", "--yes"];
        args.extend(base);
        let (ok, out, err) = agent(&args);
        assert!(ok, "apply failed:\n{out}\n{err}");

        let (t, src, opts) = mounted(r).expect("root mounted");
        assert_eq!((t.as_str(), src.as_str()), ("ext4", lsys.part(3).as_str()));
        assert!(opts.starts_with("rw"), "{opts}");
        let (t, src, opts) = mounted(&r.join("home")).expect("/home mounted");
        assert_eq!((t.as_str(), src.as_str()), ("ext4", ldata.part(1).as_str()));
        assert!(opts.contains("nodev") && opts.contains("noatime"), "{opts}");
        let (t, _, _) = mounted(&r.join("tmp")).expect("/tmp mounted");
        assert_eq!(t, "tmpfs");
        let statvfs = nix::sys::statvfs::statvfs(&r.join("tmp")).unwrap();
        assert_eq!(statvfs.blocks() * statvfs.fragment_size(), 16 << 20);

        write_tree(r);
        write_tree(&r.join("home"));
        tool_ok("sync", "coreutils", &[]);
        // A second apply finds everything in place.
        let (ok, out, err) = agent(&args);
        assert!(ok, "{out}\n{err}");
        assert!(out.contains("already applied"), "{out}");
        assert!(!err.contains("…"), "a step ran on the second apply:\n{err}");
    }
    assert!(mounted(r).is_none());
    e2fsck_clean(&lsys.part(3));
    e2fsck_clean(&ldata.part(1));
    let home = blkid(&ldata.part(1), false);
    assert_eq!(home.get("LABEL").map(String::as_str), Some("home"));
    assert_eq!(
        home.get("UUID").map(String::as_str),
        Some("6e1c2f4a-9b3d-4c5e-8f7a-0b1c2d3e4f50")
    );
    assert_eq!(
        home.get("PARTLABEL").map(String::as_str),
        Some("disk-data-home")
    );
    let swap = blkid(&lsys.part(2), false);
    assert_eq!(swap.get("TYPE").map(String::as_str), Some("swap"));
    assert_eq!(swap.get("LABEL").map(String::as_str), Some("swap0"));
    sgdisk_verify(&lsys.dev);
    sgdisk_verify(&ldata.dev);

    // `disk mount` mounts the applied layout again, with the files there, and swap on.
    {
        let _guard = Unmount(r);
        let _swap = SwapOff(lsys.part(2));
        let mut args = vec!["disk", "mount", "--swapon"];
        args.extend(base);
        let (ok, out, err) = agent(&args);
        assert!(ok, "mount failed:\n{out}\n{err}");
        check_tree(r);
        check_tree(&r.join("home"));
        let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
        assert!(swaps.contains(&lsys.part(2)), "{swaps}");
    }
    e2fsck_clean(&lsys.part(3));
    e2fsck_clean(&ldata.part(1));
}

#[test]
fn mount_refuses_a_disk_without_the_layout() {
    let img = Image::new(64 << 20);
    let before = img.sha256();
    let root = tempfile::tempdir().unwrap();
    let layout = fixture("seed.json");
    let (ok, _, err) = agent(&[
        "disk",
        "mount",
        "--layout",
        layout.to_str().unwrap(),
        "--disk",
        &format!("main={}", img.p()),
        "--root",
        root.path().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("not applied on disk main") || err.contains("does not fit"),
        "{err}"
    );
    assert_eq!(img.sha256(), before);
}
