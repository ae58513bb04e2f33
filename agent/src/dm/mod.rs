//! Device-mapper users: the on-disk formats whose volumes the kernel's
//! device-mapper serves (LVM2 today). Each format module is pure Rust over a
//! file or block device and hands the device-mapper layer the tables to load.

pub mod lvm2;
