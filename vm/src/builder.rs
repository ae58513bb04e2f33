//! Describing a VM ([`VmBuilder`]) and rendering its qemu command line.
//!
//! The builder is plain data; [`VmBuilder::args`] is a pure function of it (and
//! of the resolved accelerator, firmware files and host ports), so the command
//! line is unit-tested without starting qemu. [`VmBuilder::prepare`]
//! (`launch.rs`) resolves those for a folder; starting and watching qemu is the
//! caller's (the test harness's `Vm`, the controller's `RunningVm`).
//!
//! Fixed choices: `-machine q35`, `-nodefaults` (nothing attached that the
//! caller did not ask for), `-display none`, the first serial port on qemu's
//! stdio unless sent to a file ([`VmBuilder::serial_to_file`]), user-mode
//! networking with `restrict=on`, and a QMP socket (abstract namespace) unless
//! turned off.

use std::path::{Path, PathBuf};

use crate::accel::Accel;
use crate::disk::{escape_option, Disk};
use crate::net::Nic;

/// Which firmware the VM starts (`--firmware bios|uefi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Firmware {
    /// qemu's default BIOS, SeaBIOS: boots a disk's MBR boot code (GRUB's
    /// i386-pc core image in a BIOS boot partition).
    #[default]
    Bios,
    /// UEFI: OVMF code read-only, plus a writable variable store (see
    /// [`VmBuilder::ovmf`] and [`VmBuilder::ovmf_with_vars`]); boots the ESP's
    /// `EFI/BOOT/BOOTX64.EFI`.
    Uefi,
}

impl Firmware {
    /// For people: "BIOS (SeaBIOS)", "UEFI (OVMF)".
    pub fn describe(self) -> &'static str {
        match self {
            Firmware::Bios => "BIOS (SeaBIOS)",
            Firmware::Uefi => "UEFI (OVMF)",
        }
    }
}

/// `bios`, `uefi`: what `--firmware` takes.
impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        })
    }
}

impl std::str::FromStr for Firmware {
    type Err = String;

    fn from_str(s: &str) -> Result<Firmware, String> {
        match s {
            "bios" => Ok(Firmware::Bios),
            "uefi" => Ok(Firmware::Uefi),
            other => Err(format!("unknown firmware {other:?} (bios or uefi)")),
        }
    }
}

/// Where the first serial port (the console) goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Serial {
    /// qemu's stdin and stdout (the harness captures them).
    #[default]
    Stdio,
    /// Appended to a file.
    File(PathBuf),
    /// qemu's pipe backend: it writes `<path>.out` and reads `<path>.in`
    /// (the caller makes them, e.g. a FIFO and a link to a log), so the
    /// console takes input while its output goes to a file.
    Pipe(PathBuf),
}

/// A direct kernel boot (`-kernel`, `-initrd`, `-append`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelBoot {
    /// The bzImage.
    pub kernel: PathBuf,
    /// The initramfs, if any.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub append: String,
}

/// Everything needed to start a VM.
#[derive(Debug, Clone)]
pub struct VmBuilder {
    pub(crate) name: String,
    pub(crate) kernel: Option<KernelBoot>,
    pub(crate) firmware: Firmware,
    pub(crate) ovmf_vars: Option<PathBuf>,
    pub(crate) serial: Serial,
    pub(crate) memory_mib: u32,
    pub(crate) cpus: u32,
    pub(crate) disks: Vec<Disk>,
    pub(crate) nics: Vec<Nic>,
    pub(crate) no_reboot: bool,
    pub(crate) accel: Accel,
    pub(crate) qmp: bool,
    pub(crate) rng: bool,
    pub(crate) extra: Vec<String>,
}

/// Where a running VM's files go, for [`VmBuilder::args`].
#[derive(Debug, Clone)]
pub struct VmPaths {
    /// The OVMF variable store in use (firmware boot only).
    pub ovmf_vars: Option<PathBuf>,
    /// The OVMF code file (firmware boot only).
    pub ovmf_code: Option<PathBuf>,
    /// The QMP socket's name in the abstract unix-socket namespace (no file,
    /// so no 108-byte path limit however deep the test folder is).
    pub qmp_socket: String,
}

impl VmBuilder {
    /// A VM named `name` (used in folder names and messages): 256 MiB, 1 CPU,
    /// BIOS, no disks, no network, `-no-reboot`, accelerator probed.
    pub fn new(name: &str) -> VmBuilder {
        VmBuilder {
            name: name.to_owned(),
            kernel: None,
            firmware: Firmware::Bios,
            ovmf_vars: None,
            serial: Serial::Stdio,
            memory_mib: 256,
            cpus: 1,
            disks: Vec::new(),
            nics: Vec::new(),
            no_reboot: true,
            accel: Accel::Auto,
            qmp: true,
            rng: false,
            extra: Vec::new(),
        }
    }

    /// Boots `kernel` directly, with `append` as its command line.
    pub fn kernel(mut self, kernel: impl Into<PathBuf>, append: &str) -> VmBuilder {
        let initrd = self.kernel.take().and_then(|k| k.initrd);
        self.kernel = Some(KernelBoot {
            kernel: kernel.into(),
            initrd,
            append: append.to_owned(),
        });
        self
    }

