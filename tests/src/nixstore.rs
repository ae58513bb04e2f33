//! Real Nix (Debian's nix-bin) as the judge of an installed store.

use std::path::Path;
use std::process::Command;

/// The settings Debian's Nix 2.8 needs here: flakes on, no build users, no
/// sandbox, no substituters (offline) — the office fixture's, one string.
pub use crate::office::NIX_CONFIG as TEST_NIX_CONFIG;

/// Runs `nix-store --verify --check-contents --store ROOT` with the test
/// settings and fails the test unless it succeeds; the output is returned
/// for the caller's own checks (its stdout, its stderr's lines).
pub fn verify_store(root: &Path) -> std::process::Output {
    let out = Command::new("nix-store")
        .env("NIX_CONFIG", TEST_NIX_CONFIG)
        .args(["--verify", "--check-contents", "--store"])
        .arg(root)
        .output()
        .expect("nix-store (install nix-bin)");
    assert!(
        out.status.success(),
        "nix-store --verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `nix path-info --json --recursive TOP` of `store` (or the host's), sorted by
/// path, without the fields that differ by nature between the building host and
/// a copy: `registrationTime`, and `ultimate` (true only where the path was
/// built, as after `nix copy`).
pub fn comparable_path_info(store: Option<&Path>, top: &str) -> Vec<serde_json::Value> {
    let mut c = Command::new("nix");
    c.env("NIX_CONFIG", TEST_NIX_CONFIG)
        .args(["path-info", "--json", "--recursive"]);
    if let Some(root) = store {
        c.arg("--store").arg(root);
    }
    let out = c.arg(top).output().expect("nix (install nix-bin)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("nix path-info JSON");
    for p in &mut v {
        if let Some(o) = p.as_object_mut() {
            o.remove("registrationTime");
            o.remove("ultimate");
        }
    }
    v.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    v
}
