//! The agent's boot tier: the bootloader engine and the closure's own installer, the fixture
//! booting in qemu, kexec's dry run, the hardware configuration and extra files written onto
//! the target, and the server refusing bad TLS. One binary, a module per scenario.

#[path = "../store_common/mod.rs"]
mod store_common;

mod boot_engine;
mod extra_files;
mod fixture_boot;
mod hardware_config;
mod kexec_dry_run;
mod serve_bad_tls;
