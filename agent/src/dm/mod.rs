//! Device-mapper engines: devices from tables, with their nodes (`device`).
//! The dm-crypt (LUKS2) and linear (LVM2) users build on these.

pub mod device;
