//! The bootloader engine on the host, with the fixture closure built by real
//! Nix and installed by the store engine:
//! - native systemd-boot from boot.json onto a plain folder standing in for the
//!   ESP (this host's kernel has no vfat; the vfat ESP is written in the VM,
//!   tests/tests/e2e/boot.rs): the files NixOS's builder writes, byte for byte,
//!   no temporary left, a re-run writes nothing;
//! - the closure's `switch-to-configuration boot` run in a private mount
//!   namespace chrooted into a loop-mounted ext4 root, its output streamed, no
//!   mount left behind, e2fsck clean; and the failing variant: the error carries
//!   the installer's output, and the service then refuses to reboot;
//! - reboot preparation: nested mounts go deepest first, a busy one is reported.

use crate::store_common as common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture::{build_office_fixture, FixtureOptions, DEBIAN_SYSTEMD_BOOT_EFI};
use landfall_agent::boot::ClosureInstallError;
use landfall_agent::boot::{
    install_bootloader, plan_bootloader, BootEvent, BootMethod, BootPolicy, InstallError,
};

fn fixture(tmp: &Path, fails: bool) -> String {
    let opts = FixtureOptions {
        systemd_boot_efi: Some(DEBIAN_SYSTEMD_BOOT_EFI.into()),
        bootloader_fails: fails,
        ..FixtureOptions::default()
    };
    build_office_fixture(&tmp.join("office"), &opts)
        .unwrap_or_else(|e| panic!("{e}"))
        .toplevel
}

fn store_name(root: &Path, link: &Path) -> String {
    // <toplevel>/kernel -> /nix/store/<hash-name>/bzImage
    let target = fs::read_link(root.join(link.strip_prefix("/").unwrap())).unwrap();
    target
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

fn in_root(root: &Path, p: &str) -> PathBuf {
    root.join(p.trim_start_matches('/'))
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    fn walk(base: &Path, d: &Path, v: &mut Vec<String>) {
        for e in fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, v);
            } else {
                v.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    walk(dir, dir, &mut v);
    v.sort();
    v
}

#[test]
fn native_systemd_boot_writes_what_nixos_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let top = fixture(tmp.path(), false);
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    common::install_closure(&root, &top);
    let esp = root.join("boot");
    fs::create_dir(&esp).unwrap();

    // auto picks the closure's installer (the fixture has switch-to-configuration).
    let auto = plan_bootloader(&root, None, BootPolicy::Auto, &esp, 5).unwrap();
    assert!(matches!(auto.method, BootMethod::Closure { .. }));
    assert_eq!(
        auto.toplevel,
        Path::new(&top),
        "default: the system profile"
    );
    assert!(auto.describe().contains("switch-to-configuration boot"));

    let plan = plan_bootloader(
        &root,
        Some(Path::new(&top)),
        BootPolicy::SystemdBoot,
        &esp,
        0,
    )
    .unwrap();
    let text = plan.describe();
    assert!(text.contains("native systemd-boot"), "{text}");
    let mut events = Vec::new();
    let summary = install_bootloader(&plan, false, &mut |e| events.push(e)).unwrap();
    assert!(summary.contains("6 file(s) written"), "{summary}");

    let top = Path::new(&top);
    let kname = format!("{}-bzImage.efi", store_name(&root, &top.join("kernel")));
    let iname = format!("{}-initrd.efi", store_name(&root, &top.join("initrd")));
    assert!(kname.contains("-linux-") && iname.contains("-initrd-linux-"));
    let mut expected = vec![
        "EFI/BOOT/BOOTX64.EFI".to_string(),
        format!("EFI/nixos/{kname}"),
        format!("EFI/nixos/{iname}"),
        "EFI/systemd/systemd-bootx64.efi".to_string(),
        "loader/entries/nixos-generation-1.conf".to_string(),
        "loader/loader.conf".to_string(),
    ];
    expected.sort();
    assert_eq!(files_under(&esp), expected, "exactly these, no .tmp left");

    let efi = fs::read(DEBIAN_SYSTEMD_BOOT_EFI).unwrap();
    assert_eq!(fs::read(esp.join("EFI/BOOT/BOOTX64.EFI")).unwrap(), efi);
    assert_eq!(
        fs::read(esp.join("EFI/systemd/systemd-bootx64.efi")).unwrap(),
        efi
    );
    let kernel_in_root =
        fs::read_link(in_root(&root, &format!("{}/kernel", top.display()))).unwrap();
    assert_eq!(
        fs::read(esp.join("EFI/nixos").join(&kname)).unwrap(),
        fs::read(in_root(&root, kernel_in_root.to_str().unwrap())).unwrap()
    );
    let entry = fs::read_to_string(esp.join("loader/entries/nixos-generation-1.conf")).unwrap();
    assert!(
        entry.contains(&format!("linux /EFI/nixos/{kname}\n")),
        "{entry}"
    );
    assert!(
        entry.contains(&format!("initrd /EFI/nixos/{iname}\n")),
        "{entry}"
    );
    assert!(
        entry.contains(&format!(
            "options init={}/init console=ttyS0,115200 panic=-1 loglevel=4\n",
            top.display()
        )),
        "{entry}"
    );
    assert_eq!(
        fs::read_to_string(esp.join("loader/loader.conf")).unwrap(),
        "timeout 0\ndefault nixos-generation-1.conf\nconsole-mode keep\n"
    );
    assert!(events
        .iter()
        .any(|e| e.to_string().contains("Sync the ESP")));

    // Content-addressed: a re-run writes only what is not already there.
    let mut again = Vec::new();
    let summary = install_bootloader(&plan, false, &mut |e| again.push(e)).unwrap();
    assert!(
        summary.contains("0 file(s) written, 6 unchanged"),
        "{summary}"
    );

    // The native path refuses a folder that is not a mounted vfat.
    let err = install_bootloader(&plan, true, &mut |_| {}).unwrap_err();
    assert!(matches!(err, InstallError::SystemdBoot(_)), "{err}");
}

