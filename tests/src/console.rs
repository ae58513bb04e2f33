//! Serial console capture and waiting for patterns on it.
//!
//! A [`Console`] owns a reader thread that copies a VM's serial output byte for
//! byte into a log file and, with terminal escape sequences and carriage returns
//! removed, into memory, where [`Console::wait_for`] looks for patterns.
//!
//! Waits are sequential: each search starts where the previous match ended, so
//! `wait_for("login:")` twice needs two prompts. A wait that fails says what it
//! waited for, for how long, where the full log is, and shows the last lines of
//! the console (and of qemu's stderr when the VM exited), so a failing test
//! explains itself.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::escape::EscapeFilter;

/// How many console lines a failed wait shows.
const TAIL_LINES: usize = 40;

/// What to look for on the console: a plain substring or a regular expression.
#[derive(Clone)]
pub enum Pattern {
    /// Matches wherever this exact text appears.
    Substring(String),
    /// Matches a regular expression (over bytes; use `(?m)` for `^`/`$` per
    /// line). It only sees complete lines (output up to the last newline), so
    /// `SERIAL=(\S*)` cannot match a line that is still arriving.
    Regex(regex::bytes::Regex),
}

impl Pattern {
    /// A regular-expression pattern.
    ///
    /// # Panics
    /// When `re` is not a valid regular expression: a mistake in the test itself.
    pub fn regex(re: &str) -> Pattern {
        match regex::bytes::Regex::new(re) {
            Ok(r) => Pattern::Regex(r),
            Err(e) => panic!("invalid console pattern {re:?}: {e}"),
        }
    }

    /// The first match in `hay`: (start, end, capture groups). `more` says
    /// whether output may still arrive (then a regex sees complete lines only).
    fn find(&self, hay: &[u8], more: bool) -> Option<(usize, usize, Vec<Option<String>>)> {
        match self {
            Pattern::Substring(s) => {
                let needle = s.as_bytes();
                if needle.is_empty() {
                    return Some((0, 0, Vec::new()));
                }
                hay.windows(needle.len())
                    .position(|w| w == needle)
                    .map(|start| (start, start + needle.len(), Vec::new()))
            }
            Pattern::Regex(re) if more => {
                // Only complete lines: a match must not stop at a chunk boundary.
                let complete = hay.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                Self::find_regex(re, &hay[..complete])
            }
            Pattern::Regex(re) => Self::find_regex(re, hay),
        }
    }

    fn find_regex(
        re: &regex::bytes::Regex,
        hay: &[u8],
    ) -> Option<(usize, usize, Vec<Option<String>>)> {
        re.captures(hay).map(|caps| {
            let whole = caps.get(0).map_or(0..0, |m| m.range());
            let groups = caps
                .iter()
                .skip(1)
                .map(|g| g.map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned()))
                .collect();
            (whole.start, whole.end, groups)
        })
    }
}

impl From<&str> for Pattern {
    fn from(s: &str) -> Pattern {
        Pattern::Substring(s.to_owned())
    }
}

impl From<String> for Pattern {
    fn from(s: String) -> Pattern {
        Pattern::Substring(s)
    }
}

impl From<&String> for Pattern {
    fn from(s: &String) -> Pattern {
        Pattern::Substring(s.clone())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Substring(s) => write!(f, "{s:?}"),
            Pattern::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// A successful wait.
#[derive(Debug, Clone)]
pub struct Match {
    /// Which of the patterns matched (0 for [`Console::wait_for`]).
    pub index: usize,
    /// The matched text.
    pub text: String,
    /// The whole console line the match ends on.
    pub line: String,
    /// The regular expression's capture groups (group 1 first); empty for substrings.
    pub captures: Vec<Option<String>>,
}

impl Match {
    /// Capture group `n` (1-based, like regex), if it participated.
    pub fn group(&self, n: usize) -> Option<&str> {
        n.checked_sub(1)
            .and_then(|i| self.captures.get(i))
            .and_then(|g| g.as_deref())
    }
}

/// A wait that did not see its pattern.
#[derive(thiserror::Error)]
pub enum WaitError {
    /// The pattern did not appear in time.
    #[error(
        "Timed out after {timeout:?} waiting for {wanted} on the console of {name} \
         (full log: {log})\n--- last console lines ---\n{tail}\n--- end ---"
    )]
    Timeout {
        name: String,
        wanted: String,
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
    /// The console closed (the VM exited) before the pattern appeared.
    #[error(
        "The console of {name} closed (the VM exited) before {wanted} appeared \
         (full log: {log})\n--- last console lines ---\n{tail}\n--- end ---{stderr}"
    )]
    Closed {
        name: String,
        wanted: String,
        log: PathBuf,
        tail: String,
        stderr: String,
    },
}
crate::debug_as_display!(WaitError);

