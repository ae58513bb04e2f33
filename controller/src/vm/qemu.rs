//! Running a VM of `landfall vm` / `install --vm`: the machine is described
//! with the VM library's [`VmBuilder`] (one qemu command line for the
//! controller and the test harness); here qemu runs with its console in a
//! file (or behind a FIFO when the console must take input), and the
//! controller waits for lines on it.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use landfall_vm::{Launch, VmBuilder};

/// A running VM; killed when dropped unless [`RunningVm::leave_running`].
pub struct RunningVm {
    child: Option<Child>,
    /// The command line it runs with (host ports, accelerator).
    pub launch: Launch,
    pub console: PathBuf,
    /// The FIFO qemu reads the console's input from (with `console_input`).
    console_in: Option<PathBuf>,
    pub pid: u32,
}

/// `<console>.in` (a FIFO) and `<console>.out` (a link to the log), made
/// fresh, for qemu's pipe backend; returns the FIFO.
fn console_pipes(console: &Path) -> anyhow::Result<PathBuf> {
    let with = |ext: &str| {
        let mut p = console.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (fifo, out) = (with(".in"), with(".out"));
    for p in [&fifo, &out] {
        let _ = std::fs::remove_file(p);
    }
    std::fs::File::create(console)
        .with_context(|| format!("Cannot create {}", console.display()))?;
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .with_context(|| format!("Cannot make the FIFO {}", fifo.display()))?;
    std::os::unix::fs::symlink(console, &out)
        .with_context(|| format!("Cannot link {}", out.display()))?;
    Ok(fifo)
}

impl RunningVm {
    /// Starts `vm` with its files in `dir`: the console in
    /// `<dir>/<name>-console.log` (taking input through a FIFO with
    /// `console_input`, see [`RunningVm::type_line`]), qemu's stderr in
    /// `<name>-qemu.log`.
    pub fn start(vm: VmBuilder, dir: &Path, console_input: bool) -> anyhow::Result<RunningVm> {
        std::fs::create_dir_all(dir).with_context(|| format!("Cannot create {}", dir.display()))?;
        let name = vm.name().to_owned();
        let console = dir.join(format!("{name}-console.log"));
        let (vm, console_in) = if console_input {
            let fifo = console_pipes(&console)?;
            (vm.serial_pipe(&console), Some(fifo))
        } else {
            (vm.serial_to_file(&console), None)
        };
        let launch = vm.prepare(dir).context("Cannot prepare the VM")?;
        let stderr = std::fs::File::create(dir.join(format!("{name}-qemu.log")))?;
        // qemu stays in landfall's process group: Ctrl-C on the terminal stops both.
        let child = launch
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("Cannot start {}", launch.qemu.display()))?;
        let pid = child.id();
        Ok(RunningVm {
            child: Some(child),
            launch,
            console,
            console_in,
            pid,
        })
    }

    /// Types `line` and Enter on the console (a VM started with `console_input`).
    pub fn type_line(&self, line: &[u8]) -> anyhow::Result<()> {
        let fifo = self
            .console_in
            .as_ref()
            .context("this VM's console takes no input")?;
        // qemu holds the FIFO open for reading: opening it to write does not block.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(fifo)
            .with_context(|| format!("Cannot open {}", fifo.display()))?;
        std::io::Write::write_all(&mut f, line)?;
        std::io::Write::write_all(&mut f, b"\n")?;
        Ok(())
    }

    /// The console so far (lossy UTF-8).
    pub fn console_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    /// The console's last `n` lines, for error messages.
    pub fn console_tail(&self, n: usize) -> String {
        let text = self.console_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether qemu has ended.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Waits until the console shows one of `wanted` (→ Ok(that line)), or
    /// one of `fatal`, qemu's end or the timeout (→ Err with the console's tail).
    pub fn wait_for(
        &mut self,
        wanted: &[&str],
        fatal: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let start = Instant::now();
        loop {
            let text = self.console_text();
            for line in text.lines() {
                if wanted.iter().any(|w| line.contains(w)) {
                    return Ok(line.trim().to_string());
                }
                if fatal.iter().any(|f| line.contains(f)) {
                    bail!(
                        "The VM's console says: {}\n--- last console lines ({}):\n{}",
                        line.trim(),
                        self.console.display(),
                        self.console_tail(25)
                    );
                }
            }
            if self.exited() {
                bail!(
                    "qemu ended before the console showed {:?}\n--- last console lines ({}):\n{}",
                    wanted,
                    self.console.display(),
                    self.console_tail(25)
                );
            }
            if start.elapsed() > timeout {
                bail!(
                    "The console did not show {:?} within {} s\n--- last console lines ({}):\n{}",
                    wanted,
                    timeout.as_secs(),
                    self.console.display(),
                    self.console_tail(25)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops qemu.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Keeps qemu running after this handle is gone.
    pub fn leave_running(mut self) -> u32 {
        self.child.take();
        self.pid
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        self.kill();
    }
}
