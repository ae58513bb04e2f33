//! Shared by the store tests: the office fixture builder (`landfall_tests::office`,
//! the same closure every crate's tests build) and small helpers.
#![allow(dead_code)]

pub use landfall_tests::office as fixture;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Names (bytes) directly inside `dir`.
pub fn entries(dir: &Path) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut v: Vec<Vec<u8>> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    v.sort();
    v
}

/// A NAR from tokens (after the magic).
pub fn nar(tokens: &[&[u8]]) -> Vec<u8> {
    landfall_proto::nar::wire::RawNar::new().s(tokens).0
}

/// Checks every node under `path` has canonical store metadata.
pub fn assert_canonical(path: &Path) {
    let m = fs::symlink_metadata(path).unwrap();
    assert_eq!(m.mtime(), 1, "mtime of {path:?}");
    assert_eq!((m.uid(), m.gid()), (0, 0), "owner of {path:?}");
    let mode = m.mode() & 0o7777;
    if m.file_type().is_symlink() {
        return;
    }
    if m.is_dir() {
        assert_eq!(mode, 0o555, "mode of {path:?}");
        for e in fs::read_dir(path).unwrap() {
            assert_canonical(&e.unwrap().path());
        }
    } else {
        assert!(mode == 0o444 || mode == 0o555, "mode {mode:o} of {path:?}");
    }
}

use landfall_proto::nar::{parse_path_info_json, NarEncoder, PathInfo, StorePath};

/// `nix path-info --json --recursive TOP` (of `store`, or the host's), sorted by path.
pub fn path_info(store: Option<&Path>, top: &str) -> Vec<PathInfo> {
    let mut c = fixture::nix_command("nix");
    c.args(["path-info", "--json", "--recursive"]);
    if let Some(root) = store {
        c.arg("--store").arg(root);
    }
    let out = c.arg(top).output().expect("nix not found: install nix-bin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v = parse_path_info_json(&out.stdout).unwrap();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// Installs the closure of `top` from the host store into `root` with the
/// store engine (encode → unpack → commit → profile); returns its path infos.
pub fn install_closure(root: &Path, top: &str) -> Vec<PathInfo> {
    let host = path_info(None, top);
    let mut installer = landfall_agent::store::StoreInstaller::open(root).unwrap();
    for info in &host {
        let enc = NarEncoder::new(Path::new("/nix/store").join(info.path.base_name()));
        installer.add(info, enc).unwrap();
    }
    installer.finish(&StorePath::parse(top).unwrap()).unwrap();
    host
}
