//! A running test VM: the qemu process, its console, its QMP socket, its folder.
//!
//! [`StartVm::start`] gives a [`Vm`] for a [`VmBuilder`] of the VM library. Dropping the `Vm` kills qemu (see
//! `process.rs`); its folder (console log, qemu's stderr, command line, OVMF
//! variables) is removed unless the test failed. Every harness error produced
//! by a `Vm` marks the folder to be kept and names it.
//!
//! Start-up is checked: with QMP on (the default) `start` returns only after
//! qemu has finished creating the machine and greets on QMP, so a bad option
//! or a busy forwarded port is reported by `start`, with qemu's stderr. A
//! host port taken between choosing and binding is retried with new ports.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ExitStatus, Stdio};
use std::time::Duration;

use landfall_vm::{Accel, HostError, Launch, VmBuilder, VmPaths};

use crate::console::{Console, Match, Pattern, WaitError};
use crate::process::{SpawnError, Spawned};
use crate::qmp::{Qmp, QmpError};
use crate::testdir::TestDir;

/// How long `start` waits for qemu to greet on QMP.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times `start` retries when a chosen host port was taken meanwhile.
const PORT_RETRIES: usize = 3;

/// A VM operation failed.
#[derive(thiserror::Error)]
pub enum VmError {
    /// A host file or tool is missing.
    #[error("Cannot prepare VM {name}")]
    Host {
        name: String,
        #[source]
        source: HostError,
    },
    /// A file in the VM's folder could not be written.
    #[error("Cannot {step} for VM {name}")]
    Io {
        name: String,
        step: String,
        #[source]
        source: io::Error,
    },
    /// qemu could not be executed.
    #[error("Cannot start qemu for VM {name}")]
    Spawn {
        name: String,
        #[source]
        source: SpawnError,
    },
    /// qemu exited while starting.
    #[error("qemu for VM {name} exited while starting ({status}); files in {dir}\n--- qemu stderr ---\n{stderr}")]
    Start {
        name: String,
        status: String,
        dir: PathBuf,
        stderr: String,
    },
    /// A QMP command failed.
    #[error("QMP command failed on VM {name} (files in {dir})")]
    Qmp {
        name: String,
        dir: PathBuf,
        #[source]
        source: QmpError,
    },
    /// The VM did not exit in time.
    #[error("VM {name} still running after {timeout:?} (console log: {log})\n--- last console lines ---\n{tail}\n--- end ---")]
    ExitTimeout {
        name: String,
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
}
crate::debug_as_display!(VmError);

/// A running VM. Dropping it kills qemu.
pub struct Vm {
    // Field order is drop order: qemu dies before its console is joined and
    // before the folder decides whether to stay.
    process: Spawned,
    qmp: Option<Qmp>,
    console: Console,
    stdin: Option<ChildStdin>,
    name: String,
    forwards: HashMap<u16, u16>,
    paths: VmPaths,
    accel: Accel,
    dir: TestDir,
}

/// Starting a [`VmBuilder`] as a test VM (the builder is the VM library's;
/// this is the harness's way to run it).
pub trait StartVm {
    /// Starts the VM in a fresh [`TestDir`] named after the test and the VM.
    fn start(self) -> Result<Vm, VmError>;
    /// Starts the VM in `dir` (e.g. the folder that already holds its disks).
    fn start_in(self, dir: TestDir) -> Result<Vm, VmError>;
}

impl StartVm for VmBuilder {
    fn start(self) -> Result<Vm, VmError> {
        let dir = TestDir::new(self.name()).map_err(|source| VmError::Io {
            name: self.name().to_owned(),
            step: "create the VM folder".into(),
            source,
        })?;
        self.start_in(dir)
    }

