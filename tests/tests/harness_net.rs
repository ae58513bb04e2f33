//! User-mode networking: a host port forward reaches a guest port, for both
//! NIC models, with the MAC the test chose.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use landfall_tests::{
    debian_kernel, retry_until, BusyboxInitramfs, Nic, NicModel, VmBuilder, KERNEL_APPEND,
};

const GUEST_PORT: u16 = 7443;

fn forward_reaches_the_guest(label: &str, model: NicModel, modules: &[&str], mac: &str) {
    let kernel = debian_kernel().unwrap();
    let dir = landfall_tests::TestDir::new(label).unwrap();
    let initrd = BusyboxInitramfs::new()
        .unwrap()
        .modules(&kernel, modules)
        .unwrap()
        .script(&format!(
            "for i in $(seq 1 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done\n\
             echo \"MAC=$(cat /sys/class/net/eth0/address)\"\n\
             ip link set eth0 up\n\
             ip addr add 10.0.2.15/24 dev eth0\n\
             echo NC-LISTENING\n\
             echo landfall-hello-from-guest | nc -l -p {GUEST_PORT}\n\
             echo NC-DONE"
        ))
        .write(&dir.join("initrd"))
        .unwrap();
    let started = Instant::now();
    let mut vm = VmBuilder::new(label)
        .kernel(&kernel.image, KERNEL_APPEND)
        .initrd(initrd)
        .nic(Nic::user().model(model).mac(mac).forward(GUEST_PORT))
        .start_in(dir)
        .unwrap();
    let addr = vm.forwarded_addr(GUEST_PORT).unwrap();
    assert!(addr.ip().is_loopback());
    let seen_mac = vm
        .wait_for(
            landfall_tests::Pattern::regex(r"MAC=(\S+)"),
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(seen_mac.group(1), Some(mac));
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
        &["virtio_pci", "virtio_net"],
        "52:54:00:12:34:56",
    );
}

#[test]
fn hostfwd_reaches_an_e1000_guest() {
    forward_reaches_the_guest("e1000", NicModel::E1000, &["e1000"], "52:54:00:ab:cd:ef");
}
