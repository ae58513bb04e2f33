//! The office fixture as the bootloader work will use it: installed by the
//! store engine, its boot.json is bootspec v1 pointing into the closure, and
//! its `bin/switch-to-configuration boot` (run in a chroot of the installed
//! root, as nixos-install does) lays out systemd-boot on /boot — or fails
//! when the fixture is built to fail.

use crate::store_common as common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::fixture::{build_office_fixture, FixtureOptions, DEBIAN_SYSTEMD_BOOT_EFI};

fn switch_to_configuration(root: &Path) -> std::process::Output {
    fs::create_dir_all(root.join("boot")).unwrap();
    Command::new("chroot")
        .arg(root)
        .arg("/nix/var/nix/profiles/system/bin/switch-to-configuration")
        .arg("boot")
        .env("NIXOS_INSTALL_BOOTLOADER", "1")
        .output()
        .unwrap()
}

#[test]
fn bootspec_and_switch_to_configuration_install_systemd_boot() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = FixtureOptions {
        systemd_boot_efi: Some(DEBIAN_SYSTEMD_BOOT_EFI.into()),
        ..FixtureOptions::default()
    };
    let fx =
        build_office_fixture(&tmp.path().join("office"), &opts).unwrap_or_else(|e| panic!("{e}"));
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    let host = common::install_closure(&root, &fx.toplevel);
    assert!(host
        .iter()
        .any(|i| i.path.base_name().ends_with("-systemd-boot-efi")));

    let top = Path::new(&fx.toplevel);
    let spec: serde_json::Value = serde_json::from_slice(
        &fs::read(root.join(top.strip_prefix("/").unwrap()).join("boot.json")).unwrap(),
    )
    .unwrap();
    let v1 = &spec["org.nixos.bootspec.v1"];
    assert_eq!(v1["toplevel"], fx.toplevel.as_str());
    assert_eq!(v1["init"], format!("{}/init", fx.toplevel));
    assert_eq!(v1["system"], "x86_64-linux");
    let kernel = v1["kernel"].as_str().unwrap();
    let initrd = v1["initrd"].as_str().unwrap();
    assert!(v1["kernelParams"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "console=ttyS0,115200"));
    let in_root = |p: &str| root.join(p.trim_start_matches('/'));
    assert!(in_root(kernel).is_file() && in_root(initrd).is_file());

    let out = switch_to_configuration(&root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kname = format!(
        "{}-bzImage.efi",
        Path::new(kernel)
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
    );
    assert_eq!(
        fs::read(root.join("boot/EFI/nixos").join(&kname)).unwrap(),
        fs::read(in_root(kernel)).unwrap()
    );
    let efi = fs::read(DEBIAN_SYSTEMD_BOOT_EFI).unwrap();
    assert_eq!(
        fs::read(root.join("boot/EFI/BOOT/BOOTX64.EFI")).unwrap(),
        efi
    );
    assert_eq!(
        fs::read(root.join("boot/EFI/systemd/systemd-bootx64.efi")).unwrap(),
        efi
    );
    let entry =
        fs::read_to_string(root.join("boot/loader/entries/nixos-generation-1.conf")).unwrap();
    assert!(
        entry.contains(&format!("linux /EFI/nixos/{kname}")),
        "{entry}"
    );
    assert!(
        entry.contains(&format!(
            "options init={}/init console=ttyS0,115200",
            fx.toplevel
        )),
        "{entry}"
    );
}

#[test]
fn a_fixture_built_to_fail_fails_its_bootloader_install() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = FixtureOptions {
        bootloader_fails: true,
        ..FixtureOptions::default()
    };
    let fx =
        build_office_fixture(&tmp.path().join("office"), &opts).unwrap_or_else(|e| panic!("{e}"));
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    common::install_closure(&root, &fx.toplevel);
    let out = switch_to_configuration(&root);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("simulated bootloader installer failure"));
    assert!(!root.join("boot/loader").exists());
}
