//! End to end, disk layout: the seed's layout (1M EF02 boot, 512M EF00 ESP vfat
//! at /boot, 100% ext4 at /) applied through the controller to the VM's
//! /dev/nvme0n1 by the agent as PID 1; the agent's own status then lists the
//! tree mounted under /mnt with the right filesystems, and a second apply says it
//! is already applied without destroying anything.

use std::path::Path;
use std::time::Duration;

use landfall_tests::agentimage::{start_agent_vm, AgentVm, AgentVmSpec};
use landfall_tests::bins::{landfall, landfall_ok};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/layouts")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn seed_layout_is_applied_to_the_vms_nvme_disk_and_mounted() {
    let AgentVm {
        mut vm, addr, tls, ..
    } = start_agent_vm(AgentVmSpec::new("layout").disk_bytes(4 << 30));

    // Both input forms plan the same partitions on the real disk.
    let layout = fixture("seed.evaluated.json");
    let plan = landfall_ok(&[
        "disk", "plan", "--layout", &layout, "--agent", &addr, "--tls", &tls,
    ]);
    assert!(
        plan.contains("/dev/nvme0n1") && plan.contains("will create GPT"),
        "{plan}"
    );
    let hand = landfall_ok(&[
        "disk",
        "plan",
        "--layout",
        &fixture("seed.json"),
        "--agent",
        &addr,
        "--tls",
        &tls,
    ]);
    assert_eq!(
        plan, hand,
        "the evaluated and hand-written layouts plan differently"
    );

    // A layout disk the machine does not have: the error names it, lists the
    // disks there are (model, serial, size) and says how to map it.
    let missing = landfall(&[
        "disk",
        "plan",
        "--layout",
        &fixture("two-disks-swap.json"),
        "--agent",
        &addr,
        "--tls",
        &tls,
    ]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("is /dev/vda, which this machine does not have")
            && err.contains("/dev/nvme0n1 (4.0 GiB, QEMU NVMe Ctrl, serial landfall-test-0)")
            && err.contains("--disk"),
        "{err}"
    );
    // The plan names each disk's hardware and what becomes of it.
    assert!(
        plan.contains(
            "main = /dev/nvme0n1: QEMU NVMe Ctrl, serial landfall-test-0, 4.0 GiB — blank"
        ),
        "{plan}"
    );

    // Without --yes and without a terminal, nothing is destroyed.
    let refused = landfall(&[
        "disk", "apply", "--layout", &layout, "--agent", &addr, "--tls", &tls,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("without --yes"));

    let applied = landfall(&[
        "disk", "apply", "--layout", &layout, "--agent", &addr, "--tls", &tls, "--yes",
    ]);
    assert!(applied.status.success(), "apply failed");
    let progress = String::from_utf8_lossy(&applied.stderr);
    assert!(
        progress.contains("Write a GPT") && progress.contains("as ext4"),
        "{progress}"
    );

    let status = landfall_ok(&["status", "--agent", &addr, "--tls", &tls, "--json"]);
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    let mounts = st["mounts"].as_array().unwrap();
    let find = |target: &str| {
        mounts
            .iter()
            .find(|m| m["target"] == target)
            .unwrap_or_else(|| panic!("nothing mounted at {target}: {status}"))
    };
    let root = find("/mnt");
    assert_eq!(root["fstype"], "ext4");
    assert_eq!(root["source"], "/dev/nvme0n1p3");
    let boot = find("/mnt/boot");
    assert_eq!(boot["fstype"], "vfat");
    assert_eq!(boot["source"], "/dev/nvme0n1p2");

    // The inventory now shows the partitions with disko's labels.
    let inv: serde_json::Value = serde_json::from_str(&landfall_ok(&[
        "inventory",
        "--agent",
        &addr,
        "--tls",
        &tls,
        "--json",
    ]))
    .unwrap();
    let nvme = inv["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "nvme0n1")
        .unwrap()
        .clone();
    assert_eq!(nvme["partition_table"], "gpt");
    let labels: Vec<&str> = nvme["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["disk-main-boot", "disk-main-ESP", "disk-main-root"]
    );
    let fs: Vec<&str> = nvme["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["filesystem"].as_str().unwrap())
        .collect();
    assert_eq!(fs, ["", "vfat", "ext4"]);

    // A second run finds the layout in place and destroys nothing.
    let again = landfall_ok(&[
        "disk", "apply", "--layout", &layout, "--agent", &addr, "--tls", &tls,
    ]);
    assert!(again.contains("already applied"), "{again}");
    vm.quit(Duration::from_secs(10)).unwrap();
}
