//! Integration tests of the native filesystem writers (`landfall_agent::fs`),
//! checked by the tools people trust: `e2fsck -fn`, `dumpe2fs`, `blkid`, a
//! kernel mount (ext4), `fsck.fat -n` and mtools (vfat), `swaplabel` and
//! `swapon` (swap). They need root (loop devices, mount, swapon); a missing
//! tool fails the test with the Debian package to install.

use crate::common;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{blkid_probe, blkid_value, command, open_rw, run, sparse_file, text, Loop, Mounted};

use landfall_agent::fs::{
    format_ext4, format_swap, format_vfat, Ext4Options, SwapOptions, VfatOptions,
};

const UUID: [u8; 16] = [
    0x6a, 0x1e, 0x5c, 0x0d, 0x2b, 0x44, 0x4c, 0x7e, 0x9f, 0x11, 0x0a, 0xbc, 0xde, 0xf0, 0x12, 0x34,
];
const UUID_STR: &str = "6a1e5c0d-2b44-4c7e-9f11-0abcdef01234";

/// The features mke2fs 1.47 sets for `-t ext4`.
const EXT4_FEATURES: &[&str] = &[
    "has_journal",
    "ext_attr",
    "resize_inode",
    "dir_index",
    "filetype",
    "extent",
    "64bit",
    "flex_bg",
    "sparse_super",
    "large_file",
    "huge_file",
    "dir_nlink",
    "extra_isize",
    "metadata_csum",
];

/// `e2fsck -fn` finds nothing to change (exit 0).
fn assert_e2fsck_clean(dev: &Path) {
    let out = run(command("e2fsck", "e2fsprogs").arg("-fn").arg(dev));
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "e2fsck -fn {}:\n{t}",
        dev.display()
    );
    assert!(
        !t.contains("Fix?") && !t.contains("? no"),
        "e2fsck wanted changes:\n{t}"
    );
}

/// `dev` (a block device, or an image file put on a loop device of its own)
/// mounted as ext4 with `opts`.
fn mount_ext4(dev: &Path, dir: &Path, opts: &str) -> Mounted {
    if dev.starts_with("/dev") {
        Mounted::device("ext4", dev, dir, opts)
    } else {
        Mounted::image("ext4", dev, dir, opts)
    }
}

/// Bytes of the large test file: a pattern that differs in every block.
fn big_file_bytes() -> Vec<u8> {
    (0..(6u32 << 20) / 4)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect()
}

/// Write hundreds of files in nested directories and a 6 MiB file.
fn write_tree(root: &Path) {
    for d in 0..12 {
        let dir = root.join(format!("dir{d}/sub{}/deeper", d % 3));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..25 {
            let mut file = File::create(dir.join(format!("file-{f}.txt"))).unwrap();
            writeln!(file, "directory {d} file {f}").unwrap();
        }
    }
    // One directory big enough to become an htree (dir_index).
    let many = root.join("many");
    std::fs::create_dir(&many).unwrap();
    for f in 0..400 {
        File::create(many.join(format!("a-rather-long-file-name-to-fill-blocks-{f:04}"))).unwrap();
    }
    std::fs::write(root.join("big.bin"), big_file_bytes()).unwrap();
    std::os::unix::fs::symlink("dir0/sub0/deeper/file-0.txt", root.join("link")).unwrap();
}

fn check_tree(root: &Path) {
    assert_eq!(
        std::fs::read(root.join("big.bin")).unwrap(),
        big_file_bytes()
    );
    assert_eq!(
        std::fs::read_to_string(root.join("link")).unwrap(),
        "directory 0 file 0\n"
    );
    assert_eq!(std::fs::read_dir(root.join("many")).unwrap().count(), 400);
    assert!(root.join("lost+found").is_dir());
}

