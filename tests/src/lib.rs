//! The qemu harness for landfall's end-to-end tests.
//!
//! Shaped like cloud-hypervisor's test harness: a VM builder, console waits
//! with timeouts that explain themselves, and a registry that kills every
//! spawned process even when a test panics.
//!
//! # Starting a VM
//!
//! ```no_run
//! use std::time::Duration;
//! use landfall_tests::{debian_kernel, sparse_image, BusyboxInitramfs, Disk, Nic, StartVm, TestDir, VmBuilder, KERNEL_APPEND};
//!
//! let kernel = debian_kernel()?;                       // fails: "run scripts/fetch-kernel.sh"
//! let dir = TestDir::new("demo")?;                     // kept (and printed) if the test fails
//! let initrd = BusyboxInitramfs::new()?
//!     .modules(&kernel, &["nvme"])?                    // + nvme-core, t10-pi, … in order
//!     .script("cat /sys/block/nvme0n1/device/serial")
//!     .write(&dir.join("initrd"))?;
//! let disk = sparse_image(&dir.join("disk.img"), 1 << 30)?;
//! let mut vm = VmBuilder::new("demo")                  // 256 MiB, 1 CPU, -no-reboot, q35
//!     .kernel(&kernel.image, KERNEL_APPEND)
//!     .initrd(initrd)
//!     .disk(Disk::nvme(disk).serial("landfall-test-0"))
//!     .nic(Nic::user().forward(7443))                  // restrict=on; host port chosen
//!     .start_in(dir)?;                                 // returns once qemu greets on QMP
//! let agent = vm.forwarded_addr(7443).unwrap();        // 127.0.0.1:<free port>
//! vm.wait_for("landfall-test-0", Duration::from_secs(60))?;
//! vm.wait_exit(Duration::from_secs(30))?;              // the initramfs powers off
//! # let _ = agent;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The API
//!
//! - [`VmBuilder`] (the `landfall-vm` crate, re-exported as [`vm`]): `new(name)`, `kernel(path, append)`, `initrd(path)`,
//!   `ovmf()` / `ovmf_with_vars(path)` (UEFI; combine with `kernel` for a UEFI
//!   direct boot), `memory_mib`, `cpus`, `disk(Disk)`, `nic(Nic)`,
//!   `allow_reboot()` (default is `-no-reboot`: a guest reboot, or a QMP
//!   `system_reset`, ends qemu), `virtio_rng()`, `accel(Accel)`,
//!   `without_qmp()`, `arg(raw)`; `start()` or `start_in(TestDir)` (trait [`StartVm`]);
//!   `args(..)` renders the command line (pure). `start` returns once qemu
//!   greets on QMP, so bad options and busy ports fail there, with qemu's stderr.
//! - [`Vm`] (`running.rs`): `wait_for(pattern, timeout)`, `wait_for_any([..],
//!   timeout)`, `write_console(text)`, `host_port(guest)` /
//!   `forwarded_addr(guest)`, `qmp()`, `system_reset()`, `quit(timeout)`
//!   (QMP quit, flushes disks), `wait_exit(timeout)`, `kill()`, `is_running()`,
//!   `into_test_dir()` (stop, and start the next VM in the same folder with the
//!   same disks and OVMF variables), `dir()`, `console_log()`, `ovmf_vars()`,
//!   `accel()`, `pid()`. A VM's files are `<name>-console.log` (raw serial),
//!   `<name>-qemu.stderr`, `<name>-qemu.cmdline` (re-runnable by hand) and
//!   `<name>-OVMF_VARS.fd` in its folder.
//! - [`Disk`] (`landfall_vm::disk`): `Disk::nvme(path)` (serial defaults to
//!   `landfall-test-<index>`), `Disk::virtio_blk(path)`, `.serial(s)`,
//!   `.logical_block_size(4096)`, `.read_only()`. Raw images only.
//! - [`Nic`] (`landfall_vm::net`): `Nic::user()` (always `restrict=on`), `.model(NicModel::E1000)`,
//!   `.mac(..)`, `.forward(guest_port)` (free host port on 127.0.0.1),
//!   `.forward_fixed(host, guest)`. The guest is 10.0.2.15/24, gateway 10.0.2.2.
//!   A connect to a forwarded port succeeds even when nothing listens in the
//!   guest: wait for the application's answer, not for the port.
//! - [`Console`], [`Pattern`], [`Match`] (`console.rs`): waits are sequential
//!   (each starts after the previous match); `Pattern::regex(r"SERIAL=(\S+)")`
//!   and `Match::group(1)`; a plain `&str` is a substring. Errors carry the
//!   console tail and the log path; when qemu exits first, also its stderr.
//! - [`Qmp`] (`qmp.rs`): `execute(cmd, args)`, `quit`, `system_reset`,
//!   `system_powerdown`, `status`. VMs use an abstract-namespace socket (no
//!   path-length limit); `Qmp::connect(path)` is there for socket files.
//! - [`Spawned`] (`process.rs`): start any helper process (sshd, …) so that it
//!   is killed with its process group on drop, on panic, at exit, and when the
//!   spawning thread dies. Spawn it from the test that uses it.
//! - [`accel`]: KVM only when a real OVMF boot under KVM works (probed once
//!   per process, override with `LANDFALL_ACCEL=kvm|tcg`), else TCG.
//! - Fixtures (`fixtures.rs`): [`debian_kernel`] / [`kernel_dir`], [`ovmf`],
//!   [`busybox`], [`qemu_binary`], [`free_port`], [`sparse_image`],
//!   [`cache_dir`] (`$LANDFALL_CACHE` or `<workspace>/.cache`),
//!   [`workspace_root`], [`is_static_elf`].
//! - [`BusyboxInitramfs`] (`initramfs.rs`): a busybox + modules + script
//!   initramfs; its `/init` prints [`INIT_STARTED`], inserts the modules, runs
//!   the script, prints [`INIT_DONE`] and powers off. Boot it with
//!   [`KERNEL_APPEND`]. `.modules(&kernel, &["nvme"])` adds modules with their
//!   dependencies, `.file(path, data, mode)` any file, `.executable(host, dest)`
//!   a dynamically linked host binary with its libraries (e.g. Debian's sshd for
//!   a rescue VM). [`STATIC_NET_SCRIPT`] brings eth0 up as 10.0.2.15/24.
//!   [`initramfs::cpio::NewcWriter`] is the newc writer.
//! - [`dns::Dnsmasq`] (`dns.rs`): a real DNS server on a loopback address of
//!   its own; [`dns::PrivateResolvConf`] runs code on a thread whose mount
//!   namespace's /etc/resolv.conf names it (processes started there resolve
//!   through it; qemu's user network forwards the guest's queries to it).
//! - [`TestDir`] (`testdir.rs`), [`wait_until`] / [`retry_until`] (`wait.rs`).
//!
//! # Environment
//!
//! `LANDFALL_CACHE` (kernel cache), `LANDFALL_ACCEL`, `LANDFALL_QEMU`,
//! `LANDFALL_OVMF_DIR`, `LANDFALL_TEST_DIR` (root of test folders, default
//! `<tmp>/landfall-tests`), `LANDFALL_KEEP=1` (keep every folder),
//! `LANDFALL_CONSOLE=1` (echo consoles to stderr).
//!
//! Under TCG on the 2-core development machine (shared, load 5–8), qemu start →
//! busybox init took 6–11 s (about 24 s when several VMs ran at once), OVMF →
//! boot manager 6–13 s, OVMF + direct kernel → poweroff 15–17 s. Give waits
//! generous timeouts (60 s and more); timing belongs in benchmark scripts.

