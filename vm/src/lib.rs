//! One qemu driver for landfall: `landfall vm` / `landfall install --vm` and
//! the end-to-end test harness both describe their machines with it.
//!
//! - [`VmBuilder`] (`builder.rs`): name, direct kernel boot, firmware (BIOS or
//!   OVMF with a variable store), memory, CPUs, [`Disk`]s, [`Nic`]s, console
//!   to stdio, a file or a pipe, QMP, virtio RNG, raw arguments; `args(..)`
//!   renders the command line (pure).
//! - [`Launch`] (`launch.rs`): `VmBuilder::prepare(dir)` resolves qemu, the
//!   accelerator, OVMF's files and the forwarded host ports.
//! - [`Accel`] (`accel.rs`): KVM only where an OVMF boot under KVM really
//!   works (probed once per process; `LANDFALL_ACCEL=kvm|tcg` overrides).
//! - `host.rs`: [`qemu_binary`], [`ovmf`], [`free_port`].
//! - [`rescue`]: a cloud provider's rescue system as an initramfs (busybox,
//!   OpenSSH's server, fresh keys, static or DHCP network), its `/init` and
//!   the console lines that mark its progress.

pub mod accel;
pub mod builder;
pub mod disk;
pub mod host;
pub mod launch;
pub mod net;
pub mod rescue;

pub use accel::Accel;
pub use builder::{Firmware, KernelBoot, Serial, VmBuilder, VmPaths};
pub use disk::{escape_option, Disk, DiskBus};
pub use host::{find_in_path, free_port, ovmf, qemu_binary, HostError, OvmfFiles};
pub use launch::Launch;
pub use net::{Forward, GuestForward, Nic, NicModel};
