//! The controller killed (SIGKILL) at random points of the closure transfer,
//! 10 trials: each trial starts a fresh agent and store root, runs `landfall
//! install --json`, and kills it once the agent has reported a share of the
//! NAR bytes verified (drawn from a seeded RNG, printed with the seed, plus
//! 0–40 ms so the kill lands anywhere in the stream, not only between paths).
//! The re-run must resume: the agent is asked again, and the second transfer
//! holds only paths the first did not report verified (checked in the
//! controller's JSON and the agent's log). The store then passes real Nix's
//! `nix-store --verify --check-contents`, and `nix path-info -r` matches the host.

use crate::fault_support;

use std::time::Duration;

use fault_support::*;
use landfall_tests::{retry_until, TestDir};

const TRIALS: u32 = 10;

#[test]
fn controller_killed_at_ten_random_points_resumes_and_verifies() {
    let tdir = TestDir::new("fault-kill").unwrap();
    let dir = tdir.path();
    let top = build_synthetic(dir, 40);
    let total = closure_len(&top);
    let mut rng = Rng::from_env("fault_controller_kill");
    for trial in 0..TRIALS {
        let tri = dir.join(format!("trial-{trial}"));
        let root = tri.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let agent = start_agent(&tri, &root);
        // Cut points spread over the transfer: trial i draws from its own tenth.
        let lo = 2 + trial as u64 * 9;
        let percent = rng.range(lo, lo + 9);
        let delay_ms = rng.range(0, 40);

        let mut run = spawn_install(&agent.addr, &agent.tls, &top, &tri.join("first.stderr"));
        let mut seen = Vec::new();
        let hit = run.read_until_percent(&mut seen, percent);
        assert!(
            hit.is_some(),
            "trial {trial}: the transfer ended before {percent}%: {}",
            run.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(delay_ms));
        run.child.kill().unwrap();
        let _ = run.child.wait();
        // Events that were already on their way count as seen too.
        run.read_until(&mut seen, |_| false);
        let verified_seen = seen.iter().filter(|v| is_finished(v)).count() as u64;

        // The re-run; the agent may still be winding the broken transfer down
        // (QueryMissing then answers busy), so it is retried for a while.
        let out = retry_until(Duration::from_secs(30), || {
            let out = install(&agent.addr, &agent.tls, &top);
            if out.status.success() {
                Ok(out)
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        })
        .unwrap_or_else(|e| panic!("trial {trial}: the re-run failed: {e}"));
        let s = summary(&out);
        let sent = s["closure"]["sent_paths"].as_u64().unwrap();
        let transfers = agent.transfers();
        assert!(
            sent + verified_seen <= total,
            "trial {trial}: the re-run resent verified paths ({sent} sent, {verified_seen} seen verified, {total} in all)"
        );
        assert!(sent < total, "trial {trial}: the re-run sent everything");
        assert_eq!(
            transfers.last().copied(),
            Some(sent),
            "trial {trial}: the agent's log disagrees with the controller's summary: {transfers:?}"
        );
        assert_eq!(transfers.first().copied(), Some(total));
        verify(&root);
        assert_same_closure(&root, &top);
        eprintln!(
            "trial {trial}: killed at {percent}% + {delay_ms} ms ({} NAR bytes verified, {verified_seen} paths seen verified); re-run sent {sent} of {total}; verified",
            hit.map(|h| h["bytes"].clone()).unwrap_or_default()
        );
        drop(agent);
    }
}