    fn start_in(self, dir: TestDir) -> Result<Vm, VmError> {
        let name = self.name().to_owned();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let launch = self.prepare(dir.path()).map_err(|source| VmError::Host {
                name: name.clone(),
                source,
            });
            let launch = match launch {
                Ok(l) => l,
                Err(e) => {
                    dir.mark_failed();
                    return Err(e);
                }
            };
            match spawn(&self, &launch, &dir) {
                Err(VmError::Start { stderr, .. })
                    if attempt < PORT_RETRIES
                        && launch.chose_ports
                        && stderr.contains("Could not set up host forwarding rule") =>
                {
                    continue
                }
                Err(e) => {
                    dir.mark_failed();
                    return Err(e);
                }
                Ok((process, console, stdin, qmp)) => {
                    return Ok(Vm {
                        process,
                        qmp,
                        console,
                        stdin,
                        name,
                        forwards: launch.forwards.iter().copied().collect(),
                        paths: launch.paths,
                        accel: launch.accel,
                        dir,
                    });
                }
            }
        }
    }
}

#[allow(clippy::type_complexity)]
fn spawn(
    builder: &VmBuilder,
    launch: &Launch,
    dir: &TestDir,
) -> Result<(Spawned, Console, Option<ChildStdin>, Option<Qmp>), VmError> {
    let name = builder.name();
    let io = |step: &str| {
        let name = name.to_owned();
        let step = step.to_owned();
        move |source| VmError::Io { name, step, source }
    };
    let file = |what: &str| dir.join(format!("{name}-{what}"));
    fs::write(file("qemu.cmdline"), launch.command_line() + "\n")
        .map_err(io("write qemu.cmdline"))?;
    let stderr_path = file("qemu.stderr");
    let stderr = fs::File::create(&stderr_path).map_err(io("create qemu.stderr"))?;
    let mut cmd = launch.command();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let mut process = Spawned::spawn(
        name,
        &mut cmd,
        Some("install the Debian package qemu-system-x86"),
    )
    .map_err(|source| VmError::Spawn {
        name: name.to_owned(),
        source,
    })?;
    let stdin = process.take_stdin();
    let stdout = process
        .take_stdout()
        .ok_or_else(|| io("capture the console")(io::ErrorKind::BrokenPipe.into()))?;
    let mut console =
        Console::capture(name, stdout, &file("console.log")).map_err(io("capture the console"))?;
    console.set_stderr_log(&stderr_path);
    console.set_failure_flag(dir.failure_flag());
    let started_error = |process: &mut Spawned| {
        let status = process
            .wait_timeout(Duration::from_secs(2))
            .ok()
            .flatten()
            .map_or_else(|| "still running".to_owned(), |s| s.to_string());
        VmError::Start {
            name: name.to_owned(),
            status,
            dir: dir.path().to_path_buf(),
            stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
        }
    };
    let qmp = if builder.has_qmp() {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            if !matches!(process.try_wait(), Ok(None)) {
                return Err(started_error(&mut process));
            }
            match Qmp::connect_abstract(&launch.paths.qmp_socket, Duration::from_millis(100)) {
                Ok(q) => break Some(q),
                Err(_) if std::time::Instant::now() < deadline => continue,
                Err(_) => return Err(started_error(&mut process)),
            }
        }
    } else {
        None
    };
    if let Ok(Some(_)) = process.try_wait() {
        return Err(started_error(&mut process));
    }
    Ok((process, console, stdin, qmp))
}

impl Vm {
    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The VM's folder: `<name>-console.log`, `<name>-qemu.stderr`,
    /// `<name>-qemu.cmdline`, `<name>-OVMF_VARS.fd`, and the test's own files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The test folder itself, e.g. to mark it failed.
    pub fn test_dir(&self) -> &TestDir {
        &self.dir
    }

    /// The raw console log file.
    pub fn console_log(&self) -> &Path {
        self.console.log_path()
    }

    /// The console, for reading its output or waiting.
    pub fn console(&mut self) -> &mut Console {
        &mut self.console
    }

    /// qemu's process id.
    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// The accelerator qemu runs with (`Kvm` or `Tcg`).
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The OVMF variable store, for firmware boots.
    pub fn ovmf_vars(&self) -> Option<&Path> {
        self.paths.ovmf_vars.as_deref()
    }

    /// The host port forwarded to `guest_port` (on 127.0.0.1).
    pub fn host_port(&self, guest_port: u16) -> Option<u16> {
        self.forwards.get(&guest_port).copied()
    }

    /// The host address forwarded to `guest_port`.
    pub fn forwarded_addr(&self, guest_port: u16) -> Option<SocketAddr> {
        self.host_port(guest_port)
            .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
    }