    /// The initramfs for a direct kernel boot (call after [`VmBuilder::kernel`]).
    pub fn initrd(mut self, initrd: impl Into<PathBuf>) -> VmBuilder {
        if let Some(k) = &mut self.kernel {
            k.initrd = Some(initrd.into());
        }
        self
    }

    /// UEFI with a fresh variable store in the VM's folder
    /// (`<name>-OVMF_VARS.fd`, copied from the template if it does not exist).
    pub fn ovmf(mut self) -> VmBuilder {
        self.firmware = Firmware::Uefi;
        self
    }

    /// UEFI with the variable store at `vars` (the template is copied there
    /// first if it does not exist), so a second VM can boot with the boot
    /// entries the first one wrote.
    pub fn ovmf_with_vars(mut self, vars: impl Into<PathBuf>) -> VmBuilder {
        self.firmware = Firmware::Uefi;
        self.ovmf_vars = Some(vars.into());
        self
    }

    /// The firmware (default BIOS); for UEFI the variable store is as with
    /// [`VmBuilder::ovmf`] unless [`VmBuilder::ovmf_with_vars`] named one.
    pub fn firmware(mut self, firmware: Firmware) -> VmBuilder {
        self.firmware = firmware;
        self
    }

    /// Sends the console to the file `path` instead of qemu's stdout.
    pub fn serial_to_file(mut self, path: impl Into<PathBuf>) -> VmBuilder {
        self.serial = Serial::File(path.into());
        self
    }

    /// Sends the console through qemu's pipe backend at `path` (see [`Serial::Pipe`]).
    pub fn serial_pipe(mut self, path: impl Into<PathBuf>) -> VmBuilder {
        self.serial = Serial::Pipe(path.into());
        self
    }

    /// Guest memory in MiB (default 256).
    pub fn memory_mib(mut self, mib: u32) -> VmBuilder {
        self.memory_mib = mib;
        self
    }

    /// Number of virtual CPUs (default 1).
    pub fn cpus(mut self, cpus: u32) -> VmBuilder {
        self.cpus = cpus;
        self
    }

    /// Attaches a disk (in order: the first NVMe disk is nvme0n1).
    pub fn disk(mut self, disk: Disk) -> VmBuilder {
        self.disks.push(disk);
        self
    }

    /// Adds a network card.
    pub fn nic(mut self, nic: Nic) -> VmBuilder {
        self.nics.push(nic);
        self
    }

    /// Lets a guest reboot restart the machine (qemu's default) instead of
    /// ending qemu (`-no-reboot`, the harness default). Needed when a test
    /// reboots the guest and expects it to come back.
    pub fn allow_reboot(mut self) -> VmBuilder {
        self.no_reboot = false;
        self
    }

    /// Forces an accelerator (default: probed once per process).
    pub fn accel(mut self, accel: Accel) -> VmBuilder {
        self.accel = accel;
        self
    }

    /// Turns the QMP socket off (it is on by default).
    pub fn without_qmp(mut self) -> VmBuilder {
        self.qmp = false;
        self
    }

    /// Adds a virtio RNG fed from the host's /dev/urandom. The TCG default CPU
    /// has no RDRAND, so a guest's first `getrandom` (TLS keys) can otherwise
    /// wait for jitter entropy; the guest needs the virtio_rng module.
    pub fn virtio_rng(mut self) -> VmBuilder {
        self.rng = true;
        self
    }