/// Format `dev` (an image or a block device) and check it the way a person would.
fn format_and_check_ext4(dev: &Path, label: &str, mount_dir: &Path) {
    let f = open_rw(dev);
    let report = format_ext4(
        &f,
        &Ext4Options {
            label: Some(label.to_owned()),
            uuid: Some(UUID),
        },
    )
    .unwrap();
    drop(f);
    assert_eq!(report.fs_type, "ext4");
    assert_eq!(report.uuid, UUID_STR);
    assert_eq!(report.label.as_deref(), Some(label));

    assert_e2fsck_clean(dev);
    let tags = blkid_probe(dev, true);
    assert_eq!(
        blkid_value(&tags, "TYPE").as_deref(),
        Some("ext4"),
        "{tags:?}"
    );
    assert_eq!(
        blkid_value(&tags, "LABEL").as_deref(),
        Some(label),
        "{tags:?}"
    );
    assert_eq!(
        blkid_value(&tags, "UUID").as_deref(),
        Some(UUID_STR),
        "{tags:?}"
    );

    let out = run(command("dumpe2fs", "e2fsprogs").arg("-h").arg(dev));
    let header = text(&out);
    let features = header
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap_or_else(|| panic!("no features line:\n{header}"));
    for feature in EXT4_FEATURES {
        assert!(
            features.split_whitespace().any(|w| w == *feature),
            "{feature} missing: {features}"
        );
    }
    assert!(
        header.contains("Default mount options:    user_xattr acl"),
        "{header}"
    );
    assert!(header.contains("Inode size:\t          256"), "{header}");
    assert!(header.contains("Journal inode:            8"), "{header}");
    assert!(
        header.contains(&format!("Filesystem volume name:   {label}")),
        "{header}"
    );

    let m = mount_ext4(dev, mount_dir, "rw");
    write_tree(mount_dir);
    m.unmount();
    assert_e2fsck_clean(dev);
    let m = mount_ext4(dev, mount_dir, "ro");
    check_tree(mount_dir);
    m.unmount();
    assert_e2fsck_clean(dev);
}

fn ext4_image_case(size: u64, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "fs.img", size);
    format_and_check_ext4(&img, label, &dir.path().join("mnt"));
}

#[test]
fn ext4_16_mib() {
    ext4_image_case(16 << 20, "tiny");
}

#[test]
fn ext4_100_mib() {
    ext4_image_case(100 << 20, "hundred");
}

#[test]
fn ext4_1_gib() {
    ext4_image_case(1 << 30, "nixos");
}

#[test]
fn ext4_64_gib_sparse() {
    ext4_image_case(64 << 30, "sixty-four-gib");
}

#[test]
fn ext4_2_tib_sparse() {
    ext4_image_case(2 << 40, "two-tib");
}

/// A size that is no multiple of the block size or group size.
#[test]
fn ext4_odd_size() {
    ext4_image_case(3 * (128 << 20) + 12345 * 512 + 100, "odd");
}

/// `dumpe2fs` of a mke2fs image, without what differs from one format to the
/// next (UUIDs, hash seed, checksums, times).
fn dumpe2fs_stable(dev: &Path) -> Vec<String> {
    let out = run(command("dumpe2fs", "e2fsprogs").arg(dev));
    assert!(out.status.success(), "dumpe2fs: {}", text(&out));
    let volatile = [
        "uuid", "seed", "checksum", "csum", "time", "created", "lifetime", "last ",
    ];
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !volatile.iter().any(|v| l.to_ascii_lowercase().contains(v)))
        .map(str::to_owned)
        .collect()
}

