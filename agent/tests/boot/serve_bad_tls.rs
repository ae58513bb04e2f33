//! Garbage certificates: `serve` says clearly what is wrong; with `--retry`
//! (what PID 1 runs) it keeps running and trying instead of exiting.

use std::process::{Command, Stdio};
use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_landfall-agent");

fn garbage_session() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "agent.pem", "agent.key"] {
        std::fs::write(d.path().join(f), b"this is not PEM\n").unwrap();
    }
    d
}

#[test]
fn garbage_certificates_are_named_and_serve_exits() {
    let d = garbage_session();
    let out = Command::new(AGENT)
        .args(["serve", "--listen", "127.0.0.1:0", "--tls"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ca.pem holds no PEM certificate"), "{err}");
}

#[test]
fn with_retry_the_agent_keeps_running() {
    let d = garbage_session();
    let mut child = Command::new(AGENT)
        .args(["serve", "--listen", "127.0.0.1:0", "--retry", "--tls"])
        .arg(d.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let alive = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(alive, "the agent exited: {err}");
    assert!(err.contains("holds no PEM certificate"), "{err}");
}
