//! The process registry: nothing the harness spawns outlives its test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::time::Duration;

use landfall_tests::process::{pid_exists, registered_pids};
use landfall_tests::StartVm;
use landfall_tests::{wait_until, Spawned, VmBuilder};

fn sleeper() -> Spawned {
    Spawned::spawn("sleep", Command::new("sleep").arg("1000"), None).unwrap()
}

#[test]
fn a_panicking_test_leaves_no_process_behind() {
    let mut pid = 0;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let child = sleeper();
        pid = child.pid();
        assert!(pid_exists(pid));
        assert!(registered_pids().contains(&pid));
        panic!("the test fails while its child runs");
    }));
    assert!(result.is_err());
    assert!(pid > 0);
    assert!(!pid_exists(pid), "pid {pid} survived the panic");
    assert!(!registered_pids().contains(&pid));
}

#[test]
fn a_panicking_vm_test_leaves_no_qemu_behind() {
    let mut pid = 0;
    let mut dir = std::path::PathBuf::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        // No kernel, no disk: SeaBIOS finds nothing to boot and qemu idles.
        let vm = VmBuilder::new("panics").start().unwrap();
        pid = vm.pid();
        dir = vm.dir().to_path_buf();
        assert!(pid_exists(pid));
        panic!("the test fails while its VM runs");
    }));
    assert!(result.is_err());
    assert!(pid > 0);
    assert!(!pid_exists(pid), "qemu {pid} survived the panic");
    // The panic kept the VM's folder, as for a failing test; remove it.
    assert!(dir.join("panics-qemu.cmdline").is_file());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_whole_process_group_is_killed() {
    // A shell whose own child (a daemon's worker, say) must die with it.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "sleep 1000 & echo $!; wait"])
        .stdout(Stdio::piped());
    let mut shell = Spawned::spawn("sh", &mut cmd, None).unwrap();
    let mut out = shell.take_stdout().unwrap();
    let mut line = String::new();
    use std::io::Read;
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    let grandchild: i32 = line.trim().parse().unwrap();
    assert!(pid_exists(grandchild));
    drop(shell);
    // The grandchild is reparented to init, which reaps it after the kill.
    assert!(
        wait_until(Duration::from_secs(5), || !pid_exists(grandchild)
            || is_zombie(grandchild)),
        "grandchild {grandchild} survived"
    );
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Re-runs this test binary with `LANDFALL_LEAK_CHILD=1`: the child run leaks a
/// spawned process with `mem::forget`, prints its pid, and exits normally; the
/// `atexit` hook must kill it.
#[test]
fn leaked_processes_die_at_exit() {
    if std::env::var_os("LANDFALL_LEAK_CHILD").is_some() {
        let child = sleeper();
        println!("LEAKED-PID={}", child.pid());
        std::mem::forget(child);
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "process::leaked_processes_die_at_exit",
            "--nocapture",
        ])
        .env("LANDFALL_LEAK_CHILD", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: i32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("LEAKED-PID="))
        .unwrap_or_else(|| panic!("no LEAKED-PID in {stdout}"))
        .parse()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !pid_exists(pid)
            || is_zombie(pid)),
        "leaked pid {pid} survived the exit of its test binary"
    );
}

#[test]
fn a_missing_program_names_its_package() {
    let err = Spawned::spawn(
        "x",
        &mut Command::new("landfall-no-such-program"),
        Some("install the Debian package nothing"),
    )
    .err()
    .unwrap();
    let text = err.to_string();
    assert!(text.contains("landfall-no-such-program"), "{text}");
    assert!(
        text.contains("install the Debian package nothing"),
        "{text}"
    );
}
