//! Substitution on the target (issue 19) with the agent as PID 1 in a qemu VM
//! (256 MiB, NVMe), reaching a binary cache on the host through qemu's user
//! network: the cache (made by Debian's Nix with `nix copy --to file://…`,
//! signed by a `nix key generate-secret` key) is served on the host's
//! loopback, over HTTP and over HTTPS (a test CA), and forwarded into the
//! guest's network at 10.0.2.100:80 and :443 (`guestfwd`), one VM for each.
//! The HTTP run names the cache `cache.landfall.test`: the agent resolves it
//! with musl's resolver through the nameserver its DHCP lease gave
//! (/etc/resolv.conf: qemu's 10.0.2.3), and qemu (libslirp) forwards those
//! queries to the first nameserver of the host's /etc/resolv.conf — here a
//! dnsmasq on 127.0.0.78 answering 10.0.2.100, named by a private
//! resolv.conf in qemu's own mount namespace. That run's network is not
//! `restrict=on` (a restricted user network drops the guest's UDP, DNS
//! included); the HTTPS run's is, the guest otherwise isolated.
//! `landfall install
//! --phases disko,install --substituters http://cache.landfall.test (https://10.0.2.100) …` lays out the
//! VM's disk and installs the office closure: half of it is in the cache,
//! and one of the cached NARs is corrupted, so the agent fetches the rest of
//! that half itself, falls back to the laptop for the corrupted one, and the
//! laptop streams the other half. Then, on the host, the installed root is
//! checked as for the streamed install (`e2fsck -fn`, a kernel mount,
//! `nix-store --verify --check-contents`, `nix path-info -r` equal to the
//! host's but for the cache's signatures, which the fetched paths carry).

use crate::fixture;
use crate::install::check_installed_root;

use std::process::Command;
use std::time::Duration;

use landfall_tests::agentimage::{start_agent_vm, AgentVm, AgentVmSpec};
use landfall_tests::binary_cache::{
    assert_cache_signatures, closure_nar_sizes, copy_to_cache, every_other, flip_middle, keep_only,
    key_pair, nar_file, serve, serve_with, test_tls_for, Serve,
};
use landfall_tests::bins::landfall_bin;
use landfall_tests::dns::{Dnsmasq, PrivateResolvConf};

/// Where the guest finds the host's cache (port 80 for HTTP, 443 for HTTPS;
/// the HTTPS certificate is for this address, signed by a test CA given
/// with `--substituters-ca`).
const CACHE_HOST: &str = "10.0.2.100";
/// The name the HTTP run uses for it, and the host's nameserver answering it.
const CACHE_NAME: &str = "cache.landfall.test";
const DNS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 78);

#[test]
fn the_agent_in_a_vm_fetches_the_cached_half_over_http_and_https_through_user_networking() {
    let tdir = landfall_tests::TestDir::new("subst-vm-cache").unwrap();
    let host_dir = tdir.path().to_path_buf();
    let built =
        fixture::build_office_fixture(&host_dir.join("flake"), &fixture::FixtureOptions::default())
            .expect("the office fixture builds with nix");
    let top = built.toplevel.clone();

    // The cache: every other path of the closure, signed; the largest cached
    // NAR gets a flipped byte (its narinfo still names the true hash).
    let all = closure_nar_sizes(&top);
    let kept = every_other(&all);
    assert!(
        kept.len() >= 2,
        "the closure is too small to split: {all:?}"
    );
    let (secret, public) = key_pair(&host_dir, "vm-cache-1");
    let cache = host_dir.join("cache");
    copy_to_cache(&cache, &[&top], "xz", Some(&secret));
    keep_only(&cache, &all, &kept);
    let broken = all
        .iter()
        .filter(|(p, _)| kept.contains(p))
        .max_by_key(|(_, n)| *n)
        .map(|(p, _)| p.clone())
        .unwrap();
    flip_middle(&nar_file(&cache, &broken));
    let (ca_pem, tls) = test_tls_for(&[CACHE_HOST]);
    let ca_file = host_dir.join("cache-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let http = serve(cache.clone(), Serve::Whole);
    let https = serve_with(cache.clone(), Serve::Whole, Some(tls));
    let cached: Vec<String> = kept.iter().filter(|p| **p != broken).cloned().collect();
    let cached_bytes: u64 = all
        .iter()
        .filter(|(p, _)| cached.contains(p))
        .map(|(_, n)| n)
        .sum();
    let streamed = all.len() - cached.len();
    let dns = Dnsmasq::start(
        DNS,
        "landfall.test",
        &[(CACHE_NAME, CACHE_HOST.parse().unwrap())],
    );
    // qemu of the HTTP run starts on this thread and dies with it: dropped last.
    let qemu_ns = PrivateResolvConf::new(&host_dir, DNS);
    for (scheme, url, guest_port, extra) in [
        ("http", &http, 80, vec![]),
        (
            "https",
            &https,
            443,
            vec!["--substituters-ca", ca_file.to_str().unwrap()],
        ),
    ] {
        let host_port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
        let spec = AgentVmSpec::new(&format!("subst-vm-{scheme}"))
            .disk_bytes(4 << 30)
            .guest_forward(&format!("{CACHE_HOST}:{guest_port}"), host_port);
        let (cache_host, vm) = if scheme == "http" {
            (
                CACHE_NAME,
                qemu_ns.run(move || start_agent_vm(spec.host_dns())),
            )
        } else {
            (CACHE_HOST, start_agent_vm(spec))
        };
        let AgentVm {
            mut vm,
            dir,
            addr,
            tls,
            disk,
        } = vm;
        let out = Command::new(landfall_bin())
            .args(["install", "--agent", &addr, "--tls", &tls, "--flake"])
            .arg(format!("{}#office", built.flake_ref))
            .args(["--phases", "disko,install", "--yes", "--json"])
            .args(["--substituters", &format!("{scheme}://{cache_host}")])
            .args(["--trusted-public-keys", &public])
            .args(&extra)
            .env("NIX_CONFIG", fixture::NIX_CONFIG)
            .output()
            .unwrap();
        eprintln!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "landfall install ({scheme}) failed");
        let summary = landfall_tests::bins::json_lines(&String::from_utf8_lossy(&out.stdout));
        let c = &summary["closure"];
        assert_eq!(
            (
                c["cache_paths"].as_u64().unwrap(),
                c["fallback_paths"].as_u64().unwrap(),
                c["sent_paths"].as_u64().unwrap(),
            ),
            (cached.len() as u64, 1, streamed as u64),
            "{scheme}: from the cache all cached paths but the corrupted one, the rest from the laptop: {summary}"
        );
        assert_eq!(c["cache_nar_bytes"].as_u64().unwrap(), cached_bytes);
        eprintln!(
            "FIGURE substitution in the VM over {scheme} from {cache_host}: {} paths / {cached_bytes} bytes from the cache, {streamed} from the laptop (1 fallback)",
            cached.len()
        );
        vm.quit(Duration::from_secs(20)).unwrap();

        let installed = check_installed_root(&dir, &disk, &top, true);
        assert_cache_signatures(&cache, &installed, &cached);
    }
    drop(qemu_ns);
    drop(dns);
}
