//! End to end, issue "kexec": a rescue VM reachable only by SSH (static
//! address 10.0.2.15/24 via 10.0.2.2) → `landfall kexec --target
//! root@127.0.0.1 -p <port> …` uploads the static agent and the RAM image,
//! `landfall-agent kexec` captures the network and kexecs → the agent restores
//! the static address from the captured configuration and answers `landfall
//! inventory` through the forwarded agent port.
//!
//! Figures printed: the image size, the seconds from the kexec to the agent answering.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use landfall_tests::agentimage::cached_image;
use landfall_tests::bins::{agent_static_bin, landfall_ok};
use landfall_tests::rescue::{RescueImage, RescueNetwork, AGENT_PORT, SSHD_READY};
use landfall_tests::StartVm;
use landfall_tests::{debian_kernel, sparse_image, TestDir};

fn ssh(image: &RescueImage, user: &str, port: u16, known_hosts: &Path, cmd: &str) -> Output {
    let out = Command::new("ssh")
        .args(image.ssh_args(user, port, known_hosts))
        .arg(cmd)
        .output()
        .expect("ssh (Debian package openssh-client)");
    eprintln!(
        "$ ssh {user}@rescue {cmd}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn kexec_from_static_rescue_restores_network_and_agent_answers() {
    let console = kexec_story(RescueNetwork::Static, false, "static");
    let after = console
        .split("starting as PID 1")
        .nth(1)
        .unwrap_or_default();
    assert!(
        after.contains("route 0.0.0.0/0 via 10.0.2.2"),
        "the default route was not restored"
    );
    assert!(
        after.contains("address fec0::15/64"),
        "the static IPv6 address was not restored"
    );
    // No DHCP was needed: the address came from the captured static configuration.
    assert!(
        !console.contains("DHCP lease 10.0.2.15"),
        "the agent used DHCP instead of the captured static configuration"
    );
}

/// The rescue system got its address by DHCP (finite lifetime): the agent
/// restores it and renews it with its own DHCP client.
#[test]
fn kexec_from_a_dhcp_rescue_system_keeps_dhcp() {
    let console = kexec_story(RescueNetwork::Dhcp, false, "dhcp");
    let after = console
        .split("starting as PID 1")
        .nth(1)
        .unwrap_or_default();
    assert!(
        after.contains("DHCP lease 10.0.2.15"),
        "no DHCP after the kexec"
    );
}

/// The rescue machine boots with UEFI (OVMF), as the machines landfall installs
/// systemd-boot on: the kexec'd agent still sees UEFI firmware.
#[test]
fn kexec_from_uefi_rescue_keeps_uefi() {
    kexec_story(RescueNetwork::Static, true, "uefi");
}

/// The whole story; returns the console log.
fn kexec_story(net: RescueNetwork, uefi: bool, label: &str) -> String {
    let kernel = debian_kernel().expect("Debian kernel (scripts/fetch-kernel.sh)");
    let tdir = TestDir::new(label).unwrap();
    let dir = tdir.path().to_path_buf();
    let session = dir.join("session");
    landfall_ok(&[
        "certs",
        "init",
        "--dir",
        session.to_str().unwrap(),
        "--label",
        "rescue",
    ]);
    let image_dir = cached_image(&kernel);
    let image_bytes = std::fs::metadata(image_dir.join("bzImage")).unwrap().len()
        + std::fs::metadata(image_dir.join("initrd")).unwrap().len();
    eprintln!("FIGURE kexec_image_bytes={image_bytes}");

    let rescue = RescueImage::build(&kernel, &dir, net).unwrap();
    let disk = sparse_image(&dir.join("nvme.img"), 2 << 30).unwrap();
    let mut builder = rescue.vm_builder(&kernel, &disk);
    if uefi {
        builder = builder.ovmf();
    }
    let mut vm = builder.start_in(tdir).unwrap();
    vm.wait_for(SSHD_READY, Duration::from_secs(120)).unwrap();
    let port = vm.host_port(22).unwrap();
    let agent_addr = vm.forwarded_addr(AGENT_PORT).unwrap().to_string();
    let known_hosts = rescue.write_known_hosts(port).unwrap();

    // The rescue system really is what the test claims: static address, no agent.
    let out = ssh(
        &rescue,
        "root",
        port,
        &known_hosts,
        "ip -4 addr show; ls /run",
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("10.0.2.15/24"), "{text}");
    // Static: the address lives forever; DHCP: it has the lease's lifetime.
    let forever = text
        .lines()
        .skip_while(|l| !l.contains("10.0.2.15/24"))
        .nth(1)
        .is_some_and(|l| l.contains("valid_lft forever"));
    assert_eq!(forever, net == RescueNetwork::Static, "{text}");
    assert!(!text.contains("landfall"), "{text}");

    let port_s = port.to_string();
    let kh_opt = format!("UserKnownHostsFile={}", known_hosts.display());
    let out = landfall_ok(&[
        "kexec",
        "--target",
        "root@127.0.0.1",
        "-p",
        &port_s,
        "-i",
        rescue.client_key.to_str().unwrap(),
        "--ssh-option",
        &kh_opt,
        "--image",
        image_dir.to_str().unwrap(),
        "--tls",
        session.to_str().unwrap(),
        "--agent-bin",
        agent_static_bin().to_str().unwrap(),
        "--agent",
        &agent_addr,
        "--wait",
        "240",
    ]);
    assert!(
        out.contains("uploaded landfall-agent") && out.contains("uploaded initrd"),
        "{out}"
    );
    let secs: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("The agent answered "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer time in {out}"));
    eprintln!("FIGURE kexec_to_agent_seconds={secs}");

    // The new kernel booted the agent as PID 1 and restored the saved configuration.
    vm.wait_for("starting as PID 1", Duration::from_secs(10))
        .unwrap();
    vm.wait_for("restoring the configuration of", Duration::from_secs(10))
        .unwrap();
    let tls = session.to_str().unwrap();
    let json = landfall_ok(&[
        "inventory",
        "--agent",
        &agent_addr,
        "--tls",
        tls,
        "--json",
        "--wait",
        "30",
    ]);
    let inv: serde_json::Value = serde_json::from_str(&json).unwrap();
    let nics = inv["nics"].as_array().unwrap();
    assert!(
        nics.iter().any(|n| n["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "10.0.2.15/24")),
        "the static address was not restored: {json}"
    );
    if net == RescueNetwork::Static {
        assert!(
            nics.iter().any(|n| n["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "fec0::15/64")),
            "the static IPv6 address was not restored: {json}"
        );
    }
    let disks = inv["disks"].as_array().unwrap();
    assert!(
        disks.iter().any(|d| d["serial"] == "landfall-test-0"),
        "no NVMe disk in {json}"
    );
    assert_eq!(
        inv["firmware"]["mode"],
        if uefi { "uefi" } else { "bios" },
        "{json}"
    );
    let status = landfall_ok(&["status", "--agent", &agent_addr, "--tls", tls, "--json"]);
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(st["pid1"], true, "{status}");
    // The kexec issued this boot's identity: the agent reports the boot ID
    // the session carried, and its key is the one pinned (else no answer).
    let boot_id = std::fs::read_to_string(session.join("boot-id")).unwrap();
    assert_eq!(st["boot_id"], boot_id.trim(), "{status}");
    assert!(
        out.contains(&format!("boot ID {}", boot_id.trim())),
        "{out}"
    );
    let console = std::fs::read_to_string(vm.console_log()).unwrap();
    vm.quit(Duration::from_secs(10)).unwrap();
    console
}
