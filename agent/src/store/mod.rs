//! The store engine: unpacks NAR streams into `<root>/nix/store` (verified,
//! never following a symlink, nothing left behind on failure), registers
//! validity in the root's Nix database, answers which paths are missing, and
//! sets the system profile; [`substitute`] fetches paths from Nix binary
//! caches into the same verifying unpacker. Plain Rust values in, typed
//! errors out.
//!
//! PutClosure's stream is received by [`receive_closure`] (framing, commit
//! batching, the system profile, syncfs, the cache fetches' events), which
//! drives a [`StoreInstaller`]: `missing` → `add` per path (references
//! first) → `commit` every so often → the system profile.
//! Underneath: [`query_missing`], [`NarUnpacker::unpack`], [`NarUnpacker::sync`],
//! [`NixDb::register`], [`install_system_profile`].

pub mod block_reader;
pub mod db;
mod fsat;
pub mod install;
pub mod missing;
pub mod profile;
pub mod receive;
pub mod space;
pub mod substitute;
pub mod unpack;

pub use block_reader::{Block, BlockDecompressor, BlockReader};
pub use db::{DbError, NixDb};
pub use install::{AddPath, InstallError, PathAdder, StoreInstaller};
pub use missing::{query_missing, query_missing_with};
pub use profile::{install_system_profile, ProfileError};
pub use receive::{receive_closure, ReceiveError};
pub use unpack::{NarUnpacker, UnpackError, UnpackedPath};
