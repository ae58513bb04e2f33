//! `landfall vm` and `landfall install --vm`: a throwaway local qemu machine
//! that looks like a rented server in its provider's rescue system — a Debian
//! kernel with a busybox + OpenSSH-server initramfs, an NVMe disk, UEFI
//! (OVMF) or BIOS (SeaBIOS, `--firmware bios`), 256 MiB of RAM, reachable only through SSH on a forwarded port
//! (and the agent's port, forwarded for after the kexec). `install --vm` runs
//! the normal flow against it, then boots the installed disk and says whether
//! the installed system came up.

pub mod install;
pub mod qemu;
pub mod rescue;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::kernel::{self, KernelPaths};
pub use crate::vm_options::VmOptions;
pub use landfall_vm::Firmware;
use landfall_vm::{Disk, Nic, VmBuilder};
use qemu::RunningVm;
use rescue::Rescue;

/// The agent's port inside the VM (what the agent listens on after the kexec).
pub use landfall_proto::AGENT_PORT;
/// The VM disk's serial number (shown in the confirmation and the inventory).
pub const DISK_SERIAL: &str = "landfall-vm-0";

/// Console lines that show an installed system came up: the example's
/// stage 2 marker, NixOS's stage 2 banner, a login prompt.
const CAME_UP: &[&str] = &[
    "LANDFALL-STAGE2: /nix/store/",
    "<<< NixOS Stage 2 >>>",
    "Welcome to NixOS",
    " login: ",
];
/// Console lines that show it did not.
const FAILED: &[&str] = &[
    "Kernel panic",
    "No bootable option or device was found",
    "No bootable device.",
    "error: no such device",
    "error: file `",
    "LANDFALL-STAGE1: FAILED",
    "An error occurred in stage 1",
];

/// `4G`, `512M`, `1T`, or bytes.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        Some('T' | 't') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size (say 4G, 512M, …)"))?;
    n.checked_mul(mult)
        .with_context(|| format!("{s} is too large"))
}

/// The kernel command line of the rescue system. An emulated NVMe disk can
/// stall past the driver's 30 s I/O timeout when qemu's writes wait on a busy
/// host; the agent's image inherits this setting through the kexec, as it
/// would a cloud image's. `no_timer_check`: under software emulation on a
/// busy host the kernel's check that the 8254 timer reaches the IO-APIC can
/// fail and panic ("IO-APIC + timer doesn't work!", seen after the kexec
/// under SeaBIOS); virtual machines' kernels skip it.
const RESCUE_APPEND: &str =
    "console=ttyS0,115200 panic=-1 loglevel=4 nvme_core.io_timeout=600 no_timer_check";

/// The machine both VMs run on (the rescue system, then the installed disk):
/// q35 with 2 CPUs, `opts`' firmware (OVMF's variables kept in `dir`, so the
/// installed system boots with what the install wrote) and accelerator, the
/// NVMe disk, reboots allowed (a kexec must not end qemu), no QMP.
fn machine(name: &str, memory_mib: u32, opts: &VmOptions, dir: &Path, disk: &Path) -> VmBuilder {
    let vm = VmBuilder::new(name)
        .memory_mib(memory_mib)
        .cpus(2)
        .accel(opts.accel)
        .disk(Disk::nvme(disk).serial(DISK_SERIAL))
        .allow_reboot()
        .without_qmp();
    match opts.firmware {
        Firmware::Uefi => vm.ovmf_with_vars(dir.join("ovmf-vars.fd")),
        Firmware::Bios => vm.firmware(Firmware::Bios),
    }
}

/// The rescue VM, up and answering SSH.
pub struct RescueVm {
    pub vm: RunningVm,
    pub rescue: Rescue,
    pub disk: PathBuf,
    pub ssh_port: u16,
    pub agent_port: u16,
    pub known_hosts: PathBuf,
    opts: VmOptions,
    dir: PathBuf,
}

impl RescueVm {
    /// `--ssh-option` values for `landfall install --target`.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".into(),
            "BatchMode=yes".into(),
        ]
    }

    /// The agent's forwarded address after the kexec.
    pub fn agent_addr(&self) -> String {
        format!("127.0.0.1:{}", self.agent_port)
    }

    /// The VM's memory in MiB.
    pub fn spec_memory(&self) -> u32 {
        self.opts.memory_mib
    }

    /// The `ssh` command a person types to log in.
    pub fn ssh_command(&self) -> String {
        format!(
            "ssh -p {} -i {} -o UserKnownHostsFile={} root@127.0.0.1",
            self.ssh_port,
            self.rescue.client_key.display(),
            self.known_hosts.display()
        )
    }
}

