//! The kernel interfaces the disk engine is built on, exercised directly:
//! LOOP_CTL_GET_FREE + LOOP_CONFIGURE (with 512- and 4096-byte blocks and
//! autoclear) and BLKPG add/delete, checked through sysfs and losetup.

use crate::common;

use std::path::Path;

use common::*;
use landfall_agent::disk::partition_sync::{self, WantedPartition};
use landfall_agent::sys::{blk, blkpg, loopdev};

fn sys(path: String) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn loop_configure_attaches_with_the_block_size_and_autoclears() {
    for bs in [512u32, 4096] {
        let img = Image::new(32 << 20);
        let lo = loopdev::attach(&img.path, bs).unwrap();
        let name = lo.path.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(blk::logical_sector_size(&lo.file).unwrap(), bs);
        assert_eq!(blk::device_size(&lo.file).unwrap(), 32 << 20);
        assert_eq!(sys(format!("/sys/block/{name}/loop/backing_file")), img.p());
        assert_eq!(sys(format!("/sys/block/{name}/loop/autoclear")), "1");
        assert_eq!(sys(format!("/sys/block/{name}/loop/partscan")), "1");
        let listed = tool_ok(
            "losetup",
            "mount",
            &[
                "--list",
                "--noheadings",
                "--output",
                "NAME,BACK-FILE,LOG-SEC",
            ],
        );
        assert!(
            listed
                .lines()
                .any(|l| l.contains(lo.path.to_str().unwrap()) && l.contains(img.p())),
            "{listed}"
        );
        blkpg::add_partition(&lo.file, 1, 1 << 20, 1 << 20).unwrap();
        assert!(Path::new(&format!("/sys/block/{name}/{name}p1")).exists());
        drop(lo);
        // autoclear: the last close detaches it, and partscan drops its partitions.
        assert!(
            !Path::new(&format!("/sys/block/{name}/{name}p1")).exists(),
            "stale partition left"
        );
        let listed = tool_ok(
            "losetup",
            "--list",
            &["--noheadings", "--output", "NAME,BACK-FILE"],
        );
        assert!(
            !listed.contains(img.p()),
            "still attached after close:\n{listed}"
        );
    }
}

#[test]
fn loop_attach_refuses_odd_block_sizes() {
    let img = Image::new(1 << 20);
    assert!(matches!(
        loopdev::attach(&img.path, 1000),
        Err(loopdev::LoopError::BlockSize(1000))
    ));
}

#[test]
fn blkpg_adds_and_deletes_partitions_and_sync_makes_nodes() {
    let img = Image::new(64 << 20);
    let lo = loopdev::attach(&img.path, 512).unwrap();
    let name = lo.path.file_name().unwrap().to_str().unwrap().to_string();
    blkpg::add_partition(&lo.file, 1, 1 << 20, 8 << 20).unwrap();
    assert_eq!(sys(format!("/sys/block/{name}/{name}p1/start")), "2048");
    assert_eq!(
        sys(format!("/sys/block/{name}/{name}p1/size")),
        (8u64 << 20 >> 9).to_string()
    );
    blkpg::delete_partition(&lo.file, 1).unwrap();
    assert!(!Path::new(&format!("/sys/block/{name}/{name}p1")).exists());
    assert!(
        blkpg::delete_partition(&lo.file, 1).is_err(),
        "deleting a missing partition must fail"
    );

    // sync_partitions: stale ones go, missing ones come, nodes exist.
    blkpg::add_partition(&lo.file, 3, 40 << 20, 1 << 20).unwrap();
    let wanted = [
        WantedPartition {
            number: 1,
            start: 1 << 20,
            length: 4 << 20,
        },
        WantedPartition {
            number: 2,
            start: 5 << 20,
            length: 4 << 20,
        },
    ];
    assert!(!partition_sync::in_sync(&lo.path, &wanted).unwrap());
    let nodes = partition_sync::sync_partitions(&lo.file, &lo.path, &wanted).unwrap();
    assert!(partition_sync::in_sync(&lo.path, &wanted).unwrap());
    assert!(!Path::new(&format!("/sys/block/{name}/{name}p3")).exists());
    for (n, node) in &nodes {
        use std::os::unix::fs::FileTypeExt;
        assert!(
            std::fs::metadata(node)
                .unwrap()
                .file_type()
                .is_block_device(),
            "{n}: {node:?}"
        );
        let f = std::fs::File::open(node).unwrap();
        assert_eq!(blk::device_size(&f).unwrap(), 4 << 20);
    }
    // A busy partition is reported.
    assert!(partition_sync::busy_partitions(&lo.path)
        .unwrap()
        .is_empty());
    for n in [1, 2] {
        blkpg::delete_partition(&lo.file, n).unwrap();
    }
}
