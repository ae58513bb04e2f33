//! The nix plumbing against real Nix (Debian's nix-bin) and the office
//! fixture flake: build, closure metadata, native encoding equal to Nix's
//! hashes and `nix-store --dump`, and the filtered disko layout.

use std::process::Command;
use std::sync::OnceLock;

use landfall_proto::nar::StorePath;

use super::command::NixError;
use super::*;
use landfall_tests::office::{build_office_fixture, BuiltFixture, FixtureOptions, NIX_CONFIG};

fn fixture() -> &'static BuiltFixture {
    static BUILT: OnceLock<(tempfile::TempDir, BuiltFixture)> = OnceLock::new();
    &BUILT
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let built =
                build_office_fixture(&dir.path().join("office"), &FixtureOptions::default())
                    .unwrap_or_else(|e| panic!("{e}"));
            (dir, built)
        })
        .1
}

fn nix() -> Nix {
    Nix::new().env("NIX_CONFIG", NIX_CONFIG)
}

fn target() -> FlakeTarget {
    FlakeTarget::parse(&format!("{}#office", fixture().flake_ref)).unwrap()
}

#[test]
fn builds_the_toplevel() {
    let top = nix().build_toplevel(&target()).unwrap();
    assert_eq!(top.as_str(), fixture().toplevel);
}

#[test]
fn reads_the_closure_with_metadata() {
    let top = StorePath::parse(&fixture().toplevel).unwrap();
    let infos = nix().closure_path_info(&top).unwrap();
    let names: Vec<&str> = infos.iter().map(|i| i.path.base_name()).collect();
    for part in [
        "busybox-static",
        "linux-",
        "initrd-linux-",
        "landfall-payload",
        "nixos-system-office",
    ] {
        assert!(
            names.iter().any(|n| n[33..].starts_with(part)),
            "{part} not in {names:?}"
        );
    }
    let top_info = infos.iter().find(|i| i.path == top).unwrap();
    assert_eq!(top_info.references.len(), 5, "{:?}", top_info.references);
    assert!(
        top_info.references.contains(&top),
        "boot.json refers to the toplevel itself"
    );
    assert!(top_info
        .deriver
        .as_ref()
        .is_some_and(|d| d.as_str().ends_with(".drv")));
}

#[test]
fn native_encoding_matches_nix_for_the_whole_closure() {
    let top = StorePath::parse(&fixture().toplevel).unwrap();
    let source = ClosureSource::new(nix().closure_path_info(&top).unwrap()).unwrap();
    assert_eq!(source.paths().last().map(|p| &p.path), Some(&top));
    for info in source.paths() {
        // encode_to checks the narSize Nix recorded; the hash is checked here.
        let mut nar = Vec::new();
        let size = source.encode_to(info, &mut nar).unwrap();
        assert_eq!(size, info.nar_size);
        let mut hasher = landfall_proto::nar::NarHasher::new();
        hasher.update(&nar);
        assert_eq!(hasher.finish(), (info.nar_hash, info.nar_size));
    }
    let payload = source
        .paths()
        .iter()
        .find(|p| p.path.base_name().ends_with("-landfall-payload"))
        .unwrap();
    let mut ours = Vec::new();
    source.encode_to(payload, &mut ours).unwrap();
    let dump = Command::new("nix-store")
        .arg("--dump")
        .arg(payload.path.as_str())
        .output()
        .expect("nix-store not found: install the Debian package nix-bin");
    assert!(ours == dump.stdout, "bytes differ from nix-store --dump");
}

#[test]
fn disko_devices_are_the_seed_layout_without_internal_attrs() {
    let got = nix().eval_disko_devices(&target()).unwrap();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            landfall_tests::office::fixture_source_dir().join("disko-devices.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(got, want);
    // And the fixture does carry internal attributes: unfiltered, --json fails.
    let err = nix()
        .run(["eval", "--json", &target().config_attr("disko.devices")])
        .unwrap_err();
    assert!(
        matches!(err, NixError::Failed { ref stderr, .. } if stderr.contains("function")),
        "{err}"
    );
}

#[test]
fn nix_failures_carry_stderr() {
    let err = nix()
        .build_toplevel(&FlakeTarget::parse(&format!("{}#nope", fixture().flake_ref)).unwrap());
    match err {
        Err(NixError::Failed { stderr, .. }) => assert!(stderr.contains("nope"), "{stderr}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}
