//! The open-file limit (RLIMIT_NOFILE). The kernel starts PID 1 with a soft
//! limit of 1024; past it `accept` fails and the agent cannot take the real
//! controller's connection. At start the agent raises the soft limit to the
//! hard one, and, when allowed (root, as PID 1 is), both to [`WANTED`].
//!
//! Invariant: the limit is only ever raised, never lowered.

use std::io;

/// The open-file limit the agent asks for: room for the admission caps
/// ([`crate::admission`]) many times over.
pub const WANTED: u64 = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("Cannot read the open-file limit")]
    Get(#[source] io::Error),
    #[error("Cannot raise the open-file limit to {0}")]
    Set(u64, #[source] io::Error),
}

/// (soft, hard) now.
pub fn nofile() -> Result<(u64, u64), RlimitError> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `struct rlimit` to the pointer, which
    // points at a live, properly aligned local.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if rc != 0 {
        return Err(RlimitError::Get(io::Error::last_os_error()));
    }
    Ok((r.rlim_cur, r.rlim_max))
}

fn set(soft: u64, hard: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the `struct rlimit` behind the pointer,
    // a live local.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The limits to ask for, from the current ones: never lower than now.
pub fn wanted(soft: u64, hard: u64) -> (u64, u64) {
    (soft.max(WANTED), hard.max(WANTED).max(soft))
}

/// Raises the open-file limit; returns the new soft limit. Raising the hard
/// limit needs CAP_SYS_RESOURCE: without it the soft limit goes up to the
/// hard one.
pub fn raise_nofile() -> Result<u64, RlimitError> {
    let (soft, hard) = nofile()?;
    let (want_soft, want_hard) = wanted(soft, hard);
    if set(want_soft, want_hard).is_ok() {
        return Ok(want_soft);
    }
    if soft < hard {
        set(hard, hard).map_err(|e| RlimitError::Set(hard, e))?;
        return Ok(hard);
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wanted_limit_only_ever_goes_up() {
        // The kernel's default for PID 1.
        assert_eq!(wanted(1024, 4096), (WANTED, WANTED));
        // systemd's usual 1024 / 524288.
        assert_eq!(wanted(1024, 524_288), (WANTED, 524_288));
        // Already higher: kept.
        assert_eq!(wanted(1 << 20, 1 << 20), (1 << 20, 1 << 20));
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_least_what_it_was() {
        let (before, _) = nofile().unwrap();
        let after = raise_nofile().unwrap();
        assert!(after >= before);
        assert_eq!(nofile().unwrap().0, after);
    }
}
