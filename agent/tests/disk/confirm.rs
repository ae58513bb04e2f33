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
