//! Boots the Debian kernel with a busybox initramfs and an NVMe disk, as the
//! end-to-end tests will boot the agent image: 256 MiB, serial landfall-test-0.

use std::time::{Duration, Instant};

use landfall_tests::StartVm;
use landfall_tests::{
    debian_kernel, sparse_image, BusyboxInitramfs, Disk, Pattern, TestDir, VmBuilder, INIT_DONE,
    INIT_STARTED, KERNEL_APPEND,
};

const MARKER: &str = "HARNESS-BOOT-OK";

#[test]
fn nvme_disk_serial_is_visible_in_the_guest() {
    let kernel = debian_kernel().unwrap();
    let dir = TestDir::new("nvme").unwrap();
    let initrd = BusyboxInitramfs::new()
        .unwrap()
        .modules(&kernel, &["nvme"])
        .unwrap()
        .script(&format!(
            "for i in $(seq 1 100); do [ -e /sys/block/nvme0n1 ] && break; sleep 0.1; done\n\
             echo \"SERIAL=$(cat /sys/block/nvme0n1/device/serial)\"\n\
             echo \"SECTORS=$(cat /sys/block/nvme0n1/size)\"\n\
             echo \"MEMORY=$(grep MemTotal /proc/meminfo)\"\n\
             [ -d /sys/firmware/efi ] && echo FIRMWARE=UEFI || echo FIRMWARE=BIOS\n\
             echo {MARKER}"
        ))
        .write(&dir.join("initrd"))
        .unwrap();
    let disk = sparse_image(&dir.join("disk.img"), 1 << 30).unwrap();

    let started = Instant::now();
    let mut vm = VmBuilder::new("nvme")
        .kernel(&kernel.image, KERNEL_APPEND)
        .initrd(initrd)
        .memory_mib(256)
        .disk(Disk::nvme(disk).serial("landfall-test-0"))
        .start_in(dir)
        .unwrap();
    vm.wait_for(INIT_STARTED, Duration::from_secs(60)).unwrap();
    let to_init = started.elapsed();
    let serial = vm
        .wait_for(Pattern::regex(r"SERIAL=(\S*)"), Duration::from_secs(30))
        .unwrap();
    assert_eq!(serial.group(1), Some("landfall-test-0"));
    let sectors = vm
        .wait_for(Pattern::regex(r"SECTORS=(\d+)"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        sectors.group(1),
        Some("2097152"),
        "1 GiB in 512-byte sectors"
    );
    let mem = vm
        .wait_for(
            Pattern::regex(r"MemTotal:\s+(\d+) kB"),
            Duration::from_secs(10),
        )
        .unwrap();
    let kib: u64 = mem.group(1).unwrap().parse().unwrap();
    assert!((200_000..=262_144).contains(&kib), "MemTotal {kib} kB");
    vm.wait_for("FIRMWARE=BIOS", Duration::from_secs(10))
        .unwrap();
    vm.wait_for(MARKER, Duration::from_secs(10)).unwrap();
    vm.wait_for(INIT_DONE, Duration::from_secs(10)).unwrap();
    let status = vm.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "qemu exited with {status}");
    assert!(
        !vm.console().output().contains("insmod failed"),
        "{}",
        vm.console().tail(40)
    );
    eprintln!(
        "boot ({:?}): qemu start to init {:.1?}, to poweroff {:.1?}",
        vm.accel(),
        to_init,
        started.elapsed()
    );
}

#[test]
fn console_input_reaches_the_guest_and_a_missed_pattern_explains_itself() {
    let kernel = debian_kernel().unwrap();
    let dir = TestDir::new("explain").unwrap();
    let initrd = BusyboxInitramfs::new()
        .unwrap()
        .script("echo READY-FOR-INPUT\nread line\necho \"GOT=$line\"\necho the-guest-said-this")
        .write(&dir.join("initrd"))
        .unwrap();
    let mut vm = VmBuilder::new("explain")
        .kernel(&kernel.image, KERNEL_APPEND)
        .initrd(initrd)
        .start_in(dir)
        .unwrap();
    // Typing before the guest reads loses characters (the UART has a small
    // FIFO): wait for the guest to ask first.
    vm.wait_for("READY-FOR-INPUT", Duration::from_secs(60))
        .unwrap();
    vm.write_console("typed-on-the-console\n").unwrap();
    vm.wait_for("GOT=typed-on-the-console", Duration::from_secs(60))
        .unwrap();
    // The guest powers off without ever printing this: the wait must end when
    // qemu exits (not at the timeout) and show what the guest did print.
    let started = Instant::now();
    let err = vm
        .wait_for("never-printed", Duration::from_secs(120))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(110));
    let text = err.to_string();
    assert!(text.contains("closed (the VM exited)"), "{text}");
    assert!(text.contains("the-guest-said-this"), "{text}");
    assert!(
        text.contains(&vm.console_log().display().to_string()),
        "{text}"
    );
    // The failure marked the folder to be kept; clean it up ourselves.
    let kept = vm.dir().to_path_buf();
    drop(vm);
    assert!(kept.join("explain-console.log").is_file());
    std::fs::remove_dir_all(kept).unwrap();
}

#[test]
fn a_bad_qemu_option_fails_at_start_with_stderr() {
    let err = VmBuilder::new("badopt")
        .arg("-no-such-option")
        .start()
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(text.contains("exited while starting"), "{text}");
    assert!(text.contains("-no-such-option"), "{text}");
    if let landfall_tests::VmError::Start { dir, .. } = &err {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
