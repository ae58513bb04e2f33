//! Reinstalling over a disk that holds the same layout (security review
//! finding 2): the real agent (`landfall-agent serve --root`) on loopback, a
//! loop device as its disk, the controller run as a user runs it.
//!
//! 1. A first install (`--phases disko,install`, its own state folder: the
//!    "previous system") lays the disk out and installs a closure.
//! 2. Whoever ran that system changes a file inside a store path (its narHash
//!    in the database left as it was) and plants a file in the root.
//! 3. A new install (another state folder, so another install ID) of the
//!    same layout and system: without `--yes` and no terminal it stops, its
//!    plan naming the disk as holding this layout but not formatted by this
//!    install, the disk untouched. With `--yes` the layout is wiped and
//!    recreated (new filesystem UUID, the planted file gone), the whole
//!    closure is sent again, and the store passes
//!    `nix-store --verify --check-contents` and matches the host's closure.
//! 4. A re-run of that same (unfinished) install keeps its disk: "already
//!    applied", same filesystem UUID, nothing sent.
//!
//! Needs root (losetup, mount), util-linux (losetup, blkid), e2fsprogs, nix-bin.

use crate::fault_support;

use std::path::Path;
use std::process::{Command, Output};

use fault_support::*;
use landfall_tests::bins::landfall_bin;
use landfall_tests::loopdev::Loop;
use landfall_tests::nixstore::TEST_NIX_CONFIG;
use landfall_tests::TestDir;

const LAYOUT: &str = r#"{"disk":{"main":{"type":"disk","device":"/dev/vda","content":{"type":"gpt",
  "partitions":{"root":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}}}}}}}"#;

fn tool(cmd: &str, args: &[&str], package: &str) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} ({e}): install {package}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loop device on a new sparse image of `bytes`.
fn loop_disk(image: &Path, bytes: u64) -> Loop {
    std::fs::File::create(image)
        .unwrap()
        .set_len(bytes)
        .unwrap();
    Loop::attach(image, 512)
}

/// Unmount everything under `root` (the agent leaves the layout mounted).
fn unmount(root: &Path) {
    let _ = Command::new("umount").arg("-R").arg(root).status();
}

/// Unmounts the root when dropped, also when the test fails (before the loop
/// device it lies on is detached).
struct UnmountOnDrop(std::path::PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        unmount(&self.0);
    }
}

fn install(agent: &Agent, state: &Path, layout: &Path, disk: &str, top: &str, yes: bool) -> Output {
    let mut c = Command::new(landfall_bin());
    c.args(["install", "--agent", &agent.addr, "--tls", &agent.tls])
        .arg("--layout")
        .arg(layout)
        .args(["--disk", &format!("main={disk}"), "--system", top])
        .args(["--phases", "disko,install", "--json"])
        .env("NIX_CONFIG", TEST_NIX_CONFIG)
        .env("LANDFALL_STATE_DIR", state)
        .stdin(std::process::Stdio::null());
    if yes {
        c.arg("--yes");
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fs_uuid(dev: &str) -> String {
    tool(
        "blkid",
        &["-p", "-s", "UUID", "-o", "value", dev],
        "util-linux",
    )
    .trim()
    .to_string()
}

/// A regular file inside one of `top`'s dependencies under `root`'s store.
fn a_file_in_the_closure(root: &Path, top: &str) -> std::path::PathBuf {
    let refs = tool("nix-store", &["--query", "--references", top], "nix-bin");
    for r in refs.lines() {
        let dir = root.join(r.trim_start_matches('/'));
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let t = e.file_type().unwrap();
                if t.is_file() {
                    return e.path();
                }
                if t.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    panic!(
        "no regular file in the closure of {top} under {}",
        root.display()
    );
}

#[test]
fn a_reinstall_recreates_the_same_layout_left_by_another_system() {
    let tdir = TestDir::new("reinstall").unwrap();
    let dir = tdir.path();
    let top = build_synthetic(dir, 3);
    let layout = dir.join("layout.json");
    std::fs::write(&layout, LAYOUT).unwrap();
    let disk = loop_disk(&dir.join("disk.img"), 512 << 20);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let _unmount = UnmountOnDrop(root.clone());

    // 1. The previous system's install.
    let agent = start_agent(dir, &root);
    let first = install(
        &agent,
        &dir.join("state-old"),
        &layout,
        &disk.dev,
        &top,
        true,
    );
    assert!(first.status.success(), "{}", stderr(&first));
    verify(&root);
    let old_uuid = fs_uuid(&disk.part(1));

    // 2. What its owner left: a store file changed (narHash kept), a planted file.
    let victim = a_file_in_the_closure(&root, &top);
    std::fs::write(&victim, b"#!/bin/sh\necho trojaned\n").unwrap();
    std::fs::write(root.join("planted"), "authorized_keys of someone else").unwrap();
    drop(agent);
    unmount(&root);

    // 3. A new install of the same flake: refused unconfirmed, the disk untouched.
    let agent = start_agent(dir, &root);
    let state = dir.join("state-new");
    let before = tool("sha256sum", &[&disk.dev], "coreutils");
    let refused = install(&agent, &state, &layout, &disk.dev, &top, false);
    let err = stderr(&refused);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains(landfall_proto::layout::FOREIGN_LAYOUT),
        "the plan does not name the disk: {err}"
    );
    assert_eq!(
        tool("sha256sum", &[&disk.dev], "coreutils"),
        before,
        "an unconfirmed install changed the disk"
    );

    // Confirmed: recreated, everything sent again, the store verifies.
    let second = install(&agent, &state, &layout, &disk.dev, &top, true);
    assert!(second.status.success(), "{}", stderr(&second));
    let s = summary(&second);
    assert_eq!(
        s["closure"]["sent_paths"].as_u64(),
        Some(closure_len(&top)),
        "{s}"
    );
    let new_uuid = fs_uuid(&disk.part(1));
    assert_ne!(new_uuid, old_uuid, "the root filesystem was not recreated");
    assert!(!root.join("planted").exists(), "the planted file survived");
    verify(&root);
    assert_same_closure(&root, &top);
    let addr = agent.addr.clone();
    drop(agent);
    unmount(&root);
    let fsck = Command::new("e2fsck")
        .args(["-fn", &disk.part(1)])
        .output()
        .expect("e2fsck (install e2fsprogs)");
    assert!(
        fsck.status.success(),
        "e2fsck -fn: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let v = tool("sgdisk", &["-v", &disk.dev], "gdisk");
    assert!(v.contains("No problems found"), "sgdisk -v: {v}");

    // 4. The same unfinished install again, the agent restarted where it
    //    listened (the state folder is the target's): its own disk is kept.
    let agent = start_agent_at(dir, &root, &addr);
    let third = install(&agent, &state, &layout, &disk.dev, &top, false);
    let err = stderr(&third);
    assert!(third.status.success(), "{err}");
    assert!(err.contains("already applied"), "{err}");
    assert!(err.contains("Resuming the unfinished install"), "{err}");
    assert_eq!(summary(&third)["closure"]["sent_paths"].as_u64(), Some(0));
    assert_eq!(fs_uuid(&disk.part(1)), new_uuid);
    verify(&root);
    drop(agent);
    unmount(&root);
}