#[derive(Default)]
struct State {
    clean: Vec<u8>,
    closed: bool,
    filter: EscapeFilter,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A captured serial console.
pub struct Console {
    name: String,
    shared: Arc<Shared>,
    cursor: usize,
    log: PathBuf,
    stderr_log: Option<PathBuf>,
    failed: Option<Arc<AtomicBool>>,
    reader: Option<JoinHandle<()>>,
}

impl Console {
    /// Starts copying `source` into `log` and memory on a reader thread.
    ///
    /// With `LANDFALL_CONSOLE=1` in the environment the output is also echoed to
    /// stderr, for watching a VM live (`cargo test -- --nocapture`).
    pub fn capture(
        name: &str,
        mut source: impl Read + Send + 'static,
        log: &Path,
    ) -> io::Result<Console> {
        let mut file = File::create(log)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let echo = std::env::var_os("LANDFALL_CONSOLE").is_some_and(|v| v == "1");
        let thread_shared = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name(format!("console-{name}"))
            .spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    let n = match source.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let chunk = &buf[..n];
                    // The log is best effort: a full disk must not stop the capture.
                    let _ = file.write_all(chunk);
                    let mut state = thread_shared.lock();
                    let State { clean, filter, .. } = &mut *state;
                    let before = clean.len();
                    filter.push(chunk, clean);
                    if echo {
                        let _ = io::stderr().write_all(&clean[before..]);
                    }
                    drop(state);
                    thread_shared.changed.notify_all();
                }
                thread_shared.lock().closed = true;
                thread_shared.changed.notify_all();
            })?;
        Ok(Console {
            name: name.to_owned(),
            shared,
            cursor: 0,
            log: log.to_path_buf(),
            stderr_log: None,
            failed: None,
            reader: Some(reader),
        })
    }

    /// Includes the tail of this file (qemu's stderr) when the console closes early.
    pub fn set_stderr_log(&mut self, path: &Path) {
        self.stderr_log = Some(path.to_path_buf());
    }

    /// A flag set on every failed wait (the owning test folder's "keep me" flag).
    pub fn set_failure_flag(&mut self, flag: Arc<AtomicBool>) {
        self.failed = Some(flag);
    }

    /// The log file holding the raw console output.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until `pattern` appears after the previous match.
    pub fn wait_for(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<Match, WaitError> {
        self.wait_for_any([pattern.into()], timeout)
    }

    /// Waits until any of `patterns` appears; the one appearing first wins.
    pub fn wait_for_any<P: Into<Pattern>>(
        &mut self,
        patterns: impl IntoIterator<Item = P>,
        timeout: Duration,
    ) -> Result<Match, WaitError> {
        let patterns: Vec<Pattern> = patterns.into_iter().map(Into::into).collect();
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(found) = best_match(&patterns, &state.clean, self.cursor, !state.closed) {
                self.cursor = found.1;
                return Ok(found.0);
            }
            if state.closed {
                drop(state);
                return Err(self.fail(&patterns, None));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(state);
                return Err(self.fail(&patterns, Some(timeout)));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Everything captured so far (escape sequences and `\r` removed).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().clean).into_owned()
    }

    /// The last `lines` lines captured so far.
    pub fn tail(&self, lines: usize) -> String {
        tail_lines(&self.output(), lines)
    }

    /// Whether the source has closed (the VM exited).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Waits up to `timeout` for the source to close; true if it did.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while !state.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    fn fail(&self, patterns: &[Pattern], timeout: Option<Duration>) -> WaitError {
        if let Some(flag) = &self.failed {
            flag.store(true, Ordering::SeqCst);
        }
        let wanted = patterns
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        let tail = self.tail(TAIL_LINES);
        let name = self.name.clone();
        let log = self.log.clone();
        match timeout {
            Some(timeout) => WaitError::Timeout {
                name,
                wanted,
                timeout,
                log,
                tail,
            },
            None => {
                // Give qemu a moment to finish writing its last complaint.
                std::thread::sleep(Duration::from_millis(100));
                let stderr = self
                    .stderr_log
                    .as_ref()
                    .and_then(|p| std::fs::read(p).ok())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| format!("\n--- qemu stderr ---\n{}", tail_lines(&s, 20)))
                    .unwrap_or_default();
                WaitError::Closed {
                    name,
                    wanted,
                    log,
                    tail,
                    stderr,
                }
            }
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        // The reader ends when its source closes; the owner kills the VM first.
        // Do not block a drop on a source that is still open.
        if self.is_closed() {
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
        }
    }
}

