//! Device-mapper in the agent: devices from tables, with their nodes
//! (`device`, over the ioctls in `sys/dm`), and the on-disk formats whose
//! volumes become such tables (LUKS2 → `crypt`, LVM2 → `linear`). Each format
//! module is pure Rust over a file or block device and hands `device` the
//! tables to load.

pub mod device;
pub mod luks2;
pub mod lvm2;
