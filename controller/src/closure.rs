//! Streaming a closure to the agent: ask which paths it lacks, NAR-encode and
//! zstd-compress the missing ones on several threads (so a high-latency link
//! stays full), and send them references-first over one PutClosure stream,
//! showing bytes, paths, rate and ETA.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use landfall_proto::nar::{PathInfo, StorePath};
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::closure_chunk::Kind;
use landfall_proto::v1::{
    ClosureBegin, ClosureChunk, ClosureEnd, JobEvent, PathEnd, QueryMissingRequest, StepState,
    StorePathInfo,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::nix::ClosureSource;

/// Compressed bytes per message.
const CHUNK: usize = 256 << 10;
/// Paths encoded ahead of the one being sent.
const ENCODERS: usize = 3;
/// Chunks buffered per path being encoded.
const CHUNKS_AHEAD: usize = 8;
const ZSTD_LEVEL: i32 = 3;

/// What a transfer did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TransferSummary {
    pub closure_paths: usize,
    pub sent_paths: usize,
    pub nar_bytes: u64,
    pub wire_bytes: u64,
    pub seconds: f64,
    pub agent_summary: String,
}

/// Output style of the progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Bar,
    Json,
}

/// Writes zstd output into a channel in CHUNK-sized messages.
struct ChunkSink {
    tx: std_mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let b = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.tx
                .send(b)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "sender gone"))?;
        }
        Ok(())
    }
}

