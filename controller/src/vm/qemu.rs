//! Running qemu for the local VM: the command line (q35, OVMF, an NVMe disk,
//! user networking with only the forwarded ports reachable, the serial
//! console into a file), choosing KVM only where it really works, and
//! waiting for lines on the console.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// OVMF's code and variable-store template (Debian's ovmf package).
const OVMF: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
        "/usr/share/edk2/x64/OVMF_VARS.4m.fd",
    ),
];

/// The accelerator: `auto` uses KVM when a short probe shows it works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Auto,
    Kvm,
    Tcg,
}

/// The VM's firmware: `--firmware bios|uefi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Firmware {
    /// SeaBIOS, qemu's default: boots a disk's MBR boot code (GRUB's i386-pc
    /// core image in a BIOS boot partition).
    Bios,
    /// OVMF (Debian's ovmf package) with a fresh variable store: boots the
    /// ESP's `EFI/BOOT/BOOTX64.EFI`.
    #[default]
    Uefi,
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bios => "BIOS (SeaBIOS)",
            Self::Uefi => "UEFI (OVMF)",
        })
    }
}

/// What to boot.
#[derive(Debug, Clone)]
pub enum Boot {
    /// A kernel and initrd given to the firmware (the rescue system).
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
    /// Whatever the firmware finds on the disk (the installed system).
    Disk,
}

/// One VM to start.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub name: String,
    pub dir: PathBuf,
    pub disk: PathBuf,
    pub disk_serial: String,
    pub memory_mib: u32,
    pub boot: Boot,
    /// Guest port → host port (on 127.0.0.1).
    pub forwards: Vec<(u16, u16)>,
    pub accel: Accel,
    pub firmware: Firmware,
    /// Whether the console also takes input (a FIFO beside its log, see
    /// [`RunningVm::type_line`]): the installed system's LUKS passphrase prompt.
    pub console_input: bool,
}

/// A free TCP port on 127.0.0.1 (the kernel's choice; released before use).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("Cannot find a free local port")?;
    Ok(l.local_addr()?.port())
}

fn ovmf() -> anyhow::Result<(PathBuf, PathBuf)> {
    for (code, vars) in OVMF {
        if Path::new(code).is_file() && Path::new(vars).is_file() {
            return Ok((code.into(), vars.into()));
        }
    }
    bail!("No OVMF UEFI firmware found: install the Debian package ovmf")
}

fn qemu_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("qemu-system-x86_64");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("qemu-system-x86_64 not found: install the Debian package qemu-system-x86")
}

/// qemu's `-drive` values escape `,` by doubling it.
fn escape(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// OVMF's code and the VM's copy of its variable store, for a UEFI VM.
pub struct Ovmf<'a> {
    pub code: &'a Path,
    pub vars: &'a Path,
}

/// The qemu arguments for `spec` with the console going to `console`;
/// `ovmf` for a UEFI VM (a BIOS VM gets qemu's default SeaBIOS).
pub fn args(spec: &VmSpec, kvm: bool, ovmf: Option<Ovmf<'_>>, console: &Path) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-name".into(),
        spec.name.clone(),
        "-machine".into(),
        "q35".into(),
        "-m".into(),
        spec.memory_mib.to_string(),
        "-smp".into(),
        "2".into(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
    ];
    if kvm {
        a.extend(["-accel", "kvm", "-cpu", "host"].map(String::from));
    } else {
        // `max`: RDRAND, so the guest's RNG is ready at once.
        a.extend(["-accel", "tcg", "-cpu", "max"].map(String::from));
    }
    a.push("-chardev".into());
    if spec.console_input {
        // qemu's pipe backend reads <path>.in and writes <path>.out
        // (RunningVm::start makes them: a FIFO, a link to the log).
        a.push(format!("pipe,id=con,path={}", escape(console)));
    } else {
        a.push(format!("file,id=con,path={}", escape(console)));
    }
    a.extend(["-serial", "chardev:con"].map(String::from));
    if let Some(Ovmf { code, vars }) = ovmf {
        a.push("-drive".into());
        a.push(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            escape(code)
        ));
        a.push("-drive".into());
        a.push(format!("if=pflash,format=raw,unit=1,file={}", escape(vars)));
    }
    a.push("-drive".into());
    a.push(format!(
        "file={},if=none,id=disk0,format=raw",
        escape(&spec.disk)
    ));
    a.push("-device".into());
    a.push(format!("nvme,drive=disk0,serial={}", spec.disk_serial));
    let fwd: String = spec
        .forwards
        .iter()
        .map(|(guest, host)| format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"))
        .collect();
    a.push("-netdev".into());
    a.push(format!("user,id=net0,restrict=on{fwd}"));
    a.extend(["-device", "virtio-net-pci,netdev=net0"].map(String::from));
    if let Boot::Kernel {
        kernel,
        initrd,
        append,
    } = &spec.boot
    {
        a.push("-kernel".into());
        a.push(kernel.display().to_string());
        a.push("-initrd".into());
        a.push(initrd.display().to_string());
        a.push("-append".into());
        a.push(append.clone());
    }
    a
}

