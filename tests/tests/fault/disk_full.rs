//! The agent's disk too small, or filling up mid-transfer: the real agent
//! writes its store onto a 64 MiB ext4 filesystem (a loop mount on the host).
//!
//! 1. A closure larger than the disk (41 paths, ~88 MiB of NAR) is refused
//!    before anything is written, with the space it needs and the space free.
//! 2. A closure that fits (12 paths, ~25 MiB) starts; once the agent has
//!    verified a path, another writer fills the disk (fallocate, 2 MiB at a
//!    time until it fails). The agent fails the path it is writing with an error naming that
//!    path and the space free; it leaves nothing of it behind, and what it
//!    registered passes `nix-store --verify --check-contents` (real Nix).
//! 3. Once the space is back, the re-run sends only the rest and the store
//!    matches the host's closure exactly.
//!
//! Needs root (mount), e2fsprogs (mkfs.ext4), util-linux (mount, fallocate).

use crate::fault_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use fault_support::*;
use landfall_tests::proxy::CutProxy;
use landfall_tests::TestDir;

const FS_MIB: u64 = 64;

/// A loop-mounted ext4 image, unmounted when dropped.
struct LoopMount {
    dir: PathBuf,
}

impl LoopMount {
    fn new(image: &Path, dir: &Path, mib: u64) -> Self {
        std::fs::File::create(image)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        run(
            "mkfs.ext4",
            &["-q", "-F", image.to_str().unwrap()],
            "e2fsprogs",
        );
        std::fs::create_dir_all(dir).unwrap();
        run(
            "mount",
            &["-o", "loop", image.to_str().unwrap(), dir.to_str().unwrap()],
            "mount (and run the test as root)",
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Free bytes for root (`stat -f`: free blocks × block size).
    fn free(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "--format=%f %S"])
            .arg(&self.dir)
            .output()
            .expect("stat (coreutils)");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<u64> = text
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        v[0] * v[1]
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn run(cmd: &str, args: &[&str], package: &str) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (Debian: apt-get install -y {package})"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Store paths present as directories or files under ROOT/nix/store.
fn store_entries(root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(root.join("nix/store")) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_is_a_clear_error_and_nothing_incomplete_is_valid() {
    let tdir = TestDir::new("fault-diskfull").unwrap();
    let dir = tdir.path();
    let big = build_synthetic(dir, 40);
    let small = build_synthetic(dir, 11);
    let mnt = LoopMount::new(&dir.join("disk.img"), &dir.join("mnt"), FS_MIB);
    let root = mnt.dir.clone();
    let agent = start_agent(dir, &root);
    let mount = root.display().to_string();

    // 1. Too large: refused up front, both figures named, nothing written.
    let out = install(&agent.addr, &agent.tls, &big);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("too large:\n{err}");
    assert!(
        !out.status.success(),
        "a closure larger than the disk was accepted"
    );
    let re = regex::Regex::new(&format!(
        r"no-space: Not enough space for the closure: it needs \d+ MiB for 41 paths, \d+ MiB free on {}",
        regex::escape(&mount)
    ))
    .unwrap();
    assert!(re.is_match(&err), "not the up-front space error: {err}");
    assert!(
        !err.contains("reconnecting"),
        "a full disk is not a lost connection"
    );
    assert_eq!(
        store_entries(&root),
        Vec::<String>::new(),
        "something was written"
    );

    // 2. Fits, but the disk fills up mid-transfer.
    let proxy = CutProxy::start(agent.addr.parse().unwrap()).unwrap();
    proxy.set_rate(4 << 20);
    let mut filling = spawn_install(
        &proxy.addr().to_string(),
        &agent.tls,
        &small,
        &dir.join("filling.stderr"),
    );
    let mut seen = Vec::new();
    assert!(
        filling.read_until(&mut seen, is_finished).is_some(),
        "no path was verified: {}",
        filling.stderr_text()
    );
    // Another writer takes the space, 2 MiB at a time until none is left.
    let filler = root.join("filler");
    std::fs::create_dir_all(&filler).unwrap();
    for i in 0.. {
        let f = filler.join(i.to_string());
        let ok = Command::new("fallocate")
            .args(["-l", "2MiB"])
            .arg(&f)
            .status()
            .expect("fallocate (Debian: apt-get install -y util-linux)")
            .success();
        if !ok {
            let _ = std::fs::remove_file(&f);
            break;
        }
    }
    eprintln!("filled the disk: {} bytes left", mnt.free());
    filling.read_until(&mut seen, |_| false);
    let status = filling.child.wait().unwrap();
    let err = filling.stderr_text();
    eprintln!("filling up:\n{err}");
    assert!(!status.success(), "the install succeeded on a full disk");
    let re = regex::Regex::new(&format!(
        r"no-space: The disk filled up while writing (/nix/store/[0-9a-z]{{32}}-[^:]+): \d+ (B|KiB|MiB) free on {} once its partial files were removed",
        regex::escape(&mount)
    ))
    .unwrap();
    let caps = re
        .captures(&err)
        .unwrap_or_else(|| panic!("not the disk-full error: {err}"));
    let failed = caps[1].to_string();
    assert!(
        !err.contains("reconnecting"),
        "a full disk is not a lost connection"
    );
    let failed_name = failed.trim_start_matches("/nix/store/");
    assert!(
        !store_entries(&root).iter().any(|e| e == failed_name),
        "the path that failed ({failed}) was left behind"
    );

    // What is there is complete: real Nix verifies every registered path (with
    // the space back, so Nix itself can open its database).
    std::fs::remove_dir_all(&filler).unwrap();
    verify(&root);
    let valid = Command::new("nix-store")
        .env("NIX_CONFIG", landfall_tests::nixstore::TEST_NIX_CONFIG)
        .args(["--store", &mount, "--check-validity", &failed])
        .output()
        .unwrap();
    assert!(
        !valid.status.success(),
        "the path that failed ({failed}) is registered valid"
    );
    let verified_before = seen.iter().filter(|v| is_finished(v)).count() as u64;
    assert!(verified_before >= 1);

    // 3. With the space back, the re-run sends only the rest.
    let s = summary(&install(&agent.addr, &agent.tls, &small));
    let total = closure_len(&small);
    let sent = s["closure"]["sent_paths"].as_u64().unwrap();
    assert!(
        sent + verified_before <= total && sent < total,
        "the re-run resent verified paths: {sent} sent, {verified_before} verified before, {total} in all"
    );
    verify(&root);
    assert_same_closure(&root, &small);
    eprintln!(
        "disk {FS_MIB} MiB; failed writing {failed} after {verified_before} path(s); re-run sent {sent} of {total}"
    );
}
