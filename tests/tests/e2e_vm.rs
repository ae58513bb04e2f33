//! `landfall install --flake …#office --vm --yes`, the README's first command:
//! a throwaway local rescue VM (256 MiB, NVMe, UEFI, SSH only) is started by
//! landfall itself, the whole normal flow runs against it (kexec over SSH with
//! host keys checked, disko, closure, bootloader, reboot), then the installed
//! disk boots alone and landfall reports the installed system came up. The
//! confirmation names the VM disk's model, serial and size. `landfall vm`
//! alone starts the rescue machine and says how to log in: the test does.

#[path = "../../controller/src/nix/fixture.rs"]
mod fixture;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use landfall_tests::bins::{agent_static_bin, landfall_bin};
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
    let extra = extra_files_tree(&dir.join("extra"));
    let started = Instant::now();
    let (ok, text) = vm_install_output(
        &dir,
        &format!("{}#office", built.flake_ref),
        &[
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
        &format!("LANDFALL-STAGE2: {}", built.toplevel),
        "LANDFALL-STORE-CHECK: OK",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in the output");
    }
    let done = text
        .lines()
        .find(|l| l.starts_with("Done: evaluate"))
        .expect("a phase summary");
    eprintln!("FIGURE vm install phases: {done}");
    assert!(done.contains("files "), "{done}");
    check_installed_files(&dir, &text);
    // The throwaway VM is gone: no qemu is left with this test's disk.
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let disk = dir.join("vm/disk.img").display().to_string();
    assert!(
        !String::from_utf8_lossy(&ps.stdout).contains(&disk),
        "a qemu with {disk} is still running"
    );
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
fn check_installed_files(dir: &Path, text: &str) {
    use std::os::unix::fs::MetadataExt;
    let disk = dir.join("vm/disk.img");
    let out = Command::new("partx")
        .args(["-g", "-o", "START,SECTORS", "-n", "3"])
        .arg(&disk)
        .output()
        .expect("partx (Debian: apt-get install -y util-linux)");
    let v: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let lo = Command::new("losetup")
        .args([
            "--find",
            "--show",
            "--read-only",
            "--offset",
            &(v[0] * 512).to_string(),
            "--sizelimit",
            &(v[1] * 512).to_string(),
        ])
        .arg(&disk)
        .output()
        .unwrap();
    assert!(
        lo.status.success(),
        "losetup: {}",
        String::from_utf8_lossy(&lo.stderr)
    );
    let lo = String::from_utf8_lossy(&lo.stdout).trim().to_string();
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
    });
    let _ = Command::new("umount").arg(&mnt).status();
    let _ = Command::new("losetup").args(["-d", &lo]).status();
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
