//! The fixture's closure, built by real Nix, NAR-encoded by our encoder,
//! unpacked and registered by the store engine into a directory root; then
//! checked by real Nix (`nix-store --verify --check-contents`, `nix path-info`)
//! and by the installed system's own stage 2 run in a chroot.

use crate::store_common as common;

use std::path::Path;
use std::process::Command;

use common::fixture::{build_office_fixture, nix_command, FixtureOptions};
use common::path_info;
use landfall_agent::store::{
    install_system_profile, query_missing, NarUnpacker, NixDb, StoreInstaller,
};
use landfall_proto::nar::{NarEncoder, PathInfo, StorePath};
use landfall_tests::nixstore::verify_store;

#[test]
fn installs_the_fixture_closure_and_real_nix_verifies_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = build_office_fixture(&tmp.path().join("office"), &FixtureOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let top = StorePath::parse(&fx.toplevel).unwrap();
    let host = path_info(None, &fx.toplevel);
    assert!(host.len() >= 5);

    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let all: Vec<StorePath> = host.iter().map(|i| i.path.clone()).collect();
    assert_eq!(
        query_missing(&root, &all).unwrap(),
        all,
        "an empty root lacks everything"
    );

    let unpacker = NarUnpacker::open(&root).unwrap();
    for info in &host {
        let enc = NarEncoder::new(Path::new("/nix/store").join(info.path.base_name()));
        let done = unpacker
            .unpack(&info.path, &info.nar_hash, info.nar_size, enc)
            .unwrap();
        assert_eq!(done.nar_hash, info.nar_hash);
    }
    unpacker.sync().unwrap();
    NixDb::open(&root).unwrap().register(&host).unwrap();
    install_system_profile(&root, &top).unwrap();
    assert!(query_missing(&root, &all).unwrap().is_empty());

    // Real Nix: every path valid, contents match the registered hashes.
    let verify = verify_store(&root);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    for line in stderr.lines() {
        // Only its progress lines ("reading the Nix store...", "checking link hashes...").
        assert!(line.ends_with("..."), "nix-store --verify reported: {line}");
    }

    // Real Nix sees exactly the host's metadata.
    let installed = path_info(Some(&root), &fx.toplevel);
    assert_eq!(installed, host);

    // Canonical metadata on every node; the profile as nixos-install leaves it.
    for info in &host {
        common::assert_canonical(&root.join("nix/store").join(info.path.base_name()));
    }
    let profiles = root.join("nix/var/nix/profiles");
    assert_eq!(
        std::fs::read_link(profiles.join("system")).unwrap(),
        Path::new("system-1-link")
    );
    assert_eq!(
        std::fs::read_link(profiles.join("system-1-link")).unwrap(),
        Path::new(top.as_str())
    );
    assert!(root.join("etc/NIXOS").is_file());
    let leftovers: Vec<_> = common::entries(&root.join("nix/store"))
        .into_iter()
        .filter(|n| n.starts_with(b".landfall-tmp-"))
        .collect();
    assert!(leftovers.is_empty());

    // The installed system checks its own store, as it will at boot.
    let stage2 = Command::new("chroot")
        .arg(&root)
        .arg("/nix/var/nix/profiles/system/init")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stage2.stdout);
    assert!(
        text.contains("LANDFALL-STORE-CHECK: OK"),
        "{text}\n{}",
        String::from_utf8_lossy(&stage2.stderr)
    );

    // The same check does notice a tampered file.
    let payload = host
        .iter()
        .find(|i| i.path.base_name().ends_with("-landfall-payload"))
        .unwrap();
    let victim = root
        .join("nix/store")
        .join(payload.path.base_name())
        .join("many/file-7");
    std::fs::set_permissions(&victim, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&victim, b"tampered\n").unwrap();
    let verify = nix_command("nix-store")
        .args(["--verify", "--check-contents", "--store"])
        .arg(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(stderr.contains("was modified"), "{stderr}");
}

#[test]
fn an_interrupted_install_resumes_with_only_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = build_office_fixture(&tmp.path().join("office"), &FixtureOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let top = StorePath::parse(&fx.toplevel).unwrap();
    let host = path_info(None, &fx.toplevel);
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let encoder = |p: &StorePath| NarEncoder::new(Path::new("/nix/store").join(p.base_name()));

    // First run: the leaves arrive and are committed; one more path arrives
    // but the connection drops before its commit; another is half-written.
    let leaves: Vec<PathInfo> = host
        .iter()
        .filter(|i| i.references.iter().all(|r| r == &i.path))
        .cloned()
        .collect();
    assert!(!leaves.is_empty() && leaves.len() + 2 <= host.len());
    let mut first = StoreInstaller::open(&root).unwrap();
    for info in &leaves {
        first.add(info, encoder(&info.path)).unwrap();
    }
    assert_eq!(first.commit().unwrap(), leaves.len());
    let rest: Vec<&PathInfo> = host.iter().filter(|i| !leaves.contains(i)).collect();
    let uncommitted = rest
        .iter()
        .find(|i| {
            i.references
                .iter()
                .all(|r| r == &i.path || leaves.iter().any(|l| &l.path == r))
        })
        .unwrap();
    first.add(uncommitted, encoder(&uncommitted.path)).unwrap();
    drop(first);
    let half = rest.iter().find(|i| i.path != uncommitted.path).unwrap();
    let mut nar = Vec::new();
    std::io::copy(&mut encoder(&half.path), &mut nar).unwrap();
    let cut = &nar[..nar.len() / 2];
    let mut again = StoreInstaller::open(&root).unwrap();
    assert!(again.add(half, cut).is_err());

    // Second run: asks, and gets exactly the paths not committed.
    let all: Vec<StorePath> = host.iter().map(|i| i.path.clone()).collect();
    let missing = again.missing(&all).unwrap();
    let want: Vec<StorePath> = rest.iter().map(|i| i.path.clone()).collect();
    assert_eq!(missing, want);
    for p in &missing {
        let info = host.iter().find(|i| &i.path == p).unwrap();
        again.add(info, encoder(p)).unwrap();
    }
    again.finish(&top).unwrap();

    assert!(query_missing(&root, &all).unwrap().is_empty());
    verify_store(&root);
    assert_eq!(path_info(Some(&root), &fx.toplevel), host);
    // Registering again changes nothing.
    NixDb::open(&root).unwrap().register(&host).unwrap();
    assert_eq!(path_info(Some(&root), &fx.toplevel), host);
}
