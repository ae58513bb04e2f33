//! The agent's log lines reach stderr — the console, a 115200-baud serial
//! line when the agent is PID 1 — without ever making the caller wait. A
//! tokio worker that logs must not stall behind a slow console: that would
//! stall every request on that worker.
//!
//! Each log line is handed to one writer thread through a bounded queue of
//! [`QUEUE_LINES`] lines. When the queue is full the line is dropped and
//! counted; the writer thread says how many were dropped before its next
//! line. The full log stays in the `Logs` buffer ([`crate::logbuf`]), which
//! does not go through here.
//!
//! Invariant: [`ConsoleWriter`]'s writers never block on the console.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

/// Lines waiting for the console at most.
pub const QUEUE_LINES: usize = 1024;

/// A `tracing_subscriber` writer: each event's bytes are queued for the
/// console thread as one line.
#[derive(Clone)]
pub struct ConsoleWriter {
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl ConsoleWriter {
    /// Writes to stderr from a thread of its own.
    pub fn stderr() -> Self {
        Self::to(Box::new(io::stderr()), QUEUE_LINES)
    }

    /// Writes to `sink` from a thread of its own, queueing `queue` lines at most.
    pub fn to(mut sink: Box<dyn Write + Send>, queue: usize) -> Self {
        let (tx, rx) = sync_channel::<Vec<u8>>(queue);
        let dropped = Arc::new(AtomicU64::new(0));
        let seen = dropped.clone();
        let spawned = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                for line in rx {
                    let lost = seen.swap(0, Ordering::Relaxed);
                    if lost > 0 {
                        let _ = writeln!(
                            sink,
                            "({lost} log lines not shown here: the console was too slow; `landfall logs` has them)"
                        );
                    }
                    let _ = sink.write_all(&line);
                    let _ = sink.flush();
                }
            });
        if spawned.is_err() {
            // No thread: the receiver is gone, every line is counted as dropped.
            dropped.fetch_add(1, Ordering::Relaxed);
        }
        Self { tx, dropped }
    }

    /// Lines dropped since the console thread last said so.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// One event's bytes, queued when dropped.
pub struct QueuedLine {
    buf: Vec<u8>,
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl Write for QueuedLine {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        match self.tx.try_send(std::mem::take(&mut self.buf)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ConsoleWriter {
    type Writer = QueuedLine;
    fn make_writer(&'a self) -> QueuedLine {
        QueuedLine {
            buf: Vec::new(),
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{channel, Receiver};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    use tracing_subscriber::fmt::MakeWriter;

    /// A console that blocks until told to go on, recording what it got.
    struct StuckConsole {
        go: Receiver<()>,
        got: Arc<Mutex<Vec<u8>>>,
        released: bool,
    }

    impl Write for StuckConsole {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if !self.released {
                let _ = self.go.recv();
                self.released = true;
            }
            self.got.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_console_never_blocks_the_logger_and_drops_are_reported() {
        let (go, rx) = channel();
        let got = Arc::new(Mutex::new(Vec::new()));
        let w = ConsoleWriter::to(
            Box::new(StuckConsole {
                go: rx,
                got: got.clone(),
                released: false,
            }),
            8,
        );
        // 10 000 lines against a console that takes none: the logging
        // thread finishes (were it blocked, it would wait for `go` forever).
        let (done, finished) = channel();
        let logger = w.clone();
        std::thread::spawn(move || {
            for i in 0..10_000 {
                let mut line = logger.make_writer();
                writeln!(line, "WARN Refused a connection {i}").unwrap();
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the logger was blocked by the stuck console");
        go.send(()).unwrap();
        // The queue is full until the console thread has taken a line from
        // it; it says how many it lost as it takes the second, so once that
        // note is out there is room for one more line (else the next line
        // would itself be dropped, rightly).
        let deadline = Instant::now() + Duration::from_secs(60);
        while !String::from_utf8_lossy(&got.lock().unwrap()).contains("log lines not shown here") {
            assert!(
                Instant::now() < deadline,
                "the console never said what it dropped"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut line = w.make_writer();
        writeln!(line, "WARN after the flood").unwrap();
        drop(line);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = String::from_utf8_lossy(&got.lock().unwrap()).into_owned();
            if text.contains("after the flood") {
                // Every line is either shown or counted in a note.
                let shown = text.matches("Refused a connection ").count() as u64;
                let counted: u64 = text
                    .lines()
                    .filter_map(|l| l.strip_prefix('('))
                    .filter_map(|l| l.split_once(" log lines not shown here"))
                    .map(|(n, _)| n.parse::<u64>().unwrap())
                    .sum();
                assert_eq!(shown + counted, 10_000, "{text}");
                // The queue held a few; most were dropped, not waited for.
                assert!(shown <= 8 + 1 && counted > 0, "{text}");
                assert!(text.contains("Refused a connection 0\n"), "{text}");
                break;
            }
            assert!(Instant::now() < deadline, "the console got: {text}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
