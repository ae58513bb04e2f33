//! End to end, disko + install phases: `landfall install --flake <fixture>#office
//! --phases disko,install` against the agent as PID 1 in a VM (256 MiB, NVMe):
//! the flake's disko.devices is evaluated and applied, the closure streamed into
//! the mounted root. Then, on the host, the VM's disk is checked with the tools
//! people trust: `e2fsck -fn` on the root partition, and real Nix's
//! `nix-store --verify --check-contents` and `nix path-info` on its store.

use crate::fixture;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use landfall_tests::agentimage::{start_agent_vm, AgentVm, AgentVmSpec};
use landfall_tests::bins::landfall_bin;
use landfall_tests::nixstore::comparable_path_info;

use landfall_tests::nixstore::TEST_NIX_CONFIG as NIX_CONFIG;

fn run(cmd: &mut Command) -> String {
    let out = cmd.env("NIX_CONFIG", NIX_CONFIG).output().expect("run");
    eprintln!(
        "$ {cmd:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {}", out.status);
    String::from_utf8(out.stdout).unwrap()
}

/// Start sector and size in sectors of partition `n` of a GPT image, read by util-linux's partx.
fn partition(image: &Path, n: u32) -> (u64, u64) {
    let out = run(Command::new("partx")
        .args(["-g", "-o", "START,SECTORS", "-n", &n.to_string()])
        .arg(image));
    let v: Vec<u64> = out.split_whitespace().map(|s| s.parse().unwrap()).collect();
    (v[0], v[1])
}

#[test]
fn flake_is_partitioned_and_installed_into_the_vms_disk() {
    let AgentVm {
        mut vm,
        dir,
        addr,
        tls,
        disk: disk_path,
    } = start_agent_vm(AgentVmSpec::new("install").disk_bytes(4 << 30));
    let built =
        fixture::build_office_fixture(&dir.join("flake"), &fixture::FixtureOptions::default())
            .expect("the office fixture builds with nix");

    let flake = format!("{}#office", built.flake_ref);
    let out = run(Command::new(landfall_bin()).args([
        "install",
        "--agent",
        &addr,
        "--tls",
        &tls,
        "--flake",
        &flake,
        "--phases",
        "disko,install",
        "--yes",
        "--json",
    ]));
    let summary = landfall_tests::bins::json_lines(&out);
    eprintln!("FIGURE install phases: {}", summary["phases"]);
    assert!(summary["closure"]["sent_paths"].as_u64().unwrap() >= 5);

    // The agent's RSS after receiving the closure (it runs in 256 MiB).
    let status =
        run(Command::new(landfall_bin())
            .args(["status", "--agent", &addr, "--tls", &tls, "--json"]));
    assert!(status.contains("/mnt/boot"), "{status}");
    vm.quit(Duration::from_secs(20)).unwrap();

    // Check the root filesystem and its store on the host.
    check_installed_root(&dir, &disk_path, &built.toplevel, false);
}

/// Checks the installed root (partition 3 of the office layout on `disk`) on
/// the host: `e2fsck -fn`, a kernel mount, real Nix's `nix-store --verify
/// --check-contents`, `nix path-info -r` equal to the host's (signatures left
/// out with `without_signatures`: paths from a binary cache carry its Sig) and
/// the system profile. Returns the installed store's path infos.
pub(crate) fn check_installed_root(
    dir: &Path,
    disk_path: &Path,
    toplevel: &str,
    without_signatures: bool,
) -> Vec<serde_json::Value> {
    let (start, sectors) = partition(disk_path, 3);
    let lo = run(Command::new("losetup")
        .args([
            "--find",
            "--show",
            "--offset",
            &(start * 512).to_string(),
            "--sizelimit",
            &(sectors * 512).to_string(),
        ])
        .arg(disk_path))
    .trim()
    .to_string();
    let fsck = Command::new("e2fsck")
        .args(["-fn", &lo])
        .output()
        .expect("e2fsck (install e2fsprogs)");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .arg(&lo)
        .arg(&mnt)
        .status()
        .unwrap()
        .success();
    let strip = |mut v: Vec<serde_json::Value>| {
        if without_signatures {
            for p in &mut v {
                p.as_object_mut().unwrap().remove("signatures");
            }
        }
        v
    };
    let checks = std::panic::catch_unwind(|| {
        assert!(
            fsck.status.success(),
            "e2fsck -fn: {}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        assert!(mounted, "the host kernel cannot mount the installed root");
        run(fixture::nix_command("nix-store")
            .args(["--verify", "--check-contents", "--store"])
            .arg(&mnt));
        let installed = comparable_path_info(Some(&mnt), toplevel);
        assert_eq!(
            strip(installed.clone()),
            strip(comparable_path_info(None, toplevel))
        );
        let link = std::fs::read_link(mnt.join("nix/var/nix/profiles/system-1-link")).unwrap();
        assert_eq!(link.to_str().unwrap(), toplevel);
        installed
    });
    let _ = Command::new("umount").arg(&mnt).status();
    let _ = Command::new("losetup").args(["-d", &lo]).status();
    match checks {
        Ok(installed) => installed,
        Err(p) => std::panic::resume_unwind(p),
    }
}
