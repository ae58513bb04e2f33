//! The controller's connection cut while the agent is fetching from a binary
//! cache: half of the synthetic closure sits in a signed cache made by
//! Debian's Nix, served through a [`CutProxy`] slowed to 512 KiB/s per
//! connection, so each NAR download takes seconds and several are in flight
//! at any time. At the first path the agent reports fetched, the test cuts
//! the controller's connection. The agent must cancel its downloads in
//! flight (its log says so for each; none drained to its end or timed
//! out) and keep what it verified; the controller must
//! reconnect, find the job slot free, and resume with only what the agent
//! still lacks (fetching the rest from the cache again); real Nix verifies
//! the result.

use crate::fault_support;

use std::time::{Duration, Instant};

use fault_support::*;
use landfall_tests::binary_cache::{
    closure_nar_sizes, copy_to_cache, every_other, keep_only, key_pair, serve, Serve,
};
use landfall_tests::nixstore::comparable_path_info;
use landfall_tests::proxy::CutProxy;
use landfall_tests::TestDir;

/// A path fetched from a cache (FINISHED with source "cache").
fn is_cache_finished(v: &serde_json::Value) -> bool {
    is_finished(v) && v["source"] == "cache"
}

#[test]
fn a_cut_during_cache_downloads_cancels_them_and_resumes() {
    let tdir = TestDir::new("fault-cachecut").unwrap();
    let dir = tdir.path();
    let top = build_synthetic(dir, 16);
    let all = closure_nar_sizes(&top);
    let total = all.len();
    let kept = every_other(&all);
    assert!(kept.len() >= 8, "{kept:?}");
    let (secret, public) = key_pair(dir, "cache-1");
    let cache = dir.join("cache");
    // Uncompressed: the proxy's rate is the NAR's rate.
    copy_to_cache(&cache, &[&top], "none", Some(&secret));
    keep_only(&cache, &all, &kept);
    let origin = serve(cache, Serve::Whole);
    let slow = CutProxy::start(origin.trim_start_matches("http://").parse().unwrap()).unwrap();
    slow.set_rate(512 << 10);
    let cache_url = format!("http://{}", slow.addr());

    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let agent = start_agent(dir, &root);
    let link = CutProxy::start(agent.addr.parse().unwrap()).unwrap();
    let stderr_file = dir.join("controller.stderr");
    let mut child = install_command(&link.addr().to_string(), &agent.tls, &top)
        .args([
            "--substituters",
            &cache_url,
            "--trusted-public-keys",
            &public,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut run = Running {
        child,
        lines,
        stderr: stderr_file,
    };

    let mut seen = Vec::new();
    let hit = run.read_until(&mut seen, is_cache_finished);
    assert!(
        hit.is_some(),
        "no path came from the cache: {}",
        run.stderr_text()
    );
    let verified_before = seen.iter().filter(|v| is_finished(v)).count();
    let cut = link.cut(Duration::from_secs(1));
    let cut_at = Instant::now();
    assert!(cut >= 1, "no connection to cut");
    run.expect_reconnect(&mut seen);
    let stderr = run.expect_success_after_reconnect(&mut seen);

    // The broken transfer's downloads in flight were cancelled, not drained
    // or timed out.
    let log = agent.log_text();
    let cancelled = log
        .lines()
        .filter(|l| l.contains("was cancelled (the transfer ended)"))
        .count();
    assert!(cancelled >= 1, "no download was cancelled: {log}");
    assert!(!log.contains("Timeout"), "a download timed out: {log}");

    // The resume sent only what the agent still lacked: never a path it had
    // reported verified before the cut.
    let transfers = agent.transfers();
    assert!(transfers.len() >= 2, "{transfers:?}: {log}");
    assert_eq!(transfers[0], total as u64);
    let last = *transfers.last().unwrap();
    assert!(
        last as usize + verified_before <= total,
        "resent verified paths: {last} in the last transfer, {verified_before} verified before the cut, {total} in the closure"
    );
    let summary = seen.last().unwrap().clone();
    assert_eq!(
        summary["closure"]["missing_paths"].as_u64().unwrap(),
        last,
        "{summary}"
    );
    assert!(
        summary["closure"]["cache_paths"].as_u64().unwrap() >= 1,
        "the resume fetched nothing from the cache: {summary}"
    );
    eprintln!(
        "closure {total} paths, {} in the cache; {verified_before} verified before the cut; \
         {cancelled} download(s) cancelled; transfers {transfers:?}; resumed and done {:.1} s \
         after the cut; stderr:\n{stderr}",
        kept.len(),
        cut_at.elapsed().as_secs_f64()
    );

    verify(&root);
    let strip = |mut v: Vec<serde_json::Value>| {
        for p in &mut v {
            p.as_object_mut().unwrap().remove("signatures");
        }
        v
    };
    assert_eq!(
        strip(comparable_path_info(Some(&root), &top)),
        strip(comparable_path_info(None, &top)),
        "nix path-info -r of the installed store differs from the host's"
    );
}
