//! The agent restarted between phases: the agent image boots in a UEFI VM
//! (OVMF + direct kernel boot, NVMe disk, reboots allowed). On the fresh
//! agent, `--phases install` alone is refused (nothing mounted, no layout on
//! the disk: the closure must never land in the RAM image's /mnt); `landfall
//! install --phases disko` lays out and mounts the disk; then the machine is reset
//! through QMP (`system_reset`: no unmount, no sync, as a power cut or a
//! crash-reboot would) and comes back as a fresh agent with nothing mounted.
//! `landfall install --phases install,bootloader,reboot` must notice the root
//! is not mounted, mount the layout already on the disk again without
//! formatting it (the root filesystem's UUID is the same before and after),
//! then send the closure. The machine is reset once more mid-transfer: the
//! controller reconnects, sees the agent came back with nothing mounted, and
//! stops with that said instead of resuming into RAM. The next run mounts
//! again, sends the closure, installs the bootloader and reboots. The disk then
//! boots by itself under OVMF into the installed system, which checks its own
//! store.

use crate::fixture;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use landfall_tests::agentimage::{
    assert_installed_disk_boots, start_agent_vm, AgentVm, AgentVmSpec,
};
use landfall_tests::bins::{landfall, landfall_bin, landfall_ok};
use landfall_tests::loopdev::partition_range;
use landfall_tests::nixstore::TEST_NIX_CONFIG;

/// The filesystem UUID at partition `n` of the image (blkid's low-level probe).
fn fs_uuid(image: &Path, n: u32) -> String {
    let out = Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "UUID", "-O"])
        .arg(partition_range(image, n).0.to_string())
        .arg(image)
        .output()
        .expect("blkid (Debian: apt-get install -y util-linux)");
    let uuid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!uuid.is_empty(), "no filesystem on partition {n}: {out:?}");
    uuid
}

fn install(args: &[&str]) -> std::process::Output {
    landfall(&[&["install"], args].concat())
}

#[test]
fn agent_restarted_after_disko_remounts_without_formatting_and_the_install_boots() {
    let AgentVm {
        mut vm,
        dir,
        addr,
        tls,
        disk,
    } = start_agent_vm(
        AgentVmSpec::new("fault-restart")
            .ovmf()
            .memory_mib(512)
            .allow_reboot(),
    );
    let opts = fixture::FixtureOptions {
        systemd_boot_efi: Some(fixture::DEBIAN_SYSTEMD_BOOT_EFI.into()),
        ..fixture::FixtureOptions::default()
    };
    let built = fixture::build_office_fixture(&dir.join("flake"), &opts)
        .expect("the office fixture builds with nix");
    let flake = format!("{}#office", built.flake_ref);

    // A fresh agent with nothing mounted: the install phase alone must not write
    // the closure into the RAM image's /mnt.
    let out = install(&[
        "--agent",
        &addr,
        "--tls",
        &tls,
        "--system",
        &built.toplevel,
        "--phases",
        "install",
        "--wait",
        "60",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "installed into an unmounted root");
    assert!(
        err.contains("The agent's root /mnt is not mounted: run the disko phase"),
        "{err}"
    );
    let out = install(&[
        "--agent", &addr, "--tls", &tls, "--flake", &flake, "--phases", "install", "--wait", "60",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "installed onto a disk without the layout"
    );
    assert!(err.contains("its disks do not hold the layout"), "{err}");

    // Phase disko only.
    let out = install(&[
        "--agent", &addr, "--tls", &tls, "--flake", &flake, "--phases", "disko", "--yes", "--wait",
        "60",
    ]);
    assert!(out.status.success(), "the disko phase failed");
    let root_uuid = fs_uuid(&disk, 3);

    // The machine resets and the agent comes back fresh.
    vm.system_reset().unwrap();
    vm.wait_for("DHCP lease", Duration::from_secs(240)).unwrap();
    let status = landfall_ok(&[
        "status", "--agent", &addr, "--tls", &tls, "--json", "--wait", "60",
    ]);
    let status: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert!(
        status["mounts"].as_array().is_none_or(|m| m.is_empty()),
        "the restarted agent still has mounts: {status}"
    );

    // The remaining phases, and the machine resets again in the middle of the
    // transfer: the controller loses the connection, reconnects, finds the
    // agent restarted with its root unmounted, and stops rather than resume
    // into the RAM image (nothing claimed done).
    let remaining = [
        "install",
        "--agent",
        &addr,
        "--tls",
        &tls,
        "--flake",
        &flake,
        "--phases",
        "install,bootloader,reboot",
        "--yes",
        "--json",
        "--wait",
        "60",
    ];
    let stderr_path = dir.join("interrupted.stderr");
    let mut child = Command::new(landfall_bin())
        .args(remaining)
        .env("NIX_CONFIG", TEST_NIX_CONFIG)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("\"state\":2"));
    assert!(first.is_some(), "no path was verified before the reset");
    vm.system_reset().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let interrupted = child.wait().unwrap();
    let err = std::fs::read_to_string(&stderr_path).unwrap();
    eprintln!("interrupted by a reset:\n{err}");
    assert!(!interrupted.success(), "the install claims success: {err}");
    assert!(err.contains("connection to the agent lost ("), "{err}");
    assert!(
        err.contains("The agent came back restarted, with its root /mnt no longer mounted"),
        "{err}"
    );
    assert!(
        !rest.iter().any(|l| l.contains("\"phases\"")),
        "a summary was printed: {rest:?}"
    );
    vm.wait_for("DHCP lease", Duration::from_secs(240)).unwrap();

    // Run again: the controller notices and mounts again.
    let out = install(&[
        "--agent",
        &addr,
        "--tls",
        &tls,
        "--flake",
        &flake,
        "--phases",
        "install,bootloader,reboot",
        "--yes",
        "--json",
        "--wait",
        "60",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the remaining phases failed: {err}");
    assert!(
        err.contains("The agent's root /mnt is not mounted"),
        "the controller did not notice: {err}"
    );
    assert!(
        err.contains("mounting it again, nothing is formatted"),
        "{err}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let phases: Vec<&str> = summary["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["evaluate", "install", "bootloader", "reboot", "total"]
    );
    assert_eq!(
        summary["closure"]["sent_paths"], summary["closure"]["closure_paths"],
        "{summary}"
    );
    vm.wait_for("reboot: Restarting system", Duration::from_secs(60))
        .unwrap();
    vm.kill();
    let tdir = vm.into_test_dir();
    assert_eq!(
        fs_uuid(&disk, 3),
        root_uuid,
        "the root filesystem was formatted again"
    );

    // The installed disk boots by itself.
    assert_installed_disk_boots(tdir, &disk, "landfall-test-0", &built.toplevel);
}
