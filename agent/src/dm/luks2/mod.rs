//! LUKS2, natively: luksFormat, luksAddKey, unlock and the dm-crypt table,
//! compatible with cryptsetup 2.6 (Debian 12) and written in pure Rust
//! (RustCrypto argon2, aes + xts-mode, pbkdf2, sha2) for the static agent.
//!
//! Invariants:
//! - Keys (passphrases, key files, volume keys, table lines) live in
//!   `Zeroizing` buffers and have no Debug that prints them.
//! - Formatting validates everything before the first write (see `format`).
//! - Both binary headers carry a sha256 over header + JSON; readers accept the
//!   valid copy with the higher sequence id.

pub mod af;
pub mod area;
pub mod args;
pub mod digest;
pub mod error;
pub mod format;
pub mod header;
pub mod kdf;
pub mod keyslot;
pub mod metadata;
pub mod pbkdf2_sha256;
pub mod read;
pub mod unlock;
pub mod volume_key;

pub use self::args::{parse_extra_args, ExtraArgs};
pub use self::error::Luks2Error;
pub use self::format::{add_keyslot, luks_format, FormatOptions, Formatted};
pub use self::kdf::{Argon2Cost, PbkdfRequest};
pub use self::read::{probe, Header, LuksInfo, ReadAt};
pub use self::unlock::{unlock, unlock_device, OpenOptions, Unlocked};
pub use self::volume_key::VolumeKey;
