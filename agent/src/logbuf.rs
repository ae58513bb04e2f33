//! The agent's log: every line goes to stderr (the console as PID 1; through
//! [`crate::console_writer`], which never blocks the caller and drops lines
//! when the console is too slow) and into a bounded ring buffer with a
//! broadcast channel, which the `Logs` call streams to the controller.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use landfall_proto::v1::LogLine;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

const BACKLOG: usize = 2000;

/// The shared log sink.
pub struct LogBuffer {
    backlog: Mutex<VecDeque<LogLine>>,
    tx: broadcast::Sender<LogLine>,
}

impl LogBuffer {
    /// Adds a line (also what other sources, e.g. PID 1's log, feed in).
    pub fn push(&self, line: LogLine) {
        if let Ok(mut b) = self.backlog.lock() {
            if b.len() == BACKLOG {
                b.pop_front();
            }
            b.push_back(line.clone());
        }
        let _ = self.tx.send(line);
    }

    /// The lines kept so far, oldest first.
    pub fn backlog(&self) -> Vec<LogLine> {
        self.backlog
            .lock()
            .map(|b| b.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// New lines from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.tx.subscribe()
    }
}

/// The process-wide buffer.
pub fn buffer() -> &'static Arc<LogBuffer> {
    static BUF: OnceLock<Arc<LogBuffer>> = OnceLock::new();
    BUF.get_or_init(|| {
        Arc::new(LogBuffer {
            backlog: Mutex::new(VecDeque::new()),
            tx: broadcast::channel(1024).0,
        })
    })
}

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }
}

struct BufferLayer;

impl<S: Subscriber> Layer<S> for BufferLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = MessageVisitor(String::new());
        event.record(&mut v);
        buffer().push(LogLine {
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            level: event.metadata().level().to_string(),
            message: v.0,
        });
    }
}

/// Installs the subscriber: stderr (filtered by LANDFALL_LOG, default info) plus the buffer.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LANDFALL_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,h2=warn,tower=warn,rustls=warn")
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(crate::console_writer::ConsoleWriter::stderr())
                .with_target(false),
        )
        .with(BufferLayer)
        .try_init();
}
