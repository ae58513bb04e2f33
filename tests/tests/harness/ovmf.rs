//! Firmware boot: OVMF starts and talks on the serial console; QMP resets and quits.

use std::time::{Duration, Instant};

use landfall_tests::StartVm;
use landfall_tests::{debian_kernel, BusyboxInitramfs, TestDir, VmBuilder, KERNEL_APPEND};

#[test]
fn ovmf_reaches_its_boot_manager_and_obeys_qmp() {
    let started = Instant::now();
    // allow_reboot: under -no-reboot a reset (ours or the guest's) ends qemu.
    let mut vm = VmBuilder::new("ovmf")
        .ovmf()
        .allow_reboot()
        .start()
        .unwrap();
    let vars = vm.ovmf_vars().unwrap().to_path_buf();
    assert!(vars.starts_with(vm.dir()), "per-VM copy of OVMF_VARS");
    vm.wait_for("BdsDxe", Duration::from_secs(60)).unwrap();
    let to_bds = started.elapsed();
    // No disk: OVMF falls through to its built-in shell.
    vm.wait_for_any(
        ["UEFI Interactive Shell", "Shell>"],
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(vm.qmp().unwrap().status().unwrap(), "running");

    let reset = Instant::now();
    vm.system_reset().unwrap();
    vm.wait_for("BdsDxe", Duration::from_secs(60)).unwrap();
    let after_reset = reset.elapsed();

    let status = vm.quit(Duration::from_secs(10)).unwrap();
    assert!(!vm.is_running());
    eprintln!(
        "ovmf ({:?}): start to BdsDxe {to_bds:.1?}, reset to BdsDxe {after_reset:.1?}, qemu exit {status}",
        vm.accel()
    );

    // OVMF wrote its boot options into the per-VM variable store; a second VM
    // in the same folder boots with that store.
    let template = landfall_tests::ovmf().unwrap().vars_template;
    assert_ne!(
        std::fs::read(&vars).unwrap(),
        std::fs::read(template).unwrap()
    );
    let dir = vm.into_test_dir();
    let mut again = VmBuilder::new("ovmf-again")
        .ovmf_with_vars(&vars)
        .start_in(dir)
        .unwrap();
    assert_eq!(again.ovmf_vars(), Some(vars.as_path()));
    again.wait_for("BdsDxe", Duration::from_secs(60)).unwrap();
    again.quit(Duration::from_secs(10)).unwrap();
}

#[test]
fn ovmf_boots_a_kernel_directly_in_uefi_mode() {
    let kernel = debian_kernel().unwrap();
    let dir = TestDir::new("uefi-kernel").unwrap();
    let initrd = BusyboxInitramfs::new()
        .unwrap()
        .script("[ -d /sys/firmware/efi ] && echo FIRMWARE=UEFI || echo FIRMWARE=BIOS")
        .write(&dir.join("initrd"))
        .unwrap();
    let started = Instant::now();
    let mut vm = VmBuilder::new("uefi-kernel")
        .ovmf()
        .kernel(&kernel.image, KERNEL_APPEND)
        .initrd(initrd)
        .start_in(dir)
        .unwrap();
    let firmware = vm
        .wait_for_any(["FIRMWARE=UEFI", "FIRMWARE=BIOS"], Duration::from_secs(90))
        .unwrap();
    assert_eq!(firmware.text, "FIRMWARE=UEFI");
    assert!(vm.wait_exit(Duration::from_secs(30)).unwrap().success());
    eprintln!(
        "ovmf + kernel ({:?}): start to poweroff {:.1?}",
        vm.accel(),
        started.elapsed()
    );
}
