//! End to end, bootloader and reboot: the agent image in a UEFI VM (OVMF) with
//! an NVMe disk → `landfall disk apply` of the seed's layout → `landfall install
//! --phases install` of the office fixture's closure → `landfall bootloader` →
//! `landfall reboot` (qemu ends on the guest's reboot). Then the same disk
//! boots in a fresh OVMF VM with no kernel and empty NVRAM: systemd-boot is
//! found at the removable path, loads the closure's kernel and initrd, stage 1
//! mounts the root by its partition label and runs `<toplevel>/init`, and that
//! stage 2 prints its marker and the check of its own store.
//!
//! Scenarios: native systemd-boot (`--policy systemd-boot`); and, on one agent
//! VM, a closure whose installer fails (the job fails with the installer's
//! output and Reboot is refused) followed by a good closure installed by its
//! own switch-to-configuration (`--policy auto`), which then boots.
//! After each install the ESP passes `fsck.fat -n`.

use crate::fixture;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fixture::{build_office_fixture, FixtureOptions, DEBIAN_SYSTEMD_BOOT_EFI};
use landfall_tests::agentimage::{start_agent_vm, AgentVm, AgentVmSpec};
use landfall_tests::bins::{landfall, landfall_ok};
use landfall_tests::StartVm;
use landfall_tests::{Disk, TestDir, VmBuilder};

fn seed_layout() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/layouts/seed.evaluated.json")
        .display()
        .to_string()
}

fn build_fixture(dir: &Path, name: &str, bootloader_fails: bool) -> String {
    let opts = FixtureOptions {
        systemd_boot_efi: Some(DEBIAN_SYSTEMD_BOOT_EFI.into()),
        bootloader_fails,
        ..FixtureOptions::default()
    };
    build_office_fixture(&dir.join(name), &opts)
        .unwrap_or_else(|e| panic!("{e}"))
        .toplevel
}

/// The agent VM (OVMF + kernel, 512 MiB) with the seed's layout applied.
fn start_agent(label: &str) -> AgentVm {
    let a = start_agent_vm(
        AgentVmSpec::new(label)
            .ovmf()
            .memory_mib(512)
            .serial("landfall-boot-0"),
    );
    let applied = landfall(&[
        "disk",
        "apply",
        "--layout",
        &seed_layout(),
        "--agent",
        &a.addr,
        "--tls",
        &a.tls,
        "--wait",
        "60",
        "--yes",
    ]);
    assert!(applied.status.success(), "disk apply failed");
    a
}

fn install_closure(a: &AgentVm, toplevel: &str) {
    landfall_ok(&[
        "install", "--agent", &a.addr, "--tls", &a.tls, "--system", toplevel, "--phases", "install",
    ]);
}

/// (start byte, length) of partition `n` of a GPT image, from sfdisk.
fn partition(image: &Path, n: usize) -> (u64, u64) {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(image)
        .output()
        .expect("sfdisk missing: install fdisk");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["partitiontable"]["partitions"][n - 1];
    let sector = v["partitiontable"]["sectorsize"].as_u64().unwrap_or(512);
    (
        p["start"].as_u64().unwrap() * sector,
        p["size"].as_u64().unwrap() * sector,
    )
}

