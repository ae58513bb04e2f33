//! What the fault tests share: a real agent (`landfall-agent serve --root`) on
//! loopback, the controller run as a user runs it (`landfall install --agent …
//! --phases install --json`), the closures they send (built by real Nix), the
//! judges (`nix-store --verify --check-contents`, `nix path-info -r`), and a
//! small seeded RNG for cut points.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use landfall_tests::bins::{agent_static_bin, landfall_bin};
use landfall_tests::nixstore::{comparable_path_info, verify_store, TEST_NIX_CONFIG};
use landfall_tests::{free_port, retry_until, Spawned};

/// `nix-store --verify --check-contents --store ROOT` finds nothing wrong.
pub fn verify(root: &Path) {
    let out = verify_store(root);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("was modified") && !err.contains("invalid") && !err.contains("error"),
        "nix-store --verify: {err}"
    );
}

/// The store at `root` holds `top`'s closure exactly as the host's.
pub fn assert_same_closure(root: &Path, top: &str) {
    assert_eq!(
        comparable_path_info(Some(root), top),
        comparable_path_info(None, top),
        "nix path-info -r of the installed store differs from the host's"
    );
}

/// How many paths `top`'s closure has on the host.
pub fn closure_len(top: &str) -> u64 {
    comparable_path_info(None, top).len() as u64
}

/// A running agent and its session.
pub struct Agent {
    pub proc: Spawned,
    pub addr: String,
    pub tls: String,
    pub log: PathBuf,
}

impl Agent {
    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The path counts of every transfer the agent began ("Receiving N store paths").
    pub fn transfers(&self) -> Vec<u64> {
        let re = regex::Regex::new(r"Receiving (\d+) store paths").unwrap();
        re.captures_iter(&self.log_text())
            .map(|c| c[1].parse().unwrap())
            .collect()
    }
}

/// A fresh session in `dir/session`, and the static agent serving `root` on a free port.
pub fn start_agent(dir: &Path, root: &Path) -> Agent {
    let port = free_port().unwrap();
    start_agent_at(dir, root, &format!("127.0.0.1:{port}"))
}

/// [`start_agent`] with `env` added to the agent's environment (e.g. `http_proxy`).
pub fn start_agent_with_env(dir: &Path, root: &Path, env: &[(&str, &str)]) -> Agent {
    let port = free_port().unwrap();
    start_agent_at_with_env(dir, root, &format!("127.0.0.1:{port}"), env)
}

/// [`start_agent`] on `addr` (an agent restarted where the last one listened).
pub fn start_agent_at(dir: &Path, root: &Path, addr: &str) -> Agent {
    start_agent_at_with_env(dir, root, addr, &[])
}