/// The earliest match of any pattern in `clean[cursor..]` and the new cursor.
fn best_match(
    patterns: &[Pattern],
    clean: &[u8],
    cursor: usize,
    more: bool,
) -> Option<(Match, usize)> {
    let hay = &clean[cursor.min(clean.len())..];
    let (index, (start, end, captures)) = patterns
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.find(hay, more).map(|m| (i, m)))
        .min_by_key(|(i, m)| (m.0, *i))?;
    let line_start = hay[..start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line_end = hay[end..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(hay.len(), |p| end + p);
    let m = Match {
        index,
        text: String::from_utf8_lossy(&hay[start..end]).into_owned(),
        line: String::from_utf8_lossy(&hay[line_start..line_end]).into_owned(),
        captures,
    };
    Some((m, cursor + end))
}

fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn console(text: &'static [u8]) -> (tempfile::TempDir, Console) {
        let dir = tempfile::tempdir().unwrap();
        let c = Console::capture("unit", Cursor::new(text), &dir.path().join("log")).unwrap();
        (dir, c)
    }

    #[test]
    fn waits_are_sequential_and_report_captures() {
        let (dir, mut c) = console(b"boot\nSERIAL=abc-1 ok\nREADY\nREADY\n");
        let m = c
            .wait_for(Pattern::regex(r"SERIAL=(\S+)"), Duration::from_secs(5))
            .unwrap();
        assert_eq!(m.group(1), Some("abc-1"));
        assert_eq!(m.line, "SERIAL=abc-1 ok");
        c.wait_for("READY", Duration::from_secs(5)).unwrap();
        c.wait_for("READY", Duration::from_secs(5)).unwrap();
        let err = c.wait_for("READY", Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, WaitError::Closed { .. }), "{err}");
        assert!(err.to_string().contains("SERIAL=abc-1 ok"), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("log")).unwrap(),
            b"boot\nSERIAL=abc-1 ok\nREADY\nREADY\n"
        );
    }

    #[test]
    fn a_regex_waits_for_the_whole_line() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut c = Console::capture("unit", reader, &dir.path().join("log")).unwrap();
        writer.write_all(b"SERIAL=").unwrap();
        let early = c.wait_for(Pattern::regex(r"SERIAL=(\S*)"), Duration::from_millis(200));
        assert!(matches!(early, Err(WaitError::Timeout { .. })));
        writer.write_all(b"landfall-test-0\n").unwrap();
        let m = c
            .wait_for(Pattern::regex(r"SERIAL=(\S*)"), Duration::from_secs(5))
            .unwrap();
        assert_eq!(m.group(1), Some("landfall-test-0"));
    }

    #[test]
    fn wait_for_any_takes_the_earliest() {
        let (_dir, mut c) = console(b"x Kernel panic y login:");
        let m = c
            .wait_for_any(["login:", "Kernel panic"], Duration::from_secs(5))
            .unwrap();
        assert_eq!((m.index, m.text.as_str()), (1, "Kernel panic"));
    }

    #[test]
    fn timeout_shows_the_tail() {
        let (reader, writer) = std::io::pipe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer;
        w.write_all(b"line one\nline two\n").unwrap();
        let mut c = Console::capture("unit", reader, &dir.path().join("log")).unwrap();
        let err = c.wait_for("never", Duration::from_millis(200)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, WaitError::Timeout { .. }));
        assert!(
            text.contains("\"never\"") && text.contains("line two"),
            "{text}"
        );
        drop(w);
        assert!(c.wait_closed(Duration::from_secs(5)));
    }
}
