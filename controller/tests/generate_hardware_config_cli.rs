//! `landfall install --generate-hardware-config` with bad input: an unknown
//! generator, a PATH whose folder does not exist, a missing value. Each is a
//! clear error before the target is touched: the "target" here is a TCP
//! listener of the test's own, and nobody connects to it.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// Runs `landfall install --target root@127.0.0.1 -p PORT … ARGS`; returns
/// (success, stdout + stderr) and whether anything connected to PORT.
fn install_against_listener(args: &[&str], state: &Path) -> (bool, String, bool) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_landfall"))
        .args([
            "install",
            "--target",
            "root@127.0.0.1",
            "-p",
            &port,
            "--system",
            "/nix/store/00000000000000000000000000000000-nixos-system",
            "--layout",
            "/nonexistent/layout.json",
        ])
        .args(args)
        .env("LANDFALL_STATE_DIR", state)
        .output()
        .expect("run landfall");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let touched = listener.accept().is_ok();
    (out.status.success(), text, touched)
}

#[test]
fn an_unknown_generator_is_refused_naming_the_supported_one() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("hardware-configuration.nix");
    let (ok, text, touched) = install_against_listener(
        &[
            "--generate-hardware-config",
            "nixos-facter",
            path.to_str().unwrap(),
        ],
        state.path(),
    );
    assert!(!ok, "{text}");
    assert!(text.contains("\"nixos-facter\""), "{text}");
    assert!(text.contains("`nixos-generate-config`"), "{text}");
    assert!(!touched, "the target was contacted:\n{text}");
    assert!(!path.exists());
}

#[test]
fn a_path_whose_folder_does_not_exist_is_refused_before_the_target() {
    let state = tempfile::tempdir().unwrap();
    let missing = state.path().join("no-such-flake");
    let path = missing.join("hardware-configuration.nix");
    let (ok, text, touched) = install_against_listener(
        &[
            "--generate-hardware-config",
            "nixos-generate-config",
            path.to_str().unwrap(),
        ],
        state.path(),
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("The folder {} ", missing.display()))
            && text.contains("does not exist"),
        "{text}"
    );
    assert!(!touched, "the target was contacted:\n{text}");
    // Nothing was created on the laptop either: no folder, no session.
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

#[test]
fn the_flag_takes_two_values() {
    let state = tempfile::tempdir().unwrap();
    let (ok, text, touched) = install_against_listener(
        &["--generate-hardware-config", "nixos-generate-config"],
        state.path(),
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("GENERATOR") && text.contains("PATH"),
        "{text}"
    );
    assert!(!touched);
}

#[test]
fn with_vm_the_folder_is_checked_before_a_vm_starts() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("no-such-flake/hw.nix");
    let out = Command::new(env!("CARGO_BIN_EXE_landfall"))
        .args([
            "install",
            "--vm",
            "--system",
            "/nix/store/00000000000000000000000000000000-nixos-system",
            "--generate-hardware-config",
            "nixos-generate-config",
            path.to_str().unwrap(),
        ])
        .env("LANDFALL_STATE_DIR", state.path())
        .output()
        .expect("run landfall");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("does not exist"), "{text}");
    assert!(!text.contains("== vm"), "a VM was started:\n{text}");
}
