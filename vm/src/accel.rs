//! Choosing qemu's accelerator: KVM only where it really works, else TCG.
//!
//! `/dev/kvm` existing proves little: under nested virtualisation it can be
//! present while KVM fails on the first protected-mode instruction it must
//! emulate ("KVM internal error ... emulation failure"), or hangs a booting
//! kernel. So the probe boots real firmware: OVMF under `-accel kvm` must print
//! its boot manager line ("BdsDxe") on the serial console within
//! [`PROBE_TIMEOUT`]; a KVM internal error, an early exit, or silence means TCG.
//! The answer is computed once per process. `LANDFALL_ACCEL=kvm|tcg` overrides it.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::disk::escape_option;
use crate::host;

/// How long the KVM probe waits for OVMF (real KVM needs about a second).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// The accelerator a VM runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// KVM when the probe says it works, else TCG.
    #[default]
    Auto,
    /// Hardware virtualisation (`-accel kvm -cpu host`).
    Kvm,
    /// Software emulation (`-accel tcg`).
    Tcg,
}

impl Accel {
    /// Resolves `Auto` to `Kvm` or `Tcg`.
    pub fn resolve(self) -> Accel {
        match self {
            Accel::Auto => detected(),
            other => other,
        }
    }

    /// The qemu arguments selecting this accelerator (`Auto` is resolved).
    pub fn args(self) -> Vec<String> {
        match self.resolve() {
            Accel::Kvm => vec!["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()],
            // `max` emulates a modern CPU: RDRAND (the kernel's RNG is ready at once, as on
            // real servers, instead of blocking getrandom for seconds) and SSE4.2.
            _ => vec!["-accel".into(), "tcg".into(), "-cpu".into(), "max".into()],
        }
    }
}

/// `auto`, `kvm`, `tcg`: what `--accel` takes.
impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

impl std::str::FromStr for Accel {
    type Err = String;

    fn from_str(s: &str) -> Result<Accel, String> {
        match s {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!("unknown accelerator {other:?} (auto, kvm or tcg)")),
        }
    }
}

/// The accelerator to use in this process: `LANDFALL_ACCEL`, else the probe
/// (its verdict is printed once on stderr).
pub fn detected() -> Accel {
    static DETECTED: OnceLock<Accel> = OnceLock::new();
    *DETECTED.get_or_init(|| match std::env::var("LANDFALL_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        Ok("tcg") => Accel::Tcg,
        _ => match probe_kvm() {
            Ok(took) => {
                eprintln!("landfall-vm: KVM works (OVMF reached its boot manager in {took:?})");
                Accel::Kvm
            }
            Err(why) => {
                eprintln!("landfall-vm: using TCG: {why}");
                Accel::Tcg
            }
        },
    })
}

/// Boots OVMF under KVM; Ok(time to the boot manager) if KVM really runs it.
pub fn probe_kvm() -> Result<Duration, String> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm is not usable ({e})"))?;
    let qemu = host::qemu_binary().map_err(|e| e.to_string())?;
    let ovmf = host::ovmf().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("landfall-kvm-probe-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("no folder for the KVM probe ({e})"))?;
    let verdict = probe_in(&qemu, &ovmf, &dir);
    let _ = fs::remove_dir_all(&dir);
    verdict
}

fn probe_in(qemu: &Path, ovmf: &host::OvmfFiles, dir: &Path) -> Result<Duration, String> {
    let vars = dir.join("vars.fd");
    fs::copy(&ovmf.vars_template, &vars).map_err(|e| format!("cannot copy OVMF vars ({e})"))?;
    let console = dir.join("console");
    let stderr_path = dir.join("stderr");
    let stderr = fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let mut child = Command::new(qemu)
        .args([
            "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-m", "128",
        ])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .arg("-chardev")
        .arg(format!(
            "file,id=con,path={}",
            escape_option(&console.to_string_lossy())
        ))
        .args(["-serial", "chardev:con"])
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            escape_option(&ovmf.code.to_string_lossy())
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            escape_option(&vars.to_string_lossy())
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {} ({e})", qemu.display()))?;
    let started = Instant::now();
    let verdict = loop {
        let text = fs::read(&console).unwrap_or_default();
        if text.windows(6).any(|w| w == b"BdsDxe") {
            break Ok(started.elapsed());
        }
        let complaint = fs::read_to_string(&stderr_path).unwrap_or_default();
        if complaint.contains("KVM internal error") || complaint.contains("emulation failure") {
            break Err("KVM probe: KVM internal error (nested KVM does not work here)".to_owned());
        }
        if !matches!(child.try_wait(), Ok(None)) {
            let last = complaint.lines().last().unwrap_or("").to_owned();
            break Err(format!("KVM probe: qemu -accel kvm exited early: {last}"));
        }
        if started.elapsed() > PROBE_TIMEOUT {
            break Err(format!(
                "KVM probe: OVMF printed nothing under KVM in {PROBE_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in [Accel::Auto, Accel::Kvm, Accel::Tcg] {
            assert_eq!(a.to_string().parse::<Accel>(), Ok(a));
        }
        assert_eq!(
            "hvf".parse::<Accel>(),
            Err("unknown accelerator \"hvf\" (auto, kvm or tcg)".to_owned())
        );
    }

    #[test]
    fn resolved_arguments() {
        assert_eq!(Accel::Kvm.args(), ["-accel", "kvm", "-cpu", "host"]);
        assert_eq!(Accel::Tcg.args(), ["-accel", "tcg", "-cpu", "max"]);
    }
}
