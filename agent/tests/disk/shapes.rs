//! Layouts beyond the seed: several disks, swap, a tmpfs root (nodev),
//! explicit start/end, GUID types and attributes, 16 MiB and 4096-byte-sector
//! disks — each checked with sgdisk, blkid and the fsck tools.

use crate::common;

use common::*;
use landfall_proto::layout::{partition_ranges, Geometry, Layout};

fn apply(layout: &str, disks: &[(&str, &str)]) -> String {
    let layout = fixture(layout);
    let mut args: Vec<String> = [
        "disk",
        "apply",
        "--yes",
        "--no-mount",
        "--layout",
        layout.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (k, v) in disks {
        args.push("--disk".into());
        args.push(format!("{k}={v}"));
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = agent(&a);
    assert!(ok, "apply failed:\n{out}\n{err}");
    out
}

fn ranges(layout: &str, disk: &str, size: u64, ss: u32) -> Vec<(u64, u64)> {
    let l = Layout::from_json(&std::fs::read_to_string(fixture(layout)).unwrap()).unwrap();
    let d = l.disks.iter().find(|d| d.key == disk).unwrap();
    partition_ranges(
        disk,
        &d.partitions,
        Geometry {
            size_bytes: size,
            logical_sector_size: ss,
        },
    )
    .unwrap()
}

#[test]
fn two_disks_with_swap_labels_and_a_guid_type() {
    let a = Image::new(512 << 20);
    let b = Image::new(64 << 20);
    let la = Loop::attach(&a.path, 512);
    let lb = Loop::attach(&b.path, 4096);
    apply("two-disks-swap.json", &[("a", &la.dev), ("b", &lb.dev)]);
    sgdisk_verify(&la.dev);
    sgdisk_verify(&lb.dev);
    let got: Vec<(u64, u64)> = sgdisk_table(&la.dev).iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(got, ranges("two-disks-swap.json", "a", 512 << 20, 512));
    let got: Vec<(u64, u64)> = sgdisk_table(&lb.dev).iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(got, ranges("two-disks-swap.json", "b", 64 << 20, 4096));

    let esp = blkid(&la.part(1), false);
    assert_eq!(
        (
            esp["PARTLABEL"].as_str(),
            esp["TYPE"].as_str(),
            esp.get("LABEL").map(String::as_str)
        ),
        ("disk-a-ESP", "vfat", Some("ESP"))
    );
    fsck_fat_clean(&la.part(1));
    // disko's order: ESP and swap (priority 1000, by name), then root (100%, 9001).
    let root = blkid(&la.part(3), false);
    assert_eq!(
        (root["PARTLABEL"].as_str(), root["TYPE"].as_str()),
        ("disk-a-root", "ext4")
    );
    assert_eq!(root["LABEL"], "nixos");
    assert_eq!(root["UUID"], "2f1e0e4c-6b43-4b4e-9d0a-5a1f3c2b7d11");
    e2fsck_clean(&la.part(3));
    let swap = blkid(&la.part(2), false);
    assert_eq!(
        (
            swap["PARTLABEL"].as_str(),
            swap["TYPE"].as_str(),
            swap["LABEL"].as_str()
        ),
        ("disk-a-swap", "swap", "swap0")
    );
    let swap_low = blkid(&la.part(2), true);
    assert_eq!(
        swap_low["PART_ENTRY_TYPE"],
        "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"
    );

    let home = blkid(&lb.part(1), true);
    assert_eq!(home["PART_ENTRY_NAME"], "disk-b-home");
    assert_eq!(
        home["PART_ENTRY_TYPE"],
        "933ac7e1-2eb4-4f13-b844-0e14e2aef915"
    );
    assert_eq!(home["TYPE"], "ext4");
    e2fsck_clean(&lb.part(1));
}

#[test]
fn explicit_start_end_fixed_guid_and_attributes() {
    let img = Image::new(128 << 20);
    let lo = Loop::attach(&img.path, 512);
    apply("explicit-start-end.json", &[("main", &lo.dev)]);
    sgdisk_verify(&lo.dev);
    let got: Vec<(u64, u64)> = sgdisk_table(&lo.dev).iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        got,
        ranges("explicit-start-end.json", "main", 128 << 20, 512)
    );
    assert_eq!(got[0], (2048, 18431), "start 1M, end +8M");
    let (type_guid, part_guid, attrs) = sgdisk_info(&lo.dev, 3);
    assert_eq!(type_guid, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F");
    assert_eq!(part_guid, "5A7E2C1D-0B3F-4E8A-9C6D-1F2E3A4B5C6D");
    assert_eq!(attrs, "8000000000000001");
    assert_eq!(
        blkid(&lo.part(3), false)["PARTUUID"],
        "5a7e2c1d-0b3f-4e8a-9c6d-1f2e3a4b5c6d"
    );
    e2fsck_clean(&lo.part(1));
    e2fsck_clean(&lo.part(2));
}

#[test]
fn tmpfs_root_layout_formats_the_disk_parts() {
    let img = Image::new(16 << 20);
    let lo = Loop::attach(&img.path, 512);
    let out = apply("tmpfs-root.json", &[("main", &lo.dev)]);
    assert!(out.contains("tmpfs"), "{out}");
    sgdisk_verify(&lo.dev);
    assert_eq!(blkid(&lo.part(1), false)["TYPE"], "vfat");
    fsck_fat_clean(&lo.part(1));
    let nix = blkid(&lo.part(2), false);
    assert_eq!(
        (nix["TYPE"].as_str(), nix["PARTLABEL"].as_str()),
        ("ext4", "disk-main-nix")
    );
    e2fsck_clean(&lo.part(2));
}

#[test]
fn old_signatures_are_wiped() {
    // A disk holding an ext4 filesystem directly and stale GPT headers.
    let img = Image::new(64 << 20);
    tool_ok("mkfs.ext4", "e2fsprogs", &["-q", "-F", img.p()]);
    tool_ok("sgdisk", "gdisk", &["--clear", "--new=1:0:+60M", img.p()]);
    let lo = Loop::attach(&img.path, 512);
    let layout = fixture("tmpfs-root.json");
    let (ok, out, err) = agent(&[
        "disk",
        "plan",
        "--layout",
        layout.to_str().unwrap(),
        "--disk",
        &format!("main={}", lo.dev),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("now: gpt, 1 partition(s) — WILL BE DESTROYED"),
        "{out}"
    );
    apply("tmpfs-root.json", &[("main", &lo.dev)]);
    sgdisk_verify(&lo.dev);
    let whole = blkid(&lo.dev, true);
    assert_eq!(
        whole.get("PTTYPE").map(String::as_str),
        Some("gpt"),
        "{whole:?}"
    );
    assert!(
        !whole.contains_key("TYPE"),
        "an old filesystem signature is left on the disk: {whole:?}"
    );
}

#[test]
fn a_disk_without_content_is_wiped_and_left_blank() {
    let img = Image::new(64 << 20);
    tool_ok("mkfs.ext4", "e2fsprogs", &["-q", "-F", img.p()]);
    let lo = Loop::attach(&img.path, 512);
    assert_eq!(
        blkid(&lo.dev, true).get("TYPE").map(String::as_str),
        Some("ext4")
    );
    let out = apply("wipe-only.json", &[("spare", &lo.dev)]);
    assert!(out.contains("only wiped"), "{out}");
    let after = blkid(&lo.dev, true);
    assert!(after.is_empty(), "signatures left: {after:?}");
    // Blank now: a second run has nothing to do.
    let out = apply("wipe-only.json", &[("spare", &lo.dev)]);
    assert!(out.contains("already applied"), "{out}");
}