/// The whole layout — geometry, features, every group's bitmaps, tables, free
/// counts and flags, the journal — is what `mke2fs -t ext4 -b 4096` (1.47) makes.
#[test]
fn ext4_layout_is_the_one_mke2fs_makes() {
    let dir = tempfile::tempdir().unwrap();
    for size in [16u64 << 20, 100 << 20, 1 << 30, 64 << 30, 5_000_000_000] {
        let ours = sparse_file(dir.path(), "ours.img", size);
        let theirs = sparse_file(dir.path(), "theirs.img", size);
        format_ext4(&open_rw(&ours), &Ext4Options::default()).unwrap();
        let out = run(command("mke2fs", "e2fsprogs")
            .args(["-q", "-F", "-t", "ext4", "-b", "4096"])
            .arg(&theirs));
        assert!(out.status.success(), "mke2fs: {}", text(&out));
        let (a, b) = (dumpe2fs_stable(&ours), dumpe2fs_stable(&theirs));
        let diff: Vec<String> = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| x != y)
            .map(|(x, y)| format!("ours:   {x}\nmke2fs: {y}"))
            .take(10)
            .collect();
        assert!(
            diff.is_empty() && a.len() == b.len(),
            "size {size}:\n{}",
            diff.join("\n")
        );
    }
}

/// The resize inode holds up: resize2fs grows the filesystem 20-fold (it reads
/// and extends the resize inode and the reserved GDT blocks), and the result is
/// clean and keeps its files. Offline, because this sandbox refuses the online
/// resize ioctl even for a filesystem mke2fs made ("Permission denied").
#[test]
fn ext4_grows_with_resize2fs() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "grow.img", 1 << 30);
    format_ext4(
        &open_rw(&img),
        &Ext4Options {
            label: Some("grow".into()),
            uuid: None,
        },
    )
    .unwrap();
    let mnt = dir.path().join("mnt");
    let m = mount_ext4(&img, &mnt, "rw");
    write_tree(&mnt);
    m.unmount();
    File::options()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(20 << 30)
        .unwrap();
    let out = run(command("resize2fs", "e2fsprogs").arg(&img));
    assert!(out.status.success(), "resize2fs: {}", text(&out));
    assert_e2fsck_clean(&img);
    let out = run(command("dumpe2fs", "e2fsprogs").arg("-h").arg(&img));
    let header = text(&out);
    assert!(
        header.contains(&format!(
            "Block count:              {}",
            (20u64 << 30) / 4096
        )),
        "{header}"
    );
    assert!(header.contains("resize_inode"), "{header}");
    let m = mount_ext4(&img, &mnt, "ro");
    check_tree(&mnt);
    m.unmount();
}

#[test]
fn ext4_on_a_4096_byte_sector_loop_device() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "disk.img", 300 << 20);
    let lo = Loop::attach_whole(&img, 4096);
    let ss = run(command("blockdev", "util-linux")
        .arg("--getss")
        .arg(lo.path()));
    assert_eq!(String::from_utf8_lossy(&ss.stdout).trim(), "4096");
    format_and_check_ext4(lo.path(), "foursectors", &dir.path().join("mnt"));
}

/// Formatting over old contents (a full non-sparse file of 0xFF, then a used
/// filesystem) leaves nothing of them behind that fsck or the kernel sees.
#[test]
fn ext4_over_old_contents() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("dirty.img");
    std::fs::write(&img, vec![0xFFu8; 48 << 20]).unwrap();
    format_and_check_ext4(&img, "first", &dir.path().join("mnt"));
    // Reformat the used filesystem; the new one must be empty and clean.
    let f = open_rw(&img);
    let report = format_ext4(
        &f,
        &Ext4Options {
            label: Some("second".into()),
            uuid: None,
        },
    )
    .unwrap();
    drop(f);
    assert_ne!(report.uuid, UUID_STR);
    assert_e2fsck_clean(&img);
    let m = mount_ext4(&img, &dir.path().join("mnt"), "ro");
    let names: Vec<_> = std::fs::read_dir(dir.path().join("mnt"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("lost+found")]);
    m.unmount();
    assert_eq!(
        blkid_value(&blkid_probe(&img, true), "UUID"),
        Some(report.uuid)
    );
}

