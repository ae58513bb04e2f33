//! Device-mapper users: the on-disk formats whose volumes the kernel's
//! device-mapper serves (LUKS2 → `crypt`, LVM2 → `linear`). Each format
//! module is pure Rust over a file or block device and hands the
//! device-mapper layer (the dm ioctls live in `sys/`) the tables to load.

pub mod luks2;
pub mod lvm2;
