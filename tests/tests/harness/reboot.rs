//! A VM that allows reboots survives a guest reboot (the later kexec/reboot
//! tests need this); a virtio-blk disk with 4 KiB logical blocks keeps state
//! across it.

use std::time::{Duration, Instant};

use landfall_tests::StartVm;
use landfall_tests::{
    debian_kernel, sparse_image, BusyboxInitramfs, Disk, Pattern, TestDir, VmBuilder, INIT_STARTED,
    KERNEL_APPEND,
};

#[test]
fn guest_reboot_restarts_the_machine_and_the_disk_keeps_its_data() {
    let kernel = debian_kernel().unwrap();
    let dir = TestDir::new("reboot").unwrap();
    let initrd = BusyboxInitramfs::new()
        .unwrap()
        .modules(&kernel, &["virtio_pci", "virtio_blk"])
        .unwrap()
        .script(
            "for i in $(seq 1 100); do [ -e /sys/block/vda ] && break; sleep 0.1; done\n\
             echo \"LBS=$(cat /sys/block/vda/queue/logical_block_size)\"\n\
             if [ \"$(dd if=/dev/vda bs=4096 count=1 2>/dev/null | head -c 11)\" = booted-once ]; then\n\
               echo SECOND-BOOT\n\
             else\n\
               echo -n booted-once | dd of=/dev/vda bs=4096 conv=sync 2>/dev/null\n\
               sync\n\
               echo FIRST-BOOT\n\
               reboot -f\n\
             fi",
        )
        .write(&dir.join("initrd"))
        .unwrap();
    let disk = sparse_image(&dir.join("disk.img"), 64 << 20).unwrap();
    let started = Instant::now();
    let mut vm = VmBuilder::new("reboot")
        .kernel(&kernel.image, KERNEL_APPEND)
        .initrd(initrd)
        .disk(Disk::virtio_blk(&disk).logical_block_size(4096))
        .allow_reboot()
        .start_in(dir)
        .unwrap();
    let lbs = vm
        .wait_for(Pattern::regex(r"LBS=(\d+)"), Duration::from_secs(60))
        .unwrap();
    assert_eq!(lbs.group(1), Some("4096"));
    vm.wait_for("FIRST-BOOT", Duration::from_secs(30)).unwrap();
    let first = started.elapsed();
    vm.wait_for(INIT_STARTED, Duration::from_secs(60)).unwrap();
    vm.wait_for("SECOND-BOOT", Duration::from_secs(30)).unwrap();
    let status = vm.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(status.success());
    let data = std::fs::read(&disk).unwrap();
    assert_eq!(&data[..11], b"booted-once");
    eprintln!(
        "reboot ({:?}): first boot {first:.1?}, both boots {:.1?}",
        vm.accel(),
        started.elapsed()
    );
}

#[test]
fn without_allow_reboot_a_guest_reboot_ends_qemu() {
    let kernel = debian_kernel().unwrap();
    let dir = TestDir::new("noreboot").unwrap();
    let initrd = BusyboxInitramfs::new()
        .unwrap()
        .script("echo REBOOTING\nreboot -f\necho STILL-HERE")
        .write(&dir.join("initrd"))
        .unwrap();
    let mut vm = VmBuilder::new("noreboot")
        .kernel(&kernel.image, KERNEL_APPEND)
        .initrd(initrd)
        .start_in(dir)
        .unwrap();
    vm.wait_for("REBOOTING", Duration::from_secs(60)).unwrap();
    vm.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(
        vm.console().output().matches(INIT_STARTED).count(),
        1,
        "booted twice"
    );
}
