//! Re-running apply on a disk that already holds the layout says so and
//! changes nothing (the image hash is unchanged); `--force` rewrites it.

mod common;

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