    /// Appends raw qemu arguments.
    pub fn arg(mut self, arg: &str) -> VmBuilder {
        self.extra.push(arg.to_owned());
        self
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The VM's firmware.
    pub fn firmware_kind(&self) -> Firmware {
        self.firmware
    }

    /// The VM's memory in MiB.
    pub fn memory(&self) -> u32 {
        self.memory_mib
    }

    /// Whether qemu will open a QMP socket.
    pub fn has_qmp(&self) -> bool {
        self.qmp
    }

    /// The network cards.
    pub fn nics(&self) -> &[Nic] {
        &self.nics
    }

    /// The qemu arguments (without the program name).
    ///
    /// `accel` must be resolved (`Kvm` or `Tcg`); `host_ports` has one entry per
    /// forward of each NIC, in order.
    pub fn args(&self, accel: Accel, paths: &VmPaths, host_ports: &[Vec<u16>]) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
        push(&["-name", &self.name, "-machine", "q35"]);
        push(&[
            "-m",
            &self.memory_mib.to_string(),
            "-smp",
            &self.cpus.to_string(),
        ]);
        push(&["-nodefaults", "-no-user-config", "-display", "none"]);
        match &self.serial {
            Serial::Stdio => push(&["-serial", "stdio"]),
            Serial::File(p) => push(&[
                "-chardev",
                &format!("file,id=con,path={}", escape_path(p)),
                "-serial",
                "chardev:con",
            ]),
            Serial::Pipe(p) => push(&[
                "-chardev",
                &format!("pipe,id=con,path={}", escape_path(p)),
                "-serial",
                "chardev:con",
            ]),
        }
        if self.no_reboot {
            push(&["-no-reboot"]);
        }
        a.extend(accel.args());
        if let (Firmware::Uefi, Some(code), Some(vars)) =
            (&self.firmware, &paths.ovmf_code, &paths.ovmf_vars)
        {
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                escape_path(code)
            ));
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,format=raw,unit=1,file={}",
                escape_path(vars)
            ));
        }
        if let Some(k) = &self.kernel {
            a.push("-kernel".into());
            a.push(k.kernel.to_string_lossy().into_owned());
            if let Some(initrd) = &k.initrd {
                a.push("-initrd".into());
                a.push(initrd.to_string_lossy().into_owned());
            }
            a.push("-append".into());
            a.push(k.append.clone());
        }
        for (i, disk) in self.disks.iter().enumerate() {
            a.extend(disk.args(i));
        }
        for (i, nic) in self.nics.iter().enumerate() {
            let ports = host_ports.get(i).map(Vec::as_slice).unwrap_or(&[]);
            a.extend(nic.args(i, ports));
        }
        if self.rng {
            a.push("-object".into());
            a.push("rng-random,id=rng0,filename=/dev/urandom".into());
            a.push("-device".into());
            a.push("virtio-rng-pci,rng=rng0".into());
        }
        if self.qmp {
            a.push("-qmp".into());
            a.push(format!(
                "unix:{},abstract=on,server=on,wait=off",
                escape_option(&paths.qmp_socket)
            ));
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

fn escape_path(p: &Path) -> String {
    escape_option(&p.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> VmPaths {
        VmPaths {
            ovmf_vars: Some("/d/vars.fd".into()),
            ovmf_code: Some("/usr/share/OVMF/OVMF_CODE_4M.fd".into()),
            qmp_socket: "landfall-qmp-1-0".into(),
        }
    }

    fn joined(b: &VmBuilder, ports: &[Vec<u16>]) -> String {
        b.args(Accel::Tcg, &paths(), ports).join(" ")
    }

    #[test]
    fn defaults() {
        let s = joined(&VmBuilder::new("t"), &[]);
        assert_eq!(
            s,
            "-name t -machine q35 -m 256 -smp 1 -nodefaults -no-user-config -display none \
             -serial stdio -no-reboot -accel tcg -cpu max -qmp unix:landfall-qmp-1-0,abstract=on,server=on,wait=off"
        );
    }

    #[test]
    fn kernel_boot_with_disk_and_network() {
        let b = VmBuilder::new("t")
            .kernel("/k/vmlinuz", "console=ttyS0")
            .initrd("/k/initrd")
            .disk(Disk::nvme("/d/disk.img").serial("landfall-test-0"))
            .nic(Nic::user().forward(7443))
            .memory_mib(512)
            .cpus(2)
            .allow_reboot()
            .virtio_rng()
            .without_qmp();
        let s = joined(&b, &[vec![40001]]);
        assert!(s.contains("-m 512 -smp 2"), "{s}");
        assert!(!s.contains("-no-reboot") && !s.contains("-qmp"), "{s}");
        assert!(
            s.contains("-kernel /k/vmlinuz -initrd /k/initrd -append console=ttyS0"),
            "{s}"
        );
        assert!(s.contains("serial=landfall-test-0"), "{s}");
        assert!(
            s.contains(
                "-object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0"
            ),
            "{s}"
        );
        assert!(
            s.contains("restrict=on,hostfwd=tcp:127.0.0.1:40001-:7443"),
            "{s}"
        );
    }

    #[test]
    fn ovmf_code_is_read_only_vars_writable() {
        let s = joined(&VmBuilder::new("t").ovmf(), &[]);
        assert!(s.contains(
            "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
             -drive if=pflash,format=raw,unit=1,file=/d/vars.fd"
        ));
    }

    #[test]
    fn console_to_a_file_or_a_pipe() {
        let s = joined(&VmBuilder::new("t").serial_to_file("/d/a,b.log"), &[]);
        assert!(
            s.contains("-chardev file,id=con,path=/d/a,,b.log -serial chardev:con")
                && !s.contains("stdio"),
            "{s}"
        );
        let s = joined(&VmBuilder::new("t").serial_pipe("/d/con"), &[]);
        assert!(
            s.contains("-chardev pipe,id=con,path=/d/con -serial chardev:con"),
            "{s}"
        );
    }

    #[test]
    fn firmware_names_round_trip() {
        for f in [Firmware::Bios, Firmware::Uefi] {
            assert_eq!(f.to_string().parse::<Firmware>(), Ok(f));
        }
        assert!("coreboot".parse::<Firmware>().is_err());
        // BIOS: qemu's default firmware, no flash drives even with OVMF found.
        let s = joined(&VmBuilder::new("t").firmware(Firmware::Bios), &[]);
        assert!(!s.contains("pflash"), "{s}");
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let s = VmBuilder::new("t")
            .args(Accel::Kvm, &paths(), &[])
            .join(" ");
        assert!(s.contains("-accel kvm -cpu host"), "{s}");
    }
}
