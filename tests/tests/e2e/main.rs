//! The end-to-end tier: the real controller and the real agent, on loopback and in qemu VMs
//! (kexec from a rescue system, layouts, LUKS/LVM, the bootloader, whole installs with `--vm`).
//! One binary, a module per scenario; `cargo test -p landfall-tests --test e2e NAME` runs one.

#[path = "../fault_support/mod.rs"]
mod fault_support;
use landfall_tests::office as fixture;

mod agent_boot;
mod agent_static;
mod boot;
mod closure_transfer;
mod dm;
mod extra_files_cli;
mod hardware_config;
mod install;
mod kexec;
mod kexec_errors;
mod layout;
mod luks_lvm;
mod reinstall_same_layout;
mod substitute_install;
mod substitute_names;
mod substitute_vm;
mod target;
mod vm;
