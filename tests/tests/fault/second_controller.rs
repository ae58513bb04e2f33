//! A second controller while a job runs: two real `landfall` processes
//! against one real agent. The first streams the closure (through a proxy
//! slowed to 8 MiB/s so the transfer lasts seconds); while it runs, a second
//! `landfall install … --phases install` is refused with the busy message and
//! changes nothing; `landfall status` still answers. The first then finishes
//! on its own, without a reconnect, and the store verifies with real Nix.

use crate::fault_support;

use std::time::Duration;

use fault_support::*;
use landfall_tests::bins::landfall_bin;
use landfall_tests::proxy::CutProxy;
use landfall_tests::TestDir;

#[test]
fn second_controller_is_refused_as_busy_and_the_first_finishes() {
    let tdir = TestDir::new("fault-second").unwrap();
    let dir = tdir.path();
    let top = build_synthetic(dir, 40);
    let total = closure_len(&top);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let agent = start_agent(dir, &root);
    let proxy = CutProxy::start(agent.addr.parse().unwrap()).unwrap();
    proxy.set_rate(8 << 20);

    let mut first = spawn_install(
        &proxy.addr().to_string(),
        &agent.tls,
        &top,
        &dir.join("first.stderr"),
    );
    let mut seen = Vec::new();
    assert!(
        first.read_until(&mut seen, is_finished).is_some(),
        "the first transfer never verified a path: {}",
        first.stderr_text()
    );

    let second = install(&agent.addr, &agent.tls, &top);
    let second_err = String::from_utf8_lossy(&second.stderr).into_owned();
    eprintln!("second controller:\n{second_err}");
    assert!(
        !second.status.success(),
        "the second controller was not refused"
    );
    assert!(
        second_err.contains("busy: a closure transfer is still running on the agent"),
        "not the busy message: {second_err}"
    );
    assert!(
        !second_err.contains("reconnecting"),
        "busy from another job is not a lost connection: {second_err}"
    );

    let status = std::process::Command::new(landfall_bin())
        .args(["status", "--agent", &agent.addr, "--tls", &agent.tls])
        .output()
        .unwrap();
    assert!(status.status.success(), "status does not answer while busy");
    let still_running = seen.len();

    first.read_until(&mut seen, |_| false);
    let ok = first.child.wait().unwrap();
    let first_err = first.stderr_text();
    assert!(ok.success(), "the first install failed: {first_err}");
    assert!(
        seen.len() > still_running,
        "the first transfer was already over when the second controller came"
    );
    assert!(
        !first_err.contains("reconnecting"),
        "the first controller lost its connection: {first_err}"
    );
    let s = seen.last().unwrap();
    assert_eq!(s["closure"]["sent_paths"].as_u64(), Some(total));
    assert_eq!(
        agent.transfers(),
        vec![total],
        "the second controller started a transfer"
    );
    verify(&root);
    assert_same_closure(&root, &top);
    // Nothing left to send.
    let again = summary(&install(&agent.addr, &agent.tls, &top));
    assert_eq!(again["closure"]["sent_paths"], 0);
    // Give the agent's log a moment, then check it said why it refused.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        agent.log_text().contains("busy"),
        "the agent did not log the refusal"
    );
}
