//! The store engine: unpacks NAR streams into `<root>/nix/store` (verified,
//! never following a symlink, nothing left behind on failure), registers
//! validity in the root's Nix database, answers which paths are missing, and
//! sets the system profile. Plain Rust values in, typed errors out.
//!
//! Order of use for one batch: [`query_missing`] → [`NarUnpacker::unpack`]
//! per path (references first) → [`NarUnpacker::sync`] →
//! [`NixDb::register`] → after the last batch [`install_system_profile`].

pub mod db;
mod fsat;
pub mod missing;
pub mod profile;
pub mod unpack;

pub use db::{DbError, NixDb};
pub use missing::query_missing;
pub use profile::{install_system_profile, ProfileError};
pub use unpack::{NarUnpacker, UnpackError, UnpackedPath};
