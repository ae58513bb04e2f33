//! The fixture closure installed onto a real ext4 filesystem on a loop
//! device (as the agent writes to the freshly formatted root): real Nix
//! verifies it, and after unmounting `e2fsck -fn` finds the filesystem clean.

use crate::store_common as common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture::{build_office_fixture, FixtureOptions};
use landfall_tests::loopdev::Loop;
use landfall_tests::nixstore::verify_store;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (install e2fsprogs / util-linux / mount)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loop-mounted ext4 image, unmounted and detached on drop.
struct Ext4Mount {
    /// Detached when the mount drops (after the unmount in `drop`).
    _lo: Loop,
    dev: String,
    dir: PathBuf,
    mounted: bool,
}

impl Ext4Mount {
    fn new(image: &Path, dir: &Path) -> Self {
        let f = fs::File::create(image).unwrap();
        f.set_len(256 << 20).unwrap();
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        let lo = Loop::attach_whole(image, 512);
        fs::create_dir_all(dir).unwrap();
        let mut m = Self {
            dev: lo.dev.clone(),
            _lo: lo,
            dir: dir.to_path_buf(),
            mounted: false,
        };
        run("mount", &[&m.dev, dir.to_str().unwrap()]);
        m.mounted = true;
        m
    }

    fn unmount(&mut self) {
        if self.mounted {
            run("umount", &[self.dir.to_str().unwrap()]);
            self.mounted = false;
        }
    }
}

impl Drop for Ext4Mount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
    }
}

#[test]
fn installs_onto_a_loop_mounted_ext4_and_the_filesystem_stays_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = build_office_fixture(&tmp.path().join("office"), &FixtureOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let image = tmp.path().join("root.img");
    let mut mnt = Ext4Mount::new(&image, &tmp.path().join("mnt"));
    let host = common::install_closure(&mnt.dir, &fx.toplevel);

    verify_store(&mnt.dir);
    assert_eq!(common::path_info(Some(&mnt.dir), &fx.toplevel), host);

    mnt.unmount();
    let dev = mnt.dev.clone();
    let fsck = Command::new("e2fsck").args(["-fn", &dev]).output().unwrap();
    assert_eq!(
        fsck.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
}
