//! End to end, issue "kexec": the errors a user sees from `landfall kexec`,
//! against the rescue VM (SSH only): an unreachable host, a changed host key
//! (nothing is uploaded), a non-root user without sudo, the agent refusing as
//! a non-root user (no CAP_SYS_BOOT), kexec disabled by the kernel (and a
//! second run finding the upload already there), and an image whose agent
//! never answers (the timeout message says what to check).
//!
//! Issue 14 ("trust and flow"), on the same VM: a broken flake, a failing
//! build and a configuration without `disko.devices` stop `landfall install`
//! before any SSH connection (sshd logs none); upload folders planted by
//! another user (theirs, or a symbolic link) are not used and their planted
//! agent never runs; a file changed after the upload, or given as a link, is
//! refused by `landfall-agent kexec` itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use landfall_tests::bins::{agent_static_bin, landfall};
use landfall_tests::rescue::{
    keygen, RescueImage, RescueNetwork, AGENT_PORT, PLAIN_USER, SSHD_READY,
};
use landfall_tests::StartVm;
use landfall_tests::{
    debian_kernel, free_port, sparse_image, BusyboxInitramfs, TestDir, INIT_STARTED,
};

/// `landfall install` as a user runs it, with a state folder of the test's own.
fn install(args: &[String], state: &Path) -> (bool, String) {
    let out = Command::new(landfall_tests::bins::landfall_bin())
        .args(args)
        .env("NIX_CONFIG", landfall_tests::nixstore::TEST_NIX_CONFIG)
        .env("LANDFALL_STATE_DIR", state)
        .env("LANDFALL_AGENT_BIN", agent_static_bin())
        .output()
        .expect("run landfall");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("$ landfall {}\n{text}", args.join(" "));
    (out.status.success(), text)
}

