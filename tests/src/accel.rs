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
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::console::Console;
use crate::fixtures;
use crate::process::Spawned;

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

/// The accelerator to use in this process: `LANDFALL_ACCEL`, else the probe.
pub fn detected() -> Accel {
    static DETECTED: OnceLock<Accel> = OnceLock::new();
    *DETECTED.get_or_init(|| match std::env::var("LANDFALL_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        Ok("tcg") => Accel::Tcg,
        _ => match probe_kvm() {
            Ok(took) => {
                eprintln!("landfall-tests: KVM works (OVMF reached its boot manager in {took:?})");
                Accel::Kvm
            }
            Err(why) => {
                eprintln!("landfall-tests: using TCG: {why}");
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
    let qemu = fixtures::qemu_binary().map_err(|e| e.to_string())?;
    let ovmf = fixtures::ovmf().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| format!("no temp dir for the KVM probe ({e})"))?;
    let vars = dir.path().join("vars.fd");
    fs::copy(&ovmf.vars_template, &vars).map_err(|e| format!("cannot copy OVMF vars ({e})"))?;
    let stderr_path = dir.path().join("stderr");
    let stderr = fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-m", "128",
    ])
    .args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ])
    .args(["-serial", "stdio"])
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=0,readonly=on,file={}",
        crate::disk::escape_option(&ovmf.code.to_string_lossy())
    ))
    .arg("-drive")
    .arg(format!(
        "if=pflash,format=raw,unit=1,file={}",
        crate::disk::escape_option(&vars.to_string_lossy())
    ))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(stderr);
    let started = Instant::now();
    let mut qemu = Spawned::spawn("kvm-probe", &mut cmd, None).map_err(|e| e.to_string())?;
    let stdout = qemu
        .take_stdout()
        .ok_or("no stdout pipe for the KVM probe")?;
    let mut console = Console::capture("kvm-probe", stdout, &dir.path().join("console"))
        .map_err(|e| e.to_string())?;
    let verdict = loop {
        if console
            .wait_for("BdsDxe", Duration::from_millis(200))
            .is_ok()
        {
            break Ok(started.elapsed());
        }
        let complaint = fs::read_to_string(&stderr_path).unwrap_or_default();
        if complaint.contains("KVM internal error") || complaint.contains("emulation failure") {
            break Err("KVM probe: KVM internal error (nested KVM does not work here)".to_owned());
        }
        if console.is_closed() {
            let last = complaint.lines().last().unwrap_or("").to_owned();
            break Err(format!("KVM probe: qemu -accel kvm exited early: {last}"));
        }
        if started.elapsed() > PROBE_TIMEOUT {
            break Err(format!(
                "KVM probe: OVMF printed nothing under KVM in {PROBE_TIMEOUT:?}"
            ));
        }
    };
    qemu.kill();
    verdict
}
