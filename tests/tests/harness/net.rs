//! User-mode networking: a host port forward reaches a guest port, for both
//! NIC models, with the MAC the test chose.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use landfall_tests::StartVm;
use landfall_tests::{
    debian_kernel, retry_until, BusyboxInitramfs, Nic, NicModel, VmBuilder, KERNEL_APPEND,
    STATIC_NET_SCRIPT,
};

const GUEST_PORT: u16 = 7443;

/// `rng` also attaches a virtio RNG and checks the guest uses it.
fn forward_reaches_the_guest(label: &str, model: NicModel, modules: &[&str], mac: &str, rng: bool) {
    let kernel = debian_kernel().unwrap();
    let dir = landfall_tests::TestDir::new(label).unwrap();
    let initrd = BusyboxInitramfs::new()
        .unwrap()
        .modules(&kernel, modules)
        .unwrap()
        .script(STATIC_NET_SCRIPT)
        .script(&format!(
            "ip addr show eth0\n\
             echo \"MAC=$(cat /sys/class/net/eth0/address)\"\n\
             echo \"RNG=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)\"\n\
             echo NC-LISTENING\n\
             echo landfall-hello-from-guest | nc -l -p {GUEST_PORT}\n\
             echo NC-DONE"
        ))
        .write(&dir.join("initrd"))
        .unwrap();
    let started = Instant::now();
    let mut builder = VmBuilder::new(label)
        .kernel(&kernel.image, KERNEL_APPEND)
        .initrd(initrd)
        .nic(Nic::user().model(model).mac(mac).forward(GUEST_PORT));
    if rng {
        builder = builder.virtio_rng();
    }
    let mut vm = builder.start_in(dir).unwrap();
    let addr = vm.forwarded_addr(GUEST_PORT).unwrap();
    assert!(addr.ip().is_loopback());
    let seen_mac = vm
        .wait_for(
            landfall_tests::Pattern::regex(r"MAC=(\S+)"),
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(seen_mac.group(1), Some(mac));
    let seen_rng = vm
        .wait_for(
            landfall_tests::Pattern::regex(r"RNG=(.*)\n"),
            Duration::from_secs(10),
        )
        .unwrap();
    let want_rng = if rng { "virtio_rng.0" } else { "none" };
    assert_eq!(seen_rng.group(1).map(str::trim), Some(want_rng));
    vm.wait_for("NC-LISTENING", Duration::from_secs(30))
        .unwrap();

    // qemu accepts on the host side even before the guest listens, then drops
    // the connection: retry until the guest's greeting arrives.
    let mut stream = retry_until(Duration::from_secs(30), || {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        if line.trim() == "landfall-hello-from-guest" {
            Ok(stream)
        } else {
            Err(std::io::Error::other(format!("read {line:?}")))
        }
    })
    .unwrap_or_else(|e| panic!("no greeting through {addr}: {e}\n{}", vm.console().tail(30)));
    stream.write_all(b"landfall-hello-from-host\n").unwrap();
    drop(stream);
    vm.wait_for("landfall-hello-from-host", Duration::from_secs(30))
        .unwrap();
    vm.wait_for("NC-DONE", Duration::from_secs(30)).unwrap();
    let status = vm.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(status.success());
    eprintln!(
        "net {label} ({:?}): whole run {:.1?}",
        vm.accel(),
        started.elapsed()
    );
}

#[test]
fn hostfwd_reaches_a_virtio_net_guest() {
    forward_reaches_the_guest(
        "virtio",
        NicModel::VirtioNet,
        &["virtio_pci", "virtio_net", "virtio_rng"],
        "52:54:00:12:34:56",
        true,
    );
}

#[test]
fn hostfwd_reaches_an_e1000_guest() {
    forward_reaches_the_guest(
        "e1000",
        NicModel::E1000,
        &["e1000"],
        "52:54:00:ab:cd:ef",
        false,
    );
}

#[test]
fn a_busy_fixed_host_port_is_reported_at_start() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = VmBuilder::new("busy")
        .nic(Nic::user().forward_fixed(port, GUEST_PORT))
        .start()
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(text.contains("host forwarding"), "{text}");
    assert!(text.contains(&port.to_string()), "{text}");
    if let landfall_tests::VmError::Start { dir, .. } = &err {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