/// Implements `Debug` as `Display` plus the `#[source]` chain, so that
/// `.unwrap()` and `fn test() -> Result<..>` print readable multi-line errors.
#[macro_export]
#[doc(hidden)]
macro_rules! debug_as_display {
    ($t:ty) => {
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(self, f)?;
                let mut source = ::std::error::Error::source(self);
                while let Some(cause) = source {
                    write!(f, "\n  caused by: {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
        }
    };
}

pub mod agentimage;
pub mod binary_cache;
pub mod bins;
pub mod console;
pub mod dns;
mod escape;
pub mod fixtures;
pub mod initramfs;
pub mod loopdev;
pub mod modgraph;
pub mod nixstore;
pub mod office;
pub mod process;
pub mod proxy;
pub mod qmp;
pub mod rescue;
pub mod running;
pub mod testdir;
pub mod wait;

/// The VM description comes from the VM library that `landfall --vm` uses
/// too: one qemu command line, one accelerator choice.
pub use landfall_vm::{accel, builder as vm, disk, net};

pub use accel::Accel;
pub use console::{Console, Match, Pattern, WaitError};
pub use disk::{Disk, DiskBus};
pub use fixtures::{
    busybox, cache_dir, debian_kernel, free_port, is_static_elf, kernel_dir, ovmf, qemu_binary,
    sparse_image, workspace_root, DebianKernel, FixtureError, OvmfFiles,
};
pub use initramfs::{
    BusyboxInitramfs, InitramfsError, INIT_DONE, INIT_STARTED, KERNEL_APPEND, NVME_TIMEOUT_APPEND,
    STATIC_NET_SCRIPT,
};
pub use net::{Nic, NicModel};
pub use process::{SpawnError, Spawned};
pub use qmp::{Qmp, QmpError};
pub use running::{StartVm, Vm, VmError};
pub use testdir::TestDir;
pub use vm::{Firmware, KernelBoot, VmBuilder};
pub use wait::{retry_until, wait_until};
