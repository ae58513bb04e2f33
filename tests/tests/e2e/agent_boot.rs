//! End to end, issue "foundation": the RAM image built from the Debian kernel
//! boots in qemu (256 MiB, an NVMe disk with serial `landfall-test-0`), the agent
//! comes up as PID 1, and from the host `landfall inventory` over mutual TLS (via
//! a forwarded port) lists the disk, the NIC with its address and the firmware
//! mode. Clients with a certificate from another CA, with none, plain HTTP, a
//! port scan and a malformed protobuf are all refused, and the agent keeps serving.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use landfall_tests::bins::{agent_static_bin, landfall, landfall_ok};
use landfall_tests::StartVm;
use landfall_tests::{
    debian_kernel, sparse_image, Disk, Nic, TestDir, VmBuilder, NVME_TIMEOUT_APPEND,
};

const AGENT_PORT: u16 = 7443;

/// curl as an independent TLS/HTTP2 client: returns (exit code, stdout+stderr).
fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "10"])
        .args(args)
        .output()
        .expect("curl is needed for this test (apt-get install curl)");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Copies session files into a private folder (the controller refuses one open to others).
fn copy(from: &Path, to: &Path, names: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for n in names {
        std::fs::copy(from.join(n), to.join(n)).unwrap();
    }
}

