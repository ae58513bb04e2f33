//! `landfall install`'s disk keys from the command line, with no VM and no
//! target: a missing or empty local key file, a key path the layout names
//! but nobody gave, and mismatched answers at the passphrase prompt (typed
//! through a real pseudo-terminal with util-linux's `script`) each stop the
//! run with a clear error before a VM is started or an agent is reached.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn landfall() -> &'static str {
    env!("CARGO_BIN_EXE_landfall")
}

fn office(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/office")
        .join(file)
}

/// Runs `landfall install --vm` on the office LUKS layout (disko phase only,
/// so nothing needs building) with `extra` arguments; returns (success, stderr).
fn install_vm(dir: &Path, extra: &[&str]) -> (bool, String) {
    let layout = office("disko-devices-luks-lvm.json");
    let out = Command::new(landfall())
        .args(["install", "--vm", "--yes", "--phases", "disko", "--layout"])
        .arg(&layout)
        .arg("--vm-dir")
        .arg(dir.join("vm"))
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("landfall runs");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

fn assert_nothing_started(dir: &Path, text: &str) {
    assert!(!text.contains("== vm:"), "a VM was started:\n{text}");
    assert!(
        !text.contains("== kexec"),
        "the target was reached:\n{text}"
    );
    assert!(
        !dir.join("vm").exists(),
        "the VM's folder was made:\n{text}"
    );
}

#[test]
fn a_missing_local_key_file_stops_before_the_vm() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("disk.key");
    let (ok, text) = install_vm(
        d.path(),
        &[
            "--disk-encryption-keys",
            "/tmp/disk.key",
            missing.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "--disk-encryption-keys /tmp/disk.key {0}: cannot read the local key file {0}",
            missing.display()
        )),
        "{text}"
    );
    assert_nothing_started(d.path(), &text);
}

#[test]
fn an_empty_local_key_file_stops_before_the_vm() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("disk.key");
    std::fs::write(&empty, b"").unwrap();
    let (ok, text) = install_vm(
        d.path(),
        &[
            "--disk-encryption-keys",
            "/tmp/disk.key",
            empty.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("the local key file {} is empty", empty.display())),
        "{text}"
    );
    assert_nothing_started(d.path(), &text);
}

#[test]
fn a_layout_key_not_given_names_the_device_the_path_and_the_flag() {
    let d = tempfile::tempdir().unwrap();
    let (ok, text) = install_vm(d.path(), &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "LUKS device \"crypted\" needs its key file /tmp/disk.key on the target: \
             pass --disk-encryption-keys /tmp/disk.key LOCAL_FILE"
        ),
        "{text}"
    );
    assert_nothing_started(d.path(), &text);

    // A key for another path is not the one the layout names.
    let other = d.path().join("other.key");
    std::fs::write(&other, b"k").unwrap();
    let (ok, text) = install_vm(
        d.path(),
        &[
            "--disk-encryption-keys",
            "/tmp/other.key",
            other.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && text.contains("needs its key file /tmp/disk.key"),
        "{text}"
    );
    assert_nothing_started(d.path(), &text);
}

#[test]
fn the_flag_wants_two_values() {
    let d = tempfile::tempdir().unwrap();
    let (ok, text) = install_vm(d.path(), &["--disk-encryption-keys", "/tmp/disk.key"]);
    assert!(!ok, "{text}");
    assert!(text.contains("--disk-encryption-keys"), "{text}");
    assert_nothing_started(d.path(), &text);
}

/// The office layout with its key file swapped for `askPassword` (the prompt).
fn asking_layout(dir: &Path) -> PathBuf {
    let mut v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(office("disko-devices-luks-lvm.json")).unwrap(),
    )
    .unwrap();
    let luks = &mut v["disk"]["main"]["content"]["partitions"]["luks"]["content"];
    luks["settings"] = serde_json::json!({ "allowDiscards": true });
    luks["askPassword"] = serde_json::json!(true);
    let p = dir.join("asking.json");
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

/// Output of a process, collected by a thread as it comes.
struct Collected(Arc<Mutex<Vec<u8>>>);

impl Collected {
    fn start(mut r: impl Read + Send + 'static) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Self(buf)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until `needle` has been printed `count` times (30 s at most).
    fn wait_for(&self, needle: &str, count: usize) {
        let t = Instant::now();
        while self.text().matches(needle).count() < count {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no {needle:?} (x{count}) on the terminal:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs landfall under `script` (a real pseudo-terminal as its stdin),
/// answering the two passphrase prompts with `first` and `second`; returns
/// (success, everything the terminal showed).
fn prompt_run(dir: &Path, extra: &str, first: &str, second: &str) -> (bool, String) {
    let layout = asking_layout(dir);
    let session = dir.join("session");
    let made = Command::new(landfall())
        .args(["certs", "init", "--dir"])
        .arg(&session)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let cmd = format!(
        "{} install --yes --phases disko --layout {} --agent 127.0.0.1:9 --tls {} --wait 0{extra}",
        landfall(),
        layout.display(),
        session.display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux's script runs (apt-get install -y bsdutils)");
    let out = Collected::start(child.stdout.take().unwrap());
    let err = Collected::start(child.stderr.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    out.wait_for("Passphrase for LUKS device \"crypted\"", 1);
    stdin.write_all(format!("{first}\n").as_bytes()).unwrap();
    out.wait_for("The same passphrase again for \"crypted\"", 1);
    stdin.write_all(format!("{second}\n").as_bytes()).unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "landfall did not end:\n{}",
            out.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    std::thread::sleep(Duration::from_millis(200));
    (status.success(), out.text() + &err.text())
}

#[test]
fn mismatched_prompt_answers_are_refused_before_the_agent_is_reached() {
    let d = tempfile::tempdir().unwrap();
    let (ok, text) = prompt_run(d.path(), "", "first-secret", "other-secret");
    assert!(!ok, "{text}");
    assert!(
        text.contains("The passphrase for LUKS device \"crypted\": the two passphrases differ"),
        "{text}"
    );
    assert!(
        !text.contains("first-secret") && !text.contains("other-secret"),
        "the passphrase was echoed:\n{text}"
    );
    assert!(
        !text.contains("127.0.0.1:9"),
        "the agent was tried:\n{text}"
    );
}

#[test]
fn matching_prompt_answers_go_on_to_the_agent_unechoed() {
    let d = tempfile::tempdir().unwrap();
    let (ok, text) = prompt_run(d.path(), "", "s3cret-words", "s3cret-words");
    // Nothing answers at 127.0.0.1:9 with a session that does not exist: the
    // run fails there, after the prompt accepted the passphrase.
    assert!(!ok, "{text}");
    assert!(
        !text.contains("The passphrase for LUKS device"),
        "the prompt refused:\n{text}"
    );
    assert!(
        text.contains("127.0.0.1:9"),
        "the agent was not tried:\n{text}"
    );
    assert!(
        !text.contains("s3cret-words"),
        "the passphrase was echoed or printed:\n{text}"
    );
}

#[test]
fn no_terminal_and_no_password_file_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let layout = asking_layout(d.path());
    let out = Command::new(landfall())
        .args(["install", "--vm", "--yes", "--phases", "disko", "--layout"])
        .arg(&layout)
        .arg("--vm-dir")
        .arg(d.path().join("vm"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "LUKS device \"crypted\" asks for a passphrase (askPassword), but there is no terminal"
        ) && text.contains("--disk-password-file crypted FILE"),
        "{text}"
    );
    assert_nothing_started(d.path(), &text);
}
