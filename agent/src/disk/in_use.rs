//! Refusals before a disk is rewritten: a read-only device (the kernel's ro
//! flag, e.g. a write-protected or `readonly=on` virtual disk), or a disk in use
//! — a partition (or the disk) mounted or used as swap, a holder stacked on it
//! (device-mapper, md RAID, bcache), or a loop device backed by it. The agent's
//! own root and mounts are covered by the same checks. Checked for every disk
//! the plan writes before the first step runs, so a refusal leaves every disk
//! untouched, and again right before each destructive step.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::DiskError;
use super::partition_sync;
use super::resolve::OpenDisk;
use crate::sys::blk;

/// Devices stacked on `name` or its partitions (`/sys/block/<name>/holders`,
/// `/sys/block/<name>/<part>/holders`), as texts.
fn holders(name: &str) -> Vec<String> {
    let base = PathBuf::from("/sys/block").join(name);
    let mut dirs = vec![(name.to_string(), base.join("holders"))];
    if let Ok(rd) = fs::read_dir(&base) {
        for e in rd.flatten() {
            let part = e.file_name().to_string_lossy().into_owned();
            if part.starts_with(name) {
                dirs.push((part, e.path().join("holders")));
            }
        }
    }
    let mut out = Vec::new();
    for (dev, dir) in dirs {
        if let Ok(rd) = fs::read_dir(dir) {
            for h in rd.flatten() {
                out.push(format!(
                    "/dev/{} is held by {}",
                    dev,
                    h.file_name().to_string_lossy()
                ));
            }
        }
    }
    out.sort();
    out
}

/// Loop devices whose backing file is `disk` (e.g. `losetup /dev/loop0 /dev/vdb`).
fn loop_backers(disk: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/sys/block") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(b) = fs::read_to_string(e.path().join("loop/backing_file")) {
            if Path::new(b.trim()) == disk {
                out.push(format!("/dev/{name} is backed by it"));
            }
        }
    }
    out
}

/// Refuses a disk that must not be rewritten: read-only, or in use.
pub fn refuse_unwritable(o: &OpenDisk) -> Result<(), DiskError> {
    let disk = o.path.display().to_string();
    if blk::is_read_only(&o.file).unwrap_or(false) {
        return Err(DiskError::ReadOnly { disk });
    }
    let mut users = partition_sync::busy_partitions(&o.path).map_err(DiskError::Kernel)?;
    if let Ok(name) = partition_sync::kernel_name(&o.path) {
        users.extend(holders(&name));
    }
    users.extend(loop_backers(&o.path));
    if users.is_empty() {
        Ok(())
    } else {
        Err(DiskError::Busy {
            disk,
            users: users.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::process::Command;

    /// A loop device over a fresh 16 MiB image (`losetup`, util-linux), detached on drop.
    struct Loop(String);

    impl Loop {
        fn new(dir: &Path, name: &str, extra: &[&str]) -> Self {
            let img = dir.join(name);
            fs::write(&img, vec![0u8; 16 << 20]).unwrap();
            Self::over(&img, extra)
        }
        fn over(file: &Path, extra: &[&str]) -> Self {
            let out = Command::new("losetup")
                .args(["--find", "--show"])
                .args(extra)
                .arg(file)
                .output()
                .expect("losetup (apt-get install util-linux)");
            assert!(
                out.status.success(),
                "losetup: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Loop(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        fn open(&self) -> OpenDisk {
            super::super::resolve::open_disk("d", Path::new(&self.0), false, 512).unwrap()
        }
    }

    impl Drop for Loop {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }

    // Needs root (loop devices), as CI has.
    #[test]
    fn read_only_and_in_use_devices_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let ro = Loop::new(d.path(), "ro.img", &["--read-only"]);
        let e = refuse_unwritable(&ro.open()).unwrap_err();
        assert!(matches!(e, DiskError::ReadOnly { .. }), "{e}");
        assert!(e.to_string().contains("is read-only"), "{e}");

        let free = Loop::new(d.path(), "free.img", &[]);
        refuse_unwritable(&free.open()).unwrap();

        // A loop device stacked on it (backed by the block device itself).
        let stacked = Loop::over(Path::new(&free.0), &[]);
        let e = refuse_unwritable(&free.open()).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("{} is backed by it", stacked.0)),
            "{e}"
        );
        drop(stacked);
        refuse_unwritable(&free.open()).unwrap();

        // Mounted (the host kernel has ext4 built in).
        let mkfs = Command::new("mkfs.ext4")
            .args(["-q", "-F", &free.0])
            .status()
            .expect("mkfs.ext4 (apt-get install e2fsprogs)");
        assert!(mkfs.success());
        let mnt = d.path().join("mnt");
        fs::create_dir_all(&mnt).unwrap();
        nix::mount::mount(
            Some(free.0.as_str()),
            &mnt,
            Some("ext4"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let e = refuse_unwritable(&free.open());
        nix::mount::umount(&mnt).unwrap();
        let e = e.unwrap_err();
        assert!(matches!(e, DiskError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("mounted on"), "{e}");
    }

    #[test]
    fn nothing_holds_or_backs_a_device_that_does_not_exist() {
        assert!(holders("no-such-disk-xyz").is_empty());
        assert!(loop_backers(Path::new("/dev/no-such-disk-xyz")).is_empty());
    }
}
