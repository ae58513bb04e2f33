//! Shared helpers of the disk integration tests: image files, loop devices set
//! up by the test itself (losetup, so the agent's own loop code is not what
//! checks it), the agent binary, and the tools people trust to check results.
//! A missing tool fails the test and names the Debian package to install.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const AGENT: &str = env!("CARGO_BIN_EXE_landfall-agent");

/// The layout fixtures folder.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/layouts")
        .join(name)
}

/// Run a tool, failing with the Debian package to install when it is missing.
pub fn tool(name: &str, package: &str, args: &[&str]) -> Output {
    match Command::new(name).args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run {name} ({e}): install the Debian package {package}"),
    }
}

/// Run a tool and require success; returns stdout.
pub fn tool_ok(name: &str, package: &str, args: &[&str]) -> String {
    let o = tool(name, package, args);
    assert!(
        o.status.success(),
        "{name} {args:?} failed: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A sparse image file in a temporary directory.
pub struct Image {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Image {
    pub fn new(size: u64) -> Image {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        Image { dir, path }
    }

    pub fn p(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// sha256 of the whole file (via sha256sum, so sparse files read fast enough).
    pub fn sha256(&self) -> String {
        tool_ok("sha256sum", "coreutils", &[self.p()])
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }
}

/// A loop device attached by `losetup` for the test, detached on drop.
pub struct Loop {
    pub dev: String,
}

impl Loop {
    pub fn attach(image: &Path, sector_size: u32) -> Loop {
        let ss = sector_size.to_string();
        let out = tool_ok(
            "losetup",
            "mount",
            &[
                "--find",
                "--show",
                "--partscan",
                "--sector-size",
                &ss,
                image.to_str().unwrap(),
            ],
        );
        Loop {
            dev: out.trim().to_string(),
        }
    }

    /// The node of partition `n` (as the kernel names loop partitions).
    pub fn part(&self, n: u32) -> String {
        format!("{}p{n}", self.dev)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

/// Run the agent; returns (success, stdout, stderr).
pub fn agent(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(AGENT)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `blkid -o export` (or `-p` low-level probe) of a device, as key → value.
pub fn blkid(dev: &str, low_level: bool) -> std::collections::BTreeMap<String, String> {
    let mut args = vec!["-o", "export"];
    if low_level {
        args.insert(0, "-p");
    }
    args.push(dev);
    let out = tool("blkid", "util-linux", &args);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `sgdisk -v` must report no problems.
pub fn sgdisk_verify(dev: &str) {
    let out = tool_ok("sgdisk", "gdisk", &["-v", dev]);
    assert!(out.contains("No problems found"), "sgdisk -v {dev}:\n{out}");
}

/// `(number, start, end, code, name)` rows of `sgdisk -p`.
pub fn sgdisk_table(dev: &str) -> Vec<(u32, u64, u64, String, String)> {
    let out = tool_ok("sgdisk", "gdisk", &["-p", dev]);
    out.lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            // Number Start End Size Unit Code Name...
            Some((
                f[0].parse().ok()?,
                f[1].parse().ok()?,
                f[2].parse().ok()?,
                f[5].to_string(),
                f[6..].join(" "),
            ))
        })
        .collect()
}

/// The partition type GUID and unique GUID of partition `n` (`sgdisk -i`).
pub fn sgdisk_info(dev: &str, n: u32) -> (String, String, String) {
    let out = tool_ok("sgdisk", "gdisk", &["-i", &n.to_string(), dev]);
    let field = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let attrs = field("Attribute flags: ");
    (
        field("Partition GUID code: "),
        field("Partition unique GUID: "),
        attrs,
    )
}

/// `e2fsck -fn` must be clean.
pub fn e2fsck_clean(dev: &str) {
    let o = tool("e2fsck", "e2fsprogs", &["-fn", dev]);
    assert!(
        o.status.success(),
        "e2fsck -fn {dev}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `fsck.fat -n` must be clean.
pub fn fsck_fat_clean(dev: &str) {
    let o = tool("fsck.fat", "dosfstools", &["-n", dev]);
    assert!(
        o.status.success(),
        "fsck.fat -n {dev}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
