//! Streaming a closure to the agent: ask which paths it lacks, NAR-encode the
//! missing ones on several threads (so a high-latency link stays full), cut
//! each NAR into blocks sent zstd-compressed where that pays and raw where it
//! does not (`landfall_proto::nar::block`), and send them references-first
//! over one PutClosure stream, showing bytes, paths, rate and ETA.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use landfall_proto::nar::block::{worth_compressing, NAR_BLOCK, PROBE};
use landfall_proto::nar::{PathInfo, StorePath};
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::closure_chunk::Kind;
use landfall_proto::v1::{
    ClosureBegin, ClosureChunk, ClosureEnd, JobEvent, PathEnd, QueryMissingRequest, StepState,
    StorePathInfo, SubstituteFetch, SubstitutePlan, SubstituteQuery,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::nix::ClosureSource;
use crate::substitute::Substitution;

/// Paths encoded ahead of the one being sent.
const ENCODERS: usize = 3;
/// Blocks buffered per path being encoded.
const BLOCKS_AHEAD: usize = 16;
const ZSTD_LEVEL: i32 = 3;

/// What a transfer did. `sent_paths`/`nar_bytes`/`wire_bytes` count what
/// this laptop streamed (fallbacks included); `cache_*` what the agent
/// fetched from binary caches itself.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TransferSummary {
    pub closure_paths: usize,
    /// Paths the target lacked.
    pub missing_paths: usize,
    pub sent_paths: usize,
    pub nar_bytes: u64,
    pub wire_bytes: u64,
    /// Paths (and their NAR bytes) the agent fetched from caches.
    pub cache_paths: usize,
    pub cache_nar_bytes: u64,
    /// Paths the caches offered but could not deliver: streamed instead.
    pub fallback_paths: usize,
    /// The caches' refusals and unusable caches (why fewer paths came from them).
    pub cache_notes: Vec<String>,
    pub seconds: f64,
    pub agent_summary: String,
}

/// The agent's event stream ended without the final (done) event: the
/// connection broke under it (the retry loop reconnects and resumes).
#[derive(Debug, thiserror::Error)]
#[error("The agent's stream ended before the closure was registered")]
pub struct StreamEndedEarly;

/// Output style of the progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Bar,
    Json,
}

/// One block of a path's NAR, ready to send.
enum Block {
    Raw(Vec<u8>),
    Zstd(Vec<u8>),
}

impl Block {
    fn len(&self) -> usize {
        match self {
            Block::Raw(b) | Block::Zstd(b) => b.len(),
        }
    }
    fn into_kind(self) -> Kind {
        match self {
            Block::Raw(b) => Kind::Raw(b),
            Block::Zstd(b) => Kind::ZstdBlock(b),
        }
    }
}

type BlockResult = Result<Block, String>;

/// Cuts a NAR stream into NAR_BLOCK-sized blocks and sends each compressed
/// when that saves at least 5 %, raw otherwise. Whether to try is decided on
/// the block's first PROBE bytes, so random or already-compressed data costs
/// almost no zstd time on this side and none on the agent's.
struct BlockSink<'c> {
    tx: std_mpsc::SyncSender<BlockResult>,
    zstd: &'c mut zstd::bulk::Compressor<'static>,
    buf: Vec<u8>,
}

impl BlockSink<'_> {
    fn block(&mut self) -> io::Result<Block> {
        let raw = std::mem::replace(&mut self.buf, Vec::with_capacity(NAR_BLOCK));
        let probe = &raw[..raw.len().min(PROBE)];
        if !worth_compressing(probe.len(), self.zstd.compress(probe)?.len()) {
            return Ok(Block::Raw(raw));
        }
        let packed = self.zstd.compress(&raw)?;
        Ok(if worth_compressing(raw.len(), packed.len()) {
            Block::Zstd(packed)
        } else {
            Block::Raw(raw)
        })
    }
}

impl Write for BlockSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(NAR_BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == NAR_BLOCK {
            self.flush()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let block = self.block()?;
            self.tx
                .send(Ok(block))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "sender gone"))?;
        }
        Ok(())
    }
}

