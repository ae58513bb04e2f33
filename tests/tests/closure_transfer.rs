//! The closure transfer over gRPC + mTLS on loopback, against the real agent
//! binary and real Nix: the fixture flake's closure (built by Debian's Nix) is
//! streamed into a directory root; `nix-store --verify --check-contents` finds
//! nothing wrong and `nix path-info --recursive` matches the host's exactly.
//! A controller killed mid-transfer is tested at 10 seeded cut points in
//! `fault_controller_kill.rs`, on a closure large enough that the kill lands
//! before everything is in flight (this fixture's 12 MiB fits in the HTTP/2
//! window whole).

#[path = "../../controller/src/nix/fixture.rs"]
mod fixture;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use landfall_tests::bins::{agent_static_bin, landfall_bin};
use landfall_tests::nixstore::comparable_path_info;
use landfall_tests::{free_port, retry_until, Spawned, TestDir};

const NIX_CONFIG: &str =
    "experimental-features = nix-command flakes\nbuild-users-group =\nsandbox = false\nsubstituters =";

fn verify(root: &Path) {
    let out = fixture::nix_command("nix-store")
        .args(["--verify", "--check-contents", "--store"])
        .arg(root)
        .output()
        .expect("nix-store (install nix-bin)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nix-store --verify failed: {err}");
    assert!(
        !err.contains("was modified") && !err.contains("invalid"),
        "nix-store --verify: {err}"
    );
}

struct Agent {
    _proc: Spawned,
    addr: String,
    tls: String,
}

fn start_agent(dir: &Path, root: &Path) -> Agent {
    let tls = dir.join("session");
    let out = Command::new(landfall_bin())
        .args(["certs", "init", "--dir"])
        .arg(&tls)
        .output()
        .unwrap();
    assert!(out.status.success());
    let port = free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("agent.log")).unwrap();
    let proc = Spawned::spawn(
        "landfall-agent",
        Command::new(agent_static_bin())
            .args(["serve", "--listen", &addr, "--tls"])
            .arg(&tls)
            .arg("--root")
            .arg(root)
            .stderr(log),
        None,
    )
    .unwrap();
    let tls = tls.display().to_string();
    retry_until(Duration::from_secs(20), || {
        match Command::new(landfall_bin())
            .args(["status", "--agent", &addr, "--tls", &tls])
            .output()
        {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
            Err(e) => Err(e.to_string()),
        }
    })
    .expect("the agent does not answer");
    Agent {
        _proc: proc,
        addr,
        tls,
    }
}

fn install(agent: &Agent, top: &str) -> std::process::Output {
    Command::new(landfall_bin())
        .args([
            "install",
            "--agent",
            &agent.addr,
            "--tls",
            &agent.tls,
            "--system",
            top,
            "--phases",
            "install",
            "--json",
        ])
        .env("NIX_CONFIG", NIX_CONFIG)
        .output()
        .unwrap()
}

fn summary(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    serde_json::from_str(&last).unwrap_or_else(|_| panic!("no JSON summary: {last}"))
}

fn build_fixture(dir: &Path) -> String {
    fixture::build_office_fixture(&dir.join("flake"), &fixture::FixtureOptions::default())
        .expect("the office fixture builds with nix")
        .toplevel
}

#[test]
fn closure_streams_verified_and_matches_the_hosts_metadata() {
    let tdir = TestDir::new("closure").unwrap();
    let dir = tdir.path();
    let top = build_fixture(dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let agent = start_agent(dir, &root);

    let s = summary(&install(&agent, &top));
    let closure = &s["closure"];
    assert_eq!(closure["sent_paths"], closure["closure_paths"]);
    assert!(closure["wire_bytes"].as_u64().unwrap() > 0);
    verify(&root);
    assert_eq!(
        comparable_path_info(Some(&root), &top),
        comparable_path_info(None, &top)
    );
    let profile = std::fs::read_link(root.join("nix/var/nix/profiles/system-1-link")).unwrap();
    assert_eq!(profile.to_str().unwrap(), top);
    assert!(root.join("etc/NIXOS").is_file());

    // A second run sends nothing.
    let again = summary(&install(&agent, &top));
    assert_eq!(again["closure"]["sent_paths"], 0);
}
