//! Without `--yes`, apply asks on the terminal before destroying anything: an
//! answer other than "yes" leaves the disk untouched, "yes" applies. The
//! terminal is a pseudo-terminal made by script(1).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn apply_on_a_terminal(img: &Image, answer: &str) -> String {
    let layout = fixture("tmpfs-root.json");
    let cmd = format!(
        "{AGENT} disk apply --no-mount --layout {} --disk main={}",
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