/// Builds the rescue system for `kernel` and starts it in `dir` with a new
/// blank disk; returns once its SSH server listens.
pub fn start_rescue(
    opts: &VmOptions,
    kernel: &KernelPaths,
    dir: &Path,
) -> anyhow::Result<RescueVm> {
    std::fs::create_dir_all(dir).with_context(|| format!("Cannot create {}", dir.display()))?;
    let rescue = rescue::build(&kernel.modules, dir).context("Cannot build the rescue system")?;
    let disk = dir.join("disk.img");
    let size = parse_size(&opts.disk_size)?;
    let _ = std::fs::remove_file(&disk);
    let _ = std::fs::remove_file(dir.join("ovmf-vars.fd"));
    let f = std::fs::File::create(&disk)
        .with_context(|| format!("Cannot create {}", disk.display()))?;
    f.set_len(size)
        .with_context(|| format!("Cannot size {}", disk.display()))?;
    let started = Instant::now();
    let vm = machine("rescue", opts.memory_mib, opts, dir, &disk)
        .kernel(&kernel.image, RESCUE_APPEND)
        .initrd(&rescue.initrd)
        .nic(Nic::user().forward(22).forward(AGENT_PORT));
    let mut vm = RunningVm::start(vm, dir, false)?;
    let port = |guest| {
        vm.launch
            .host_port(guest)
            .context("the rescue VM has no forwarded port")
    };
    let (ssh_port, agent_port) = (port(22)?, port(AGENT_PORT)?);
    eprintln!(
        "Started the rescue VM (qemu pid {}, {}, {} MiB, {} disk); console: {}",
        vm.pid,
        opts.firmware.describe(),
        opts.memory_mib,
        crate::render::human_bytes(size),
        vm.console.display()
    );
    vm.wait_for(
        &[rescue::SSHD_READY],
        &[rescue::SSHD_FAILED, "Kernel panic"],
        Duration::from_secs(300),
    )
    .context("The rescue VM did not come up")?;
    let known_hosts = rescue.write_known_hosts(ssh_port)?;
    eprintln!(
        "The rescue VM answers SSH on 127.0.0.1:{ssh_port} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(RescueVm {
        vm,
        rescue,
        disk,
        ssh_port,
        agent_port,
        known_hosts,
        opts: opts.clone(),
        dir: dir.to_path_buf(),
    })
}

