//! Shared helpers of the image integration tests: where the Debian kernel is,
//! required host tools, and running commands.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The unpacked Debian kernel: `boot/vmlinuz-*` and `lib/modules/<version>`.
pub struct KernelTree {
    pub bzimage: PathBuf,
    pub modules_dir: PathBuf,
    pub version: String,
}

/// `$LANDFALL_KERNEL_DIR`, or `.cache/kernel/current` at the workspace root.
/// Panics (fails the test) with instructions when it is missing.
pub fn kernel_tree() -> KernelTree {
    let dir = match std::env::var_os("LANDFALL_KERNEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/kernel/current"),
    };
    let hint = "run scripts/fetch-kernel.sh (or set LANDFALL_KERNEL_DIR to a folder with boot/vmlinuz-* and lib/modules/<version>)";
    let modules_root = dir.join("lib/modules");
    let version = std::fs::read_dir(&modules_root)
        .unwrap_or_else(|e| panic!("No kernel at {}: {e}; {hint}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .unwrap_or_else(|| panic!("{} is empty; {hint}", modules_root.display()));
    let bzimage = dir.join(format!("boot/vmlinuz-{version}"));
    assert!(bzimage.is_file(), "Missing {}; {hint}", bzimage.display());
    KernelTree {
        bzimage,
        modules_dir: modules_root.join(&version),
        version,
    }
}

/// Fails the test unless `tool` is on PATH, naming the Debian package.
pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "This test needs `{tool}`: install the Debian package {package} (apt-get install -y {package})"
    );
}

/// Runs a command, failing the test with its output if it does not succeed.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("Running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Deterministic pseudo-random bytes (xorshift), e.g. an incompressible dummy agent.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