/// Encodes `paths` on ENCODERS threads (each with one zstd context for all
/// its paths); each path's blocks arrive on its own bounded channel, consumed
/// in order by `send`.
fn spawn_encoders(
    closure: Arc<ClosureSource>,
    paths: Vec<PathInfo>,
) -> Vec<std_mpsc::Receiver<BlockResult>> {
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in &paths {
        let (tx, rx) = std_mpsc::sync_channel::<BlockResult>(BLOCKS_AHEAD);
        senders.push(Some(tx));
        receivers.push(rx);
    }
    let paths = Arc::new(paths);
    let senders = Arc::new(std::sync::Mutex::new(senders));
    for worker in 0..ENCODERS {
        let (closure, paths, senders) = (closure.clone(), paths.clone(), senders.clone());
        std::thread::spawn(move || {
            let mut zstd = match zstd::bulk::Compressor::new(ZSTD_LEVEL) {
                Ok(z) => z,
                Err(e) => {
                    if let Some(tx) = senders.lock().ok().and_then(|mut s| s[worker].take()) {
                        let _ = tx.send(Err(format!("zstd: {e}")));
                    }
                    return;
                }
            };
            for i in (worker..paths.len()).step_by(ENCODERS) {
                let Some(tx) = senders.lock().ok().and_then(|mut s| s[i].take()) else {
                    return;
                };
                let result = (|| -> anyhow::Result<()> {
                    let mut sink = BlockSink {
                        tx: tx.clone(),
                        zstd: &mut zstd,
                        buf: Vec::with_capacity(NAR_BLOCK),
                    };
                    closure.encode_to(&paths[i], &mut sink)?;
                    sink.flush()?;
                    Ok(())
                })();
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

/// What the caches offered, split from what the laptop streams.
struct Split {
    fetch: Vec<(PathInfo, String)>,
    stream: Vec<PathInfo>,
    notes: Vec<String>,
}

/// Asks the agent which of `missing` the caches serve. A failure of the
/// question (an agent without the call, say) means no substitution.
async fn split_by_source(
    client: &mut AgentClient<Channel>,
    missing: &[PathInfo],
    subst: &Substitution,
) -> Split {
    let mut split = Split {
        fetch: Vec::new(),
        stream: missing.to_vec(),
        notes: Vec::new(),
    };
    if !subst.enabled() || missing.is_empty() {
        return split;
    }
    let reply = client
        .query_substitutes(SubstituteQuery {
            config: Some(subst.config()),
            paths: missing.iter().map(StorePathInfo::from).collect(),
        })
        .await;
    let offers = match reply {
        Ok(r) => r.into_inner(),
        Err(s) => {
            let why = crate::agent_error::AgentError::from(s).to_string();
            eprintln!(
                "The agent cannot use binary caches ({}); sending everything",
                crate::sanitize::line(&why)
            );
            split.notes.push(why);
            return split;
        }
    };
    split.notes.extend(offers.cache_errors.iter().cloned());
    split.notes.extend(offers.refused.iter().cloned());
    let offered: HashMap<String, String> = offers
        .offers
        .into_iter()
        .map(|o| (o.path, o.cache))
        .collect();
    split.stream.clear();
    for info in missing {
        match offered.get(&info.path.to_string()) {
            Some(cache) => split.fetch.push((info.clone(), cache.clone())),
            None => split.stream.push(info.clone()),
        }
    }
    split
}

/// How a fetch the agent made ended.
enum Fetch {
    Done,
    Fallback(String),
}

/// Sends what the agent lacks of `closure` into `root` ("" = the agent's
/// root); with `toplevel`, the agent then points the system profile at it.
/// With binary caches in `subst`, the agent fetches what `subst`'s
/// caches serve while this laptop streams the rest, then streams what the
/// caches failed to deliver.
pub async fn put_closure_with(
    client: &mut AgentClient<Channel>,
    closure: ClosureSource,
    toplevel: Option<&StorePath>,
    root: &str,
    progress: Progress,
    subst: &Substitution,
) -> anyhow::Result<TransferSummary> {
    let start = Instant::now();
    let all: Vec<String> = closure.paths().iter().map(|p| p.path.to_string()).collect();
    let missing = client
        .query_missing(QueryMissingRequest {
            paths: all.clone(),
            // A path already on the target counts only with this narHash.
            nar_hashes: closure
                .paths()
                .iter()
                .map(|p| p.nar_hash.to_string())
                .collect(),
            root: root.to_string(),
        })
        .await
        .map_err(crate::agent_error::AgentError::from)
        .context("The agent could not say which store paths it lacks")?
        .into_inner()
        .missing;
    let wanted: Vec<StorePath> = missing
        .iter()
        .filter_map(|p| StorePath::parse(p).ok())
        .collect();
    let to_install: Vec<PathInfo> = closure.subset(&wanted).into_iter().cloned().collect();
    let nar_total: u64 = to_install.iter().map(|p| p.nar_size).sum();
    let split = split_by_source(client, &to_install, subst).await;
    let fetch_bytes: u64 = split.fetch.iter().map(|(i, _)| i.nar_size).sum();
    if progress == Progress::Bar {
        eprintln!(
            "Closure: {} paths, {:.1} MiB; the target already has {}; {} paths, {:.1} MiB to install: \
             {} ({:.1} MiB) from binary caches, {} from this machine",
            all.len(),
            closure.total_nar_size() as f64 / 1048576.0,
            all.len() - to_install.len(),
            to_install.len(),
            nar_total as f64 / 1048576.0,
            split.fetch.len(),
            fetch_bytes as f64 / 1048576.0,
            split.stream.len(),
        );
        for n in split.notes.iter().take(5) {
            eprintln!("  cache: {}", crate::sanitize::line(n));
        }
        if split.notes.len() > 5 {
            eprintln!("  … and {} more cache notes", split.notes.len() - 5);
        }
    }

    let wire = Arc::new(AtomicU64::new(0));
    let streamed = Arc::new(std::sync::Mutex::new((0usize, 0u64)));
    let (tx, rx) = mpsc::channel::<ClosureChunk>(16);
    let (fetch_tx, fetch_rx) = std_mpsc::channel::<Fetch>();
    let fetch_count = split.fetch.len();
    let producer = {
        let closure = Arc::new(closure);
        let stream = split.stream.clone();
        let by_path: HashMap<String, PathInfo> = split
            .fetch
            .iter()
            .map(|(i, _)| (i.path.to_string(), i.clone()))
            .collect();
        let plan = (fetch_count > 0).then(|| SubstitutePlan {
            config: Some(subst.config()),
            fetch: split
                .fetch
                .iter()
                .map(|(i, c)| SubstituteFetch {
                    info: Some(StorePathInfo::from(i)),
                    cache: c.clone(),
                })
                .collect(),
            streamed: stream.iter().map(|i| i.path.to_string()).collect(),
        });
        let wire = wire.clone();
        let streamed = streamed.clone();
        let toplevel = toplevel.map(|t| t.to_string()).unwrap_or_default();
        let root = root.to_string();
        let paths = to_install.len() as u32;
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let send = |k: Kind| {
                tx.blocking_send(ClosureChunk { kind: Some(k) })
                    .map_err(|_| anyhow::anyhow!("the agent closed the stream"))
            };
            send(Kind::Begin(ClosureBegin {
                root,
                paths,
                nar_bytes: nar_total,
                substitute: plan,
            }))?;
            let send_paths = |infos: Vec<PathInfo>| -> anyhow::Result<()> {
                let receivers = spawn_encoders(closure.clone(), infos.clone());
                for (info, rx) in infos.iter().zip(receivers) {
                    send(Kind::Path(StorePathInfo::from(info)))?;
                    for block in rx {
                        let block = block.map_err(|e| anyhow::anyhow!("{e}"))?;
                        wire.fetch_add(block.len() as u64, Ordering::Relaxed);
                        send(block.into_kind())?;
                    }
                    send(Kind::PathEnd(PathEnd {}))?;
                    if let Ok(mut s) = streamed.lock() {
                        s.0 += 1;
                        s.1 += info.nar_size;
                    }
                }
                Ok(())
            };
            send_paths(stream)?;
            // Then what the caches could not deliver, as each fetch ends.
            for _ in 0..fetch_count {
                match fetch_rx.recv() {
                    Ok(Fetch::Done) => {}
                    Ok(Fetch::Fallback(p)) => {
                        let info = by_path.get(&p).cloned().with_context(|| {
                            format!("the agent fell back on {p}, never offered")
                        })?;
                        send_paths(vec![info])?;
                    }
                    Err(_) => bail!("the agent's events ended before its cache fetches did"),
                }
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
        .map_err(crate::agent_error::AgentError::from)
        .context("The agent refused the closure")?
        .into_inner();
    let mut summary = String::new();
    let mut failure: Option<tonic::Status> = None;
    let mut tally = Tally::default();
    loop {
        match events.message().await {
            Ok(Some(e)) => {
                if progress == Progress::Json {
                    println!("{}", crate::sanitize::json(&e, false)?);
                }
                if e.source == "cache" {
                    let ended = if e.state == StepState::Finished as i32 {
                        tally.cache_paths += 1;
                        tally.cache_bytes = tally.cache_bytes.max(e.cache_bytes);
                        Some(Fetch::Done)
                    } else if e.fallback {
                        tally.fallbacks += 1;
                        Some(Fetch::Fallback(e.description.clone()))
                    } else {
                        None
                    };
                    if let Some(f) = ended {
                        let _ = fetch_tx.send(f);
                    }
                } else if e.state == StepState::Finished as i32 {
                    tally.stream_bytes = e.bytes;
                    tally.stream_paths += 1;
                }
                handle_event(&bar, &e, &tally, to_install.len());
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
    drop(fetch_tx);
    bar.finish_and_clear();
    let produced = producer.await;
    if let Some(f) = failure {
        return Err(crate::agent_error::AgentError::from(f)).context("The closure transfer failed");
    }
    match produced {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context("Encoding the closure failed")),
        Err(e) => bail!("The closure encoder crashed: {e}"),
    }
    if summary.is_empty() {
        return Err(StreamEndedEarly.into());
    }
    let (sent_paths, sent_bytes) = streamed.lock().map(|s| *s).unwrap_or_default();
    Ok(TransferSummary {
        closure_paths: all.len(),
        missing_paths: to_install.len(),
        sent_paths,
        nar_bytes: sent_bytes,
        wire_bytes: wire.load(Ordering::Relaxed),
        cache_paths: tally.cache_paths,
        cache_nar_bytes: tally.cache_bytes,
        fallback_paths: tally.fallbacks,
        cache_notes: split.notes,
        seconds: start.elapsed().as_secs_f64(),
        agent_summary: summary,
    })
}

/// Progress by source, from the agent's events.
#[derive(Default)]
struct Tally {
    stream_paths: usize,
    stream_bytes: u64,
    cache_paths: usize,
    cache_bytes: u64,
    fallbacks: usize,
}

fn handle_event(bar: &ProgressBar, e: &JobEvent, t: &Tally, total: usize) {
    match StepState::try_from(e.state).unwrap_or(StepState::Unspecified) {
        StepState::Finished => {
            bar.set_position(t.stream_bytes + t.cache_bytes);
            let paths = t.stream_paths + t.cache_paths;
            if t.cache_paths > 0 {
                bar.set_message(format!(
                    "{paths}/{total} paths (cache {} MiB, laptop {} MiB)",
                    t.cache_bytes >> 20,
                    t.stream_bytes >> 20
                ));
            } else {
                bar.set_message(format!("{paths}/{total} paths"));
            }
        }
        StepState::Skipped if e.fallback => bar.println(format!(
            "from the laptop instead of the cache: {}: {}",
            crate::sanitize::line(&e.description),
            crate::sanitize::line(&e.reason)
        )),
        StepState::Failed => bar.println(format!(
            "rejected {}: {}",
            crate::sanitize::line(&e.description),
            crate::sanitize::line(&e.reason)
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Incompressible bytes (xorshift64*), without a rand dependency.
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    fn blocks_of(data: &[u8]) -> Vec<Block> {
        let (tx, rx) = std_mpsc::sync_channel(1024);
        let mut zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL).unwrap();
        let mut sink = BlockSink {
            tx,
            zstd: &mut zstd,
            buf: Vec::with_capacity(NAR_BLOCK),
        };
        sink.write_all(data).unwrap();
        sink.flush().unwrap();
        drop(sink);
        rx.into_iter().map(|b| b.unwrap()).collect()
    }

    fn unpack(blocks: &[Block]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in blocks {
            match b {
                Block::Raw(d) => out.extend_from_slice(d),
                Block::Zstd(d) => out.extend(zstd::bulk::decompress(d, NAR_BLOCK).unwrap()),
            }
        }
        out
    }

    #[test]
    fn random_bytes_go_raw_and_text_goes_compressed() {
        let random = noise(NAR_BLOCK * 2 + 100);
        let blocks = blocks_of(&random);
        assert_eq!(blocks.len(), 3);
        assert!(blocks.iter().all(|b| matches!(b, Block::Raw(_))));
        assert!(blocks[..2].iter().all(|b| b.len() == NAR_BLOCK));
        assert_eq!(unpack(&blocks), random);

        let text = b"store path text, quite repetitive. ".repeat(5000);
        let blocks = blocks_of(&text);
        assert!(blocks.iter().all(|b| matches!(b, Block::Zstd(_))));
        assert!(blocks.iter().map(Block::len).sum::<usize>() < text.len() / 10);
        assert_eq!(unpack(&blocks), text);
    }
}