/// fsck.fat -n on the ESP (partition 2) through a loop device over the image.
fn check_esp(image: &Path) -> String {
    let (start, size) = partition(image, 2);
    let out = Command::new("losetup")
        .args(["--find", "--show", "--read-only", "--offset"])
        .arg(start.to_string())
        .arg("--sizelimit")
        .arg(size.to_string())
        .arg(image)
        .output()
        .expect("losetup missing: install mount (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let fsck = Command::new("fsck.fat")
        .args(["-n", &dev])
        .output()
        .expect("fsck.fat missing: install dosfstools");
    let _ = Command::new("losetup").args(["-d", &dev]).status();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    assert!(fsck.status.success(), "fsck.fat -n: {text}");
    text
}

/// A file of the ESP, read with mtools from the image.
fn esp_file(image: &Path, path: &str) -> String {
    let (start, _) = partition(image, 2);
    let out = Command::new("mtype")
        .arg("-i")
        .arg(format!("{}@@{start}", image.display()))
        .arg(format!("::{path}"))
        .output()
        .expect("mtype missing: install mtools");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Reboots through the controller; qemu (-no-reboot) ends on the guest's reboot.
fn reboot(mut a: AgentVm) -> TestDir {
    let out = landfall_ok(&["reboot", "--agent", &a.addr, "--tls", &a.tls, "--no-wait"]);
    assert!(out.contains("unmounted  /mnt/boot"), "{out}");
    assert!(out.contains("unmounted  /mnt\n"), "{out}");
    assert!(!out.contains("REFUSED"), "{out}");
    assert!(out.contains("rebooting in 1000 ms"), "{out}");
    let status = a.vm.wait_exit(Duration::from_secs(60)).unwrap();
    assert!(status.success(), "qemu: {status}");
    a.vm.into_test_dir()
}

/// Boots the installed disk with OVMF (fresh NVRAM, no kernel) until stage 2
/// has checked its store and powered off; returns the console and timings.
fn boot_installed(dir: TestDir, disk: &Path, toplevel: &str) -> String {
    let started = Instant::now();
    let mut vm = VmBuilder::new("installed")
        .ovmf()
        .memory_mib(512)
        .disk(Disk::nvme(disk.to_path_buf()).serial("landfall-boot-0"))
        .start_in(dir)
        .unwrap();
    vm.wait_for("LANDFALL-STAGE1: started", Duration::from_secs(300))
        .unwrap();
    let stage1 = started.elapsed();
    vm.wait_for(
        format!("LANDFALL-STAGE2: {toplevel}").as_str(),
        Duration::from_secs(120),
    )
    .unwrap();
    let stage2 = started.elapsed();
    let verdict = vm
        .wait_for_any(
            ["LANDFALL-STORE-CHECK: OK", "LANDFALL-STORE-CHECK: FAILED"],
            Duration::from_secs(120),
        )
        .unwrap();
    let console = vm.console().output();
    assert_eq!(verdict.text, "LANDFALL-STORE-CHECK: OK", "{console}");
    assert!(vm.wait_exit(Duration::from_secs(60)).unwrap().success());
    for l in console.lines().filter(|l| l.contains("LANDFALL-")) {
        eprintln!("installed system: {l}");
    }
    eprintln!(
        "installed disk under OVMF ({:?}): qemu start to stage 1 {stage1:.1?}, to stage 2 {stage2:.1?}, to poweroff {:.1?}",
        vm.accel(),
        started.elapsed()
    );
    console
}

#[test]
fn native_systemd_boot_boots_the_installed_system() {
    let build = tempfile::tempdir().unwrap();
    let toplevel = build_fixture(build.path(), "office", false);
    let a = start_agent("boot-native");
    install_closure(&a, &toplevel);

    let plan = landfall_ok(&[
        "bootloader",
        "--agent",
        &a.addr,
        "--tls",
        &a.tls,
        "--policy",
        "systemd-boot",
        "--plan",
    ]);
    assert!(plan.contains("plan: systemd-boot"), "{plan}");
    let installed = landfall(&[
        "bootloader",
        "--agent",
        &a.addr,
        "--tls",
        &a.tls,
        "--policy",
        "systemd-boot",
        "--loader-timeout",
        "0",
    ]);
    assert!(installed.status.success(), "bootloader failed");
    let progress = String::from_utf8_lossy(&installed.stderr);
    assert!(
        progress.contains("native systemd-boot from boot.json"),
        "{progress}"
    );
    assert!(
        progress.contains("Write EFI/BOOT/BOOTX64.EFI on the ESP"),
        "{progress}"
    );
    assert!(progress.contains("Sync the ESP"), "{progress}");

    let disk = a.disk.clone();
    let dir = reboot(a);
    eprintln!("{}", check_esp(&disk));
    let entry = esp_file(&disk, "/loader/entries/nixos-generation-1.conf");
    assert!(
        entry.contains(&format!("options init={toplevel}/init")),
        "{entry}"
    );
    let console = boot_installed(dir, &disk, &toplevel);
    assert!(console.contains("LANDFALL-STAGE1: /: /dev/disk/by-partlabel/disk-main-root"));
}

#[test]
fn closure_installer_failure_blocks_reboot_then_a_good_closure_boots() {
    let build = tempfile::tempdir().unwrap();
    let broken = build_fixture(build.path(), "broken", true);
    let good = build_fixture(build.path(), "office", false);
    assert_ne!(broken, good);
    let a = start_agent("boot-closure");

    // The broken system: its installer fails, the job stops with its output.
    install_closure(&a, &broken);
    let failed = landfall(&["bootloader", "--agent", &a.addr, "--tls", &a.tls]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("the closure's own installer"), "{err}");
    assert!(
        err.contains("simulated bootloader installer failure"),
        "{err}"
    );
    assert!(err.contains("NOT rebooted"), "{err}");
    let refused = landfall(&["reboot", "--agent", &a.addr, "--tls", &a.tls, "--no-wait"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("reboot-refused") && why.contains("bootloader install failed"),
        "{why}"
    );
    let status = landfall_ok(&["status", "--agent", &a.addr, "--tls", &a.tls, "--json"]);
    assert!(
        status.contains("/mnt/boot"),
        "still mounted, not rebooted: {status}"
    );

    // The good system, installed by its own switch-to-configuration (auto).
    install_closure(&a, &good);
    let installed = landfall(&["bootloader", "--agent", &a.addr, "--tls", &a.tls]);
    assert!(installed.status.success(), "bootloader failed");
    let progress = String::from_utf8_lossy(&installed.stderr);
    assert!(progress.contains("(policy auto)"), "{progress}");
    assert!(
        progress.contains("| switch-to-configuration: bootloader installed"),
        "{progress}"
    );
    let disk = a.disk.clone();
    let dir = reboot(a);
    eprintln!("{}", check_esp(&disk));
    let entry = esp_file(&disk, "/loader/entries/nixos-generation-1.conf");
    assert!(
        entry.contains(&format!("options init={good}/init")),
        "{entry}"
    );
    boot_installed(dir, &disk, &good);
}
