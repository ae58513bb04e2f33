//! `landfall install --extra-files DIR --chown PATH OWNER[:GROUP]
//! --copy-host-keys`: DIR walked and checked on the laptop ([`walk`]), the
//! `--chown` rules parsed ([`chown`]), all before anything reaches the
//! target; then one `PutFiles` stream to the agent ([`send`]), which checks
//! everything again (it trusts no controller) before it writes.
//!
//! Invariants: a DIR that is missing, is a file, or holds a fifo, a socket,
//! a device file, a name that is not UTF-8 or a relative link climbing out
//! of DIR stops the run before evaluation, naming the entry; numeric owners
//! of DIR are not carried (everything lands owned by root); what is sent is
//! what was walked (a file whose size changed since is an error, not a
//! short or long file on the target).

pub mod chown;
pub mod send;
pub mod walk;

pub use chown::parse_chown;
pub use send::{put_files, FilesReport};
pub use walk::{walk, Tree};

/// What the files phase writes, checked and ready.
#[derive(Debug, Clone, Default)]
pub struct ExtraFiles {
    pub tree: Option<Tree>,
    pub chown: Vec<landfall_proto::v1::ChownRule>,
    pub host_keys: bool,
}

impl ExtraFiles {
    /// Checks the command line's `--extra-files`, `--chown` pairs and
    /// `--copy-host-keys`; touches nothing but DIR (read).
    pub fn from_cli(
        extra: Option<&std::path::Path>,
        chown: &[String],
        host_keys: bool,
    ) -> anyhow::Result<ExtraFiles> {
        Ok(ExtraFiles {
            tree: extra.map(walk).transpose()?,
            chown: parse_chown(chown)?,
            host_keys,
        })
    }

    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.tree.is_none() && self.chown.is_empty() && !self.host_keys
    }
}
