//! LVM2, natively: physical volumes, a volume group and linear logical volumes
//! written in the on-disk format lvm2 2.03 reads, sized the way disko's
//! `lvm_vg` type sizes them (`lvcreate -L SIZE` / `-l N%FREE` in disko's order).
//!
//! Layers, one concept per file:
//! - `crc`, `id`, `names`, `size`: lvm's checksum, its 32-character ids, its
//!   name rules and device-mapper naming, and lvcreate's size arguments.
//! - `plan`: the pure planner: PV sizes and LV requests in, extents out, with
//!   lvcreate's rounding and allocation; no I/O.
//! - `model`, `text`, `parse`: the volume group's metadata, its text form as
//!   lvm2 writes it to disk, and the reader of that text.
//! - `label`, `mda`: the binary label sector, PV header and metadata area
//!   header, and where a commit goes in the circular metadata buffer.
//! - `device`: reading a PV from a device and writing or extending a VG on its
//!   devices; everything is validated before the first byte is written.
//! - `table`: the device-mapper linear tables, names and uuids of the LVs.
//!
//! Invariant: nothing here writes to a device until the whole volume group has
//! been planned and its metadata rendered, so bad input leaves disks untouched.

pub mod crc;
pub mod device;
pub mod error;
pub mod id;
pub mod label;
pub mod mda;
pub mod model;
pub mod names;
pub mod parse;
pub mod plan;
pub mod size;
pub mod table;
pub mod text;

pub use device::{apply_vg, read_pv, Applied, Outcome, PvOnDisk, VgLayout};
pub use error::LvmError;
pub use id::LvmId;
pub use model::{Lv, Pv, Segment, Vg};
pub use names::{dm_name, dm_uuid};
pub use plan::{disko_order, plan_vg, LvPlan, LvRequest, PvGeometry, VgPlan};
pub use size::{LvSize, PercentOf};
pub use table::linear_table;

/// Bytes per sector in every lvm2 on-disk quantity.
pub const SECTOR: u64 = 512;
/// Default extent size of `vgcreate`: 4 MiB, in sectors.
pub const DEFAULT_EXTENT_SECTORS: u64 = 8192;
/// Default start of the data area of `pvcreate`: 1 MiB, in sectors.
pub const DEFAULT_PE_START_SECTORS: u64 = 2048;
/// Where `pvcreate` puts the first metadata area: 4 KiB into the device.
pub const MDA_OFFSET: u64 = 4096;
