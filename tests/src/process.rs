//! Spawned processes that cannot outlive the test that started them.
//!
//! Every process the harness starts (qemu, and later helpers such as sshd) goes
//! through [`Spawned::spawn`]. The invariant this module keeps: a spawned process
//! and everything in its process group is killed with `SIGKILL`
//!
//! - when its [`Spawned`] handle drops (normal end of a test, or unwinding after a
//!   panic — a failing `assert!` never leaves qemu running),
//! - at process exit (an `atexit` hook kills whatever is still registered, e.g. a
//!   handle leaked with `mem::forget` or kept in a `static`),
//! - when the thread that spawned it dies, even by a signal that skips `atexit`
//!   (`PR_SET_PDEATHSIG`). libtest runs each test on its own thread, so a process
//!   must be spawned by the test that uses it, not kept across tests.
//!
//! Each child is the leader of its own process group, so a daemon's children go
//! down with it, and a terminal's Ctrl-C reaches only the test binary (which then
//! takes its children down through the death signal).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Failure to start a process.
#[derive(thiserror::Error)]
pub enum SpawnError {
    /// The program could not be executed (missing binary, bad permissions).
    #[error("Cannot start {program}{hint}")]
    Start {
        program: String,
        hint: String,
        #[source]
        source: io::Error,
    },
}
crate::debug_as_display!(SpawnError);

/// Process-group ids of every live [`Spawned`] process.
static REGISTRY: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

/// Kills every registered process group; runs from `atexit`.
extern "C" fn kill_registered_at_exit() {
    // try_lock: never block inside exit(); a thread holding the lock right now
    // is itself about to kill its child.
    if let Ok(pids) = REGISTRY.try_lock() {
        for &pid in pids.iter() {
            kill_group(pid);
        }
    }
}

fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; it has no memory
    // effects on this process. A group that no longer exists yields ESRCH, ignored.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

fn register(pid: i32) {
    ATEXIT.call_once(|| {
        // SAFETY: the handler is a plain `extern "C" fn` with no arguments that
        // only touches a static; registering it has no other effect.
        unsafe {
            libc::atexit(kill_registered_at_exit);
        }
    });
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

fn unregister(pid: i32) {
    REGISTRY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&p| p != pid);
}

/// The process ids currently registered (for tests of the registry itself).
pub fn registered_pids() -> Vec<i32> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Whether a process with this id exists (zombies included).
pub fn pid_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence and permission; no signal is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A running child process, killed (with its process group) when dropped.
pub struct Spawned {
    name: String,
    child: Child,
    pid: i32,
    status: Option<ExitStatus>,
}

impl Spawned {
    /// Starts `command` as a registered process named `name` (used in messages).
    ///
    /// `install_hint` is appended to the error when the program is missing,
    /// e.g. "install the Debian package qemu-system-x86".
    pub fn spawn(
        name: &str,
        command: &mut Command,
        install_hint: Option<&str>,
    ) -> Result<Spawned, SpawnError> {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        command.process_group(0);
        // SAFETY: the closure runs between fork and exec and calls only
        // async-signal-safe functions (prctl, getppid, kill).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
                Ok(())
            });
        }
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command.spawn().map_err(|source| SpawnError::Start {
            hint: match (install_hint, source.kind()) {
                (Some(h), io::ErrorKind::NotFound) => format!(" ({h})"),
                _ => String::new(),
            },
            program,
            source,
        })?;
        let pid = child.id() as i32;
        register(pid);
        Ok(Spawned {
            name: name.to_owned(),
            child,
            pid,
            status: None,
        })
    }

    /// The process id (also its process-group id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the child's stdin pipe, if it was configured as piped.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Takes the child's stdout pipe, if it was configured as piped.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The exit status if the process has exited, without blocking.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process group with `SIGKILL` and reaps the process.
    ///
    /// Idempotent; after it returns the process id no longer exists.
    pub fn kill(&mut self) {
        kill_group(self.pid);
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
        unregister(self.pid);
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}
