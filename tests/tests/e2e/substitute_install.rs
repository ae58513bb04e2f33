//! Substitution on the target (issue 19), with the real agent and controller
//! on loopback: the office fixture's closure, half of it in a real binary
//! cache made by Debian's Nix (`nix copy --to file://…`, signed with a key
//! from `nix key generate-secret`), served over HTTP and over HTTPS with a
//! test CA. The agent fetches the cached half itself while the controller
//! streams the rest; `nix-store --verify --check-contents` and `nix
//! path-info` (signatures aside: the cached paths carry the cache's) match
//! the host's. Every way a cache goes wrong — unsigned narinfo, untrusted
//! key, NAR hash differing from its narinfo, References differing from the
//! controller's (validly signed), a cache that stops mid-file, an
//! unreachable cache, a truncated bzip2 NAR — still installs, those paths
//! coming from the laptop, and the summary's counts say so. A bzip2 cache
//! (Nix's default compression) serves the cached half like an xz one.

use crate::fault_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use fault_support::{build_office, install_command, start_agent, summary, verify, Agent};
use landfall_tests::binary_cache::{
    assert_cache_signatures, closure_nar_sizes, copy_to_cache, every_other, flip_middle, keep_only,
    key_pair, nar_file, narinfo_file, nix, run_ok, serve, serve_proxy, serve_with, test_tls, Serve,
};
use landfall_tests::nixstore::comparable_path_info;
use landfall_tests::TestDir;

fn install_from(agent: &Agent, top: &str, args: &[&str]) -> Output {
    install_command(&agent.addr, &agent.tls, top)
        .args(args)
        .output()
        .unwrap()
}

/// The installed store verifies and has the host's metadata; the cached
/// paths carry their narinfo's signature.
fn check_installed(root: &Path, top: &str, cache: Option<&Path>, cached: &[String]) {
    verify(root);
    let strip = |mut v: Vec<serde_json::Value>| {
        for p in &mut v {
            p.as_object_mut().unwrap().remove("signatures");
        }
        v
    };
    let installed = comparable_path_info(Some(root), top);
    assert_eq!(
        strip(installed.clone()),
        strip(comparable_path_info(None, top)),
        "nix path-info -r of the installed store differs from the host's"
    );
    if let Some(cache) = cache {
        assert_cache_signatures(cache, &installed, cached);
    }
}

struct Counts {
    cache: u64,
    laptop: u64,
    fallback: u64,
}

fn counts(s: &serde_json::Value) -> Counts {
    let c = &s["closure"];
    Counts {
        cache: c["cache_paths"].as_u64().unwrap(),
        laptop: c["sent_paths"].as_u64().unwrap(),
        fallback: c["fallback_paths"].as_u64().unwrap(),
    }
}

fn fresh_agent(dir: &Path, name: &str) -> (Agent, PathBuf) {
    let d = dir.join(name);
    let root = d.join("root");
    std::fs::create_dir_all(&root).unwrap();
    (start_agent(&d, &root), root)
}