/// Encodes `paths` on ENCODERS threads; each path's compressed chunks arrive on
/// its own bounded channel, consumed in order by `send`.
fn spawn_encoders(
    closure: Arc<ClosureSource>,
    paths: Vec<PathInfo>,
) -> Vec<std_mpsc::Receiver<Result<Vec<u8>, String>>> {
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in &paths {
        let (tx, rx) = std_mpsc::sync_channel::<Result<Vec<u8>, String>>(CHUNKS_AHEAD);
        senders.push(Some(tx));
        receivers.push(rx);
    }
    let paths = Arc::new(paths);
    let senders = Arc::new(std::sync::Mutex::new(senders));
    for worker in 0..ENCODERS {
        let (closure, paths, senders) = (closure.clone(), paths.clone(), senders.clone());
        std::thread::spawn(move || {
            for i in (worker..paths.len()).step_by(ENCODERS) {
                let Some(tx) = senders.lock().ok().and_then(|mut s| s[i].take()) else {
                    return;
                };
                let (chunk_tx, chunk_rx) = std_mpsc::sync_channel::<Vec<u8>>(CHUNKS_AHEAD);
                let forward = {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for c in chunk_rx {
                            if tx.send(Ok(c)).is_err() {
                                break;
                            }
                        }
                    })
                };
                let result = (|| -> anyhow::Result<()> {
                    let sink = ChunkSink {
                        tx: chunk_tx,
                        buf: Vec::with_capacity(CHUNK),
                    };
                    let mut enc = zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL)?;
                    closure.encode_to(&paths[i], &mut enc)?;
                    let mut sink = enc.finish()?;
                    sink.flush()?;
                    Ok(())
                })();
                let _ = forward.join();
                if let Err(e) = result {
                    let _ = tx.send(Err(format!("{e:#}")));
                    return;
                }
            }
        });
    }
    receivers
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {msg:<16} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// Sends what the agent lacks of `closure` into `root` ("" = the agent's root);
/// with `toplevel`, the agent then points the system profile at it.
pub async fn put_closure(
    client: &mut AgentClient<Channel>,
    closure: ClosureSource,
    toplevel: Option<&StorePath>,
    root: &str,
    progress: Progress,
) -> anyhow::Result<TransferSummary> {
    let start = Instant::now();
    let all: Vec<String> = closure.paths().iter().map(|p| p.path.to_string()).collect();
    let missing = client
        .query_missing(QueryMissingRequest {
            paths: all.clone(),
            root: root.to_string(),
        })
        .await
        .map_err(crate::retry::AgentStatus::from)
        .context("The agent could not say which store paths it lacks")?
        .into_inner()
        .missing;
    let wanted: Vec<StorePath> = missing
        .iter()
        .filter_map(|p| StorePath::parse(p).ok())
        .collect();
    let to_send: Vec<PathInfo> = closure.subset(&wanted).into_iter().cloned().collect();
    let nar_total: u64 = to_send.iter().map(|p| p.nar_size).sum();
    if progress == Progress::Bar {
        eprintln!(
            "Closure: {} paths, {:.1} MiB; the target already has {}; sending {} paths, {:.1} MiB",
            all.len(),
            closure.total_nar_size() as f64 / 1048576.0,
            all.len() - to_send.len(),
            to_send.len(),
            nar_total as f64 / 1048576.0
        );
    }

    let wire = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<ClosureChunk>(16);
    let producer = {
        let closure = Arc::new(closure);
        let to_send = to_send.clone();
        let wire = wire.clone();
        let toplevel = toplevel.map(|t| t.to_string()).unwrap_or_default();
        let root = root.to_string();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let send = |k: Kind| {
                tx.blocking_send(ClosureChunk { kind: Some(k) })
                    .map_err(|_| anyhow::anyhow!("the agent closed the stream"))
            };
            send(Kind::Begin(ClosureBegin {
                root,
                paths: to_send.len() as u32,
                nar_bytes: nar_total,
            }))?;
            let receivers = spawn_encoders(closure, to_send.clone());
            for (info, rx) in to_send.iter().zip(receivers) {
                send(Kind::Path(StorePathInfo::from(info)))?;
                for chunk in rx {
                    let chunk = chunk.map_err(|e| anyhow::anyhow!("{e}"))?;
                    wire.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    send(Kind::Data(chunk))?;
                }
                send(Kind::PathEnd(PathEnd {}))?;
            }
            send(Kind::End(ClosureEnd { toplevel }))?;
            Ok(())
        })
    };

    let bar = match progress {
        Progress::Bar => {
            let b = ProgressBar::new(nar_total).with_style(style());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        }
        _ => ProgressBar::hidden(),
    };
    let mut events = client
        .put_closure(ReceiverStream::new(rx))
        .await
        .map_err(crate::retry::AgentStatus::from)
        .context("The agent refused the closure")?
        .into_inner();
    let mut summary = String::new();
    let mut failure: Option<tonic::Status> = None;
    loop {
        match events.message().await {
            Ok(Some(e)) => {
                if progress == Progress::Json {
                    println!("{}", serde_json::to_string(&e)?);
                }
                handle_event(&bar, &e, to_send.len());
                if e.state == StepState::Done as i32 {
                    summary = e.summary.clone();
                }
            }
            Ok(None) => break,
            Err(s) => {
                failure = Some(s);
                break;
            }
        }
    }
    bar.finish_and_clear();
    let produced = producer.await;
    if let Some(f) = failure {
        return Err(crate::retry::AgentStatus::from(f)).context("The closure transfer failed");
    }
    match produced {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context("Encoding the closure failed")),
        Err(e) => bail!("The closure encoder crashed: {e}"),
    }
    if summary.is_empty() {
        return Err(crate::retry::StreamEndedEarly.into());
    }
    Ok(TransferSummary {
        closure_paths: all.len(),
        sent_paths: to_send.len(),
        nar_bytes: nar_total,
        wire_bytes: wire.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
        agent_summary: summary,
    })
}

fn handle_event(bar: &ProgressBar, e: &JobEvent, total: usize) {
    match StepState::try_from(e.state).unwrap_or(StepState::Unspecified) {
        StepState::Finished => {
            bar.set_position(e.bytes);
            bar.set_message(format!("{}/{} paths", e.index + 1, total));
        }
        StepState::Failed => bar.println(format!("rejected {}: {}", e.description, e.reason)),
        _ => {}
    }
}