/// Without discard (a disk that cannot discard, or mke2fs `-E nodiscard`), old
/// contents stay under the new filesystem: a file full of 0xFF bytes still
/// gives a clean, mountable filesystem (uninitialised groups, inode tables
/// left for the kernel's lazy init, the journal zeroed).
#[test]
fn ext4_over_garbage_without_discard() {
    use landfall_agent::fs::ext4::{format_with, OldContents};
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("garbage.img");
    let mut f = File::create(&img).unwrap();
    let block = vec![0xFFu8; 1 << 20];
    for _ in 0..200 {
        f.write_all(&block).unwrap();
    }
    drop(f);
    let opts = Ext4Options {
        label: Some("garbage".into()),
        uuid: Some(UUID),
    };
    format_with(&open_rw(&img), &opts, OldContents::Keep).unwrap();
    // The old bytes are really still there (no discard happened) ...
    let mut tail = [0u8; 4096];
    File::open(&img)
        .unwrap()
        .read_exact_at(&mut tail, (100 << 20) + 12345)
        .unwrap();
    assert!(tail.iter().all(|&b| b == 0xFF), "old data was discarded");
    // ... and the filesystem is clean, has no ITABLE_ZEROED group, and works.
    let out = run(command("dumpe2fs", "e2fsprogs").arg(&img));
    assert!(!text(&out).contains("ITABLE_ZEROED"), "{}", text(&out));
    let mnt = dir.path().join("mnt");
    assert_e2fsck_clean(&img);
    let m = mount_ext4(&img, &mnt, "rw");
    write_tree(&mnt);
    m.unmount();
    assert_e2fsck_clean(&img);
    let m = mount_ext4(&img, &mnt, "ro");
    check_tree(&mnt);
    m.unmount();
}

#[test]
fn ext4_also_on_a_loop_device_with_512_byte_sectors() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "disk.img", 200 << 20);
    let lo = Loop::attach_whole(&img, 512);
    format_and_check_ext4(lo.path(), "blockdev", &dir.path().join("mnt"));
}

#[test]
fn ext4_rejects_what_it_cannot_make() {
    let dir = tempfile::tempdir().unwrap();
    let small = sparse_file(dir.path(), "small.img", 4 << 20);
    let err = format_ext4(&open_rw(&small), &Ext4Options::default()).unwrap_err();
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        chain = format!("{chain}: {e}");
        source = e.source();
    }
    assert!(chain.contains("at least 8388608 bytes (8 MiB)"), "{chain}");
    let ok = sparse_file(dir.path(), "ok.img", 16 << 20);
    let long = Ext4Options {
        label: Some("seventeen-bytes!!".into()),
        uuid: None,
    };
    assert!(format_ext4(&open_rw(&ok), &long).is_err());
    // Nothing was written by the refused calls.
    assert_eq!(blkid_value(&blkid_probe(&ok, false), "TYPE"), None);
}

fn assert_fsck_fat_clean(dev: &Path) {
    let out = run(command("fsck.fat", "dosfstools").arg("-n").arg(dev));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "fsck.fat -n:\n{t}");
    let verdict: Vec<&str> = t.lines().filter(|l| !l.starts_with("fsck.fat ")).collect();
    assert_eq!(verdict.len(), 1, "fsck.fat reported problems:\n{t}");
}

fn vfat_case(dev: &Path, volume_id: u32, label: &str) -> String {
    let f = open_rw(dev);
    let report = format_vfat(
        &f,
        &VfatOptions {
            label: Some(label.to_owned()),
            volume_id: Some(volume_id),
        },
    )
    .unwrap();
    drop(f);
    let want_uuid = format!("{:04X}-{:04X}", volume_id >> 16, volume_id & 0xFFFF);
    assert_eq!(report.uuid, want_uuid);
    assert_fsck_fat_clean(dev);
    let tags = blkid_probe(dev, true);
    assert_eq!(
        blkid_value(&tags, "TYPE").as_deref(),
        Some("vfat"),
        "{tags:?}"
    );
    assert_eq!(
        blkid_value(&tags, "LABEL").as_deref(),
        Some(label),
        "{tags:?}"
    );
    assert_eq!(
        blkid_value(&tags, "UUID").as_deref(),
        Some(want_uuid.as_str()),
        "{tags:?}"
    );

    let out = run(command("mdir", "mtools").arg("-i").arg(dev).arg("::"));
    let listing = text(&out);
    assert!(out.status.success(), "mdir: {listing}");
    assert!(
        listing.contains(&format!("Volume in drive : is {}", label)),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Volume Serial Number is {want_uuid}")),
        "{listing}"
    );
    want_uuid
}