#[test]
fn the_cached_half_is_fetched_by_the_agent_over_http_and_https() {
    let tdir = TestDir::new("subst-half").unwrap();
    let dir = tdir.path();
    let top = build_office(dir);
    let all = closure_nar_sizes(&top);
    let kept = every_other(&all);
    let kept_bytes: u64 = all
        .iter()
        .filter(|(p, _)| kept.contains(p))
        .map(|(_, n)| n)
        .sum();
    let (secret, public) = key_pair(dir, "test-1");
    let (_, other_public) = key_pair(dir, "test-2");
    let cache = dir.join("cache");
    copy_to_cache(&cache, &[&top], "xz", Some(&secret));
    keep_only(&cache, &all, &kept);

    // HTTP; an untrusted key next to the trusted one changes nothing.
    let url = serve(cache.clone(), Serve::Whole);
    let (agent, root) = fresh_agent(dir, "http");
    let out = install_from(
        &agent,
        &top,
        &[
            "--substituters",
            &url,
            "--trusted-public-keys",
            &other_public,
            &public,
        ],
    );
    let s = summary(&out);
    let c = counts(&s);
    assert_eq!(
        (c.cache, c.laptop, c.fallback),
        (kept.len() as u64, (all.len() - kept.len()) as u64, 0),
        "{s}"
    );
    assert_eq!(
        s["closure"]["cache_nar_bytes"].as_u64().unwrap(),
        kept_bytes
    );
    assert!(
        s["closure"]["agent_summary"]
            .as_str()
            .unwrap()
            .contains("from binary caches"),
        "{s}"
    );
    // The progress lines name the source of each fetched path.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let from_cache = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["source"] == "cache" && v["state"] == 2)
        .count();
    assert_eq!(from_cache, kept.len());
    assert!(agent.log_text().contains("QuerySubstitutes"));
    check_installed(&root, &top, Some(&cache), &kept);

    // bzip2 (Nix's default compression), the same half, the largest NAR of
    // it cut in half: the others come from the cache, that one from the laptop.
    let bz = dir.join("cache-bzip2");
    copy_to_cache(&bz, &[&top], "bzip2", Some(&secret));
    keep_only(&bz, &all, &kept);
    let cut = all
        .iter()
        .filter(|(p, _)| kept.contains(p))
        .max_by_key(|(_, n)| *n)
        .unwrap()
        .0
        .clone();
    let nar = nar_file(&bz, &cut);
    assert!(nar.to_string_lossy().ends_with(".nar.bz2"), "{nar:?}");
    let whole = std::fs::read(&nar).unwrap();
    std::fs::write(&nar, &whole[..whole.len() / 2]).unwrap();
    let (agent, root) = fresh_agent(dir, "bzip2");
    let out = install_from(
        &agent,
        &top,
        &[
            "--substituters",
            &serve(bz.clone(), Serve::Whole),
            "--trusted-public-keys",
            &public,
        ],
    );
    let s = summary(&out);
    let c = counts(&s);
    let k = kept.len() as u64;
    assert_eq!(
        (c.cache, c.laptop, c.fallback),
        (k - 1, all.len() as u64 - k + 1, 1),
        "{s}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fallback = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fallback"] == true)
        .expect("a fallback event");
    assert_eq!(fallback["description"], cut.as_str());
    assert!(
        fallback["reason"]
            .as_str()
            .unwrap()
            .contains("Cannot decompress the bzip2 NAR"),
        "{fallback}"
    );
    let from_bz: Vec<String> = kept.iter().filter(|p| **p != cut).cloned().collect();
    check_installed(&root, &top, Some(&bz), &from_bz);

    // HTTPS with a test CA given by --substituters-ca.
    let (ca_pem, tls) = test_tls();
    let ca_file = dir.join("cache-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let https = serve_with(cache.clone(), Serve::Whole, Some(tls.clone()));
    let (agent, root) = fresh_agent(dir, "https");
    let s = summary(&install_from(
        &agent,
        &top,
        &[
            "--substituters",
            &https,
            "--trusted-public-keys",
            &public,
            "--substituters-ca",
            ca_file.to_str().unwrap(),
        ],
    ));
    let c = counts(&s);
    assert_eq!((c.cache, c.fallback), (kept.len() as u64, 0), "{s}");
    check_installed(&root, &top, Some(&cache), &kept);

    // Through an HTTP proxy (CONNECT for this https cache).
    let (proxy, used) = serve_proxy();
    let (agent, root) = fresh_agent(dir, "https-proxy");
    let s = summary(&install_from(
        &agent,
        &top,
        &[
            "--substituters",
            &https,
            "--trusted-public-keys",
            &public,
            "--substituters-ca",
            ca_file.to_str().unwrap(),
            "--substituters-proxy",
            &proxy,
        ],
    ));
    assert_eq!(counts(&s).cache, kept.len() as u64, "{s}");
    assert!(used.load(std::sync::atomic::Ordering::Relaxed) > kept.len());
    check_installed(&root, &top, Some(&cache), &kept);

    // Without the CA the agent does not trust that server: all from the laptop.
    let (agent, root) = fresh_agent(dir, "https-no-ca");
    let s = summary(&install_from(
        &agent,
        &top,
        &["--substituters", &https, "--trusted-public-keys", &public],
    ));
    let c = counts(&s);
    assert_eq!((c.cache, c.laptop), (0, all.len() as u64), "{s}");
    assert!(!s["closure"]["cache_notes"].as_array().unwrap().is_empty());
    check_installed(&root, &top, None, &[]);

    // --no-substitute-on-target: the agent is not even asked.
    let (agent, root) = fresh_agent(dir, "off");
    let s = summary(&install_from(
        &agent,
        &top,
        &[
            "--substituters",
            &url,
            "--trusted-public-keys",
            &public,
            "--no-substitute-on-target",
        ],
    ));
    assert_eq!(counts(&s).laptop, all.len() as u64);
    assert!(!agent.log_text().contains("QuerySubstitutes"));
    check_installed(&root, &top, None, &[]);
}

/// A path of the closure with a reference other than itself (the largest such).
fn referrer(top: &str) -> (String, String) {
    comparable_path_info(None, top)
        .iter()
        .filter_map(|v| {
            let p = v["path"].as_str()?.to_owned();
            let r = v["references"]
                .as_array()?
                .iter()
                .filter_map(|r| r.as_str())
                .find(|r| *r != p)?
                .to_owned();
            Some((v["narSize"].as_u64()?, p, r))
        })
        .max()
        .map(|(_, p, r)| (p, r))
        .expect("a path with a reference")
}