    /// Waits for `pattern` on the console (after the previous match).
    pub fn wait_for(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<Match, WaitError> {
        self.console.wait_for(pattern, timeout)
    }

    /// Waits for whichever of `patterns` appears first.
    pub fn wait_for_any<P: Into<Pattern>>(
        &mut self,
        patterns: impl IntoIterator<Item = P>,
        timeout: Duration,
    ) -> Result<Match, WaitError> {
        self.console.wait_for_any(patterns, timeout)
    }

    /// Types `text` on the serial console (the guest's stdin on ttyS0).
    ///
    /// Wait for the guest to print a prompt first: characters typed while the
    /// guest is not reading overflow the UART's small FIFO and are lost.
    pub fn write_console(&mut self, text: &str) -> Result<(), VmError> {
        let result = match &mut self.stdin {
            Some(stdin) => stdin.write_all(text.as_bytes()).and_then(|_| stdin.flush()),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        };
        result.map_err(|source| self.io_error("write to the console", source))
    }

    /// The QMP session (connected at start; an error when QMP is off).
    pub fn qmp(&mut self) -> Result<&mut Qmp, VmError> {
        let name = self.name.clone();
        let dir = self.dir.path().to_path_buf();
        let failed = self.dir.failure_flag();
        self.qmp.as_mut().ok_or_else(move || {
            failed.store(true, std::sync::atomic::Ordering::SeqCst);
            VmError::Qmp {
                name,
                dir,
                source: QmpError::Closed {
                    step: "use (QMP is off for this VM)".into(),
                },
            }
        })
    }

    /// Resets the machine through QMP. Under `-no-reboot` (the default; see
    /// [`VmBuilder::allow_reboot`]) qemu treats a reset as a reboot and exits.
    pub fn system_reset(&mut self) -> Result<(), VmError> {
        let r = self.qmp()?.system_reset();
        r.map_err(|e| self.qmp_error(e))
    }

    /// Asks qemu to quit through QMP (disks flushed), waits up to `timeout`
    /// for it to exit, and kills it otherwise.
    pub fn quit(&mut self, timeout: Duration) -> Result<ExitStatus, VmError> {
        if let Some(qmp) = &mut self.qmp {
            let r = qmp.quit();
            if let Err(e) = r {
                self.process.kill();
                return Err(self.qmp_error(e));
            }
        }
        let status = self.wait_exit(timeout);
        if status.is_err() {
            self.process.kill();
        }
        status
    }

    /// Waits up to `timeout` for qemu to exit by itself (e.g. the guest powered off).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, VmError> {
        match self.process.wait_timeout(timeout) {
            Ok(Some(status)) => {
                self.console.wait_closed(Duration::from_secs(5));
                Ok(status)
            }
            Ok(None) => {
                self.dir.mark_failed();
                Err(VmError::ExitTimeout {
                    name: self.name.clone(),
                    timeout,
                    log: self.console.log_path().to_path_buf(),
                    tail: self.console.tail(40),
                })
            }
            Err(source) => Err(self.io_error("wait for qemu", source)),
        }
    }

    /// Whether qemu is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }

    /// Stops qemu (killing it if still running) and hands back the folder, so
    /// the next VM of the test can start in it with the same disk images and
    /// OVMF variables: `let dir = vm.into_test_dir(); VmBuilder::new("b")….start_in(dir)`.
    /// Call [`Vm::quit`] or [`Vm::wait_exit`] first for a clean shutdown.
    pub fn into_test_dir(self) -> TestDir {
        let Vm {
            mut process,
            qmp,
            console,
            dir,
            ..
        } = self;
        process.kill();
        drop(qmp);
        drop(console);
        dir
    }

    /// Kills qemu now (SIGKILL). Dropping the `Vm` does the same.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    fn io_error(&self, step: &str, source: io::Error) -> VmError {
        self.dir.mark_failed();
        VmError::Io {
            name: self.name.clone(),
            step: step.to_owned(),
            source,
        }
    }

    fn qmp_error(&self, source: QmpError) -> VmError {
        self.dir.mark_failed();
        VmError::Qmp {
            name: self.name.clone(),
            dir: self.dir.path().to_path_buf(),
            source,
        }
    }
}
