//! Boots an image built by `build_image` from the Debian kernel in qemu.
//!
//! `/init` is a busybox shell script instead of the agent, and busybox itself
//! arrives in a session archive appended to the zstd initrd — so one boot
//! checks that the kernel unpacks the compressed archive, accepts the
//! appended uncompressed one, and that busybox `modprobe` (which reads our
//! `modules.dep`) loads ext4, vfat and e1000 with their dependencies.

use crate::image_common as common;

use std::fs;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{kernel_tree, require_tool};
use landfall_image::{append_archive, build_image, session_cpio, ImageSpec, SessionFile};

const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "LANDFALL-INIT-STARTED $(uname -r)"
modprobe ext4 && echo LANDFALL-MODPROBE-EXT4-OK
modprobe vfat && echo LANDFALL-MODPROBE-VFAT-OK
modprobe e1000 && echo LANDFALL-MODPROBE-E1000-OK
while read name rest; do echo "LANDFALL-LOADED $name"; done < /proc/modules
grep -q ext4 /proc/filesystems && echo LANDFALL-EXT4-REGISTERED
grep -q vfat /proc/filesystems && echo LANDFALL-VFAT-REGISTERED
sleep 1
echo "LANDFALL-NET $(ls /sys/class/net | tr '\n' ' ')"
cat /etc/landfall/session.txt
echo LANDFALL-DONE
poweroff -f
"#;

/// Kills qemu when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn image_boots_and_busybox_modprobe_loads_modules() {
    require_tool("qemu-system-x86_64", "qemu-system-x86");
    let busybox = std::path::Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "This test needs /bin/busybox: install the Debian package busybox-static"
    );
    let kernel = kernel_tree();
    let work = tempfile::tempdir().unwrap();
    let init = work.path().join("init.sh");
    fs::write(&init, INIT_SCRIPT).unwrap();
    let out = work.path().join("out");
    let report = build_image(&ImageSpec {
        kernel: kernel.bzimage.clone(),
        modules_dir: kernel.modules_dir.clone(),
        agent: init,
        extra_modules: vec![],
        out_dir: out.clone(),
        zstd_level: landfall_image::INITRD_ZSTD_LEVEL,
    })
    .unwrap();
    eprint!("{report}");

    let mut initrd = fs::read(out.join("initrd")).unwrap();
    initrd.push(0x00); // make the length odd, so append_archive has to pad
    let session = session_cpio(&[
        SessionFile {
            path: "/bin/busybox".into(),
            mode: 0o755,
            data: fs::read(busybox).unwrap(),
        },
        SessionFile {
            path: "/etc/landfall/session.txt".into(),
            mode: 0o600,
            data: b"LANDFALL-SESSION-FILE-PRESENT\n".to_vec(),
        },
    ])
    .unwrap();
    append_archive(&mut initrd, &session);
    let initrd_path = work.path().join("initrd-with-session");
    fs::write(&initrd_path, &initrd).unwrap();

    let child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "256", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(out.join("bzImage"))
        .arg("-initrd")
        .arg(&initrd_path)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=4"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting qemu-system-x86_64");
    let mut qemu = KillOnDrop(child);
    let serial = Arc::new(Mutex::new(String::new()));
    let mut stdout = qemu.0.stdout.take().unwrap();
    let sink = Arc::clone(&serial);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });

    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = qemu.0.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_millis(300));
    let output = serial.lock().unwrap().clone();
    eprintln!("---- serial console ----\n{output}\n------------------------");
    assert!(status.is_some(), "qemu did not power off within 240 s");

    for marker in [
        &format!("LANDFALL-INIT-STARTED {}", kernel.version),
        "LANDFALL-MODPROBE-EXT4-OK",
        "LANDFALL-MODPROBE-VFAT-OK",
        "LANDFALL-MODPROBE-E1000-OK",
        "LANDFALL-EXT4-REGISTERED",
        "LANDFALL-VFAT-REGISTERED",
        "LANDFALL-SESSION-FILE-PRESENT",
        "LANDFALL-DONE",
    ] {
        assert!(output.contains(marker), "serial output lacks {marker}");
    }
    for module in ["ext4", "jbd2", "mbcache", "crc16", "vfat", "fat", "e1000"] {
        assert!(
            output.contains(&format!("LANDFALL-LOADED {module}\r"))
                || output.contains(&format!("LANDFALL-LOADED {module}\n")),
            "{module} not in /proc/modules"
        );
    }
    assert!(
        output.contains("LANDFALL-NET ") && output.contains("eth0"),
        "e1000 made no eth0"
    );
    for complaint in [
        "Initramfs unpacking failed",
        "junk at the end",
        "broken padding",
    ] {
        assert!(!output.contains(complaint), "kernel said: {complaint}");
    }
}