#[test]
fn every_refused_cache_path_comes_from_the_laptop() {
    let tdir = TestDir::new("subst-refused").unwrap();
    let dir = tdir.path();
    let top = build_office(dir);
    let all = closure_nar_sizes(&top);
    let n = all.len() as u64;
    let (secret, public) = key_pair(dir, "test-1");
    let (_, other_public) = key_pair(dir, "test-2");
    let largest = all.iter().max_by_key(|(_, s)| *s).unwrap().0.clone();

    let run_case = |name: &str, url: &str, keys: &[&str]| -> (Counts, serde_json::Value) {
        let (agent, root) = fresh_agent(dir, name);
        let mut args = vec!["--substituters", url, "--trusted-public-keys"];
        args.extend_from_slice(keys);
        let out = install_from(&agent, &top, &args);
        let s = summary(&out);
        let c = counts(&s);
        assert_eq!(c.cache + c.laptop, n, "{name}: {s}");
        assert!(c.fallback <= c.laptop, "{name}: {s}");
        check_installed(&root, &top, None, &[]);
        (c, s)
    };
    let notes = |s: &serde_json::Value| s["closure"]["cache_notes"].to_string();

    // An unsigned cache: nothing is trusted, nothing fetched.
    let unsigned = dir.join("unsigned");
    copy_to_cache(&unsigned, &[&top], "xz", None);
    let (c, s) = run_case("unsigned", &serve(unsigned, Serve::Whole), &[&public]);
    assert_eq!((c.cache, c.laptop), (0, n), "unsigned: {s}");
    assert!(notes(&s).contains("Untrusted narinfo"), "{s}");

    // Signed, but by a key the target does not trust.
    let signed = dir.join("signed");
    copy_to_cache(&signed, &[&top], "none", Some(&secret));
    let signed_url = serve(signed.clone(), Serve::Whole);
    let (c, s) = run_case("untrusted", &signed_url, &[&other_public]);
    assert_eq!((c.cache, c.laptop), (0, n), "untrusted: {s}");

    // The same cache trusted: everything from it (the control for the cases below).
    let (c, s) = run_case("trusted", &signed_url, &[&public]);
    assert_eq!((c.cache, c.laptop, c.fallback), (n, 0, 0), "trusted: {s}");

    // One NAR differs from its (signed) narinfo: found when fetching, sent instead.
    let bad_nar = dir.join("bad-nar");
    copy_to_cache(&bad_nar, &[&top], "none", Some(&secret));
    flip_middle(&nar_file(&bad_nar, &largest));
    let (c, s) = run_case("nar-hash", &serve(bad_nar, Serve::Whole), &[&public]);
    assert_eq!(
        (c.cache, c.laptop, c.fallback),
        (n - 1, 1, 1),
        "nar-hash: {s}"
    );

    // A narinfo validly signed (`nix store sign` on the edited cache) whose
    // References differ from the controller's: refused when asked.
    let (q, dropped) = referrer(&top);
    let refs = dir.join("refs");
    copy_to_cache(&refs, &[&top], "none", None);
    let file = narinfo_file(&refs, &q);
    let text = std::fs::read_to_string(&file).unwrap();
    let base = dropped.trim_start_matches("/nix/store/");
    let edited: String = text
        .lines()
        .map(|l| match l.strip_prefix("References: ") {
            Some(r) => format!(
                "References: {}\n",
                r.split(' ')
                    .filter(|x| *x != base)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => format!("{l}\n"),
        })
        .collect();
    assert_ne!(edited, text, "{q} does not list {dropped}");
    std::fs::write(&file, edited).unwrap();
    let mut sign = nix("nix");
    sign.args(["store", "sign", "--store"])
        .arg(format!("file://{}", refs.display()))
        .arg("--key-file")
        .arg(&secret);
    for (p, _) in &all {
        sign.arg(p);
    }
    run_ok(sign);
    let (c, s) = run_case("references", &serve(refs, Serve::Whole), &[&public]);
    assert_eq!(
        (c.cache, c.laptop, c.fallback),
        (n - 1, 1, 0),
        "references: {s}"
    );
    assert!(notes(&s).contains("References"), "{s}");

    // A cache that closes every NAR after 2000 bytes: the larger ones fall back.
    let cut = 2000u64;
    let bigger = all.iter().filter(|(_, s)| *s > cut).count() as u64;
    assert!(bigger > 0);
    let (c, s) = run_case(
        "mid-file",
        &serve(signed.clone(), Serve::CutAfter(cut as usize)),
        &[&public],
    );
    assert_eq!(
        (c.cache, c.laptop, c.fallback),
        (n - bigger, bigger, bigger),
        "mid-file: {s}"
    );

    // A cache nobody answers at.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (c, s) = run_case("unreachable", &url, &[&public]);
    assert_eq!((c.cache, c.laptop), (0, n), "unreachable: {s}");
    assert!(notes(&s).contains(&url), "{s}");
}
