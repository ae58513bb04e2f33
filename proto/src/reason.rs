//! The machine-readable reason every error of the agent carries.
//!
//! The agent's gRPC statuses say what went wrong twice: the status code says
//! what kind of failure it is to gRPC (INVALID_ARGUMENT, FAILED_PRECONDITION,
//! …), and the message starts with a [`Reason`] and `": "` so that the
//! controller can tell, say, a busy agent from a full disk without reading
//! the human text: `"busy: the agent is already running 'closure' …"`.
//! Both sides use this one list — the agent to write the prefix
//! (`format!("{}: …", Reason::Busy)`), the controller to read it
//! ([`Reason::of`]) — so a reason cannot be spelled two ways.
//!
//! A status without a known reason did not come from the agent's handlers:
//! tonic, hyper or the TLS layer wrote it (a lost connection, a refused
//! handshake).

use std::fmt;

/// Why a request to the agent failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Another long job runs; ask again when it has finished.
    Busy,
    /// A bug or an unexpected state in the agent (a panic is caught as this).
    Internal,
    /// The request is malformed or names something it may not.
    InvalidRequest,
    /// The disk layout does not parse or cannot be planned.
    InvalidLayout,
    /// The plan destroys data and the request did not confirm that plan.
    ConfirmationRequired,
    /// Applying the layout failed on the disks.
    DiskFailed,
    /// The extra files' stream or manifest is invalid.
    InvalidFiles,
    /// A store path failed verification (narHash, narSize, NAR format).
    Rejected,
    /// Writing or registering the store failed.
    StoreFailed,
    /// The store does not fit on the target's disk.
    NoSpace,
    /// The controller went away or its stream broke.
    Aborted,
}

impl Reason {
    /// Every reason, for tests and for [`Reason::of`].
    pub const ALL: [Reason; 11] = [
        Reason::Busy,
        Reason::Internal,
        Reason::InvalidRequest,
        Reason::InvalidLayout,
        Reason::ConfirmationRequired,
        Reason::DiskFailed,
        Reason::InvalidFiles,
        Reason::Rejected,
        Reason::StoreFailed,
        Reason::NoSpace,
        Reason::Aborted,
    ];

    /// The prefix written before `": "` in a status message.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Busy => "busy",
            Reason::Internal => "internal",
            Reason::InvalidRequest => "invalid-request",
            Reason::InvalidLayout => "invalid-layout",
            Reason::ConfirmationRequired => "confirmation-required",
            Reason::DiskFailed => "disk-failed",
            Reason::InvalidFiles => "invalid-files",
            Reason::Rejected => "rejected",
            Reason::StoreFailed => "store-failed",
            Reason::NoSpace => "no-space",
            Reason::Aborted => "aborted",
        }
    }

    /// The reason a status message starts with (`"<reason>: …"`), if any.
    pub fn of(message: &str) -> Option<Reason> {
        let (prefix, _) = message.split_once(": ")?;
        Reason::ALL.into_iter().find(|r| r.as_str() == prefix)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_from_its_prefix() {
        for r in Reason::ALL {
            let msg = format!("{r}: something happened: with a colon");
            assert_eq!(Reason::of(&msg), Some(r), "{msg}");
        }
    }

    #[test]
    fn prefixes_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{r} twice");
        }
    }

    #[test]
    fn messages_without_a_known_reason_have_none() {
        for msg in [
            "",
            "busy",
            "busy:no space",
            "h2 protocol error: error reading a body from connection",
            "transport error: connection refused",
            "Busy: capitalised is not a reason",
            "disk-failed-ish: no",
        ] {
            assert_eq!(Reason::of(msg), None, "{msg:?}");
        }
    }
}
