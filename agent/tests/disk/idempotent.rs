//! Re-running apply on a disk that already holds the layout says so and
//! changes nothing (the image hash is unchanged); `--force` rewrites it.
//! With install IDs: the same layout formatted by another install is planned
//! as destroyed, refused unconfirmed, wiped and recreated when confirmed (new
//! filesystem UUID, the old file gone, the new install's GPT disk GUID), kept
//! with `--keep-existing`; this install's own disk is kept with its data.
//! Judged by sgdisk -v, e2fsck -fn, blkid and the kernel's ext4 mount.

use crate::common;

use common::*;

fn apply(layout: &str, img: &Image, extra: &[&str]) -> (bool, String, String) {
    apply_main(&fixture(layout), img.p(), extra)
}

#[test]
fn second_apply_is_a_no_op_and_force_rewrites() {
    let img = Image::new(1 << 30);
    let (ok, out, err) = apply("seed.evaluated.json", &img, &[]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("applied: "), "{out}");
    let first = img.sha256();

    // The same layout in its other form is the same layout.
    let (ok, out, err) = apply("seed.json", &img, &[]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("already applied: the disks hold this layout; nothing was destroyed"),
        "{out}"
    );
    assert!(
        out.contains("already applied: the partition table and filesystems match"),
        "{out}"
    );
    assert!(
        err.contains("skipped, the disk already holds this layout"),
        "{err}"
    );
    // Only telling the kernel about the partitions of the new loop device may run.
    for l in err.lines().filter(|l| l.ends_with('…')) {
        assert!(
            l.contains("Tell the kernel about the partitions"),
            "a destructive step ran: {l}"
        );
    }
    assert_eq!(img.sha256(), first, "the second apply changed the disk");

    // Without --yes, an applied disk needs no confirmation (nothing is destroyed).
    let layout = fixture("seed.json");
    let (ok, out, err) = agent(&[
        "disk",
        "apply",
        "--no-mount",
        "--layout",
        layout.to_str().unwrap(),
        "--disk",
        &format!("main={}", img.p()),
    ]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(img.sha256(), first);

    // --force wipes and rewrites: new partition GUIDs and filesystem UUIDs.
    let (ok, out, err) = apply("seed.json", &img, &["--force"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("Wipe signatures") && err.contains("done in"),
        "{err}"
    );
    assert_ne!(img.sha256(), first);
    sgdisk_verify(img.p());
}

#[test]
fn a_different_layout_is_not_mistaken_for_an_applied_one() {
    let img = Image::new(1 << 30);
    let (ok, out, err) = apply("seed.json", &img, &[]);
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = apply("tmpfs-root.json", &img, &[]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("WILL BE DESTROYED") && out.contains("disk-main-root"),
        "{out}"
    );
    let names: Vec<String> = sgdisk_table(img.p()).into_iter().map(|r| r.4).collect();
    assert_eq!(names, vec!["disk-main-ESP", "disk-main-nix"]);
}

/// The seed layout's ext4 root: partition 3.
const ROOT: u32 = 3;

/// Mount the root partition of `lo` and run `f` on its folder.
fn in_root<T>(lo: &Loop, f: impl FnOnce(&std::path::Path) -> T) -> T {
    let dir = tempfile::tempdir().unwrap();
    let m = Mounted::device(
        "ext4",
        std::path::Path::new(&lo.part(ROOT)),
        dir.path(),
        "rw",
    );
    let out = f(&m.dir);
    drop(m);
    out
}

fn ptuuid(dev: &str) -> String {
    blkid(dev, true)
        .get("PTUUID")
        .cloned()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

fn fs_uuid(dev: &str) -> String {
    blkid(dev, true).get("UUID").cloned().unwrap_or_default()
}

#[test]
fn the_same_layout_from_another_install_is_recreated_and_this_installs_is_kept() {
    use landfall_proto::layout::{install_disk_guid, FOREIGN_LAYOUT};
    let img = Image::new(1 << 30);
    let lo = Loop::attach(&img.path, 512);
    let layout = fixture("seed.json");
    let l = layout.to_str().unwrap();
    let main = format!("main={}", lo.dev);

    // The previous system's install, and what it left in its root.
    let (ok, out, err) = apply_main(&layout, &lo.dev, &["--install-id", "previous-system"]);
    assert!(ok, "{out}\n{err}");
    assert_eq!(
        ptuuid(&lo.dev),
        install_disk_guid("previous-system", "main"),
        "the disk GUID records the install"
    );
    sgdisk_verify(&lo.dev);
    e2fsck_clean(&lo.part(ROOT));
    let old_uuid = fs_uuid(&lo.part(ROOT));
    in_root(&lo, |d| {
        std::fs::write(d.join("planted"), "trojan").unwrap()
    });

    // A new install: the plan destroys it and says why.
    let (ok, out, err) = agent(&[
        "disk",
        "plan",
        "--layout",
        l,
        "--disk",
        &main,
        "--install-id",
        "new-install",
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(FOREIGN_LAYOUT), "{out}");
    assert!(out.contains("WILL BE DESTROYED"), "{out}");

    // Not confirmed (no --yes, no terminal): refused, the disk untouched.
    let before = img.sha256();
    let (ok, out, err) = agent(&[
        "disk",
        "apply",
        "--no-mount",
        "--layout",
        l,
        "--disk",
        &main,
        "--install-id",
        "new-install",
    ]);
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains("Refusing to destroy data without --yes"),
        "{err}"
    );
    assert_eq!(
        img.sha256(),
        before,
        "an unconfirmed apply changed the disk"
    );

    // --keep-existing: today's behaviour, kept as it is.
    let (ok, out, err) = apply_main(
        &layout,
        &lo.dev,
        &["--install-id", "new-install", "--keep-existing"],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("already applied"), "{out}");
    assert!(out.contains("kept with --keep-existing"), "{out}");
    assert_eq!(img.sha256(), before, "--keep-existing changed the disk");

    // Confirmed: wiped and recreated, this install's GUID, a new filesystem.
    let (ok, out, err) = apply_main(&layout, &lo.dev, &["--install-id", "new-install"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("applied: ") && !out.contains("already applied"),
        "{out}"
    );
    assert!(err.contains("Wipe signatures"), "{err}");
    assert_eq!(ptuuid(&lo.dev), install_disk_guid("new-install", "main"));
    sgdisk_verify(&lo.dev);
    e2fsck_clean(&lo.part(ROOT));
    let new_uuid = fs_uuid(&lo.part(ROOT));
    assert!(
        !new_uuid.is_empty() && new_uuid != old_uuid,
        "{old_uuid} → {new_uuid}"
    );
    let planted = in_root(&lo, |d| {
        let gone = !d.join("planted").exists();
        std::fs::write(d.join("mine"), "this install's data").unwrap();
        gone
    });
    assert!(planted, "the previous system's file survived the reinstall");

    // The same install again (a re-run): kept, its data kept.
    let before = img.sha256();
    let (ok, out, err) = apply_main(&layout, &lo.dev, &["--install-id", "new-install"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("already applied: the disks hold this layout; nothing was destroyed"),
        "{out}"
    );
    assert!(!out.contains(FOREIGN_LAYOUT), "{out}");
    assert_eq!(
        img.sha256(),
        before,
        "a re-run of the same install changed the disk"
    );
    assert_eq!(fs_uuid(&lo.part(ROOT)), new_uuid);
    let kept = in_root(&lo, |d| std::fs::read_to_string(d.join("mine")).ok());
    assert_eq!(kept.as_deref(), Some("this install's data"));
    e2fsck_clean(&lo.part(ROOT));
}
