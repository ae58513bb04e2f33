//! The agent's disk tier: the disk engine (`disk apply` on loop devices, judged by sgdisk,
//! e2fsck, blkid and a kernel mount), the native mkfs writers (ext4, vfat, swap, btrfs) and the
//! device-mapper writers (LUKS2, LVM2). One binary, a module per scenario.

#[path = "../common/mod.rs"]
mod common;

mod btrfs_disko;
mod btrfs_volumes;
mod confirm;
mod dm_layout_parity;
mod idempotent;
mod invalid;
mod luks2;
mod lvm2;
mod mkfs;
mod mkfs_btrfs;
mod mount;
mod seed;
mod sgdisk_parity;
mod shapes;
mod sys;
