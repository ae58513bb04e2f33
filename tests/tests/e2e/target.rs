//! End to end, the command users run: `landfall install --target root@HOST` on a
//! UEFI "rescue" VM reachable only by SSH (256 MiB) — kexec into the agent's
//! image, the flake's disko layout, the closure — with the session kept in a
//! per-target state folder. A second run finds the agent answering (no kexec),
//! the layout applied (nothing destroyed: the disk carries this install's ID,
//! kept in the state folder) and the store complete (nothing sent), then
//! installs the bootloader and reboots; the finished install's ID is gone.
//! Finally the disk boots by itself under OVMF: systemd-boot → the closure's
//! kernel and stage 1 → stage 2 prints its marker and the verdict of checking
//! its own store.

use crate::fixture;

use std::process::Command;
use std::time::Duration;

use landfall_tests::agentimage::{assert_installed_disk_boots, cached_image};
use landfall_tests::bins::{agent_static_bin, landfall_bin};
use landfall_tests::rescue::{RescueImage, RescueNetwork, AGENT_PORT, SSHD_READY};
use landfall_tests::StartVm;
use landfall_tests::{debian_kernel, sparse_image, TestDir};

use landfall_tests::nixstore::TEST_NIX_CONFIG as NIX_CONFIG;

fn landfall(args: &[&str], state: &std::path::Path) -> String {
    let out = Command::new(landfall_bin())
        .args(args)
        .env("NIX_CONFIG", NIX_CONFIG)
        .env("LANDFALL_STATE_DIR", state)
        .env("LANDFALL_AGENT_BIN", agent_static_bin())
        .output()
        .expect("run landfall");
    eprintln!(
        "$ landfall {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "landfall {} failed", args.join(" "));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn install_over_ssh_from_a_rescue_system() {
    let kernel = debian_kernel().expect("Debian kernel (scripts/fetch-kernel.sh)");
    let tdir = TestDir::new("target").unwrap();
    let dir = tdir.path().to_path_buf();
    let state = dir.join("state");
    // The closure carries the systemd-boot EFI binary its own installer puts on the ESP.
    let opts = fixture::FixtureOptions {
        systemd_boot_efi: Some(fixture::DEBIAN_SYSTEMD_BOOT_EFI.into()),
        ..fixture::FixtureOptions::default()
    };
    let built = fixture::build_office_fixture(&dir.join("flake"), &opts)
        .expect("the office fixture builds with nix");
    let image = cached_image(&kernel);
    let rescue = RescueImage::build(&kernel, &dir, RescueNetwork::Static).unwrap();
    let disk = sparse_image(&dir.join("nvme.img"), 4 << 30).unwrap();
    let mut vm = rescue
        .vm_builder(&kernel, &disk)
        .ovmf()
        .start_in(tdir)
        .unwrap();
    vm.wait_for(SSHD_READY, Duration::from_secs(120)).unwrap();
    let port = vm.host_port(22).unwrap().to_string();
    let agent_addr = vm.forwarded_addr(AGENT_PORT).unwrap().to_string();
    let known_hosts = rescue.write_known_hosts(vm.host_port(22).unwrap()).unwrap();
    let kh = format!("UserKnownHostsFile={}", known_hosts.display());
    let flake = format!("{}#office", built.flake_ref);
    let args = |phases: &str| -> Vec<String> {
        [
            "install",
            "--target",
            "root@127.0.0.1",
            "-p",
            &port,
            "-i",
            rescue.client_key.to_str().unwrap(),
            "--ssh-option",
            &kh,
            "--image",
            image.to_str().unwrap(),
            "--agent-addr",
            &agent_addr,
            "--flake",
            &flake,
            "--yes",
            "--json",
            "--wait",
            "240",
            "--phases",
            phases,
            "--no-wait",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |a: Vec<String>| landfall(&a.iter().map(String::as_str).collect::<Vec<_>>(), &state);
    let out = run(args("kexec,disko,install"));
    let summary = landfall_tests::bins::json_lines(&out);
    eprintln!("FIGURE target install phases: {}", summary["phases"]);
    let phases: Vec<&str> = summary["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    // The flake is evaluated and built before the target is touched.
    assert_eq!(phases, ["evaluate", "kexec", "disko", "install", "total"]);
    assert!(summary["closure"]["sent_paths"].as_u64().unwrap() >= 5);
    vm.wait_for("starting as PID 1", Duration::from_secs(5))
        .unwrap();
    // The kexec carried the rescue system's NVMe timeout over to the agent's kernel.
    let console = vm.console().output();
    assert!(
        console.contains("Loaded module nvme_core with io_timeout=600"),
        "the agent's nvme_core lacks the rescue system's io_timeout:\n{console}"
    );
    // The session lives in the target's state folder.
    let sessions: Vec<_> = std::fs::read_dir(&state).unwrap().collect();
    assert_eq!(sessions.len(), 1, "one state folder per target");
    // So does the unfinished install's ID, which the second run resumes.
    let install_id = sessions[0].as_ref().unwrap().path().join("install-id");
    let id = std::fs::read_to_string(&install_id).expect("the install's ID in the state folder");
    assert_eq!(id.trim().len(), 32, "{id}");

    // The second run: no kexec, nothing destroyed, nothing sent; then bootloader and reboot.
    let out = run(args("kexec,disko,install,bootloader,reboot"));
    let again = landfall_tests::bins::json_lines(&out);
    let phases: Vec<&str> = again["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "evaluate",
            "disko",
            "install",
            "bootloader",
            "reboot",
            "total"
        ],
        "{again}"
    );
    assert_eq!(again["closure"]["sent_paths"], 0);
    // The reboot phase finished the install: the next one gets a new ID.
    assert!(
        !install_id.exists(),
        "the finished install's ID is still in {}",
        install_id.display()
    );
    // The VM resets (qemu's direct kernel boot would bring the rescue system back); the disk is done.
    vm.wait_for("reboot: Restarting system", Duration::from_secs(60))
        .unwrap();
    vm.kill();
    let tdir = vm.into_test_dir();

    // The installed disk boots by itself under OVMF.
    assert_installed_disk_boots(
        tdir,
        &dir.join("nvme.img"),
        "landfall-test-0",
        &built.toplevel,
    );
}
