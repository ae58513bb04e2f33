//! The workspace's own binaries, as the tests run them.
//!
//! `landfall` (the controller) is the debug or release build in the workspace's
//! target folder (or `$LANDFALL_BIN`); the static agent is `$LANDFALL_AGENT_BIN`
//! or the musl release build that `scripts/setup.sh` makes. A missing binary
//! fails the test with the command that builds it.

use std::path::PathBuf;

fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The controller binary.
pub fn landfall_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LANDFALL_BIN") {
        return PathBuf::from(p);
    }
    let t = target_dir();
    let candidates = [t.join("debug/landfall"), t.join("release/landfall")];
    let found = candidates
        .iter()
        .filter(|p| p.is_file())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    found.cloned().unwrap_or_else(|| {
        panic!(
            "No landfall binary in {}: run `cargo build -p landfall`",
            t.display()
        )
    })
}

/// The static (musl) agent binary.
pub fn agent_static_bin() -> PathBuf {
    let p = std::env::var_os("LANDFALL_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("x86_64-unknown-linux-musl/release/landfall-agent"));
    assert!(
        p.is_file(),
        "No static agent at {}: run `cargo build --release --target x86_64-unknown-linux-musl -p landfall-agent` \
         (scripts/setup.sh does)",
        p.display()
    );
    p
}

/// Runs the controller with `args` as a user would, echoing the command and
/// its output to stderr (libtest shows it for a failing test). Without a
/// `NIX_CONFIG` of the test's own, Nix gets [`TEST_NIX_CONFIG`] (flakes,
/// no sandbox, no substituters), so flake evaluation works offline.
///
/// [`TEST_NIX_CONFIG`]: crate::nixstore::TEST_NIX_CONFIG
pub fn landfall<S: AsRef<str>>(args: &[S]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let mut command = std::process::Command::new(landfall_bin());
    command.args(&args);
    if std::env::var_os("NIX_CONFIG").is_none() {
        command.env("NIX_CONFIG", crate::nixstore::TEST_NIX_CONFIG);
    }
    let out = command.output().expect("run landfall");
    eprintln!(
        "$ landfall {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`landfall`], requiring success; returns its standard output.
pub fn landfall_ok(args: &[&str]) -> String {
    let out = landfall(args);
    assert!(out.status.success(), "landfall {} failed", args.join(" "));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `landfall … --json`'s stdout: every line must be a JSON value (progress
/// events, then the summary), as scripts read it line by line; returns the
/// last one (the summary). A line that is not JSON fails the test, naming it.
pub fn json_lines(out: &str) -> serde_json::Value {
    let mut last = None;
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l)
            .unwrap_or_else(|e| panic!("a --json stdout line is not JSON ({e}): {l:?}"));
        last = Some(v);
    }
    last.expect("--json printed nothing on stdout")
}