#[test]
fn agent_image_boots_and_serves_inventory_over_mtls() {
    let kernel = debian_kernel().expect("Debian kernel (scripts/fetch-kernel.sh)");
    let tdir = TestDir::new("agent-boot").unwrap();
    let dir = tdir.path().to_path_buf();
    let session = dir.join("session");
    let other = dir.join("other-ca");
    landfall_ok(&[
        "certs",
        "init",
        "--dir",
        session.to_str().unwrap(),
        "--label",
        "vm",
    ]);
    landfall_ok(&[
        "certs",
        "init",
        "--dir",
        other.to_str().unwrap(),
        "--label",
        "intruder",
    ]);

    let image = dir.join("image");
    let built = landfall_ok(&[
        "image",
        "build",
        "--kernel",
        kernel.image.to_str().unwrap(),
        "--modules",
        kernel.modules.to_str().unwrap(),
        "--agent",
        agent_static_bin().to_str().unwrap(),
        "--out",
        image.to_str().unwrap(),
        "--tls",
        session.to_str().unwrap(),
    ]);
    assert!(
        built.contains("nvme"),
        "the image lacks the nvme module:\n{built}"
    );
    // The initrd holds the agent's key: readable by its owner only.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(image.join("initrd"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the key-bearing initrd is not 0600");

    let disk = sparse_image(&dir.join("nvme.img"), 2 << 30).unwrap();
    let mut vm = VmBuilder::new("agent")
        .kernel(
            image.join("bzImage"),
            &format!("console=ttyS0 panic=-1 {NVME_TIMEOUT_APPEND}"),
        )
        .initrd(image.join("initrd"))
        .memory_mib(256)
        .disk(Disk::nvme(disk).serial("landfall-test-0"))
        .nic(Nic::user().forward(AGENT_PORT))
        .start_in(tdir)
        .unwrap();
    let addr = vm.forwarded_addr(AGENT_PORT).unwrap().to_string();
    let port = addr.rsplit_once(':').unwrap().1.to_string();
    vm.wait_for("starting as PID 1", Duration::from_secs(120))
        .unwrap();
    vm.wait_for("Ready:", Duration::from_secs(60)).unwrap();
    // The agent reports its address once DHCP is done.
    vm.wait_for("DHCP lease 10.0.2.15", Duration::from_secs(90))
        .unwrap();
    // Module parameters on the command line reach the modules the agent loads, as with modprobe.
    let console = vm.console().output();
    assert!(
        console.contains("Loaded module nvme_core with io_timeout=600"),
        "nvme_core did not get its command-line parameter:\n{console}"
    );

    let tls = session.to_str().unwrap();
    let json = landfall_ok(&[
        "inventory",
        "--agent",
        &addr,
        "--tls",
        tls,
        "--json",
        "--wait",
        "60",
    ]);
    let inv: serde_json::Value = serde_json::from_str(&json).unwrap();
    let disks = inv["disks"].as_array().unwrap();
    let nvme = disks
        .iter()
        .find(|d| d["name"] == "nvme0n1")
        .unwrap_or_else(|| panic!("no nvme0n1 in {json}"));
    assert_eq!(nvme["path"], "/dev/nvme0n1");
    assert_eq!(nvme["size_bytes"], 2u64 << 30);
    assert_eq!(nvme["serial"], "landfall-test-0");
    assert_eq!(nvme["logical_sector_size"], 512);
    assert_eq!(inv["firmware"]["mode"], "bios");
    let nics = inv["nics"].as_array().unwrap();
    assert!(
        nics.iter().any(|n| n["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "10.0.2.15/24")),
        "no NIC with 10.0.2.15/24 in {json}"
    );
    assert!(inv["memory"]["total_bytes"].as_u64().unwrap() > 100 << 20);

    let table = landfall_ok(&["inventory", "--agent", &addr, "--tls", tls]);
    assert!(
        table.contains("/dev/nvme0n1")
            && table.contains("landfall-test-0")
            && table.contains("BIOS"),
        "{table}"
    );
    let status = landfall_ok(&["status", "--agent", &addr, "--tls", tls, "--json"]);
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(st["pid1"], true, "{status}");
    eprintln!("FIGURE boot_to_serve_ms={}", st["boot_to_serve_ms"]);

    // A client whose certificate comes from another CA (but which trusts the agent).
    let mixed = dir.join("mixed");
    copy(&session, &mixed, &["ca.pem", "agent.pin"]);
    copy(&other, &mixed, &["controller.pem", "controller.key"]);
    let out = landfall(&[
        "inventory",
        "--agent",
        &addr,
        "--tls",
        mixed.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "a wrong-CA client was served");
    vm.wait_for("Refused a connection", Duration::from_secs(10))
        .unwrap();

    // No client certificate at all, with curl as an independent client.
    let resolve = format!("landfall-agent:{port}:127.0.0.1");
    let url = format!("https://landfall-agent:{port}/landfall.v1.Agent/Status");
    let ca = session.join("ca.pem");
    let (code, text) = curl(&[
        "--http2",
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ]);
    assert_ne!(code, 0, "a client without a certificate was served: {text}");
    vm.wait_for("Refused a connection", Duration::from_secs(10))
        .unwrap();

    // Plain HTTP, and a port scanner that connects and says nothing.
    let (code, _) = curl(&[&format!("http://127.0.0.1:{port}/")]);
    assert_ne!(code, 0);
    drop(std::net::TcpStream::connect(&addr).unwrap());

    // A malformed protobuf from a properly authenticated client.
    let garbage = dir.join("garbage.bin");
    std::fs::write(&garbage, [0u8, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
    let cert = session.join("controller.pem");
    let key = session.join("controller.key");
    let (_, text) = curl(&[
        "--http2",
        "--cacert",
        ca.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "--data-binary",
        &format!("@{}", garbage.display()),
        "-i",
        &format!("https://landfall-agent:{port}/landfall.v1.Agent/Inventory"),
    ]);
    assert!(
        text.to_lowercase().contains("grpc-status"),
        "no gRPC status for a malformed message: {text}"
    );
    vm.wait_for("Request refused (gRPC status", Duration::from_secs(10))
        .unwrap();

    // After all that, the agent still serves.
    let again = landfall_ok(&["inventory", "--agent", &addr, "--tls", tls, "--json"]);
    assert!(again.contains("landfall-test-0"));
    vm.quit(Duration::from_secs(10)).unwrap();
}
