//! End to end, issue "kexec": the errors a user sees from `landfall kexec`,
//! against the rescue VM (SSH only): an unreachable host, a changed host key
//! (nothing is uploaded), a non-root user without sudo, the agent refusing as
//! a non-root user (no CAP_SYS_BOOT), kexec disabled by the kernel (and a
//! second run finding the upload already there), and an image whose agent
//! never answers (the timeout message says what to check).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use landfall_tests::bins::{agent_static_bin, landfall};
use landfall_tests::rescue::{
    keygen, RescueImage, RescueNetwork, AGENT_PORT, PLAIN_USER, SSHD_READY,
};
use landfall_tests::{
    debian_kernel, free_port, sparse_image, BusyboxInitramfs, TestDir, INIT_STARTED,
};

fn ok(args: &[&str]) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    assert!(landfall(&args).status.success());
}

fn ssh(
    image: &RescueImage,
    user: &str,
    port: u16,
    known_hosts: &Path,
    cmd: &str,
    stdin: Option<&Path>,
) -> Output {
    let mut c = Command::new("ssh");
    c.args(image.ssh_args(user, port, known_hosts)).arg(cmd);
    c.stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
        None => Stdio::null(),
    });
    let out = c.output().expect("ssh (Debian package openssh-client)");
    eprintln!(
        "$ ssh {user}@rescue {cmd}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `landfall kexec` against 127.0.0.1:`port`; returns (success, stdout + stderr).
struct KexecRun {
    user: &'static str,
    port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
    image: PathBuf,
    session: PathBuf,
    agent: String,
    wait: u64,
}

impl KexecRun {
    fn run(&self) -> (bool, String) {
        let args: Vec<String> = [
            "kexec".to_string(),
            "--target".into(),
            format!("{}@127.0.0.1", self.user),
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
            self.key.display().to_string(),
            "--ssh-option".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "--ssh-option".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "--image".into(),
            self.image.display().to_string(),
            "--tls".into(),
            self.session.display().to_string(),
            "--agent-bin".into(),
            agent_static_bin().display().to_string(),
            "--agent".into(),
            self.agent.clone(),
            "--wait".into(),
            self.wait.to_string(),
        ]
        .to_vec();
        let out = landfall(&args);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

struct Setup {
    tdir: TestDir,
    kernel: landfall_tests::DebianKernel,
    session: PathBuf,
    rescue: RescueImage,
}

fn setup(label: &str) -> Setup {
    let kernel = debian_kernel().expect("Debian kernel (scripts/fetch-kernel.sh)");
    let tdir = TestDir::new(label).unwrap();
    let session = tdir.join("session");
    ok(&["certs", "init", "--dir", session.to_str().unwrap()]);
    let rescue = RescueImage::build(&kernel, tdir.path(), RescueNetwork::Static).unwrap();
    Setup {
        tdir,
        kernel,
        session,
        rescue,
    }
}

/// A tiny image folder: the Debian kernel and a busybox initrd.
fn busybox_image(dir: &Path, kernel: &landfall_tests::DebianKernel, script: &str) -> PathBuf {
    let image = dir.join("image");
    std::fs::create_dir_all(&image).unwrap();
    std::fs::copy(&kernel.image, image.join("bzImage")).unwrap();
    BusyboxInitramfs::new()
        .unwrap()
        .script(script)
        .write(&image.join("initrd"))
        .unwrap();
    image
}

#[test]
fn unreachable_changed_key_non_root_refused() {
    let Setup {
        tdir,
        kernel,
        session,
        rescue,
    } = setup("errors");
    let dir = tdir.path().to_path_buf();
    let image = busybox_image(&dir, &kernel, "echo 'landfall-test: should never run'");
    let disk = sparse_image(&dir.join("nvme.img"), 1 << 30).unwrap();

    // Nothing listens on this port.
    let nowhere = free_port().unwrap();
    let kh = dir.join("empty_known_hosts");
    std::fs::write(&kh, "").unwrap();
    let (success, text) = KexecRun {
        user: "root",
        port: nowhere,
        key: rescue.client_key.clone(),
        known_hosts: kh.clone(),
        image: image.clone(),
        session: session.clone(),
        agent: "127.0.0.1:1".into(),
        wait: 5,
    }
    .run();
    assert!(!success);
    assert!(
        text.contains("Cannot reach root@127.0.0.1") && text.contains("Connection refused"),
        "{text}"
    );

    let mut vm = rescue.vm_builder(&kernel, &disk).start_in(tdir).unwrap();
    vm.wait_for(SSHD_READY, Duration::from_secs(120)).unwrap();
    let port = vm.host_port(22).unwrap();
    let agent = vm.forwarded_addr(AGENT_PORT).unwrap().to_string();
    let known_hosts = rescue.write_known_hosts(port).unwrap();
    let run = |user: &'static str, known_hosts: PathBuf| KexecRun {
        user,
        port,
        key: rescue.client_key.clone(),
        known_hosts,
        image: image.clone(),
        session: session.clone(),
        agent: agent.clone(),
        wait: 5,
    };

    // A known_hosts holding another key for this host: refused before anything is sent.
    let other = keygen(&dir.join("other_host_key"), "impostor").unwrap();
    let bad_kh = dir.join("changed_known_hosts");
    let other_key: Vec<&str> = other.split_whitespace().take(2).collect();
    std::fs::write(
        &bad_kh,
        format!("[127.0.0.1]:{port} {}\n", other_key.join(" ")),
    )
    .unwrap();
    let (success, text) = run("root", bad_kh.clone()).run();
    assert!(!success);
    assert!(text.contains("has CHANGED"), "{text}");
    assert!(
        text.contains(&format!("{}:1", bad_kh.display())),
        "the known_hosts line is not named: {text}"
    );
    let out = ssh(&rescue, "root", port, &known_hosts, "ls /run /tmp", None);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("landfall"),
        "something was uploaded"
    );

    // A user that is not root and has no sudo.
    let (success, text) = run(PLAIN_USER, known_hosts.clone()).run();
    assert!(!success);
    assert!(text.contains("not root and cannot use sudo"), "{text}");

    // The agent itself, run by that user: the kernel refuses (no CAP_SYS_BOOT), clearly.
    let out = ssh(
        &rescue,
        PLAIN_USER,
        port,
        &known_hosts,
        "cat > /tmp/agent && chmod 755 /tmp/agent",
        Some(&agent_static_bin()),
    );
    assert!(out.status.success());
    let out = ssh(
        &rescue,
        PLAIN_USER,
        port,
        &known_hosts,
        "/tmp/agent kexec --kernel /tmp/agent --initrd /tmp/agent",
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit status 3 means the kernel refused"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kexec refused") && err.contains("CAP_SYS_BOOT"),
        "{err}"
    );

    // kexec disabled by the kernel: uploaded, then refused with the agent's reason.
    let out = ssh(
        &rescue,
        "root",
        port,
        &known_hosts,
        "echo 1 > /proc/sys/kernel/kexec_load_disabled",
        None,
    );
    assert!(out.status.success());
    let (success, text) = run("root", known_hosts.clone()).run();
    assert!(!success);
    assert!(
        text.contains("The target refused the kexec") && text.contains("kexec_load_disabled"),
        "{text}"
    );
    // A second run finds the same files there and sends nothing again; the session files are gone.
    let (_, text) = run("root", known_hosts.clone()).run();
    assert!(
        text.contains("already there: landfall-agent") && text.contains("already there: initrd"),
        "{text}"
    );
    let out = ssh(
        &rescue,
        "root",
        port,
        &known_hosts,
        "ls -la /run/landfall",
        None,
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("initrd") && !listing.contains("session"),
        "{listing}"
    );
    vm.quit(Duration::from_secs(10)).unwrap();
}

