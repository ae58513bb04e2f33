//! Loop devices for tests, and where a partition of a disk image lies.
//!
//! This host's kernel has no partition-table parser: a loop device's
//! partitions appear only after `partx -a` (BLKPG). A test that wants to look
//! at one partition of a VM's disk image from outside opens a read-only
//! [`Loop::window`] over the bytes [`partition_range`] names.

use std::path::Path;
use std::process::Command;

/// A loop device attached by `losetup`, detached on drop.
pub struct Loop {
    /// `/dev/loopN`.
    pub dev: String,
}

impl Loop {
    /// `image` read-write as a disk, with `sector_size`-byte logical sectors
    /// (512 is losetup's default) and the loop driver's partition scan on.
    pub fn attach(image: &Path, sector_size: u32) -> Loop {
        let ss = sector_size.to_string();
        Loop::losetup(&["--partscan", "--sector-size", &ss], image)
    }

    /// `image` read-write as one filesystem's device: no partition scan. (The
    /// mkfs tests' btrfs, formatted and remounted on a partition-scanned loop
    /// device, showed its data as not accounted by `btrfs filesystem df`.)
    pub fn attach_whole(image: &Path, sector_size: u32) -> Loop {
        let ss = sector_size.to_string();
        Loop::losetup(&["--sector-size", &ss], image)
    }

    /// `size` bytes of `image` from `offset` on, read-only: one partition of
    /// a disk image, for fsck and mount.
    pub fn window(image: &Path, offset: u64, size: u64) -> Loop {
        let (offset, size) = (offset.to_string(), size.to_string());
        Loop::losetup(
            &["--read-only", "--offset", &offset, "--sizelimit", &size],
            image,
        )
    }

    fn losetup(args: &[&str], image: &Path) -> Loop {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .args(args)
            .arg(image)
            .output()
            .expect("losetup (Debian: apt-get install -y mount)");
        assert!(
            out.status.success(),
            "losetup {args:?} {}: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Loop {
            dev: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        }
    }

    /// The device node.
    pub fn path(&self) -> &Path {
        Path::new(&self.dev)
    }

    /// The node of partition `n` (as the kernel names loop partitions).
    pub fn part(&self, n: u32) -> String {
        format!("{}p{n}", self.dev)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Partition `n` of the disk image `image`: (start, length) in bytes, read
/// from its partition table by `partx`.
pub fn partition_range(image: &Path, n: u32) -> (u64, u64) {
    let out = Command::new("partx")
        .args(["-g", "-o", "START,SECTORS", "-n", &n.to_string()])
        .arg(image)
        .output()
        .expect("partx (Debian: apt-get install -y util-linux)");
    let v: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        out.status.success() && v.len() == 2,
        "partx -n {n} {}: {}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (v[0] * 512, v[1] * 512)
}
