//! Extra files written into the installed root (`landfall install
//! --extra-files DIR --chown PATH OWNER --copy-host-keys`): a manifest of
//! directories, regular files and symbolic links, then ownership rules, then
//! the SSH host keys the kexec captured.
//!
//! Invariants:
//! - Nothing is written outside the root. Names are checked as plain
//!   relative paths ([`manifest`]: no absolute name, no `.`/`..`/empty
//!   component); every write walks down from an open descriptor of the root
//!   one component at a time with `O_NOFOLLOW|O_DIRECTORY` ([`beneath`]), so
//!   a symbolic link — one in the manifest, or one already on the disk — is
//!   never followed, whatever its target. Links are written as links, their
//!   text untouched.
//! - The whole request is checked before anything is written: every name,
//!   mode and kind (no device file, fifo or socket can even be expressed),
//!   no entry beneath a manifest entry that is not a directory, no entry
//!   that would have to replace a directory on the disk or go beneath a
//!   non-directory there, every `--chown` owner and group resolved from the
//!   root's own `/etc/passwd` and `/etc/group`, every `--chown` path
//!   present, the host keys present. A request refused there leaves the
//!   disk as it was.
//! - What a failure after that leaves (the stream breaks, the disk is full):
//!   the entries before the failing one are in place, each whole — a file or
//!   link is made under a temporary name in its directory and renamed over
//!   the old one, so a name holds either its old or its new content — the
//!   failing one's temporary is removed, the `--chown` rules and host keys
//!   (applied last) are not applied. A re-run writes everything again.
//! - Everything written is owned by root (uid 0, gid 0); the modes are the
//!   manifest's (permission bits only, ≤ 0o7777). `--chown` runs after the
//!   entries and never follows a link (`lchown` semantics, no descent into a
//!   linked directory).

pub mod beneath;
pub mod chown;
pub mod host_keys;
pub mod owners;
pub mod writer;

/// The manifest checks, shared with the controller (which runs them on
/// `--extra-files DIR` before connecting).
pub use landfall_proto::files_manifest as manifest;

pub use manifest::{Entry, EntryKind, ManifestError};
pub use writer::{FilesError, FilesPlan};