fn start_agent_at_with_env(dir: &Path, root: &Path, addr: &str, env: &[(&str, &str)]) -> Agent {
    let addr = addr.to_string();
    let port = addr.rsplit(':').next().unwrap_or("0").to_string();
    let tls = dir.join("session");
    if !tls.join("ca.pem").exists() {
        let out = Command::new(landfall_bin())
            .args(["certs", "init", "--dir"])
            .arg(&tls)
            .output()
            .unwrap();
        assert!(out.status.success(), "landfall certs init failed");
    }
    // An agent restarted on the same port gets a log of its own.
    let log = (0..)
        .map(|n| match n {
            0 => dir.join(format!("agent-{port}.log")),
            n => dir.join(format!("agent-{port}-{n}.log")),
        })
        .find(|p| !p.exists())
        .unwrap();
    let proc = Spawned::spawn(
        "landfall-agent",
        Command::new(agent_static_bin())
            .args(["serve", "--listen", &addr, "--tls"])
            .arg(&tls)
            .arg("--root")
            .arg(root)
            // Hermetic: a proxy of the machine running the tests is not the agent's.
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("all_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("no_proxy")
            .env_remove("NO_PROXY")
            .envs(env.iter().copied())
            .stderr(std::fs::File::create(&log).unwrap()),
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
        proc,
        addr,
        tls,
        log,
    }
}

/// `landfall install --agent ADDR --tls … --system TOP --phases install --json`.
pub fn install_command(addr: &str, tls: &str, top: &str) -> Command {
    let mut c = Command::new(landfall_bin());
    c.args([
        "install", "--agent", addr, "--tls", tls, "--system", top, "--phases", "install", "--json",
    ])
    .env("NIX_CONFIG", TEST_NIX_CONFIG);
    c
}

/// Runs an install to the end.
pub fn install(addr: &str, tls: &str, top: &str) -> Output {
    install_command(addr, tls, top).output().unwrap()
}

/// An install running in the background, its JSON lines read as they come.
pub struct Running {
    pub child: Child,
    pub lines: std::io::Lines<BufReader<ChildStdout>>,
    pub stderr: PathBuf,
}

/// Starts an install in the background; stderr goes to `stderr`.
pub fn spawn_install(addr: &str, tls: &str, top: &str, stderr: &Path) -> Running {
    let mut child = install_command(addr, tls, top)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    Running {
        child,
        lines,
        stderr: stderr.to_path_buf(),
    }
}

impl Running {
    /// Reads JSON lines until `stop` is true for one (returned) or the output ends (None).
    /// Every line read is appended to `seen`.
    pub fn read_until(
        &mut self,
        seen: &mut Vec<serde_json::Value>,
        mut stop: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        for line in self.lines.by_ref() {
            let Ok(line) = line else { return None };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            seen.push(v.clone());
            if stop(&v) {
                return Some(v);
            }
        }
        None
    }

    /// Reads until a path-finished event shows `percent` % of the NAR bytes verified.
    pub fn read_until_percent(
        &mut self,
        seen: &mut Vec<serde_json::Value>,
        percent: u64,
    ) -> Option<serde_json::Value> {
        self.read_until(seen, |v| {
            is_finished(v)
                && v["bytes"].as_u64().unwrap_or(0) * 100
                    >= v["bytes_total"].as_u64().unwrap_or(0) * percent
        })
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Reads until the controller reports a reconnect (its JSON `reconnecting` line).
    pub fn expect_reconnect(&mut self, seen: &mut Vec<serde_json::Value>) {
        let reconnecting = self.read_until(seen, |v| v.get("reconnecting").is_some());
        assert!(
            reconnecting.is_some(),
            "the controller did not report a reconnect: {}",
            self.stderr_text()
        );
    }

    /// Reads to the end: the install must succeed and its stderr say that it
    /// reconnected. Returns that stderr.
    pub fn expect_success_after_reconnect(&mut self, seen: &mut Vec<serde_json::Value>) -> String {
        self.read_until(seen, |_| false);
        let status = self.child.wait().unwrap();
        let stderr = self.stderr_text();
        assert!(status.success(), "the install failed: {stderr}");
        assert!(
            stderr.contains("connection to the agent lost (")
                && stderr.contains("reconnecting (attempt 1)"),
            "no reconnect message on stderr: {stderr}"
        );
        stderr
    }
}

/// A path-finished event (state 2 = FINISHED) of the put-closure job.
pub fn is_finished(v: &serde_json::Value) -> bool {
    v["job"] == "put-closure" && v["state"] == 2
}

/// The summary line (the last JSON line) of a successful install.
pub fn summary(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    summary_of(&text)
}

pub fn summary_of(stdout: &str) -> serde_json::Value {
    let last = stdout.lines().last().unwrap_or_default().to_string();
    serde_json::from_str(&last).unwrap_or_else(|_| panic!("no JSON summary: {last}"))
}

/// The fixture flake's system (`nixosConfigurations.office`), built by real Nix.
pub fn build_office(dir: &Path) -> String {
    // The tier's crate root includes the fixture builder (`mod fixture`).
    use crate::fixture;
    fixture::build_office_fixture(&dir.join("flake"), &fixture::FixtureOptions::default())
        .expect("the office fixture builds with nix")
        .toplevel
}

/// The benchmark's synthetic closure (bench/closure/closure.nix): `paths` leaf
/// paths of about 2.2 MiB of generated files each and a top path referring to
/// all of them, built by real Nix with Debian's static busybox.
pub fn build_synthetic(dir: &Path, paths: u32) -> String {
    let bb = dir.join("bb");
    std::fs::create_dir_all(&bb).unwrap();
    std::fs::copy("/bin/busybox", bb.join("busybox"))
        .expect("/bin/busybox (install busybox-static)");
    let nix = landfall_tests::workspace_root().join("bench/closure/closure.nix");
    let out = Command::new("nix-build")
        .env("NIX_CONFIG", TEST_NIX_CONFIG)
        .arg(nix)
        .args(["--no-out-link", "-j", "2", "--arg", "bb"])
        .arg(&bb)
        .args(["--argstr", "paths", &paths.to_string()])
        .output()
        .expect("nix-build (install nix-bin)");
    assert!(
        out.status.success(),
        "building the synthetic closure failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// splitmix64: a small seeded generator, so a failing trial is reproduced by its seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `$FAULT_SEED`, else from the clock; the seed is printed.
    pub fn from_env(what: &str) -> Self {
        let seed = std::env::var("FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{what}: FAULT_SEED={seed}");
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}