/// The FAT type recorded in the boot sector's file-system-type field.
fn fat_type_field(dev: &Path) -> String {
    let f = File::open(dev).unwrap();
    let mut bs = [0u8; 512];
    f.read_exact_at(&mut bs, 0).unwrap();
    if &bs[0x52..0x57] == b"FAT32" {
        "FAT32".into()
    } else {
        String::from_utf8_lossy(&bs[0x36..0x3B]).into_owned()
    }
}

#[test]
fn vfat_esp_is_fat32_and_takes_files() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "esp.img", 512 << 20);
    vfat_case(&img, 0x1234_ABCD, "ESP");
    assert_eq!(fat_type_field(&img), "FAT32");
    // Files written by another FAT implementation (mtools) keep it clean.
    let payload = dir.path().join("BOOTX64.EFI");
    std::fs::write(&payload, big_file_bytes()).unwrap();
    let out = run(command("mmd", "mtools")
        .arg("-i")
        .arg(&img)
        .args(["::EFI", "::EFI/BOOT"]));
    assert!(out.status.success(), "mmd: {}", text(&out));
    let out = run(command("mcopy", "mtools")
        .arg("-i")
        .arg(&img)
        .arg(&payload)
        .arg("::EFI/BOOT/BOOTX64.EFI"));
    assert!(out.status.success(), "mcopy: {}", text(&out));
    assert_fsck_fat_clean(&img);
    let back = dir.path().join("back.efi");
    let out = run(command("mcopy", "mtools")
        .arg("-i")
        .arg(&img)
        .arg("::EFI/BOOT/BOOTX64.EFI")
        .arg(&back));
    assert!(out.status.success(), "mcopy back: {}", text(&out));
    assert_eq!(std::fs::read(back).unwrap(), big_file_bytes());
}

#[test]
fn vfat_tiny_volume_is_fat12() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "tiny.img", 2 << 20);
    vfat_case(&img, 0x0000_BEEF, "tiny");
    assert_eq!(fat_type_field(&img), "FAT12");
}

#[test]
fn vfat_random_volume_id_and_over_an_old_ext4() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "reuse.img", 64 << 20);
    format_ext4(&open_rw(&img), &Ext4Options::default()).unwrap();
    let report = format_vfat(
        &open_rw(&img),
        &VfatOptions {
            label: Some("boot".into()),
            volume_id: None,
        },
    )
    .unwrap();
    assert_fsck_fat_clean(&img);
    let tags = blkid_probe(&img, true);
    assert_eq!(
        blkid_value(&tags, "TYPE").as_deref(),
        Some("vfat"),
        "{tags:?}"
    );
    assert_eq!(blkid_value(&tags, "UUID"), Some(report.uuid.clone()));
    let again = format_vfat(&open_rw(&img), &VfatOptions::default()).unwrap();
    assert_ne!(again.uuid, report.uuid, "volume ids are random");
}

#[test]
fn vfat_on_a_4096_byte_sector_loop_device() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "disk.img", 600 << 20);
    let lo = Loop::attach_whole(&img, 4096);
    vfat_case(lo.path(), 0xCAFE_F00D, "ESP4K");
    assert_eq!(fat_type_field(lo.path()), "FAT32");
    assert_eq!(
        blkid_value(&blkid_probe(lo.path(), true), "BLOCK_SIZE").as_deref(),
        Some("4096")
    );
}

