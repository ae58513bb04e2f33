//! `landfall-agent kexec --dry-run` on this host: it reads the real network
//! state through netlink, prints it as the image's network.json and reports
//! the archive it would append, the session read from stdin. Its inputs are
//! refused when they are links, writable by others, owned by another user,
//! or differ from the SHA-256 given on the command line.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use landfall_proto::session_stream;
use sha2::{Digest, Sha256};

/// `landfall-agent kexec ARGS --dry-run` with `stdin` on its stdin.
fn kexec(args: &[&std::ffi::OsStr], stdin: &[u8]) -> Output {
    kexec_with_env(args, stdin, &[])
}

/// [`kexec`] with `env` added to a proxy-free environment.
/// Every proxy variable the capture reads: the test's own environment must
/// not leak into what is captured.
const PROXY_VARIABLES: [&str; 7] = [
    "http_proxy",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

fn without_proxy_env(cmd: &mut Command) -> &mut Command {
    for v in PROXY_VARIABLES {
        cmd.env_remove(v);
    }
    cmd
}

fn kexec_with_env(args: &[&std::ffi::OsStr], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_landfall-agent"));
    let mut child = without_proxy_env(&mut cmd)
        .envs(env.iter().copied())
        .arg("kexec")
        .args(args)
        .arg("--dry-run")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn sha256_hex(p: &Path) -> String {
    hex_of(&Sha256::digest(std::fs::read(p).unwrap()))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn dry_run_prints_the_captured_network_and_reads_the_session_from_stdin() {
    let d = tempfile::tempdir().unwrap();
    let initrd = d.path().join("initrd");
    std::fs::write(&initrd, b"12345").unwrap();
    let sha = sha256_hex(&initrd);
    let stream = session_stream::encode([b"CA", b"CERT", b"KEY", b"0123abcd"]);
    let out = kexec(
        &[
            "--kernel".as_ref(),
            initrd.as_os_str(),
            "--kernel-sha256".as_ref(),
            sha.as_ref(),
            "--initrd".as_ref(),
            initrd.as_os_str(),
            "--initrd-sha256".as_ref(),
            sha.as_ref(),
            "--session-stdin".as_ref(),
            "--append".as_ref(),
            "landfall.test=1".as_ref(),
        ],
        &stream,
    );
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
            && stderr.contains("/etc/landfall/tls/boot-id")
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
}

#[test]
fn the_proxy_variables_of_the_environment_are_carried_in_the_network_json() {
    let d = tempfile::tempdir().unwrap();
    let initrd = d.path().join("initrd");
    std::fs::write(&initrd, b"1234").unwrap();
    let args = [
        "--kernel".as_ref(),
        initrd.as_os_str(),
        "--initrd".as_ref(),
        initrd.as_os_str(),
    ];
    let out = kexec_with_env(
        &args,
        b"",
        &[
            ("http_proxy", "http://proxy.corp:3128"),
            // Never read (curl's rule): only the lower-case name counts for http.
            ("HTTP_PROXY", "http://upper.corp:1"),
            ("HTTPS_PROXY", "proxy.corp:3129"),
            ("no_proxy", "localhost,.corp,10.0.0.0/8"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        cfg["proxy"],
        serde_json::json!({
            "http_proxy": "http://proxy.corp:3128",
            "https_proxy": "proxy.corp:3129",
            "all_proxy": "",
            "no_proxy": "localhost,.corp,10.0.0.0/8",
        }),
        "{stdout}"
    );
    // Without them in the environment, /etc/environment's are taken: the
    // agent runs in a private mount namespace where that file says so.
    let etc = d.path().join("environment");
    std::fs::write(
        &etc,
        "LANG=C.UTF-8\nhttps_proxy=\"http://etc.corp:8080\"\nno_proxy=.lan\n",
    )
    .unwrap();
    let out = without_proxy_env(&mut Command::new("unshare"))
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$1\" /etc/environment && shift && exec \"$@\" </dev/null")
        .arg("sh")
        .arg(&etc)
        .arg(env!("CARGO_BIN_EXE_landfall-agent"))
        .arg("kexec")
        .args(args)
        .arg("--dry-run")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        cfg["proxy"],
        serde_json::json!({
            "http_proxy": "",
            "https_proxy": "http://etc.corp:8080",
            "all_proxy": "",
            "no_proxy": ".lan",
        }),
        "{stdout}"
    );
}

#[test]
fn a_malformed_session_stream_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let initrd = d.path().join("initrd");
    std::fs::write(&initrd, b"x").unwrap();
    let out = kexec(
        &[
            "--kernel".as_ref(),
            initrd.as_os_str(),
            "--initrd".as_ref(),
            initrd.as_os_str(),
            "--session-stdin".as_ref(),
        ],
        b"ca.pem 10\nshort",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("landfall-agent kexec: The session on stdin is not valid")
            && stderr.contains("ends before ca.pem"),
        "{stderr}"
    );
}

#[test]
fn links_open_modes_other_owners_and_changed_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let kernel = d.path().join("bzImage");
    std::fs::write(&kernel, b"kernel").unwrap();
    let initrd = d.path().join("initrd");
    std::fs::write(&initrd, b"initrd").unwrap();
    let (ksha, isha) = (sha256_hex(&kernel), sha256_hex(&initrd));
    let run = |k: &Path, i: &Path, isha: &str| -> (Option<i32>, String) {
        let out = kexec(
            &[
                "--kernel".as_ref(),
                k.as_os_str(),
                "--kernel-sha256".as_ref(),
                ksha.as_ref(),
                "--initrd".as_ref(),
                i.as_os_str(),
                "--initrd-sha256".as_ref(),
                isha.as_ref(),
            ],
            b"",
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // As uploaded: accepted.
    let (code, err) = run(&kernel, &initrd, &isha);
    assert_eq!(code, Some(0), "{err}");

    // The initrd changed after the upload (the hash the controller sent is the old one).
    std::fs::write(&initrd, b"initrd, swapped").unwrap();
    let (code, err) = run(&kernel, &initrd, &isha);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("The initrd was refused") && err.contains("changed after the upload"),
        "{err}"
    );
    std::fs::write(&initrd, b"initrd").unwrap();

    // A symbolic link to the very same bytes.
    let link = d.path().join("initrd-link");
    std::os::unix::fs::symlink(&initrd, &link).unwrap();
    let (code, err) = run(&kernel, &link, &isha);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is a symbolic link"), "{err}");

    // Writable by others.
    std::fs::set_permissions(&kernel, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, err) = run(&kernel, &initrd, &isha);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("The kernel was refused")
            && err.contains("writable by group or others (mode 666)"),
        "{err}"
    );
    std::fs::set_permissions(&kernel, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Owned by another user (the agent's tests run as root, as the kexec does).
    std::os::unix::fs::chown(&initrd, Some(1000), Some(1000))
        .expect("chown: run the agent's tests as root");
    let (code, err) = run(&kernel, &initrd, &isha);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is owned by uid 1000, not by root"), "{err}");
}

#[test]
fn copy_host_keys_carries_the_key_files_into_the_image_or_says_there_are_none() {
    let d = tempfile::tempdir().unwrap();
    let initrd = d.path().join("initrd");
    std::fs::write(&initrd, b"x").unwrap();
    let keys = d.path().join("ssh");
    std::fs::create_dir(&keys).unwrap();
    let run = |keys: &Path| {
        kexec(
            &[
                "--kernel".as_ref(),
                initrd.as_os_str(),
                "--initrd".as_ref(),
                initrd.as_os_str(),
                "--copy-host-keys".as_ref(),
                "--host-keys-dir".as_ref(),
                keys.as_os_str(),
            ],
            b"",
        )
    };
    // No key in the folder: a clear error, no kexec.
    let out = run(&keys);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Cannot capture the SSH host keys (--copy-host-keys)")
            && stderr.contains("holds no SSH host key"),
        "{stderr}"
    );
    std::fs::write(keys.join("ssh_host_ed25519_key"), b"PRIVATE").unwrap();
    std::fs::write(keys.join("ssh_host_ed25519_key.pub"), b"ssh-ed25519 AAAA").unwrap();
    std::fs::write(keys.join("sshd_config"), b"Port 22").unwrap();
    let out = run(&keys);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("/etc/landfall/host-keys/ssh_host_ed25519_key,")
            && stderr.contains("/etc/landfall/host-keys/ssh_host_ed25519_key.pub"),
        "{stderr}"
    );
    assert!(!stderr.contains("sshd_config"), "{stderr}");
}
