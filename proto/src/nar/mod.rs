//! The Nix Archive (NAR) format, platform-neutral: a streaming encoder of a
//! filesystem path, a streaming decoder that treats its input as hostile, the
//! NAR hash (SHA-256, printed `sha256:<nix32>`), Nix's base-32, and the store
//! path metadata both sides exchange.
//!
//! Format: every string is a little-endian u64 length, the bytes, and zero
//! padding to 8. A NAR is `nix-archive-1` then one node:
//! `( type regular [executable ""] contents <data> )`,
//! `( type symlink target <target> )`, or
//! `( type directory { entry ( name <name> node <node> ) }* )` with entries
//! sorted by name bytes.

pub mod base32;
pub mod block;
pub mod decode;
pub mod encode;
pub mod hash;
pub mod path_info_json;
pub mod store_path;
pub mod wire;

pub use decode::{DecodeError, Limits, NarDecoder, NarEvent};
pub use encode::{dump_path, hash_path, EncodeError, NarEncoder, NarSummary};
pub use hash::{HashParseError, NarHash, NarHasher};
pub use path_info_json::{parse_path_info_json, PathInfoJsonError};
pub use store_path::{PathInfo, StorePath, StorePathError, STORE_DIR};

#[cfg(test)]
mod tests;
