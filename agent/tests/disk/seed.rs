//! The seed's layout (1M EF02 boot, 512M EF00 vfat ESP at /boot, 100% ext4 at
//! /), in both input forms, applied by the agent and checked with sgdisk,
//! blkid, e2fsck and fsck.fat.

use crate::common;

use common::*;
use landfall_proto::layout::{partition_ranges, Geometry, Layout};

fn planned(fixture_name: &str, size: u64, ss: u32) -> Vec<(u64, u64)> {
    let l = Layout::from_json(&std::fs::read_to_string(fixture(fixture_name)).unwrap()).unwrap();
    partition_ranges(
        "main",
        &l.disks[0].partitions,
        Geometry {
            size_bytes: size,
            logical_sector_size: ss,
        },
    )
    .unwrap()
}

fn check_seed_on_loop(fixture_name: &str, size: u64, ss: u32) {
    let img = Image::new(size);
    let lo = Loop::attach(&img.path, ss);
    let layout = fixture(fixture_name);
    let (ok, out, err) = apply_main(&layout, &lo.dev, &[]);
    assert!(ok, "apply failed:\n{out}\n{err}");
    sgdisk_verify(&lo.dev);
    let rows = sgdisk_table(&lo.dev);
    let got: Vec<(u64, u64)> = rows.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(got, planned(fixture_name, size, ss));
    let codes: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    assert_eq!(codes, vec!["EF02", "EF00", "8300"]);

    let boot = blkid(&lo.part(1), false);
    assert_eq!(
        boot.get("PARTLABEL").map(String::as_str),
        Some("disk-main-boot")
    );
    assert_eq!(
        boot.get("TYPE"),
        None,
        "the BIOS boot partition holds no filesystem: {boot:?}"
    );

    let esp = blkid(&lo.part(2), false);
    assert_eq!(
        esp.get("PARTLABEL").map(String::as_str),
        Some("disk-main-ESP"),
        "{esp:?}"
    );
    assert_eq!(esp.get("TYPE").map(String::as_str), Some("vfat"), "{esp:?}");
    let esp_uuid = esp.get("UUID").expect("vfat volume id");
    assert_eq!(esp_uuid.len(), 9, "{esp_uuid}");
    let low = blkid(&lo.part(2), true);
    assert_eq!(
        low.get("PART_ENTRY_TYPE").map(String::as_str),
        Some("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
    );
    fsck_fat_clean(&lo.part(2));

    let root = blkid(&lo.part(3), false);
    assert_eq!(
        root.get("PARTLABEL").map(String::as_str),
        Some("disk-main-root")
    );
    assert_eq!(root.get("TYPE").map(String::as_str), Some("ext4"));
    assert_eq!(root.get("UUID").map(String::len), Some(36));
    e2fsck_clean(&lo.part(3));
    // The report names the nodes the agent made.
    assert!(
        out.contains(&format!(
            "main partition 3: {} (disk-main-root)",
            lo.part(3)
        )),
        "{out}"
    );
}

#[test]
fn seed_evaluated_form_on_2_gib() {
    check_seed_on_loop("seed.evaluated.json", 2 << 30, 512);
}

#[test]
fn seed_hand_written_form_on_2_gib() {
    check_seed_on_loop("seed.json", 2 << 30, 512);
}

#[test]
fn seed_on_a_4096_byte_sector_disk() {
    check_seed_on_loop("seed.json", 1 << 30, 4096);
}

#[test]
fn seed_on_a_sparse_2_tib_disk() {
    check_seed_on_loop("seed.evaluated.json", 2 << 40, 512);
}

/// An image file given as the disk: the agent attaches it to a loop device itself.
#[test]
fn seed_on_an_image_file_attached_by_the_agent() {
    let img = Image::new(1 << 30);
    let layout = fixture("seed.evaluated.json");
    let (ok, out, err) = apply_main(&layout, img.p(), &[]);
    assert!(ok, "apply failed:\n{out}\n{err}");
    sgdisk_verify(img.p());
    let rows = sgdisk_table(img.p());
    let names: Vec<&str> = rows.iter().map(|r| r.4.as_str()).collect();
    assert_eq!(
        names,
        vec!["disk-main-boot", "disk-main-ESP", "disk-main-root"]
    );
    for (row, ty) in rows.iter().skip(1).zip(["vfat", "ext4"]) {
        let offset = (row.1 * 512).to_string();
        let p = blkid_offset(img.p(), &offset);
        assert!(p.contains(&format!("TYPE=\"{ty}\"")), "{p}");
    }
}

fn blkid_offset(image: &str, offset: &str) -> String {
    tool_ok("blkid", "util-linux", &["-p", "-O", offset, image])
}

/// An image file attached by the agent with 4096-byte sectors (LOOP_CONFIGURE).
#[test]
fn seed_on_an_image_file_with_4096_byte_sectors_attached_by_the_agent() {
    let img = Image::new(1 << 30);
    let layout = fixture("seed.json");
    let (ok, out, err) = agent(&[
        "disk",
        "apply",
        "--yes",
        "--no-mount",
        "--image-sector-size",
        "4096",
        "--layout",
        layout.to_str().unwrap(),
        "--disk",
        &format!("main={}", img.p()),
    ]);
    assert!(ok, "apply failed:\n{out}\n{err}");
    assert!(out.contains("(1.0 GiB, 4096-byte sectors)"), "{out}");
    let lo = Loop::attach(&img.path, 4096);
    sgdisk_verify(&lo.dev);
    let rows = sgdisk_table(&lo.dev);
    let got: Vec<(u64, u64)> = rows.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(got, planned("seed.json", 1 << 30, 4096));
    for (row, ty) in rows.iter().skip(1).zip(["vfat", "ext4"]) {
        let p = blkid_offset(img.p(), &(row.1 * 4096).to_string());
        assert!(p.contains(&format!("TYPE=\"{ty}\"")), "{p}");
    }
}
