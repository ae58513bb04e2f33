//! Without `--yes`, apply asks on the terminal before destroying anything: an
//! answer other than "yes" leaves the disk untouched, "yes" applies. The
//! terminal is a pseudo-terminal made by script(1). A disk holding the same
//! layout but formatted by another install is named in what is asked.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn apply_on_a_terminal(img: &Image, answer: &str) -> String {
    apply_on_a_terminal_with(img, "tmpfs-root.json", "", answer)
}

/// `disk apply` of fixture `layout` with `extra` arguments, answering `answer`.
fn apply_on_a_terminal_with(img: &Image, layout: &str, extra: &str, answer: &str) -> String {
    let layout = fixture(layout);
    let cmd = format!(
        "{AGENT} disk apply --no-mount --layout {} --disk main={} {extra}",
        layout.display(),
        img.p()
    );
    let mut child = match Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot run script ({e}): install the Debian package bsdutils"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn apply_asks_before_destroying() {
    let img = Image::new(64 << 20);
    let before = img.sha256();
    let out = apply_on_a_terminal(&img, "no");
    assert!(out.contains("Type \"yes\" to continue"), "{out}");
    assert!(out.contains("Not confirmed; nothing was changed"), "{out}");
    assert_eq!(img.sha256(), before);

    let out = apply_on_a_terminal(&img, "yes");
    assert!(out.contains("applied: "), "{out}");
    sgdisk_verify(img.p());
    assert_ne!(img.sha256(), before);
}

#[test]
fn the_confirmation_names_a_layout_this_install_did_not_format() {
    use landfall_proto::layout::FOREIGN_LAYOUT;
    let img = Image::new(1 << 30);
    let (ok, out, err) = apply_main(
        &fixture("seed.json"),
        img.p(),
        &["--install-id", "previous-system"],
    );
    assert!(ok, "{out}\n{err}");
    let before = img.sha256();

    let out = apply_on_a_terminal_with(&img, "seed.json", "--install-id new-install", "no");
    assert!(out.contains(FOREIGN_LAYOUT), "{out}");
    assert!(out.contains("Type \"yes\" to continue"), "{out}");
    assert!(out.contains("Not confirmed; nothing was changed"), "{out}");
    assert_eq!(img.sha256(), before);

    let out = apply_on_a_terminal_with(&img, "seed.json", "--install-id new-install", "yes");
    assert!(
        out.contains("applied: ") && !out.contains("already applied"),
        "{out}"
    );
    assert_ne!(img.sha256(), before);
    sgdisk_verify(img.p());

    // This install's disk now: kept without a question.
    let after = img.sha256();
    let out = apply_on_a_terminal_with(&img, "seed.json", "--install-id new-install", "no");
    assert!(out.contains("already applied"), "{out}");
    assert!(!out.contains("Type \"yes\""), "{out}");
    assert_eq!(img.sha256(), after);
}

/// What the inventory says of the disk at `dev` (its table, as the proto names
/// it, and its whole-disk signatures), checked against what `disk plan` found
/// there: the confirmation's identity lines come from the first, its "will be
/// destroyed" from the second, and both read the disk through one detector.
fn seen_by_inventory_and_plan(dev: &str) -> (String, Vec<String>) {
    let (ok, out, err) = agent(&["inventory"]);
    assert!(ok, "{err}");
    let inv: serde_json::Value = serde_json::from_str(&out).unwrap();
    let disk = inv["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == dev)
        .unwrap_or_else(|| panic!("{dev} is not in the inventory: {out}"));
    let table = disk["partition_table"].as_str().unwrap().to_string();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let signatures = strings(&disk["signatures"]);

    let layout = fixture("tmpfs-root.json");
    let main = format!("main={dev}");
    let (ok, out, err) = agent(&[
        "disk",
        "plan",
        "--json",
        "--layout",
        layout.to_str().unwrap(),
        "--disk",
        &main,
    ]);
    assert!(ok, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let existing = &plan["disks"][0]["existing"];
    let plan_table = match existing["table"].as_str() {
        Some("mbr") => "dos",
        Some(t) => t,
        None => "",
    };
    assert_eq!(
        table, plan_table,
        "inventory and plan disagree on the table"
    );
    assert_eq!(
        signatures,
        strings(&existing["signatures"]),
        "inventory and plan disagree on the signatures"
    );
    (table, signatures)
}

#[test]
fn the_inventory_and_the_plan_see_the_same_disk() {
    let img = Image::new(64 << 20);
    tool_ok(
        "mkfs.ext4",
        "e2fsprogs",
        &["-q", "-F", "-L", "old", img.p()],
    );
    let lo = Loop::attach(&img.path, 512);
    assert_eq!(
        seen_by_inventory_and_plan(&lo.dev),
        (String::new(), vec!["ext4".to_string()])
    );

    tool_ok("sgdisk", "gdisk", &["--clear", "--new=1:0:+60M", &lo.dev]);
    assert_eq!(seen_by_inventory_and_plan(&lo.dev).0, "gpt");

    // An MBR (over a zapped GPT): "dos" to both.
    tool_ok("sgdisk", "gdisk", &["--zap-all", &lo.dev]);
    let mut sfdisk = command("sfdisk", "fdisk");
    sfdisk
        .args(["--quiet", "--no-reread", &lo.dev])
        .stdin(Stdio::piped());
    let mut child = sfdisk.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\n,32M,L\n")
        .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    assert_eq!(seen_by_inventory_and_plan(&lo.dev).0, "dos");

    // A FAT filesystem on the whole disk ends its first sector in 55AA too:
    // a signature, not a table, to both.
    tool_ok("sgdisk", "gdisk", &["--zap-all", &lo.dev]);
    tool_ok("mkfs.vfat", "dosfstools", &["-I", &lo.dev]);
    assert_eq!(
        seen_by_inventory_and_plan(&lo.dev),
        (String::new(), vec!["vfat".to_string()])
    );
}