/// SHA-256 (hex) of a local file, with coreutils' sha256sum.
fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .expect("sha256sum (coreutils)");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Flakes without nixpkgs that fail before the target is needed.
const BROKEN_FLAKES: &[(&str, &str, &str)] = &[
    (
        "syntax",
        "{ outputs = { self }: { nixosConfigurations.x = ; }; }",
        "Evaluating the disk layout failed",
    ),
    (
        "no-disko",
        "{ outputs = { self }: { nixosConfigurations.x.config.system.build.toplevel = null; }; }",
        "Evaluating the disk layout failed",
    ),
    (
        "build-fails",
        "{ outputs = { self }: { nixosConfigurations.x.config = { disko.devices = { }; \
         system.build.toplevel = derivation { name = \"landfall-fails\"; system = \"x86_64-linux\"; \
         builder = \"/bin/sh\"; args = [ \"-c\" \"exit 1\" ]; }; }; }; }",
        "Building the system failed",
    ),
];

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

    // A broken flake, a configuration without disko.devices, a failing build:
    // `landfall install` stops before any SSH connection (sshd logs none).
    let connections = |vm: &mut landfall_tests::Vm| {
        std::thread::sleep(Duration::from_secs(1));
        vm.console()
            .output()
            .matches("sshd: Connection from")
            .count()
    };
    let before = connections(&mut vm);
    assert!(before > 0, "sshd logs its connections on the console");
    for (name, flake, error) in BROKEN_FLAKES {
        let flake_dir = dir.join(format!("flake-{name}"));
        std::fs::create_dir_all(&flake_dir).unwrap();
        std::fs::write(flake_dir.join("flake.nix"), flake).unwrap();
        let args: Vec<String> = [
            "install",
            "--target",
            "root@127.0.0.1",
            "-p",
            &port.to_string(),
            "-i",
            rescue.client_key.to_str().unwrap(),
            "--ssh-option",
            &format!("UserKnownHostsFile={}", known_hosts.display()),
            "--image",
            image.to_str().unwrap(),
            "--agent-addr",
            &agent,
            "--flake",
            &format!("path:{}#x", flake_dir.display()),
            "--phases",
            "kexec,disko,install",
            "--yes",
            "--wait",
            "5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (success, text) = install(&args, &dir.join("state"));
        assert!(!success, "{name}: {text}");
        assert!(text.contains(error), "{name}: {text}");
        assert!(!text.contains("== kexec"), "{name}: {text}");
        assert_eq!(
            connections(&mut vm),
            before,
            "{name}: the controller connected to the target before the flake was built"
        );
    }
    let out = ssh(&rescue, "root", port, &known_hosts, "ls /run /tmp", None);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("landfall"),
        "something was uploaded"
    );

    // kexec disabled by the kernel (so a mistake below cannot reboot the VM).
    let out = ssh(
        &rescue,
        "root",
        port,
        &known_hosts,
        "echo 1 > /proc/sys/kernel/kexec_load_disabled",
        None,
    );
    assert!(out.status.success());

    // Another user plants upload folders: their own (with an "agent" that
    // would leave a mark if root ran it) and a symbolic link to it.
    let planted = dir.join("planted-agent");
    std::fs::write(&planted, "#!/bin/sh\ntouch /tmp/PLANTED-RAN-$(id -u)\n").unwrap();
    let out = ssh(
        &rescue,
        PLAIN_USER,
        port,
        &known_hosts,
        "mkdir /tmp/landfall.evil01 && cat > /tmp/landfall.evil01/landfall-agent && \
         chmod 777 /tmp/landfall.evil01 /tmp/landfall.evil01/landfall-agent && \
         ln -s /tmp/landfall.evil01 /tmp/landfall.link01",
        Some(&planted),
    );
    assert!(out.status.success());
    // Uploaded into a fresh folder of root's, then refused by the kernel with the agent's reason.
    let (success, text) = run("root", known_hosts.clone()).run();
    assert!(!success);
    assert!(
        text.contains("The target refused the kexec") && text.contains("kexec_load_disabled"),
        "{text}"
    );
    assert!(
        text.contains(
            "not reused: /tmp/landfall.evil01 (/tmp/landfall.evil01 is owned by uid 1000, not root)"
        ) && text.contains(
            "not reused: /tmp/landfall.link01 (/tmp/landfall.link01 is a symbolic link, not a directory)"
        ),
        "{text}"
    );
    assert!(
        text.contains("uploaded landfall-agent") && text.contains(" in /run/landfall."),
        "{text}"
    );
    let out = ssh(
        &rescue,
        "root",
        port,
        &known_hosts,
        "ls /tmp; stat -c '%F|%u|%a|%n' /run/landfall.*",
        None,
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        !listing.contains("PLANTED-RAN"),
        "the planted agent ran: {listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("directory|0|700|/run/landfall.")),
        "{listing}"
    );

    // A second run reuses root's checked folder and sends nothing again; no session file is there.
    let (_, text) = run("root", known_hosts.clone()).run();
    assert!(
        text.contains("reusing /run/landfall.")
            && text.contains("already there: landfall-agent")
            && text.contains("already there: initrd"),
        "{text}"
    );
    let out = ssh(
        &rescue,
        "root",
        port,
        &known_hosts,
        "ls -la /run/landfall.*/",
        None,
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("initrd") && !listing.contains("session") && !listing.contains(".pem"),
        "{listing}"
    );

    // A file changed after the upload, or given as a link: `landfall-agent
    // kexec` refuses it before the kernel is asked (exit 1, not 3).
    let (ksha, isha) = (
        sha256(&image.join("bzImage")),
        sha256(&image.join("initrd")),
    );
    let agent_kexec = |initrd: &str| {
        format!(
            "d=$(echo /run/landfall.*); $d/landfall-agent kexec --kernel $d/bzImage --kernel-sha256 {ksha} \
             --initrd {initrd} --initrd-sha256 {isha}"
        )
    };
    let out = ssh(
        &rescue,
        "root",
        port,
        &known_hosts,
        &agent_kexec("$d/initrd"),
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "as uploaded, only the kernel refuses"
    );
    let out = ssh(
        &rescue,
        "root",
        port,
        &known_hosts,
        &format!(
            "d=$(echo /run/landfall.*); echo swapped >> $d/initrd; {}",
            agent_kexec("$d/initrd")
        ),
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("changed after the upload"), "{err}");
    let out = ssh(
        &rescue,
        "root",
        port,
        &known_hosts,
        &format!(
            "d=$(echo /run/landfall.*); ln -s $d/initrd /run/initrd-link; {}",
            agent_kexec("/run/initrd-link")
        ),
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is a symbolic link"), "{err}");
    // The next run sees the changed initrd and sends it again.
    let (_, text) = run("root", known_hosts.clone()).run();
    assert!(
        text.contains("already there: landfall-agent") && text.contains("uploaded initrd"),
        "{text}"
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
    // The machine did kexec into the image (a second init started, after the rescue system's).
    vm.wait_for("landfall-test: no agent here", Duration::from_secs(30))
        .unwrap();
    let log = std::fs::read_to_string(vm.console_log()).unwrap();
    assert_eq!(
        (
            log.matches(landfall_tests::rescue::INIT_STARTED).count(),
            log.matches(INIT_STARTED).count()
        ),
        (1, 1),
        "no second boot on the console"
    );
    vm.quit(Duration::from_secs(10)).unwrap();
}
