//! PID 1's own log reaches the controller: PID 1 (which does not serve) logs to
//! the console and to a file in /run; the service it supervises tails that file
//! into its log buffer, so `Logs` shows what PID 1 did and what went wrong there
//! (a module that failed to load, a panic in set-up, the service restarted) —
//! lines prefixed `PID 1: `.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::sync::{Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use landfall_proto::v1::LogLine;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Where PID 1 writes its log lines (`LEVEL<TAB>message`, one per line).
pub const PID1_LOG: &str = "/run/landfall-pid1.log";

struct FileLayer(Mutex<std::fs::File>);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S: Subscriber> Layer<S> for FileLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        // One line per event, whatever the message holds.
        let text = m.0.replace(['\n', '\r'], " ⏎ ");
        if let Ok(mut f) = self.0.lock() {
            let _ = writeln!(f, "{}\t{text}", event.metadata().level());
        }
    }
}

/// PID 1's logging: the console (stderr) and [`PID1_LOG`]. Call after /run is mounted.
pub fn init_pid1_logging() {
    let filter = tracing_subscriber::EnvFilter::new("info");
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(PID1_LOG)
        .ok()
        .map(|f| FileLayer(Mutex::new(f)));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(console)
        .with(file)
        .try_init();
}

/// Parses one line of [`PID1_LOG`] into a log line for the buffer.
pub fn parse_line(line: &str, unix_ms: u64) -> Option<LogLine> {
    let line = line.trim_end_matches('\n');
    if line.is_empty() {
        return None;
    }
    let (level, msg) = line.split_once('\t').unwrap_or(("INFO", line));
    Some(LogLine {
        unix_ms,
        level: level.to_string(),
        message: format!("PID 1: {msg}"),
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// In the service under PID 1: copies PID 1's log lines, those already written and
/// every new one, into this process's log buffer (not its console: PID 1 has
/// printed them there already). Starts once per process.
pub fn forward_to_buffer() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("pid1-log".into())
            .spawn(|| {
                let mut pos = 0u64;
                let mut partial = String::new();
                loop {
                    if let Ok(mut f) = std::fs::File::open(PID1_LOG) {
                        if f.seek(SeekFrom::Start(pos)).is_ok() {
                            let mut r = BufReader::new(f);
                            loop {
                                match r.read_line(&mut partial) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => {
                                        pos += n as u64;
                                        if partial.ends_with('\n') {
                                            if let Some(l) = parse_line(&partial, now_ms()) {
                                                crate::logbuf::buffer().push(l);
                                            }
                                            partial.clear();
                                        }
                                    }
                                }
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("Cannot follow PID 1's log: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_prefixed_log_lines() {
        let l = parse_line(
            "WARN\tModule nls_cp437 failed to load (/lib/x.ko): EINVAL\n",
            7,
        )
        .unwrap();
        assert_eq!(l.level, "WARN");
        assert_eq!(
            l.message,
            "PID 1: Module nls_cp437 failed to load (/lib/x.ko): EINVAL"
        );
        assert_eq!(l.unix_ms, 7);
        assert!(parse_line("\n", 0).is_none());
        assert_eq!(parse_line("no tab", 0).unwrap().level, "INFO");
    }
}
