//! `landfall-agent kexec --dry-run` on this host: it reads the real network
//! state through netlink, prints it as the image's network.json, reports the
//! archive it would append, and leaves the session files in place.

use std::process::Command;

#[test]
fn dry_run_prints_the_captured_network_and_keeps_the_session() {
    let d = tempfile::tempdir().unwrap();
    let session = d.path().join("session");
    std::fs::create_dir(&session).unwrap();
    for (name, data) in [
        ("ca.pem", "CA"),
        ("agent.pem", "CERT"),
        ("agent.key", "KEY"),
    ] {
        std::fs::write(session.join(name), data).unwrap();
    }
    let initrd = d.path().join("initrd");
    std::fs::write(&initrd, b"12345").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_landfall-agent"))
        .arg("kexec")
        .arg("--kernel")
        .arg(&initrd)
        .arg("--initrd")
        .arg(&initrd)
        .arg("--session")
        .arg(&session)
        .args(["--append", "landfall.test=1", "--dry-run"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let cfg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let ifaces = cfg["interfaces"].as_array().unwrap();
    // The same links `ip` sees, without loopback.
    let ip = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let ip = String::from_utf8_lossy(&ip.stdout);
    for i in ifaces {
        let mac = i["mac"].as_str().unwrap();
        assert!(ip.contains(mac), "{mac} is not a link here: {ip}");
        assert_ne!(i["name"], "lo");
    }
    assert!(stderr.contains("landfall.test=1"), "{stderr}");
    assert!(
        stderr.contains("/etc/landfall/tls/agent.key")
            && stderr.contains("/etc/landfall/network.json"),
        "{stderr}"
    );
    // 5 bytes of initrd, padded to 8, then the archive (a multiple of 4).
    let bytes: u64 = stderr
        .split("initrd ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no initrd size in {stderr}"));
    assert!(bytes > 8 + 110 && bytes.is_multiple_of(4), "{bytes}");
    assert!(
        session.join("agent.key").exists(),
        "a dry run removed the session"
    );
}

#[test]
fn a_missing_session_file_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let initrd = d.path().join("initrd");
    std::fs::write(&initrd, b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_landfall-agent"))
        .arg("kexec")
        .arg("--kernel")
        .arg(&initrd)
        .arg("--initrd")
        .arg(&initrd)
        .arg("--session")
        .arg(d.path())
        .arg("--dry-run")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Cannot read the session file") && stderr.contains("ca.pem"),
        "{stderr}"
    );
}
