//! Polling helpers: wait until a condition holds or a call succeeds.

use std::time::{Duration, Instant};

/// How often the helpers poll.
pub const POLL: Duration = Duration::from_millis(100);

/// Calls `condition` until it returns true (then true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Calls `attempt` until it succeeds or `timeout` passes; returns the last result.
pub fn retry_until<T, E>(
    timeout: Duration,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_sees_a_later_truth_and_gives_up() {
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            n += 1;
            n == 3
        }));
        assert!(!wait_until(Duration::from_millis(150), || false));
    }

    #[test]
    fn retry_until_returns_the_last_error() {
        let mut n = 0;
        let r: Result<(), u32> = retry_until(Duration::from_millis(150), || {
            n += 1;
            Err(n)
        });
        assert!(r.unwrap_err() >= 2);
    }
}