/// A loop-mounted ext4 root, unmounted (and checked with e2fsck) on drop.
struct Ext4Root {
    image: PathBuf,
    mnt: PathBuf,
}

impl Ext4Root {
    fn new(dir: &Path) -> Self {
        let image = dir.join("root.img");
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).unwrap();
        let f = fs::File::create(&image).unwrap();
        f.set_len(512 << 20).unwrap();
        let mk = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&image)
            .status()
            .expect("mkfs.ext4 missing: install e2fsprogs");
        assert!(mk.success());
        let m = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mnt)
            .status()
            .expect("mount missing: install mount (util-linux)");
        assert!(m.success(), "loop mount failed");
        Self { image, mnt }
    }

    fn unmount_and_check(&self) {
        assert!(Command::new("umount")
            .arg(&self.mnt)
            .status()
            .unwrap()
            .success());
        let out = Command::new("e2fsck")
            .arg("-fn")
            .arg(&self.image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "e2fsck: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

impl Drop for Ext4Root {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-R")
            .arg(&self.mnt)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn mounts_under(root: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| Path::new(m).starts_with(root) && Path::new(m) != root)
        .collect()
}

fn output_lines(events: &[BootEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            BootEvent::Output(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn closure_installer_runs_in_a_private_namespace_chroot() {
    let tmp = tempfile::tempdir().unwrap();
    let top = fixture(tmp.path(), false);
    let disk = Ext4Root::new(tmp.path());
    let root = fs::canonicalize(&disk.mnt).unwrap();
    common::install_closure(&root, &top);
    fs::create_dir_all(root.join("boot")).unwrap();

    let plan = plan_bootloader(&root, None, BootPolicy::Closure, &root.join("boot"), 5).unwrap();
    let mut events = Vec::new();
    let summary = install_bootloader(&plan, false, &mut |e| events.push(e)).unwrap();
    assert!(
        summary.contains("switch-to-configuration boot"),
        "{summary}"
    );
    let out = output_lines(&events);
    assert!(
        out.iter()
            .any(|l| l == "switch-to-configuration: bootloader installed"),
        "{out:?}"
    );
    // Ran inside the root: /boot there got the layout.
    let entry =
        fs::read_to_string(root.join("boot/loader/entries/nixos-generation-1.conf")).unwrap();
    assert!(
        entry.contains(&format!("options init={top}/init")),
        "{entry}"
    );
    assert!(root.join("boot/EFI/BOOT/BOOTX64.EFI").is_file());
    assert_eq!(
        fs::read_link(root.join("etc/mtab")).unwrap(),
        Path::new("/proc/mounts")
    );
    // The namespace took its /dev, /proc, /sys, /run mounts with it.
    assert_eq!(mounts_under(&root), Vec::<String>::new());
    disk.unmount_and_check();
}

#[test]
fn failing_closure_installer_stops_with_its_output_and_blocks_reboot() {
    use landfall_proto::v1::agent_server::Agent;
    use landfall_proto::v1::{BootloaderPolicy, BootloaderRequest, RebootRequest, StepState};
    use tokio_stream::StreamExt;

    let tmp = tempfile::tempdir().unwrap();
    let top = fixture(tmp.path(), true);
    let disk = Ext4Root::new(tmp.path());
    let root = fs::canonicalize(&disk.mnt).unwrap();
    common::install_closure(&root, &top);
    fs::create_dir_all(root.join("boot")).unwrap();

    // The engine: a typed failure with the installer's output.
    let plan = plan_bootloader(&root, None, BootPolicy::Auto, &root.join("boot"), 5).unwrap();
    let mut events = Vec::new();
    let err = install_bootloader(&plan, false, &mut |e| events.push(e)).unwrap_err();
    match &err {
        InstallError::Closure(ClosureInstallError::Failed { status, output }) => {
            assert_eq!(status, "exit status 1");
            assert!(
                output.contains("simulated bootloader installer failure"),
                "{output}"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(output_lines(&events)
        .iter()
        .any(|l| l.contains("simulated bootloader installer failure")));
    assert!(!root.join("boot/loader").exists());

    // The service: the job fails with the output, then Reboot is refused.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let state = landfall_agent::service::AgentState::new(root.clone(), false, 0, String::new());
        let svc = landfall_agent::service::AgentService::new(state);
        let stream = svc
            .install_bootloader(tonic::Request::new(BootloaderRequest {
                policy: BootloaderPolicy::Auto as i32,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let all: Vec<_> = stream.collect().await;
        let last = all.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.code(), tonic::Code::Aborted);
        assert!(
            last.message().starts_with("bootloader-failed: "),
            "{}",
            last.message()
        );
        assert!(last
            .message()
            .contains("simulated bootloader installer failure"));
        assert!(all.iter().any(|e| e
            .as_ref()
            .map(|e| e.state == StepState::Output as i32
                && e.description.contains("the closure's own installer"))
            .unwrap_or(false)));

        let refused = svc
            .reboot(tonic::Request::new(RebootRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(
            refused.message().contains("bootloader install failed"),
            "{}",
            refused.message()
        );
        // A dry run still unmounts (here: nothing under the root but itself).
        let dry = svc
            .reboot(tonic::Request::new(RebootRequest {
                unmount_only: true,
                root: root.join("boot").display().to_string(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(!dry.rebooting);
    });
    disk.unmount_and_check();
}

#[test]
fn reboot_preparation_unmounts_deepest_first_and_reports_what_refuses() {
    use landfall_agent::boot::prepare_reboot;

    let tmp = tempfile::tempdir().unwrap();
    let disk = Ext4Root::new(tmp.path());
    let root = fs::canonicalize(&disk.mnt).unwrap();
    let boot = root.join("boot");
    fs::create_dir(&boot).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&boot)
        .status()
        .unwrap()
        .success());

    // A file held open on the root: the root refuses, /boot still goes.
    let held = fs::File::create(root.join("held")).unwrap();
    let r = prepare_reboot(&root, false).unwrap();
    assert_eq!(r.unmounted, vec![boot.clone()]);
    assert_eq!(r.refused.len(), 1, "{:?}", r.refused);
    assert_eq!(r.refused[0].0, root);
    assert!(r.refused[0].1.starts_with("busy"), "{:?}", r.refused);
    drop(held);

    let r = prepare_reboot(&root, false).unwrap();
    assert_eq!(r.unmounted, vec![root.clone()]);
    assert!(r.refused.is_empty());
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(&disk.image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
