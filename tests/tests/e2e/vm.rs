//! `landfall install --flake …#office --vm --yes`, the README's first command:
//! a throwaway local rescue VM (256 MiB, NVMe, UEFI, SSH only) is started by
//! landfall itself, the whole normal flow runs against it (kexec over SSH with
//! host keys checked, disko, closure, bootloader, reboot), then the installed
//! disk boots alone and landfall reports the installed system came up. The
//! confirmation names the VM disk's model, serial and size. `landfall vm`
//! alone starts the rescue machine and says how to log in: the test does.
//!
//! The first install is also issue 17's end-to-end hardware configuration:
//! the flake is `office-hw` in a git work tree, which imports
//! `./hardware-configuration.nix` — absent until `--generate-hardware-config
//! nixos-generate-config PATH` writes it from the VM after the kexec (and
//! git-adds it); the flake is then evaluated and built with it, installed,
//! and the installed system's stage 1 loads exactly the modules the file
//! names and its toplevel carries the file.

use crate::fixture;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use landfall_tests::bins::{agent_static_bin, landfall_bin};
use landfall_tests::fixtures::git;
use landfall_tests::loopdev::{partition_range, Loop};
use landfall_tests::StartVm;
use landfall_tests::TestDir;

fn vm_install_output(dir: &std::path::Path, flake: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new(landfall_bin())
        .args(["install", "--flake", flake, "--vm", "--yes", "--vm-dir"])
        .arg(dir.join("vm"))
        .args(extra)
        .env("NIX_CONFIG", fixture::NIX_CONFIG)
        .env("LANDFALL_STATE_DIR", dir.join("state"))
        .env("LANDFALL_AGENT_BIN", agent_static_bin())
        .output()
        .expect("run landfall");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "$ landfall install --flake {flake} --vm --yes {}\n{text}",
        extra.join(" ")
    );
    (out.status.success(), text)
}

#[test]
fn install_vm_runs_the_whole_flow_and_the_installed_system_comes_up() {
    let tdir = TestDir::new("vm-install").unwrap();
    let dir = tdir.path().to_path_buf();
    let opts = fixture::FixtureOptions {
        systemd_boot_efi: Some(fixture::DEBIAN_SYSTEMD_BOOT_EFI.into()),
        ..fixture::FixtureOptions::default()
    };
    let built = fixture::build_office_fixture(&dir.join("flake"), &opts)
        .expect("the office example builds with nix");
    // The example as a user's flake: a git work tree (the vendor folder, an
    // input of its own, left out), without the hardware configuration.
    let flake = built.flake_dir.clone();
    let hw_file = flake.join("hardware-configuration.nix");
    assert!(!hw_file.exists());
    std::fs::write(flake.join(".gitignore"), "vendor/\n").unwrap();
    git(&flake, &["init", "-q"]);
    git(&flake, &["add", "-A"]);
    git(
        &flake,
        &[
            "-c",
            "user.name=landfall",
            "-c",
            "user.email=landfall@localhost",
            "commit",
            "-qm",
            "office",
        ],
    );
    let flake_ref = format!("{}#office-hw", flake.display());
    let missing = fixture::nix_command("nix")
        .args(["eval", "--raw"])
        .arg(format!(
            "{}#nixosConfigurations.office-hw.config.system.build.toplevel",
            flake.display()
        ))
        .output()
        .unwrap();
    let missing = String::from_utf8_lossy(&missing.stderr);
    assert!(
        missing.contains("office-hw imports ./hardware-configuration.nix, which is missing"),
        "evaluating office-hw without the file: {missing}"
    );
    let extra = extra_files_tree(&dir.join("extra"));
    let started = Instant::now();
    let (ok, text) = vm_install_output(
        &dir,
        &flake_ref,
        &[
            "--generate-hardware-config",
            "nixos-generate-config",
            hw_file.to_str().unwrap(),
            "--extra-files",
            extra.to_str().unwrap(),
            "--chown",
            "/home/alice",
            "1000:100",
            "--copy-host-keys",
        ],
    );
    assert!(ok, "landfall install --vm failed");
    eprintln!(
        "FIGURE vm install: {:.1} s from start to the installed system checked",
        started.elapsed().as_secs_f64()
    );
    for needle in [
        "The rescue VM answers SSH on 127.0.0.1:",
        "main = /dev/nvme0n1: QEMU NVMe Ctrl, serial landfall-vm-0, 4.0 GiB — blank",
        "The agent answered",
        "Write a GPT with 3 partition(s) to /dev/nvme0n1",
        "bootloader installed",
        "the VM has 256 MiB of RAM",
        "The installed system came up",
        "LANDFALL-STORE-CHECK: OK",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in the output");
    }
    let toplevel = check_hardware_config(&flake, &hw_file, &dir.join("vm/installed-console.log"));
    assert_ne!(toplevel, built.toplevel, "office-hw is not office");
    assert!(
        text.contains(&format!("LANDFALL-STAGE2: {toplevel}")),
        "the installed system is not office-hw built with the generated file"
    );
    let done = text
        .lines()
        .find(|l| l.starts_with("Done: "))
        .expect("a phase summary");
    eprintln!("FIGURE vm install phases: {done}");
    assert!(done.contains("files "), "{done}");
    // The hardware configuration is made after the kexec, and only then is
    // the flake evaluated.
    assert!(
        done.starts_with("Done: kexec ") && done.contains(", hardware-config ") && {
            let hw = done.find("hardware-config").unwrap();
            done.find("evaluate").is_some_and(|e| e > hw)
        },
        "{done}"
    );
    check_installed_files(&dir, &text, &toplevel, &hw_file);
    // The throwaway VM is gone: no qemu is left with this test's disk.
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let disk = dir.join("vm/disk.img").display().to_string();
    assert!(
        !String::from_utf8_lossy(&ps.stdout).contains(&disk),
        "a qemu with {disk} is still running"
    );
}

