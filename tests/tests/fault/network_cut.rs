//! The network between controller and agent cut and restored mid-transfer:
//! the controller talks to the real agent through a [`CutProxy`] (slowed to
//! 16 MiB/s so the transfer lasts seconds); the test cuts every connection
//! and refuses new ones for 3 s, twice, at points of the transfer chosen from
//! a seeded RNG. The controller must say it lost the connection, reconnect by
//! itself, send only what the agent still lacks, and end with a store that
//! real Nix verifies and that matches the host's closure exactly.

use crate::fault_support;

use std::time::Duration;

use fault_support::*;
use landfall_tests::proxy::CutProxy;
use landfall_tests::TestDir;

#[test]
fn cut_network_reconnects_and_resumes_with_only_the_missing_paths() {
    let tdir = TestDir::new("fault-netcut").unwrap();
    let dir = tdir.path();
    let top = build_synthetic(dir, 40);
    let total_paths = closure_len(&top);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let agent = start_agent(dir, &root);
    let proxy = CutProxy::start(agent.addr.parse().unwrap()).unwrap();
    proxy.set_rate(16 << 20);

    let mut rng = Rng::from_env("fault_network_cut");
    // Two cuts, by the share of the NAR bytes the agent reported verified: one
    // early in the first attempt, one late in the resumed one.
    let mut run = spawn_install(
        &proxy.addr().to_string(),
        &agent.tls,
        &top,
        &dir.join("controller.stderr"),
    );
    let mut seen = Vec::new();
    let mut finished_before_last_cut = 0usize;
    for (lo, hi) in [(10, 45), (55, 90)] {
        let percent = rng.range(lo, hi);
        let hit = run.read_until(&mut seen, |v| {
            is_finished(v)
                && v["bytes_total"].as_u64().unwrap_or(0) > 0
                && v["bytes"].as_u64().unwrap_or(0) * 100
                    >= v["bytes_total"].as_u64().unwrap_or(0) * percent
        });
        let Some(hit) = hit else {
            panic!(
                "the transfer ended before the cut at {percent}%: {}",
                run.stderr_text()
            )
        };
        let cut = proxy.cut(Duration::from_secs(3));
        eprintln!(
            "cut {cut} connection(s) at {percent}% ({} of {} NAR bytes verified), {} bytes through the proxy",
            hit["bytes"], hit["bytes_total"], proxy.bytes_to_upstream()
        );
        assert!(cut >= 1, "no connection to cut");
        finished_before_last_cut = seen.iter().filter(|v| is_finished(v)).count();
        // Wait for the controller to notice before the next cut.
        run.expect_reconnect(&mut seen);
    }
    let stderr = run.expect_success_after_reconnect(&mut seen);
    assert!(
        proxy.refused() >= 1 || proxy.connections() >= 3,
        "the controller never came back through the proxy"
    );

    let summary = seen.last().unwrap().clone();
    let sent = summary["closure"]["sent_paths"].as_u64().unwrap();
    // The last attempt sent only what the agent lacked after the last cut: never a path
    // the controller had already seen verified.
    assert!(
        sent as usize + finished_before_last_cut <= total_paths as usize,
        "resent verified paths: {sent} sent after the last cut, {finished_before_last_cut} verified before, {total_paths} in the closure"
    );
    assert!(sent > 0, "the last cut came after the end of the transfer");
    let transfers = agent.transfers();
    assert!(
        transfers.len() >= 3,
        "the agent saw {} transfers, expected the first and one per cut: {transfers:?}",
        transfers.len()
    );
    assert_eq!(transfers[0], total_paths);
    assert_eq!(*transfers.last().unwrap(), sent);
    assert!(transfers[1..].iter().all(|&n| n < total_paths));
    eprintln!(
        "closure {total_paths} paths; transfers as the agent saw them: {transfers:?}; stderr:\n{stderr}"
    );

    verify(&root);
    assert_same_closure(&root, &top);
}

/// The link dies silently (no reset: the proxy stops forwarding but keeps both
/// connections open, and refuses new ones for 10 s). Only HTTP/2 keepalives
/// (20 s interval, 20 s timeout on both sides) can notice: the controller must
/// give up on the dead connection, and the agent must end the broken transfer
/// and free its job slot, so the reconnect (answered "busy" until then) resumes.
#[test]
fn silent_link_drop_is_noticed_by_keepalives_and_resumes() {
    let tdir = TestDir::new("fault-blackhole").unwrap();
    let dir = tdir.path();
    let top = build_synthetic(dir, 40);
    let total_paths = closure_len(&top);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let agent = start_agent(dir, &root);
    let proxy = CutProxy::start(agent.addr.parse().unwrap()).unwrap();
    proxy.set_rate(16 << 20);
    let percent = Rng::from_env("fault_network_cut (silent)").range(10, 70);

    let started = std::time::Instant::now();
    let mut run = spawn_install(
        &proxy.addr().to_string(),
        &agent.tls,
        &top,
        &dir.join("controller.stderr"),
    );
    let mut seen = Vec::new();
    let hit = run.read_until_percent(&mut seen, percent);
    assert!(
        hit.is_some(),
        "the transfer ended early: {}",
        run.stderr_text()
    );
    let silenced = proxy.blackhole(Duration::from_secs(10));
    let dropped_at = started.elapsed();
    assert!(silenced >= 1);
    let finished_before = seen.iter().filter(|v| is_finished(v)).count();
    run.read_until(&mut seen, |_| false);
    let status = run.child.wait().unwrap();
    let stderr = run.stderr_text();
    assert!(status.success(), "the install failed: {stderr}");
    assert!(
        stderr.contains("connection to the agent lost ("),
        "no reconnect message: {stderr}"
    );
    let sent = seen.last().unwrap()["closure"]["sent_paths"]
        .as_u64()
        .unwrap();
    assert!(sent as usize + finished_before <= total_paths as usize);
    let transfers = agent.transfers();
    assert_eq!(transfers.len(), 2, "{transfers:?}");
    assert_eq!(transfers, vec![total_paths, sent]);
    eprintln!(
        "silent drop at {percent}% ({:.1} s in); finished {:.1} s in; transfers {transfers:?}; stderr:\n{stderr}",
        dropped_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    verify(&root);
    assert_same_closure(&root, &top);
}