#[test]
fn swap_header_is_recognised_and_usable() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "swap.img", 64 << 20);
    let report = format_swap(
        &open_rw(&img),
        &SwapOptions {
            label: Some("swappy".into()),
            uuid: Some(UUID),
        },
    )
    .unwrap();
    assert_eq!((report.fs_type, report.uuid.as_str()), ("swap", UUID_STR));

    // Byte-level: the v1 header for 4 KiB pages.
    let f = File::open(&img).unwrap();
    let mut page = [0u8; 4096];
    f.read_exact_at(&mut page, 0).unwrap();
    assert_eq!(&page[4086..], b"SWAPSPACE2");
    assert_eq!(u32::from_le_bytes(page[1024..1028].try_into().unwrap()), 1);
    assert_eq!(
        u32::from_le_bytes(page[1028..1032].try_into().unwrap()),
        (64 << 20) / 4096 - 1
    );
    assert_eq!(&page[1036..1052], &UUID);

    let tags = blkid_probe(&img, true);
    assert_eq!(
        blkid_value(&tags, "TYPE").as_deref(),
        Some("swap"),
        "{tags:?}"
    );
    assert_eq!(blkid_value(&tags, "LABEL").as_deref(), Some("swappy"));
    assert_eq!(blkid_value(&tags, "UUID").as_deref(), Some(UUID_STR));
    let out = run(command("swaplabel", "util-linux").arg(&img));
    let t = text(&out);
    assert!(
        t.contains("LABEL: swappy") && t.contains(&format!("UUID:  {UUID_STR}")),
        "{t}"
    );

    let lo = Loop::attach_whole(&img, 512);
    let on = run(command("swapon", "mount").arg(lo.path()));
    assert!(on.status.success(), "swapon refused: {}", text(&on));
    let shown = std::fs::read_to_string("/proc/swaps").unwrap();
    let off = run(command("swapoff", "mount").arg(lo.path()));
    assert!(shown.contains(lo.path().to_str().unwrap()), "{shown}");
    assert!(off.status.success(), "swapoff: {}", text(&off));
}

fn agent(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_landfall-agent")).args(args))
}

#[test]
fn cli_mkfs_prints_what_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "cli.img", 32 << 20);
    let p = img.to_str().unwrap();
    let out = agent(&["mkfs", "ext4", p, "--label", "cli", "--uuid", UUID_STR]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("ext4")
            && t.contains(UUID_STR)
            && t.contains("cli")
            && t.contains("33554432 bytes"),
        "{t}"
    );
    assert_e2fsck_clean(&img);

    let out = agent(&["mkfs", "vfat", p, "--label", "esp", "--uuid", "ABCD-1234"]);
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("vfat") && t.contains("ABCD-1234") && t.contains("esp"),
        "{t}"
    );
    assert_eq!(
        blkid_value(&blkid_probe(&img, true), "UUID").as_deref(),
        Some("ABCD-1234")
    );

    let out = agent(&["mkfs", "swap", p, "--label", "sw"]);
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("swap") && t.contains("sw"),
        "{t}"
    );
    assert_eq!(
        blkid_value(&blkid_probe(&img, true), "TYPE").as_deref(),
        Some("swap")
    );
}

#[test]
fn cli_mkfs_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.img");
    let out = agent(&["mkfs", "ext4", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("does not exist"), "{}", text(&out));

    let small = sparse_file(dir.path(), "small.img", 4 << 20);
    let out = agent(&["mkfs", "ext4", small.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("at least 8388608 bytes (8 MiB)"),
        "{}",
        text(&out)
    );

    let ok = sparse_file(dir.path(), "ok.img", 16 << 20);
    let out = agent(&["mkfs", "ext4", ok.to_str().unwrap(), "--uuid", "not-a-uuid"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("Invalid UUID"), "{}", text(&out));
}