#[test]
fn agent_never_answering_times_out_with_advice() {
    let Setup {
        tdir,
        kernel,
        session,
        rescue,
    } = setup("silent");
    let dir = tdir.path().to_path_buf();
    // A kernel + initrd with no agent at all: the kexec works, nothing answers.
    let image = busybox_image(
        &dir,
        &kernel,
        "echo 'landfall-test: no agent here'; while :; do sleep 60; done",
    );
    let disk = sparse_image(&dir.join("nvme.img"), 1 << 30).unwrap();
    let mut vm = rescue.vm_builder(&kernel, &disk).start_in(tdir).unwrap();
    vm.wait_for(SSHD_READY, Duration::from_secs(120)).unwrap();
    let port = vm.host_port(22).unwrap();
    let known_hosts = rescue.write_known_hosts(port).unwrap();
    let (success, text) = KexecRun {
        user: "root",
        port,
        key: rescue.client_key.clone(),
        known_hosts: known_hosts.clone(),
        image: image.clone(),
        session: session.clone(),
        agent: vm.forwarded_addr(AGENT_PORT).unwrap().to_string(),
        wait: 40,
    }
    .run();
    assert!(!success);
    assert!(text.contains("Kexec started"), "{text}");
    assert!(
        text.contains("did not answer") && text.contains("console") && text.contains("7443"),
        "{text}"
    );
    // The machine did kexec into the image (its init started a second time).
    vm.wait_for("landfall-test: no agent here", Duration::from_secs(30))
        .unwrap();
    let log = std::fs::read_to_string(vm.console_log()).unwrap();
    assert_eq!(
        log.matches(INIT_STARTED).count(),
        2,
        "no second boot on the console"
    );
    vm.quit(Duration::from_secs(10)).unwrap();
}