/// After the installer rebooted the rescue VM: power it off (qemu's direct
/// kernel boot would bring the rescue system back), boot the disk alone with
/// the rescue VM's firmware, and wait for the installed system. Returns the line that showed it.
pub fn boot_installed(
    r: &mut RescueVm,
    timeout: Duration,
    passphrases: &[(String, Vec<u8>)],
) -> anyhow::Result<(RunningVm, String)> {
    let _ =
        r.vm.wait_for(&["reboot: Restarting system"], &[], Duration::from_secs(60));
    r.vm.kill();
    // 512 MiB: the installed system is a normal NixOS, not the 256 MiB-lean agent.
    let vm = machine(
        "installed",
        r.opts.memory_mib.max(512),
        &r.opts,
        &r.dir,
        &r.disk,
    )
    .nic(
        Nic::user()
            .forward_fixed(r.ssh_port, 22)
            .forward_fixed(r.agent_port, AGENT_PORT),
    );
    let mut vm = RunningVm::start(vm, &r.dir, !passphrases.is_empty())?;
    eprintln!(
        "Booting the installed disk with {} firmware (qemu pid {}); console: {}",
        r.opts.firmware.describe(),
        vm.pid,
        vm.console.display()
    );
    // Stage 1 asks for each LUKS device's passphrase on the console, as a
    // person at the machine would be asked: type the disk's key there.
    for (i, (device, key)) in passphrases.iter().enumerate() {
        vm.wait_for(&[&format!("passphrase for {device}")], FAILED, timeout)
            .with_context(|| {
                format!("The installed system did not ask for {device}'s passphrase")
            })?;
        let t = std::time::Instant::now();
        while vm.console_text().matches("Enter passphrase for").count() <= i {
            if t.elapsed() > Duration::from_secs(120) {
                anyhow::bail!("cryptsetup on the installed system did not prompt for {device}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(500));
        vm.type_line(key)?;
        eprintln!("Typed the passphrase of LUKS device {device} on the installed system's console");
    }
    let line = vm
        .wait_for(CAME_UP, FAILED, timeout)
        .context("The installed system did not come up")?;
    Ok((vm, line))
}

/// `landfall vm`: start the rescue VM and keep it running until Ctrl-C.
#[derive(clap::Args, Clone)]
pub struct VmCli {
    #[command(flatten)]
    pub vm: VmOptions,
    /// The kernel to boot (default: the cached Debian kernel from
    /// scripts/fetch-kernel.sh, else this machine's /boot/vmlinuz-$(uname -r)).
    #[arg(long, requires = "modules")]
    pub kernel: Option<PathBuf>,
    /// That kernel's lib/modules/<version> folder.
    #[arg(long, requires = "kernel")]
    pub modules: Option<PathBuf>,
}

/// Runs `landfall vm`: until Ctrl-C (or qemu ends), then stops qemu.
pub async fn run_vm(c: VmCli) -> anyhow::Result<()> {
    let kernel = kernel::find(c.kernel.as_deref(), c.modules.as_deref())?;
    let dir =
        c.vm.dir
            .clone()
            .unwrap_or_else(|| crate::state::state_dir("vm"));
    let mut r = tokio::task::block_in_place(|| start_rescue(&c.vm, &kernel, &dir))?;
    println!("The rescue VM is up. Log in with:");
    println!("  {}", r.ssh_command());
    println!("Install onto it with:");
    println!(
        "  landfall install --target root@127.0.0.1 -p {} -i {} --ssh-option UserKnownHostsFile={} --agent-addr {} --flake REF#NAME",
        r.ssh_port,
        r.rescue.client_key.display(),
        r.known_hosts.display(),
        r.agent_addr()
    );
    println!(
        "Console: {}   Disk: {}",
        r.vm.console.display(),
        r.disk.display()
    );
    println!("Ctrl-C stops it.");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                eprintln!("Stopping the rescue VM");
                r.vm.kill();
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if r.vm.exited() {
                    anyhow::bail!("qemu ended; its console: {}", r.vm.console.display());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use landfall_vm::Accel;

    fn opts(firmware: Firmware) -> VmOptions {
        VmOptions {
            memory_mib: 256,
            disk_size: "4G".into(),
            dir: None,
            accel: Accel::Tcg,
            firmware,
        }
    }

    #[test]
    fn rescue_and_installed_machines() {
        let paths = landfall_vm::VmPaths {
            ovmf_vars: Some("/d/ovmf-vars.fd".into()),
            ovmf_code: Some("/c.fd".into()),
            qmp_socket: "unused".into(),
        };
        let dir = Path::new("/d");
        let disk = Path::new("/d/disk,1.img");
        let vm = machine("rescue", 256, &opts(Firmware::Uefi), dir, disk)
            .kernel("/k", RESCUE_APPEND)
            .initrd("/i")
            .nic(Nic::user().forward(22).forward(AGENT_PORT));
        let a = vm.args(Accel::Tcg, &paths, &[vec![2222, 7444]]).join(" ");
        assert!(a.contains("-m 256 -smp 2"), "{a}");
        assert!(a.contains("file=/d/disk,,1.img,if=none"), "{a}");
        assert!(a.contains("nvme,drive=disk0,serial=landfall-vm-0"), "{a}");
        assert!(
            a.contains(
                "restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:7444-:7443"
            ),
            "{a}"
        );
        assert!(
            a.contains("-kernel /k -initrd /i -append console=ttyS0,115200"),
            "{a}"
        );
        assert!(
            a.contains("if=pflash,format=raw,unit=1,file=/d/ovmf-vars.fd"),
            "{a}"
        );
        // A kexec must not end qemu; nothing listens on QMP.
        assert!(!a.contains("-no-reboot") && !a.contains("-qmp"), "{a}");
        let vm = machine("installed", 512, &opts(Firmware::Bios), dir, disk);
        let a = vm.args(Accel::Tcg, &paths, &[]).join(" ");
        assert!(!a.contains("pflash") && !a.contains("-kernel"), "{a}");
        assert_eq!(vm.firmware_kind(), Firmware::Bios);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("four").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
