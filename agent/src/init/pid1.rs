//! The PID-1 main loop.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::mount::{mount, MsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::{modules, monotonic_ns, READY_FILE, START_ENV};
use crate::net::up as net;

fn mount_fs(source: &str, target: &str, fstype: &str, flags: MsFlags, data: Option<&str>) {
    let _ = std::fs::create_dir_all(target);
    match mount(Some(source), target, Some(fstype), flags, data) {
        Ok(()) => {}
        Err(nix::errno::Errno::EBUSY) => {}
        Err(e) => tracing::warn!("Cannot mount {fstype} at {target}: {e}"),
    }
}

fn early_mounts() {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", "proc", nosuid, None);
    mount_fs("sysfs", "/sys", "sysfs", nosuid, None);
    mount_fs(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    );
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("gid=5,mode=620"),
    );
    mount_fs(
        "tmpfs",
        "/run",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    );
    mount_fs(
        "tmpfs",
        "/tmp",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    );
    let _ = std::fs::create_dir_all("/mnt");
}

/// Points stdin/stdout/stderr at /dev/console (the kernel opens it for PID 1
/// only when the initramfs has the node; devtmpfs now has it for sure).
fn console() {
    use std::os::fd::AsRawFd;
    if let Ok(c) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this process; `c` is open
            // and no Rust object owns fds 0-2 in a way this invalidates.
            unsafe { libc::dup2(c.as_raw_fd(), fd) };
        }
    }
}

fn spawn_service(start_ns: u64) -> Option<Pid> {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/init".into());
    match Command::new(exe)
        .args([
            "serve",
            "--listen",
            &format!("[::]:{}", landfall_proto::AGENT_PORT),
            "--tls",
            landfall_proto::tlsnames::IMAGE_TLS_DIR,
            "--root",
            "/mnt",
            "--retry",
        ])
        .env(START_ENV, start_ns.to_string())
        .env("LANDFALL_UNDER_PID1", "1")
        .spawn()
    {
        Ok(child) => Some(Pid::from_raw(child.id() as i32)),
        Err(e) => {
            tracing::error!("Cannot start the agent service: {e}");
            None
        }
    }
}

fn setup_in_background() {
    std::thread::spawn(|| {
        let until = Instant::now() + Duration::from_secs(3);
        while !Path::new(READY_FILE).exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let t = Instant::now();
        modules::load_all();
        if Path::new("/sys/firmware/efi").exists() {
            let _ = std::fs::create_dir_all("/sys/firmware/efi/efivars");
            let _ = mount(
                Some("efivarfs"),
                "/sys/firmware/efi/efivars",
                Some("efivarfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            );
        }
        tracing::info!("Modules loaded in {:.3} s", t.elapsed().as_secs_f64());
        net::bring_up();
    });
}

/// Runs as PID 1: never returns. A panic anywhere in set-up still ends in the
/// reaping loop, because PID 1 exiting panics the kernel.
pub fn run_as_pid1() -> ! {
    let start_ns = monotonic_ns();
    let setup = std::panic::catch_unwind(|| {
        early_mounts();
        console();
        super::pid1_log::init_pid1_logging();
        // A panic anywhere in PID 1 is logged (console and log buffer) with where
        // it happened; the reaping loop below goes on regardless.
        std::panic::set_hook(Box::new(|info| {
            tracing::error!("PID 1 internal error (it keeps supervising): {info}")
        }));
        let _ = nix::unistd::sethostname("landfall");
        tracing::info!(
            "landfall-agent {} starting as PID 1",
            env!("CARGO_PKG_VERSION")
        );
        let child = spawn_service(start_ns);
        setup_in_background();
        child
    });
    let mut child = setup.unwrap_or(None);
    let mut last_start = Instant::now();
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))
                if Some(pid) == child =>
            {
                tracing::error!("The agent service (pid {pid}) ended; restarting it");
                // Do not spin if it dies at once.
                if last_start.elapsed() < Duration::from_secs(2) {
                    std::thread::sleep(Duration::from_secs(2));
                }
                last_start = Instant::now();
                child = spawn_service(start_ns);
            }
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => {
                std::thread::sleep(Duration::from_secs(1));
                if child.is_none() {
                    child = spawn_service(start_ns);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