/// Whether KVM really runs a guest here: /dev/kvm opens and OVMF reaches its
/// boot manager within 20 s (under nested virtualisation /dev/kvm may exist
/// while KVM fails). `LANDFALL_ACCEL=kvm|tcg` overrides.
pub fn kvm_works(dir: &Path) -> bool {
    match std::env::var("LANDFALL_ACCEL").as_deref() {
        Ok("kvm") => return true,
        Ok("tcg") => return false,
        _ => {}
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return false;
    }
    let probe = || -> anyhow::Result<bool> {
        let (code, vars_template) = ovmf()?;
        let vars = dir.join("kvm-probe-vars.fd");
        std::fs::copy(&vars_template, &vars)?;
        let console = dir.join("kvm-probe-console.log");
        let _ = std::fs::remove_file(&console);
        let mut child = Command::new(qemu_binary()?)
            .args([
                "-machine", "q35", "-m", "128", "-accel", "kvm", "-cpu", "host",
            ])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .arg("-chardev")
            .arg(format!("file,id=con,path={}", escape(&console)))
            .args(["-serial", "chardev:con", "-drive"])
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                escape(&code)
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                escape(&vars)
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let start = Instant::now();
        let ok = loop {
            let text = std::fs::read_to_string(&console).unwrap_or_default();
            if text.contains("BdsDxe") {
                break true;
            }
            if start.elapsed() > Duration::from_secs(20) || child.try_wait()?.is_some() {
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let _ = child.kill();
        let _ = child.wait();
        Ok(ok)
    };
    probe().unwrap_or(false)
}

/// A running VM; killed when dropped unless [`RunningVm::leave_running`].
pub struct RunningVm {
    child: Option<Child>,
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
    /// Starts qemu.
    pub fn start(spec: &VmSpec) -> anyhow::Result<RunningVm> {
        std::fs::create_dir_all(&spec.dir)
            .with_context(|| format!("Cannot create {}", spec.dir.display()))?;
        let uefi = match spec.firmware {
            Firmware::Bios => None,
            Firmware::Uefi => {
                let (code, vars_template) = ovmf()?;
                let vars = spec.dir.join("ovmf-vars.fd");
                if !vars.exists() {
                    std::fs::copy(&vars_template, &vars)
                        .with_context(|| format!("Cannot copy {}", vars_template.display()))?;
                }
                Some((code, vars))
            }
        };
        let kvm = match spec.accel {
            Accel::Kvm => true,
            Accel::Tcg => false,
            Accel::Auto => kvm_works(&spec.dir),
        };
        let console = spec.dir.join(format!("{}-console.log", spec.name));
        let stderr = std::fs::File::create(spec.dir.join(format!("{}-qemu.log", spec.name)))?;
        let console_in = if spec.console_input {
            Some(console_pipes(&console)?)
        } else {
            None
        };
        // qemu stays in landfall's process group: Ctrl-C on the terminal stops both.
        let child = Command::new(qemu_binary()?)
            .args(args(
                spec,
                kvm,
                uefi.as_ref().map(|(code, vars)| Ovmf { code, vars }),
                &console,
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("Cannot start qemu")?;
        let pid = child.id();
        Ok(RunningVm {
            child: Some(child),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescue_command_line() {
        let spec = VmSpec {
            name: "rescue".into(),
            dir: "/d".into(),
            disk: "/d/disk,1.img".into(),
            disk_serial: "landfall-vm-0".into(),
            memory_mib: 256,
            boot: Boot::Kernel {
                kernel: "/k".into(),
                initrd: "/i".into(),
                append: "console=ttyS0".into(),
            },
            forwards: vec![(22, 2222), (7443, 7444)],
            accel: Accel::Tcg,
            firmware: Firmware::Uefi,
            console_input: false,
        };
        let ovmf = || {
            Some(Ovmf {
                code: "/c.fd".as_ref(),
                vars: "/v.fd".as_ref(),
            })
        };
        let a = args(&spec, false, ovmf(), "/d/con".as_ref()).join(" ");
        assert!(a.contains("-m 256"), "{a}");
        assert!(a.contains("-accel tcg -cpu max"), "{a}");
        assert!(a.contains("file=/d/disk,,1.img,if=none"), "{a}");
        assert!(a.contains("nvme,drive=disk0,serial=landfall-vm-0"), "{a}");
        assert!(
            a.contains("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:7444-:7443"),
            "{a}"
        );
        assert!(
            a.contains("-kernel /k -initrd /i -append console=ttyS0"),
            "{a}"
        );
        let disk = VmSpec {
            boot: Boot::Disk,
            ..spec
        };
        let a = args(&disk, true, ovmf(), "/d/con".as_ref()).join(" ");
        assert!(
            a.contains("-accel kvm -cpu host") && !a.contains("-kernel"),
            "{a}"
        );
        assert!(a.contains("-chardev file,id=con,path=/d/con"), "{a}");
        let typed = VmSpec {
            console_input: true,
            ..disk
        };
        let a = args(&typed, true, ovmf(), "/d/con".as_ref()).join(" ");
        assert!(
            a.contains("-chardev pipe,id=con,path=/d/con -serial chardev:con"),
            "{a}"
        );
        assert!(
            a.contains("if=pflash,format=raw,unit=0,readonly=on,file=/c.fd")
                && a.contains("if=pflash,format=raw,unit=1,file=/v.fd"),
            "{a}"
        );
        // BIOS: qemu's default firmware, no flash drives.
        let a = args(&typed, true, None, "/d/con".as_ref()).join(" ");
        assert!(
            !a.contains("pflash") && a.contains("nvme,drive=disk0"),
            "{a}"
        );
    }
}
