//! Shared helpers of the disk integration tests: image files, loop devices set
//! up by the test itself (losetup, so the agent's own loop code is not what
//! checks it), the agent binary, and the tools people trust to check results.
//! A missing tool fails the test and names the Debian package to install.
//!
//! Two styles live side by side: string-argument helpers (`tool`, `tool_ok`,
//! `Image`, `Loop`, which scans partitions) for the `disk apply` tests, and
//! `Command`-building helpers (`command`, `run`, `text`, `sparse_file`,
//! `LoopDevice`, which does not scan partitions) for the filesystem and
//! device-mapper writer tests.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

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

pub use landfall_tests::loopdev::Loop;

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

/// A `Command` for `name`, failing the test with the apt-get line to run when
/// `name` is not on PATH.
pub fn command(name: &str, package: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `{name}`: apt-get install -y {package}"
    );
    Command::new(name)
}

/// Run `cmd` to completion (whatever its exit status), failing the test only
/// when it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// stdout followed by stderr, for assertion messages and text checks.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A new sparse file `dir/name` of `size` bytes (all zero).
pub fn sparse_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    File::create(&path).unwrap().set_len(size).unwrap();
    path
}

/// `path` opened for reading and writing.
pub fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

/// sha256 of the whole file, hex, read in process.
pub fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// `blkid -p -o export` of `dev` as key/value pairs in blkid's order; with
/// `require_success`, a blkid failure (nothing found) fails the test.
pub fn blkid_probe(dev: &Path, require_success: bool) -> Vec<(String, String)> {
    let out = run(command("blkid", "util-linux")
        .args(["-p", "-o", "export"])
        .arg(dev));
    if require_success {
        assert!(
            out.status.success(),
            "blkid {}: {}",
            dev.display(),
            text(&out)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// The value of `key` in `blkid_probe` pairs.
pub fn blkid_value(tags: &[(String, String)], key: &str) -> Option<String> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// `umount dir`, retried for up to 5 s while it says "busy": another process
/// on the host that forked or entered a mount namespace at the wrong moment
/// can hold a reference for a little while. Fails the test if it never
/// succeeds.
pub fn umount_retrying(dir: &Path) {
    let mut out = run(Command::new("umount").arg(dir));
    for _ in 0..20 {
        if out.status.success() || !text(&out).contains("busy") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        out = run(Command::new("umount").arg(dir));
    }
    assert!(out.status.success(), "umount: {}", text(&out));
}

/// The top level of a btrfs (`subvolid=5`) mounted on a temporary directory,
/// unmounted on drop.
pub struct BtrfsTop {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl BtrfsTop {
    pub fn mount(dev: &str) -> BtrfsTop {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        tool_ok(
            "mount",
            "mount",
            &["-o", "subvolid=5", dev, path.to_str().unwrap()],
        );
        BtrfsTop { _dir: dir, path }
    }

    pub fn p(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for BtrfsTop {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// `btrfs check --readonly` must succeed and say "no error found".
pub fn btrfs_check_clean(dev: &str) {
    let o = tool("btrfs", "btrfs-progs", &["check", "--readonly", dev]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "btrfs check --readonly {dev}:\n{all}");
    assert!(all.contains("no error found"), "{all}");
}

/// `landfall-agent disk apply --yes --no-mount --layout LAYOUT --disk main=DISK`
/// followed by `extra`; returns (success, stdout, stderr).
pub fn apply_main(layout: &Path, disk: &str, extra: &[&str]) -> (bool, String, String) {
    let main = format!("main={disk}");
    let mut args = vec![
        "disk",
        "apply",
        "--yes",
        "--no-mount",
        "--layout",
        layout.to_str().unwrap(),
        "--disk",
        &main,
    ];
    args.extend(extra);
    agent(&args)
}

/// A kernel mount, unmounted on drop if still mounted. An image file is put on
/// a loop device of its own (detached after unmounting) rather than `-o loop`,
/// whose autoclear races with the next attach of the same file.
pub struct Mounted {
    pub dir: PathBuf,
    mounted: bool,
    _loop: Option<Loop>,
}

impl Mounted {
    /// `mount -t fstype -o opts dev dir` of a block device (`dir` is created).
    pub fn device(fstype: &str, dev: &Path, dir: &Path, opts: &str) -> Mounted {
        std::fs::create_dir_all(dir).unwrap();
        let out = run(command("mount", "mount")
            .args(["-t", fstype, "-o", opts])
            .arg(dev)
            .arg(dir));
        assert!(
            out.status.success(),
            "mount {}: {}",
            dev.display(),
            text(&out)
        );
        Mounted {
            dir: dir.to_owned(),
            mounted: true,
            _loop: None,
        }
    }

    /// The same for an image file, on a loop device with 512-byte sectors.
    pub fn image(fstype: &str, image: &Path, dir: &Path, opts: &str) -> Mounted {
        let lo = Loop::attach_whole(image, 512);
        let mut m = Mounted::device(fstype, lo.path(), dir, opts);
        m._loop = Some(lo);
        m
    }

    /// Unmount now, failing the test if that does not succeed.
    pub fn unmount(mut self) {
        umount_retrying(&self.dir);
        self.mounted = false;
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
    }
}
