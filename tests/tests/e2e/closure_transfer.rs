//! The closure transfer over gRPC + mTLS on loopback, against the real agent
//! binary and real Nix: the fixture flake's closure (built by Debian's Nix) is
//! streamed into a directory root; `nix-store --verify --check-contents` finds
//! nothing wrong and `nix path-info --recursive` matches the host's exactly;
//! the system profile points at the toplevel; a second run sends nothing.
//! `install --json` writes only JSON lines on stdout (`-v` adds the
//! controller's trace on stderr, never on stdout). A file changed inside a
//! valid path (narHash left in the database) makes that path missing: the
//! next run sends it again and the store verifies.
//! A controller killed mid-transfer is tested at 10 seeded cut points in
//! `fault/controller_kill.rs`, on a closure large enough that the kill lands
//! before everything is in flight (this fixture's 12 MiB fits in the HTTP/2
//! window whole).

use crate::fault_support;

use fault_support::{
    assert_same_closure, build_office, install, install_command, start_agent, summary, verify,
};
use landfall_tests::TestDir;

#[test]
fn closure_streams_verified_and_matches_the_hosts_metadata() {
    let tdir = TestDir::new("closure").unwrap();
    let dir = tdir.path();
    let top = build_office(dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let agent = start_agent(dir, &root);

    let out = install(&agent.addr, &agent.tls, &top);
    let s = summary(&out);
    // `--json`: stdout is JSON lines only, every one of them; the human
    // text went to stderr.
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(stdout.lines().count() >= 3, "{stdout}");
    for line in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("a stdout line is not JSON ({e}): {line:?}"));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("== install: "), "{stderr}");
    let closure = &s["closure"];
    assert_eq!(closure["sent_paths"], closure["closure_paths"]);
    assert!(closure["wire_bytes"].as_u64().unwrap() > 0);
    verify(&root);
    assert_same_closure(&root, &top);
    let profile = std::fs::read_link(root.join("nix/var/nix/profiles/system-1-link")).unwrap();
    assert_eq!(profile.to_str().unwrap(), top);
    assert!(root.join("etc/NIXOS").is_file());

    // A second run sends nothing; with -v the controller's own trace (its
    // nix commands) shows on stderr, and stdout stays JSON.
    let out = install_command(&agent.addr, &agent.tls, &top)
        .arg("-v")
        .output()
        .unwrap();
    let again = summary(&out);
    assert_eq!(again["closure"]["sent_paths"], 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEBUG") && stderr.contains("running nix"),
        "{stderr}"
    );
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("a stdout line is not JSON ({e}): {line:?}"));
    }

    // A reused store that was tampered with: a file changed inside a valid
    // path, its narHash in the database left as it was. That path is sent
    // again (and only it), and the store verifies.
    let (tampered_path, file) = first_regular_file(&root.join("nix/store"));
    let mut perm = std::fs::metadata(&file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
    std::fs::set_permissions(&file, perm).unwrap();
    std::fs::write(&file, b"trojan\n").unwrap();
    let third = summary(&install(&agent.addr, &agent.tls, &top));
    assert_eq!(
        third["closure"]["sent_paths"], 1,
        "only the tampered {tampered_path} is sent again: {third}"
    );
    assert_ne!(std::fs::read(&file).unwrap(), b"trojan\n");
    verify(&root);
    assert_same_closure(&root, &top);
}

/// The first store path (by name) holding a regular file, and that file.
fn first_regular_file(store: &std::path::Path) -> (String, std::path::PathBuf) {
    fn find(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let t = e.file_type().ok()?;
            if t.is_file() {
                return Some(e.path());
            }
            if t.is_dir() {
                if let Some(f) = find(&e.path()) {
                    return Some(f);
                }
            }
        }
        None
    }
    let mut paths: Vec<_> = std::fs::read_dir(store)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .collect();
    paths.sort_by_key(|e| e.file_name());
    paths
        .iter()
        .find_map(|e| find(&e.path()).map(|f| (e.file_name().to_string_lossy().into_owned(), f)))
        .expect("a store path with a regular file")
}