/// The `"a" "b"` of the generated file's `NAME = [ "a" "b" ];` line.
fn nix_list(text: &str, name: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name} = [")))
        .unwrap_or_else(|| panic!("no {name} line in:\n{text}"));
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// The words after `prefix` on the console line starting with it.
fn console_words(console: &str, prefix: &str) -> Vec<String> {
    let line = console
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line on the console:\n{console}"));
    line[prefix.len()..]
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Checks the generated hardware configuration and what the installed
/// system made of it; returns office-hw's toplevel built from the flake
/// with the file.
fn check_hardware_config(flake: &Path, hw_file: &Path, console_log: &Path) -> String {
    let hw = std::fs::read_to_string(hw_file).expect("the hardware configuration was written");
    eprintln!("{}:\n{hw}", hw_file.display());
    assert_eq!(
        git(flake, &["status", "--porcelain"]).trim(),
        "A hardware-configuration.nix",
        "the file is added with --intent-to-add"
    );
    let parsed = Command::new("nix-instantiate")
        .arg("--parse")
        .arg(hw_file)
        .output()
        .expect("nix-instantiate (Debian: apt-get install -y nix-bin)");
    assert!(
        parsed.status.success(),
        "nix-instantiate --parse: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    // The rescue VM: qemu's q35 with its disk on an NVMe controller (bound
    // to nvme) and the ICH9 AHCI controller (ahci), under KVM or TCG: a
    // qemu guest. Its network card is not storage.
    let available = nix_list(&hw, "boot.initrd.availableKernelModules");
    assert_eq!(available, ["nvme", "ahci"], "{hw}");
    let initrd_kernel = nix_list(&hw, "boot.initrd.kernelModules");
    assert!(
        hw.contains("  imports =\n    [ (modulesPath + \"/profiles/qemu-guest.nix\")\n    ];\n"),
        "{hw}"
    );
    // In the order the module system merges them: the file's
    // availableKernelModules, then the fixture's qemu-guest profile's (the
    // virtio storage drivers), then boot.initrd.kernelModules; as module
    // names (`-` as `_`).
    let named: Vec<String> = available
        .iter()
        .map(String::as_str)
        .chain(["virtio_pci", "virtio_blk", "virtio_scsi"])
        .chain(initrd_kernel.iter().map(String::as_str))
        .map(|m| m.replace('-', "_"))
        .collect();
    let console = std::fs::read_to_string(console_log).expect("the installed VM's console log");
    assert_eq!(
        console_words(
            &console,
            "LANDFALL-STAGE1: hardware-configuration.nix modules: "
        ),
        named,
        "stage 1 was built from the file's modules"
    );
    // Loaded: exactly those, their dependencies and the ext4 root's — the
    // load orders the fixture vendored for each.
    let mut expected = std::collections::BTreeSet::new();
    for m in named
        .iter()
        .map(String::as_str)
        .chain(["ext4", "crc32c_generic"])
    {
        let order = flake.join(format!("vendor/kernel/hw/{}.order", m.replace('-', "_")));
        for k in std::fs::read_to_string(&order)
            .unwrap_or_else(|e| panic!("{}: {e}", order.display()))
            .split_whitespace()
        {
            expected.insert(k.to_string());
        }
    }
    let loaded: std::collections::BTreeSet<String> =
        console_words(&console, "LANDFALL-STAGE1: modules loaded: ")
            .into_iter()
            .collect();
    assert_eq!(
        loaded, expected,
        "stage 1 loaded other modules than the file's"
    );
    assert!(
        !console.contains("insmod"),
        "a module failed to load:\n{console}"
    );
    // The installed system carries the file it was built with.
    let sum = Command::new("sha256sum").arg(hw_file).output().unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout);
    let sum = sum.split_whitespace().next().unwrap();
    let hwconfig = console_words(&console, "LANDFALL-HWCONFIG: ");
    assert_eq!(
        hwconfig[0], sum,
        "the installed system's hardware-configuration.nix"
    );
    // The flake, now with the file, builds the system that was installed.
    let out = fixture::nix_command("nix")
        .args(["build", "--no-link", "--json"])
        .arg(format!(
            "{}#nixosConfigurations.office-hw.config.system.build.toplevel",
            flake.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix build office-hw: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let toplevel = v[0]["outputs"]["out"].as_str().unwrap().to_string();
    assert!(
        toplevel.ends_with("-nixos-system-office-hw-fixture"),
        "{toplevel}"
    );
    assert_eq!(
        hwconfig[1],
        format!("{toplevel}/hardware-configuration.nix")
    );
    toplevel
}

/// The `--extra-files` tree: modes, a relative and an absolute link, a
/// private folder to chown, and files owned by a user the target lacks.
fn extra_files_tree(d: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    std::fs::create_dir_all(d.join("etc/landfall-extra")).unwrap();
    std::fs::create_dir_all(d.join("home/alice/.ssh")).unwrap();
    std::fs::write(
        d.join("etc/landfall-extra/motd"),
        b"hello from --extra-files\n",
    )
    .unwrap();
    std::fs::write(d.join("etc/landfall-extra/secret"), b"s3cret\n").unwrap();
    mode(&d.join("etc/landfall-extra/secret"), 0o600);
    std::fs::write(d.join("etc/landfall-extra/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    mode(&d.join("etc/landfall-extra/run.sh"), 0o755);
    std::os::unix::fs::symlink("motd", d.join("etc/landfall-extra/current")).unwrap();
    std::os::unix::fs::symlink("/run/current-system", d.join("etc/landfall-extra/system")).unwrap();
    std::fs::write(
        d.join("home/alice/.ssh/authorized_keys"),
        b"ssh-ed25519 AAAA alice\n",
    )
    .unwrap();
    mode(&d.join("home/alice/.ssh/authorized_keys"), 0o600);
    mode(&d.join("home/alice/.ssh"), 0o700);
    mode(&d.join("home/alice"), 0o700);
    // Owned by someone the target does not know: lands owned by root.
    std::os::unix::fs::chown(d.join("etc/landfall-extra/motd"), Some(4321), Some(4321)).unwrap();
    d.to_path_buf()
}

/// SHA256 fingerprint of a key file, as `ssh-keygen -lf` prints it.
fn fingerprint(p: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(p)
        .output()
        .expect("ssh-keygen (Debian: apt-get install -y openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen -lf {}: {}",
        p.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// Mounts the installed root (partition 3 of the VM's disk) read-only on
/// the host and checks what the files phase wrote.
fn check_installed_files(dir: &Path, text: &str, toplevel: &str, hw_file: &Path) {
    use std::os::unix::fs::MetadataExt;
    let disk = dir.join("vm/disk.img");
    let (start, len) = partition_range(&disk, 3);
    let root = Loop::window(&disk, start, len);
    let lo = root.dev.clone();
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-o", "ro,noload", &lo])
        .arg(&mnt)
        .status()
        .unwrap()
        .success();
    let checks = std::panic::catch_unwind(|| {
        assert!(mounted, "the host cannot mount the installed root");
        let md =
            |p: &str| std::fs::symlink_metadata(mnt.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        let m = |p: &str| md(p).mode() & 0o7777;
        let owner = |p: &str| (md(p).uid(), md(p).gid());
        assert_eq!(
            std::fs::read(mnt.join("etc/landfall-extra/motd")).unwrap(),
            b"hello from --extra-files\n"
        );
        assert_eq!(m("etc/landfall-extra/motd"), 0o644);
        assert_eq!(
            owner("etc/landfall-extra/motd"),
            (0, 0),
            "DIR's owner is not carried"
        );
        assert_eq!(m("etc/landfall-extra/secret"), 0o600);
        assert_eq!(m("etc/landfall-extra/run.sh"), 0o755);
        assert_eq!(
            std::fs::read_link(mnt.join("etc/landfall-extra/current")).unwrap(),
            Path::new("motd")
        );
        assert_eq!(
            std::fs::read_link(mnt.join("etc/landfall-extra/system")).unwrap(),
            Path::new("/run/current-system")
        );
        for p in [
            "home/alice",
            "home/alice/.ssh",
            "home/alice/.ssh/authorized_keys",
        ] {
            assert_eq!(owner(p), (1000, 100), "{p} is chowned");
        }
        assert_eq!(m("home/alice"), 0o700);
        assert_eq!(owner("home"), (0, 0));
        // The rescue system's own host key, both halves, read-only, root's.
        let key = mnt.join("etc/ssh/ssh_host_ed25519_key");
        assert_eq!(m("etc/ssh/ssh_host_ed25519_key"), 0o400);
        assert_eq!(m("etc/ssh/ssh_host_ed25519_key.pub"), 0o444);
        assert_eq!(owner("etc/ssh/ssh_host_ed25519_key"), (0, 0));
        let rescue = fingerprint(&dir.join("vm/ssh_host_ed25519_key"));
        assert_eq!(
            fingerprint(&key),
            rescue,
            "the private key is the rescue system's"
        );
        assert_eq!(
            fingerprint(&mnt.join("etc/ssh/ssh_host_ed25519_key.pub")),
            rescue
        );
        assert!(
            text.contains(
                "The installed system's host key: etc/ssh/ssh_host_ed25519_key.pub ssh-ed25519 "
            ),
            "the controller reports the host key"
        );
        // The installed store's system carries the generated file.
        let installed = mnt.join(toplevel.trim_start_matches('/'));
        assert_eq!(
            std::fs::read_to_string(installed.join("hardware-configuration.nix"))
                .unwrap_or_else(|e| panic!("{}: {e}", installed.display())),
            std::fs::read_to_string(hw_file).unwrap()
        );
    });
    let _ = Command::new("umount").arg(&mnt).status();
    drop(root);
    if let Err(p) = checks {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn landfall_vm_starts_a_rescue_machine_reachable_by_ssh() {
    let tdir = TestDir::new("vm-only").unwrap();
    let dir = tdir.path().to_path_buf();
    let mut child = Command::new(landfall_bin())
        .args(["vm", "--vm-dir"])
        .arg(dir.join("vm"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run landfall vm");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("landfall vm: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut ssh_line = None;
    let deadline = Instant::now() + Duration::from_secs(400);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(l) if l.trim_start().starts_with("ssh -p ") => ssh_line = Some(l.trim().to_string()),
            Ok(l) if l.contains("Ctrl-C stops it") => break,
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let ssh_line = ssh_line.expect("landfall vm printed how to log in");
    // The printed command, as a person would run it (host key checked).
    let mut words: Vec<&str> = ssh_line.split_whitespace().collect();
    let dest = words.pop().unwrap();
    let out = Command::new(words[0])
        .args(&words[1..])
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ])
        .arg(dest)
        .args(["cat /proc/meminfo | head -1; ls /dev/nvme0n1"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ssh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("MemTotal") && said.contains("/dev/nvme0n1"),
        "{said}"
    );
    // Ctrl-C stops landfall and its qemu.
    let disk = dir.join("vm/disk.img").display().to_string();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "landfall vm after Ctrl-C: {status}");
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout).contains(&disk),
        "a qemu with {disk} is still running"
    );
}

/// `office-btrfs`: the seed's disk with its root as btrfs subvolumes (`/root`
/// at /, `/nix`, `/home`) and a swapfile in a `/swap` subvolume, installed
/// with `--vm` and booted: stage 1 mounts `subvol=/root` and `subvol=/nix`,
/// stage 2 mounts /home and /.swapvol and turns the swapfile on.
#[test]
fn install_vm_office_btrfs_boots_from_subvolumes_with_its_swapfile() {
    let tdir = TestDir::new("vm-install-btrfs").unwrap();
    let dir = tdir.path().to_path_buf();
    let opts = fixture::FixtureOptions {
        systemd_boot_efi: Some(fixture::DEBIAN_SYSTEMD_BOOT_EFI.into()),
        ..fixture::FixtureOptions::default()
    };
    let built = fixture::build_office_fixture(&dir.join("flake"), &opts)
        .expect("the office example builds with nix");
    let (ok, text) = vm_install_output(&dir, &format!("{}#office-btrfs", built.flake_ref), &[]);
    assert!(ok, "landfall install --vm failed");
    for needle in [
        "Write a GPT with 3 partition(s) to /dev/nvme0n1",
        "bootloader installed",
        "The installed system came up",
        "LANDFALL-STAGE2: ",
        "LANDFALL-STORE-CHECK: OK",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in the output");
    }
    let console = std::fs::read_to_string(dir.join("vm/installed-console.log"))
        .expect("the installed VM's console log");
    for needle in [
        "LANDFALL-STAGE1: /: /dev/disk/by-partlabel/disk-main-root",
        "(btrfs, subvol=/root,compress=zstd,noatime)",
        "(btrfs, subvol=/nix,compress=zstd,noatime)",
        "LANDFALL-MOUNT: /home (btrfs, subvol=/home,compress=zstd)",
        "LANDFALL-MOUNT: /.swapvol (btrfs, subvol=/swap,noatime)",
        "LANDFALL-SWAP: /.swapvol/swapfile active",
        "LANDFALL-STORE-CHECK: OK",
    ] {
        assert!(
            console.contains(needle),
            "missing {needle:?} on the installed system's console:\n{console}"
        );
    }
    assert!(
        !console.contains("FAILED"),
        "a step failed on the installed system:\n{console}"
    );
}

/// `office-luks-lvm`: nixos-anywhere's quick-start layout inside LUKS (ESP +
/// LUKS `crypted` → LVM VG `pool` → ext4 root LV of 100%FREE and a swap LV),
/// installed with `--vm --disk-encryption-keys /tmp/disk.key ./disk.key` into
/// the 256 MiB rescue VM, then booted: stage 1 asks for the passphrase on the
/// console, landfall types the key there, cryptsetup opens it, lvm activates
/// the VG, / is mounted from /dev/pool/root and stage 2 turns the swap LV on.
#[test]
fn install_vm_office_luks_lvm_unlocks_in_stage_1_and_boots_from_the_lvs() {
    let tdir = TestDir::new("vm-install-luks-lvm").unwrap();
    let dir = tdir.path().to_path_buf();
    let opts = fixture::FixtureOptions {
        systemd_boot_efi: Some(fixture::DEBIAN_SYSTEMD_BOOT_EFI.into()),
        ..fixture::FixtureOptions::default()
    };
    let built = fixture::build_office_fixture(&dir.join("flake"), &opts)
        .expect("the office example builds with nix");
    // A passphrase-like key, written without a newline (as nixos-anywhere's
    // quick start does with `echo -n`), so it can be typed at the prompt.
    let secret = "landfall-luks-e2e-words";
    let key = dir.join("disk.key");
    std::fs::write(&key, secret).unwrap();
    let started = Instant::now();
    let (ok, text) = vm_install_output(
        &dir,
        &format!("{}#office-luks-lvm", built.flake_ref),
        &[
            "--disk-encryption-keys",
            "/tmp/disk.key",
            key.to_str().unwrap(),
        ],
    );
    assert!(ok, "landfall install --vm failed");
    eprintln!(
        "FIGURE vm install luks-lvm: {:.1} s from start to the installed system checked",
        started.elapsed().as_secs_f64()
    );
    for needle in [
        "Put 1 disk key file(s) into the target's RAM: /tmp/disk.key",
        "the VM has 256 MiB of RAM",
        "bootloader installed",
        "Typed the passphrase of LUKS device crypted",
        "The installed system came up",
        "-nixos-system-office-luks-lvm-fixture",
        "LANDFALL-STORE-CHECK: OK",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in the output");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("LANDFALL-STAGE2: /nix/store/")
                && l.ends_with("-nixos-system-office-luks-lvm-fixture")),
        "the installed system's stage 2 is not office-luks-lvm's"
    );
    assert!(
        !text.contains(secret),
        "the disk key appears in landfall's output"
    );
    let console = std::fs::read_to_string(dir.join("vm/installed-console.log"))
        .expect("the installed VM's console log");
    for needle in [
        "LANDFALL-STAGE1: unlocking crypted (/dev/disk/by-partlabel/disk-main-luks",
        "LANDFALL-STAGE1: unlocked crypted as /dev/mapper/crypted",
        "LANDFALL-STAGE1: LVM active:  pool root",
        "LANDFALL-STAGE1: /: /dev/pool/root -> /dev/mapper/pool-root (ext4, defaults)",
        "LANDFALL-SWAP: /dev/pool/swap active",
        "LANDFALL-STORE-CHECK: OK",
    ] {
        assert!(
            console.contains(needle),
            "missing {needle:?} on the installed system's console:\n{console}"
        );
    }
    assert!(
        !console.contains(secret),
        "the passphrase was echoed on the installed system's console"
    );
    assert!(
        !console.contains("FAILED") && !console.contains("No key available"),
        "a step failed on the installed system:\n{console}"
    );
}

/// Issue 18, the seed's own bootloader: `office-grub` (GRUB 2 for BIOS in the
/// 1M EF02 partition and for UEFI at the ESP's removable path, installed by
/// the closure's switch-to-configuration in the agent's chroot) installed
/// with `--vm --firmware bios` and with `--firmware uefi`; each installed disk
/// boots through GRUB's menu entry with that firmware, then — the hybrid
/// layout's point — with the other one. The disk is checked from outside:
/// `sgdisk -v`, the ESP with `fsck.fat -n`, GRUB's core image in the BIOS
/// boot partition with boot.img in the MBR pointing at it, and nothing
/// written outside the partitions but the MBR's boot code and the GPT.
#[test]
fn install_vm_office_grub_boots_under_bios_and_uefi() {
    let tdir = TestDir::new("vm-install-grub").unwrap();
    let dir = tdir.path().to_path_buf();
    let opts = fixture::FixtureOptions {
        grub: Some(fixture::DEBIAN_GRUB_LIB.into()),
        ..fixture::FixtureOptions::default()
    };
    let built = fixture::build_office_fixture(&dir.join("flake"), &opts)
        .expect("the office example builds with nix");
    let grub = format!("{}#office-grub", built.flake_ref);
    for (firmware, other) in [("bios", "uefi"), ("uefi", "bios")] {
        let run = dir.join(firmware);
        let started = Instant::now();
        let (ok, text) = vm_install_output(&run, &grub, &["--firmware", firmware]);
        assert!(ok, "landfall install --vm --firmware {firmware} failed");
        eprintln!(
            "FIGURE vm install office-grub --firmware {firmware}: {:.1} s from start to the installed system checked",
            started.elapsed().as_secs_f64()
        );
        let shown = if firmware == "bios" {
            "BIOS (SeaBIOS)"
        } else {
            "UEFI (OVMF)"
        };
        for needle in [
            "Started the rescue VM (qemu pid ".into(),
            format!("{shown}, 256 MiB"),
            "switch-to-configuration: installing GRUB for BIOS (i386-pc) on /dev/nvme0n1".into(),
            "switch-to-configuration: installing GRUB for UEFI (x86_64-efi)".into(),
            "bootloader installed (GRUB, store on ".into(),
            format!("Booting the installed disk with {shown} firmware"),
            "The installed system came up".into(),
            "LANDFALL-STORE-CHECK: OK".into(),
        ] {
            assert!(text.contains(&needle), "missing {needle:?} in the output");
        }
        let toplevel = text
            .lines()
            .find_map(|l| {
                l.split("LANDFALL-STAGE2: ")
                    .nth(1)
                    .filter(|t| t.ends_with("-nixos-system-office-grub-fixture"))
            })
            .expect("the installed system's stage 2 is office-grub's")
            .to_string();
        let console = std::fs::read_to_string(run.join("vm/installed-console.log"))
            .expect("the installed VM's console log");
        check_grub_console(&console, &toplevel, firmware);
        let disk = run.join("vm/disk.img");
        check_grub_disk(&disk);
        // The same disk with the other firmware.
        let started = Instant::now();
        let console = boot_disk_with(&disk, other, &toplevel);
        check_grub_console(&console, &toplevel, other);
        eprintln!(
            "FIGURE office-grub disk installed with --firmware {firmware} booted with {other}: {:.1} s to the store check",
            started.elapsed().as_secs_f64()
        );
    }
}

/// `office-grub-no-bios-boot`: office-grub whose layout lost its EF02
/// partition while GRUB's devices still name the disk. GRUB cannot embed its
/// core image for BIOS: the bootloader phase fails with the installer's
/// output naming why, and the machine is not rebooted.
#[test]
fn install_vm_office_grub_without_bios_boot_partition_stops_before_the_reboot() {
    let tdir = TestDir::new("vm-install-grub-no-ef02").unwrap();
    let dir = tdir.path().to_path_buf();
    let opts = fixture::FixtureOptions {
        grub: Some(fixture::DEBIAN_GRUB_LIB.into()),
        ..fixture::FixtureOptions::default()
    };
    let built = fixture::build_office_fixture(&dir.join("flake"), &opts)
        .expect("the office example builds with nix");
    let run = dir.join("no-bios-boot");
    let (ok, text) = vm_install_output(
        &run,
        &format!("{}#office-grub-no-bios-boot", built.flake_ref),
        &["--firmware", "bios"],
    );
    assert!(!ok, "an install whose GRUB cannot embed succeeded");
    for needle in [
        "Write a GPT with 2 partition(s) to /dev/nvme0n1",
        "The closure's bootloader installer failed (exit status 1)",
        "this GPT partition label contains no BIOS Boot Partition",
        "NOT rebooted",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in the output");
    }
    assert!(
        !text.contains("The installed system came up")
            && !run.join("vm/installed-console.log").exists(),
        "the installed disk was booted"
    );
    let rescue = std::fs::read_to_string(run.join("vm/rescue-console.log")).unwrap_or_default();
    assert!(
        !rescue.contains("reboot: Restarting system"),
        "the agent rebooted:\n{rescue}"
    );
}

/// GRUB's menu with its entry on the console, GRUB booting it, then the
/// system it boots.
fn check_grub_console(console: &str, toplevel: &str, firmware: &str) {
    let menu = console
        .find("GNU GRUB  version 2.06")
        .unwrap_or_else(|| panic!("no GRUB menu on the {firmware} console:\n{console}"));
    let entry = console
        .find("*NixOS - landfall-fixture")
        .unwrap_or_else(|| panic!("no GRUB menu entry on the {firmware} console:\n{console}"));
    let booting = console
        .find("Booting `NixOS - landfall-fixture'")
        .unwrap_or_else(|| {
            panic!("GRUB did not boot the entry on the {firmware} console:\n{console}")
        });
    assert!(
        menu < entry && entry < booting,
        "GRUB's menu out of order:\n{console}"
    );
    let stage2 = console
        .find(&format!("LANDFALL-STAGE2: {toplevel}"))
        .unwrap_or_else(|| panic!("no stage 2 on the {firmware} console:\n{console}"));
    assert!(
        booting < stage2,
        "GRUB's menu came after stage 2:\n{console}"
    );
    assert!(
        console.contains("LANDFALL-STORE-CHECK: OK"),
        "the store check on the {firmware} console:\n{console}"
    );
}

/// Boots `disk` alone with `firmware` (`bios` or `uefi`) through the test
/// harness until stage 2 has checked its store; returns the console.
fn boot_disk_with(disk: &Path, firmware: &str, toplevel: &str) -> String {
    use landfall_tests::disk::Disk;
    use landfall_tests::vm::VmBuilder;
    let mut b = VmBuilder::new("grub-other-firmware")
        .memory_mib(512)
        .disk(Disk::nvme(disk.to_path_buf()).serial("landfall-vm-0"));
    if firmware == "uefi" {
        b = b.ovmf();
    }
    let mut vm = b
        .start_in(TestDir::new(&format!("grub-boot-{firmware}")).unwrap())
        .unwrap();
    vm.wait_for(
        format!("LANDFALL-STAGE2: {toplevel}").as_str(),
        Duration::from_secs(600),
    )
    .unwrap_or_else(|e| panic!("{firmware}: {e}\n{}", vm.console().output()));
    let verdict = vm
        .wait_for_any(
            ["LANDFALL-STORE-CHECK: OK", "LANDFALL-STORE-CHECK: FAILED"],
            Duration::from_secs(180),
        )
        .unwrap();
    let console = vm.console().output();
    assert_eq!(verdict.text, "LANDFALL-STORE-CHECK: OK", "{console}");
    let _ = vm.wait_exit(Duration::from_secs(60));
    console
}

/// `(number, first sector, sectors, type)` of each partition, by partx.
fn partitions(disk: &Path) -> Vec<(u32, u64, u64, String)> {
    let out = Command::new("partx")
        .args(["-g", "-o", "NR,START,SECTORS,TYPE"])
        .arg(disk)
        .output()
        .expect("partx (Debian: apt-get install -y util-linux)");
    assert!(
        out.status.success(),
        "partx: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].parse().unwrap(),
                w[1].parse().unwrap(),
                w[2].parse().unwrap(),
                w[3].to_ascii_lowercase(),
            )
        })
        .collect()
}

fn read_range(f: &std::fs::File, at: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, at).unwrap();
    b
}

/// The hybrid disk from outside: a valid GPT, the ESP's FAT clean, GRUB's
/// boot.img in the MBR pointing at its core image in the BIOS boot
/// partition, the protective MBR's table intact, and zeros everywhere
/// outside the partitions, the MBR and the two GPTs.
fn check_grub_disk(disk: &Path) {
    let v = Command::new("sgdisk")
        .arg("-v")
        .arg(disk)
        .output()
        .expect("sgdisk");
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(said.contains("No problems found"), "sgdisk -v:\n{said}");
    let parts = partitions(disk);
    const BIOS_BOOT: &str = "21686148-6449-6e6f-744e-656564454649";
    const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    let bios = parts
        .iter()
        .find(|p| p.3 == BIOS_BOOT)
        .unwrap_or_else(|| panic!("no BIOS boot partition in {parts:?}"));
    let esp = parts
        .iter()
        .find(|p| p.3 == ESP)
        .unwrap_or_else(|| panic!("no ESP in {parts:?}"));
    let f = std::fs::File::open(disk).unwrap();
    // MBR: GRUB's boot.img code (its "GRUB " message) with the core image's
    // first sector at 0x5c; the protective partition entry and 55AA kept.
    let mbr = read_range(&f, 0, 512);
    for s in [&b"GRUB "[..], b"Geom", b"Hard Disk"] {
        assert!(
            mbr[..440].windows(s.len()).any(|w| w == s),
            "no GRUB boot code in the MBR"
        );
    }
    let core_sector = u64::from_le_bytes(mbr[0x5c..0x64].try_into().unwrap());
    assert_eq!(
        core_sector, bios.1,
        "boot.img does not point at the BIOS boot partition"
    );
    assert_eq!(mbr[446 + 4], 0xEE, "the protective MBR's entry");
    assert_eq!(&mbr[510..], &[0x55, 0xAA]);
    assert!(mbr[462..510].iter().all(|&b| b == 0), "other MBR entries");
    // The core image: diskboot.img's code, then GRUB's compressed kernel.
    let core = read_range(&f, bios.1 * 512, 512);
    let diskboot = std::fs::read("/usr/lib/grub/i386-pc/diskboot.img").unwrap();
    assert_eq!(
        core[..0x100],
        diskboot[..0x100],
        "no GRUB core image in the BIOS boot partition"
    );
    assert!(core.windows(7).any(|w| w == b"loading"));
    // Zeros outside: from the primary GPT's end (LBA 34) to the last
    // partition's end, except the partitions; then up to the backup GPT.
    let size = f.metadata().unwrap().len();
    let mut spans = parts
        .iter()
        .map(|p| (p.1 * 512, (p.1 + p.2) * 512))
        .collect::<Vec<_>>();
    spans.sort();
    let mut at = 34 * 512;
    let mut gaps = Vec::new();
    for (s, e) in &spans {
        if *s > at {
            gaps.push((at, *s));
        }
        at = at.max(*e);
    }
    gaps.push((at, size - 33 * 512));
    for (s, e) in gaps {
        let mut off = s;
        while off < e {
            let n = (e - off).min(1 << 20) as usize;
            assert!(
                read_range(&f, off, n).iter().all(|&b| b == 0),
                "bytes written outside the partitions in [{s}, {e})"
            );
            off += n as u64;
        }
    }
    // The ESP's FAT, read through a read-only loop device.
    let esp_loop = Loop::window(disk, esp.1 * 512, esp.2 * 512);
    let lo = esp_loop.dev.clone();
    let fsck = Command::new("fsck.fat").args(["-n", &lo]).output();
    // GRUB's files on it, read with mtools (no vfat in this kernel).
    let listing = Command::new("mdir")
        .args(["-i", &lo, "-/", "-b", "::"])
        .env("MTOOLS_SKIP_CHECK", "1")
        .output();
    drop(esp_loop);
    let fsck = fsck.expect("fsck.fat (Debian: apt-get install -y dosfstools)");
    assert!(
        fsck.status.success(),
        "fsck.fat -n on the ESP: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let listing = listing.expect("mdir (Debian: apt-get install -y mtools)");
    let files = String::from_utf8_lossy(&listing.stdout).to_ascii_lowercase();
    for f in [
        "::/efi/boot/bootx64.efi",
        "::/grub/grub.cfg",
        "::/grub/i386-pc/core.img",
        "::/grub/x86_64-efi/normal.mod",
    ] {
        assert!(files.contains(f), "{f} missing on the ESP:\n{files}");
    }
}
