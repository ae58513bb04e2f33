//! Substitution on the target (issue 19) as the old system's network would
//! have it, with the real agent and controller on loopback: the cache is
//! named, not an IP address, and resolved by the agent's own resolver
//! (musl's, reading /etc/resolv.conf) through a real DNS server (dnsmasq on
//! 127.0.0.77, answering `cache.landfall.test` with 127.0.0.1 and NXDOMAIN
//! for the rest of `landfall.test`); the agents run in a mount namespace
//! whose /etc/resolv.conf names only that server. The proxy comes from the
//! agent's environment (`http_proxy`, `HTTPS_PROXY` through CONNECT,
//! `no_proxy`, as the old system's are captured at kexec) when the
//! controller gives no `--substituters-proxy`, and the controller's flag
//! wins over it.

use crate::fault_support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use fault_support::{build_office, install_command, start_agent_with_env, summary, verify, Agent};
use landfall_tests::binary_cache::{
    assert_cache_signatures, closure_nar_sizes, copy_to_cache, every_other, keep_only, key_pair,
    serve, serve_proxy, serve_with, test_tls, Serve,
};
use landfall_tests::dns::{Dnsmasq, PrivateResolvConf};
use landfall_tests::TestDir;

/// The DNS server's own loopback address (nothing else listens there).
const DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 77);
const CACHE_NAME: &str = "cache.landfall.test";
const MISSING_NAME: &str = "nowhere.landfall.test";

/// (from the cache, from the laptop, fallbacks) and the cache notes.
fn install_counts(agent: &Agent, top: &str, args: &[&str]) -> ((u64, u64, u64), String) {
    let out = install_command(&agent.addr, &agent.tls, top)
        .args(args)
        .output()
        .unwrap();
    let s = summary(&out);
    let c = &s["closure"];
    (
        (
            c["cache_paths"].as_u64().unwrap(),
            c["sent_paths"].as_u64().unwrap(),
            c["fallback_paths"].as_u64().unwrap(),
        ),
        format!("{} {s}", c["cache_notes"]),
    )
}

fn agent_dir(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let d = dir.join(name);
    let root = d.join("root");
    std::fs::create_dir_all(&root).unwrap();
    (d, root)
}

/// The office closure, every other path of it in a signed cache served over
/// HTTP on 127.0.0.1: (top, all paths, cached paths, cache dir, port, public key).
struct HalfCache {
    top: String,
    all: usize,
    kept: Vec<String>,
    cache: PathBuf,
    port: u16,
    public: String,
}

fn half_cache(dir: &Path) -> HalfCache {
    let top = build_office(dir);
    let all = closure_nar_sizes(&top);
    let kept = every_other(&all);
    let (secret, public) = key_pair(dir, "names-1");
    let cache = dir.join("cache");
    copy_to_cache(&cache, &[&top], "xz", Some(&secret));
    keep_only(&cache, &all, &kept);
    let url = serve(cache.clone(), Serve::Whole);
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    HalfCache {
        top,
        all: all.len(),
        kept,
        cache,
        port,
        public,
    }
}

#[test]
fn a_cache_named_by_dns_is_used_and_a_name_that_does_not_resolve_falls_back() {
    let tdir = TestDir::new("subst-names").unwrap();
    let dir = tdir.path();
    let h = half_cache(dir);
    let (kept, rest) = (h.kept.len() as u64, (h.all - h.kept.len()) as u64);
    let _dns = Dnsmasq::start(DNS, "landfall.test", &[(CACHE_NAME, Ipv4Addr::LOCALHOST)]);
    // Dropped last: the agents it started die with its thread.
    let ns = PrivateResolvConf::new(dir, DNS);
    let start_in_ns = |name: &str, env: Vec<(String, String)>| {
        let (d, root) = agent_dir(dir, name);
        let r = root.clone();
        let agent = ns.run(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            start_agent_with_env(&d, &r, &env)
        });
        (agent, root)
    };
    let named = format!("http://{CACHE_NAME}:{}", h.port);

    // The name resolves through dnsmasq: the cached half comes from the cache.
    let (agent, root) = start_in_ns("named", vec![]);
    let (c, s) = install_counts(
        &agent,
        &h.top,
        &["--substituters", &named, "--trusted-public-keys", &h.public],
    );
    assert_eq!(c, (kept, rest, 0), "{s}");
    verify(&root);
    assert_cache_signatures(
        &h.cache,
        &landfall_tests::nixstore::comparable_path_info(Some(&root), &h.top),
        &h.kept,
    );
    eprintln!("FIGURE substitution by name: {kept} paths from {named}, {rest} from the laptop");

    // A name under the same domain that does not exist: the cache is
    // unusable, the reason names the host, everything comes from the laptop.
    let (agent, root) = start_in_ns("missing", vec![]);
    let missing = format!("http://{MISSING_NAME}:{}", h.port);
    let (c, s) = install_counts(
        &agent,
        &h.top,
        &[
            "--substituters",
            &missing,
            "--trusted-public-keys",
            &h.public,
        ],
    );
    assert_eq!(c, (0, h.all as u64, 0), "{s}");
    assert!(
        s.contains(&format!("Cannot resolve the host {MISSING_NAME}")),
        "{s}"
    );
    verify(&root);

    // A proxy in the environment, but the cache's domain in no_proxy: the
    // agent goes to the cache directly, the proxy sees nothing.
    let (proxy, used) = serve_proxy();
    let (agent, root) = start_in_ns(
        "no-proxy",
        vec![
            ("http_proxy".into(), proxy.clone()),
            ("no_proxy".into(), "localhost,.landfall.test".into()),
        ],
    );
    let (c, s) = install_counts(
        &agent,
        &h.top,
        &["--substituters", &named, "--trusted-public-keys", &h.public],
    );
    assert_eq!(c, (kept, rest, 0), "{s}");
    assert_eq!(used.load(Ordering::Relaxed), 0, "the proxy was asked");
    verify(&root);
    drop(agent);
    drop(ns);
}

