//! Rate limiting of the "Refused a connection" log lines. Each refused
//! connection used to be one WARN line on the console; a flood of them would
//! fill the serial console and the log buffer. Now, per [`WINDOW`], at most
//! [`PER_KIND`] lines of one kind (the reason, digits aside: ports, counts
//! and times differ between lines of one kind) and [`BURST`] lines in all are
//! written; the rest are counted, and the next line written says how many
//! were left out, so nothing is lost silently and a flood of one kind does
//! not hide a different reason.
//!
//! Invariant: over any window, at most `BURST` lines are allowed; every
//! refusal is either written or counted in a later written line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines written per window at most, in all.
pub const BURST: u32 = 60;
/// Lines of one kind written per window at most.
pub const PER_KIND: u32 = 20;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Window {
    start: Instant,
    written: u32,
    /// Lines written this window, per kind (at most `BURST` kinds).
    kinds: HashMap<String, u32>,
    suppressed: u64,
}

/// The rate limiter; one per server.
#[derive(Debug, Default)]
pub struct RefusalLog {
    window: Mutex<Option<Window>>,
}

/// The kind of a reason: its text without digits, at most 120 bytes.
fn kind_of(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .take(120)
        .collect()
}

impl RefusalLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a refusal for `reason` seen at `now` may be written: `Some(n)`
    /// with the number of refusals left out since the last written line, or
    /// `None` (counted, not written).
    pub fn admit(&self, reason: &str, now: Instant) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let w = w.get_or_insert_with(|| Window {
            start: now,
            written: 0,
            kinds: HashMap::new(),
            suppressed: 0,
        });
        if now.saturating_duration_since(w.start) >= WINDOW {
            w.start = now;
            w.written = 0;
            w.kinds.clear();
        }
        let kind = kind_of(reason);
        let of_kind = w.kinds.get(&kind).copied().unwrap_or(0);
        if w.written >= BURST || of_kind >= PER_KIND {
            w.suppressed += 1;
            return None;
        }
        w.written += 1;
        w.kinds.insert(kind, of_kind + 1);
        Some(std::mem::take(&mut w.suppressed))
    }

    /// Logs `Refused a connection from {peer}: {reason}` at WARN if the rate allows it.
    pub fn refused(&self, peer: impl std::fmt::Display, reason: impl std::fmt::Display) {
        let reason = reason.to_string();
        match self.admit(&reason, Instant::now()) {
            Some(0) => tracing::warn!("Refused a connection from {peer}: {reason}"),
            Some(n) => tracing::warn!(
                "Refused a connection from {peer}: {reason} ({n} more refused connections not logged)"
            ),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSY: &str = "64 connections from this address are already waiting for their TLS session";

    #[test]
    fn a_flood_of_one_kind_writes_a_few_lines_per_window_and_counts_the_rest() {
        let log = RefusalLog::new();
        let t0 = Instant::now();
        let first: Vec<Option<u64>> = (0..1000).map(|_| log.admit(BUSY, t0)).collect();
        assert_eq!(
            first.iter().filter(|a| a.is_some()).count(),
            PER_KIND as usize
        );
        assert!(first[..PER_KIND as usize].iter().all(|a| *a == Some(0)));
        // Still inside the window: nothing more of that kind.
        assert_eq!(
            log.admit(BUSY, t0 + WINDOW - Duration::from_millis(1)),
            None
        );
        // The next window's first line carries the count.
        assert_eq!(
            log.admit(BUSY, t0 + WINDOW),
            Some(1000 - PER_KIND as u64 + 1)
        );
        assert_eq!(log.admit(BUSY, t0 + WINDOW), Some(0));
    }

    #[test]
    fn another_reason_still_gets_through_a_flood() {
        let log = RefusalLog::new();
        let t0 = Instant::now();
        for _ in 0..1000 {
            log.admit(BUSY, t0);
        }
        // Differing only in digits: the same kind, suppressed.
        assert_eq!(log.admit(&BUSY.replace("64", "63"), t0), None);
        // A different reason: written, with the count so far.
        assert_eq!(
            log.admit(
                "TLS handshake failed: invalid peer certificate: UnknownIssuer",
                t0
            ),
            Some(1000 - PER_KIND as u64 + 1)
        );
    }

    #[test]
    fn many_kinds_together_stay_under_the_burst() {
        let log = RefusalLog::new();
        let t0 = Instant::now();
        let written = (0..10_000)
            .filter(|i| {
                log.admit(&format!("reason {}", "x".repeat(i % 500)), t0)
                    .is_some()
            })
            .count();
        assert_eq!(written, BURST as usize);
    }

    #[test]
    fn occasional_refusals_are_all_written() {
        let log = RefusalLog::new();
        let t0 = Instant::now();
        for i in 0..20u64 {
            assert_eq!(log.admit(BUSY, t0 + Duration::from_secs(3 * i)), Some(0));
        }
    }
}
