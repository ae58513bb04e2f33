//! The agent must be a static binary: it runs as PID 1 of a RAM image with no
//! libc, and on whatever Linux a target has for `landfall-agent kexec`.

use landfall_tests::bins::agent_static_bin;
use landfall_tests::is_static_elf;

#[test]
fn agent_binary_is_statically_linked() {
    let bin = agent_static_bin();
    let bytes = std::fs::read(&bin).unwrap();
    assert!(
        is_static_elf(&bytes),
        "{} is not a static ELF",
        bin.display()
    );
    // And the independent opinion of file(1)-like tools: no interpreter, runs with an empty environment.
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("landfall-agent "));
}