#[test]
fn the_proxy_of_the_environment_is_used_unless_the_controller_names_one() {
    let tdir = TestDir::new("subst-env-proxy").unwrap();
    let dir = tdir.path();
    let h = half_cache(dir);
    let (kept, rest) = (h.kept.len() as u64, (h.all - h.kept.len()) as u64);
    let url = format!("http://127.0.0.1:{}", h.port);

    // http_proxy from the environment: every request goes through it.
    let (proxy, used) = serve_proxy();
    let (d, root) = agent_dir(dir, "env-proxy");
    let agent = start_agent_with_env(
        &d,
        &root,
        &[("http_proxy", &proxy), ("no_proxy", "localhost")],
    );
    let (c, s) = install_counts(
        &agent,
        &h.top,
        &["--substituters", &url, "--trusted-public-keys", &h.public],
    );
    assert_eq!(c, (kept, rest, 0), "{s}");
    // nix-cache-info, a narinfo per path asked, a NAR per cached path.
    let through = used.load(Ordering::Relaxed);
    assert!(
        through > 2 * h.kept.len(),
        "{through} requests through the proxy"
    );
    verify(&root);

    // HTTPS_PROXY from the environment: an https cache through a CONNECT
    // tunnel (TLS still ends at the cache, trusted by the test CA).
    let (ca_pem, tls) = test_tls();
    let ca_file = dir.join("cache-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let https = serve_with(h.cache.clone(), Serve::Whole, Some(tls));
    let (d, root) = agent_dir(dir, "env-https-proxy");
    let agent = start_agent_with_env(&d, &root, &[("HTTPS_PROXY", &proxy)]);
    let (c, s) = install_counts(
        &agent,
        &h.top,
        &[
            "--substituters",
            &https,
            "--trusted-public-keys",
            &h.public,
            "--substituters-ca",
            ca_file.to_str().unwrap(),
        ],
    );
    assert_eq!(c, (kept, rest, 0), "{s}");
    let tunnelled = used.load(Ordering::Relaxed);
    assert!(
        tunnelled > through + 2 * h.kept.len(),
        "{} tunnels through the proxy",
        tunnelled - through
    );
    let through = tunnelled;
    verify(&root);

    // The environment names a proxy nobody answers at; the controller's
    // --substituters-proxy wins.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let (d, root) = agent_dir(dir, "flag-wins");
    let agent = start_agent_with_env(&d, &root, &[("http_proxy", &dead_url)]);
    let (c, s) = install_counts(
        &agent,
        &h.top,
        &[
            "--substituters",
            &url,
            "--trusted-public-keys",
            &h.public,
            "--substituters-proxy",
            &proxy,
        ],
    );
    assert_eq!(c, (kept, rest, 0), "{s}");
    assert!(used.load(Ordering::Relaxed) > through + 2 * h.kept.len());
    verify(&root);

    // The control: the same dead proxy without the flag makes the cache
    // unusable (the note names the proxy), all from the laptop.
    let (d, root) = agent_dir(dir, "dead-proxy");
    let agent = start_agent_with_env(&d, &root, &[("http_proxy", &dead_url)]);
    let (c, s) = install_counts(
        &agent,
        &h.top,
        &["--substituters", &url, "--trusted-public-keys", &h.public],
    );
    assert_eq!(c, (0, h.all as u64, 0), "{s}");
    assert!(s.contains(&dead_url), "{s}");
    verify(&root);
}
