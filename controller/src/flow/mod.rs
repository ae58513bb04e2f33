//! The install flow and its one owner: `landfall install` (and `install
//! --vm`, which calls it) runs evaluate → bootstrap (SSH checks, upload,
//! kexec) → session → disko → install → files → bootloader → reboot, in that order,
//! each phase a function on plain values.
//!
//! Invariants:
//! - The flake is evaluated and the system built before anything reaches the
//!   target: no SSH connection, no agent probe happens before [`evaluate`]
//!   succeeded ([`run::drive`] keeps the order, its tests check it). The one
//!   exception is `--generate-hardware-config`: the flake imports a file made
//!   from the running agent's inventory, so bootstrap and session come first,
//!   then the file is written, then the evaluation — still before any disk
//!   is touched.
//! - A re-run skips work already done: an agent of this session already
//!   answering is not kexec'd again, a layout already applied by this
//!   install destroys nothing, paths already on the target are not sent.
//! - "This install" is the ID in the state folder ([`crate::install_id`]),
//!   kept until the reboot phase is done: a disk that holds the same layout
//!   but was formatted by anything else is planned as destroyed and
//!   recreated, and asked about, unless `--keep-existing`.
//! - Arrows only go down: `vm` calls the flow, the flow never calls `vm`.

pub mod bootstrap;
pub mod evaluate;
pub mod install;
pub mod phases;
pub mod remount;
pub mod run;

pub use crate::phase::Phase;
pub use evaluate::evaluate;
