//! Layouts that name a disk the agent must not write, in a qemu VM with the
//! agent as PID 1:
//! - a disk attached read-only (qemu `readonly=on`, the kernel's ro flag) next to
//!   a writable one: the apply is refused naming the read-only disk, before
//!   anything is written to either disk (the writable disk's image is still all
//!   zeros);
//! - a disk in use by the agent itself (a layout with swap applied: its root
//!   mounted under /mnt, its swap on, as PID 1 always does; then another layout
//!   for the same disk with --yes --force): refused as in use, naming the mount
//!   and the swap, and the mounted layout is untouched.

use crate::hostile_common;

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use hostile_common::{build_image, certs_init, landfall};
use landfall_tests::StartVm;
use landfall_tests::{
    debian_kernel, sparse_image, Disk, Nic, TestDir, VmBuilder, NVME_TIMEOUT_APPEND,
};

const MAIN_AND_RO: &str = r#"{
  "disk": {
    "main": {
      "device": "/dev/nvme0n1",
      "content": { "type": "gpt", "partitions": {
        "root": { "size": "100%", "content": { "type": "filesystem", "format": "ext4", "mountpoint": "/" } }
      } }
    },
    "ro": {
      "device": "/dev/vda",
      "content": { "type": "gpt", "partitions": {
        "data": { "size": "100%", "content": { "type": "filesystem", "format": "ext4", "mountpoint": "/data" } }
      } }
    }
  }
}"#;

const MAIN_WITH_SWAP: &str = r#"{
  "disk": {
    "main": {
      "device": "/dev/nvme0n1",
      "content": { "type": "gpt", "partitions": {
        "swap": { "size": "64M", "content": { "type": "swap" } },
        "root": { "size": "100%", "content": { "type": "filesystem", "format": "ext4", "mountpoint": "/" } }
      } }
    }
  }
}"#;

const MAIN_ONLY: &str = r#"{
  "disk": {
    "main": {
      "device": "/dev/nvme0n1",
      "content": { "type": "gpt", "partitions": {
        "other": { "size": "100%", "content": { "type": "filesystem", "format": "ext4", "mountpoint": "/" } }
      } }
    }
  }
}"#;

/// Whether the image file holds only zeros in its first and last MiB (where a
/// GPT, its backup and filesystem superblocks would be).
fn ends_are_zero(img: &Path) -> bool {
    let mut f = std::fs::File::open(img).unwrap();
    let len = f.metadata().unwrap().len();
    let mut buf = vec![0u8; 1 << 20];
    for at in [0, len - (1 << 20)] {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut buf).unwrap();
        if buf.iter().any(|b| *b != 0) {
            return false;
        }
    }
    true
}

#[test]
fn read_only_and_in_use_disks_are_refused_before_anything_is_written() {
    let kernel = debian_kernel().expect("Debian kernel (scripts/fetch-kernel.sh)");
    let tdir = TestDir::new("hostile-layout").unwrap();
    let dir = tdir.path().to_path_buf();
    let session = certs_init(&dir.join("session"));
    let image = build_image(&dir, &session, &kernel.modules);
    let main = sparse_image(&dir.join("main.img"), 2 << 30).unwrap();
    let ro = sparse_image(&dir.join("ro.img"), 256 << 20).unwrap();
    let mut vm = VmBuilder::new("layout")
        .kernel(
            image.join("bzImage"),
            &format!("console=ttyS0 panic=-1 {NVME_TIMEOUT_APPEND}"),
        )
        .initrd(image.join("initrd"))
        .memory_mib(256)
        .disk(Disk::nvme(main.clone()).serial("landfall-test-0"))
        .disk(Disk::virtio_blk(ro.clone()).serial("read-only").read_only())
        .nic(Nic::user().forward(7443))
        .start_in(tdir)
        .unwrap();
    let addr = vm.forwarded_addr(7443).unwrap().to_string();
    vm.wait_for("DHCP lease", Duration::from_secs(120)).unwrap();
    let wait = ["--wait", "60"];

    // The inventory sees the read-only flag.
    let inv = landfall(&["inventory", "--json", wait[0], wait[1]], &addr, &session);
    assert!(
        inv.status.success(),
        "{}",
        String::from_utf8_lossy(&inv.stderr)
    );
    let inv: serde_json::Value = serde_json::from_slice(&inv.stdout).unwrap();
    let vda = inv["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "vda")
        .expect("vda in the inventory")
        .clone();
    assert_eq!(vda["read_only"], true, "{vda}");

    // 1. A layout naming the read-only disk (and a writable one).
    let layout = dir.join("main-and-ro.json");
    std::fs::write(&layout, MAIN_AND_RO).unwrap();
    let out = landfall(
        &[
            "disk",
            "apply",
            "--layout",
            layout.to_str().unwrap(),
            "--yes",
        ],
        &addr,
        &session,
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("read-only: {}", err.trim());
    assert!(!out.status.success(), "a read-only disk was accepted");
    assert!(
        err.contains("/dev/vda is read-only") && err.contains("nothing was written to any disk"),
        "{err}"
    );
    assert!(ends_are_zero(&main), "the writable disk was written to");
    assert!(ends_are_zero(&ro));

    // 2. A layout applied, mounted and its swap on; then another layout for the same disk.
    let first = dir.join("main-with-swap.json");
    std::fs::write(&first, MAIN_WITH_SWAP).unwrap();
    let out = landfall(
        &[
            "disk",
            "apply",
            "--layout",
            first.to_str().unwrap(),
            "--yes",
        ],
        &addr,
        &session,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = dir.join("main-only.json");
    std::fs::write(&other, MAIN_ONLY).unwrap();
    let out = landfall(
        &[
            "disk",
            "apply",
            "--layout",
            other.to_str().unwrap(),
            "--yes",
            "--force",
        ],
        &addr,
        &session,
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("in use: {}", err.trim());
    assert!(!out.status.success(), "a mounted disk was rewritten");
    assert!(
        err.contains("/dev/nvme0n1 is in use")
            && err.contains(" mounted on /mnt")
            && err.contains(" used as swap"),
        "{err}"
    );
    // Untouched: still mounted, and the first layout is still applied.
    let st = landfall(&["status", "--json"], &addr, &session);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(
        st["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["target"] == "/mnt"
                && m["source"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("/dev/nvme0n1p")),
        "{st}"
    );
    let again = landfall(
        &["disk", "plan", "--layout", first.to_str().unwrap()],
        &addr,
        &session,
    );
    let plan = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(plan.to_lowercase().contains("already"), "{plan}");
}
