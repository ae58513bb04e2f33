//! QueryMissing and PutClosure: the store engine behind gRPC.
//!
//! The inbound stream is forwarded by an async task into a small bounded
//! channel; a blocking thread pulls from it, decompresses each path's zstd
//! stream (never more than its announced narSize + 1 bytes, so a compression
//! bomb cannot expand past what the unpacker will reject anyway), unpacks and
//! verifies it, and commits registrations in batches. Memory stays bounded by
//! the channel, whatever the closure's size.

use std::cell::Cell;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Instant;

use landfall_proto::nar::{PathInfo, StorePath};
use landfall_proto::v1::closure_chunk::Kind;
use landfall_proto::v1::{
    ClosureChunk, JobEvent, QueryMissingReply, QueryMissingRequest, StepState,
};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::AgentService;
use crate::jobs::{reason, run_blocking, stream_job, Emit};
use crate::store::{ChunkReader, StoreInstaller};

/// Commit registrations after this many paths or bytes, so an interrupted
/// transfer keeps what it verified.
const COMMIT_EVERY_PATHS: usize = 64;
const COMMIT_EVERY_BYTES: u64 = 256 << 20;

fn parse_paths(paths: &[String]) -> Result<Vec<StorePath>, Status> {
    paths
        .iter()
        .map(|p| {
            StorePath::parse(p).map_err(|_| {
                Status::invalid_argument(format!("{}: invalid store path {p:?}", reason::INVALID))
            })
        })
        .collect()
}

fn store_status(what: &str, e: impl std::error::Error) -> Status {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    Status::internal(format!("store-failed: {what}: {msg}"))
}

impl AgentService {
    fn closure_root(&self, root: &str) -> PathBuf {
        if root.is_empty() {
            self.state.root.clone()
        } else {
            PathBuf::from(root)
        }
    }

    pub(super) async fn query_missing_impl(
        &self,
        req: QueryMissingRequest,
    ) -> Result<QueryMissingReply, Status> {
        let root = self.closure_root(&req.root);
        let paths = parse_paths(&req.paths)?;
        run_blocking("query-missing", move || {
            let missing =
                crate::store::query_missing(&root, &paths).map_err(|e| store_status("query", e))?;
            Ok(QueryMissingReply {
                missing: missing.iter().map(|p| p.to_string()).collect(),
            })
        })
        .await?
    }

    pub(super) fn put_closure_impl(
        &self,
        mut inbound: Streaming<ClosureChunk>,
    ) -> Result<tokio_stream::wrappers::ReceiverStream<Result<JobEvent, Status>>, Status> {
        let guard = self.state.jobs.begin("put-closure")?;
        let default_root = self.state.root.clone();
        let (tx, mut rx) = mpsc::channel::<Result<ClosureChunk, Status>>(16);
        tokio::spawn(async move {
            loop {
                let m = inbound.message().await.transpose();
                let Some(m) = m else { break };
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        });
        Ok(stream_job("put-closure", guard, move |emit: Emit<'_>| {
            receive_closure(&mut || rx.blocking_recv(), &default_root, emit)
        }))
    }
}

type Next<'a> = &'a mut dyn FnMut() -> Option<Result<ClosureChunk, Status>>;

fn kind(m: Option<Result<ClosureChunk, Status>>) -> Result<Kind, Status> {
    match m {
        None => Err(Status::aborted("aborted: the controller went away")),
        Some(Err(s)) => Err(Status::aborted(format!(
            "aborted: the closure stream broke: {}",
            s.message()
        ))),
        Some(Ok(ClosureChunk { kind: None })) => Err(Status::invalid_argument(
            "invalid-request: an empty closure message",
        )),
        Some(Ok(ClosureChunk { kind: Some(k) })) => Ok(k),
    }
}

/// The blocking receive loop. Returns the job summary.
fn receive_closure(
    next: Next<'_>,
    default_root: &std::path::Path,
    emit: Emit<'_>,
) -> Result<String, Status> {
    let begin = match kind(next())? {
        Kind::Begin(b) => b,
        _ => {
            return Err(Status::invalid_argument(
                "invalid-request: the closure stream must start with `begin`",
            ))
        }
    };
    let root = if begin.root.is_empty() {
        default_root.to_path_buf()
    } else {
        PathBuf::from(&begin.root)
    };
    tracing::info!(
        "Receiving {} store paths ({} MiB of NAR) into {}",
        begin.paths,
        begin.nar_bytes >> 20,
        root.display()
    );
    let mut installer =
        StoreInstaller::open(&root).map_err(|e| store_status("cannot open the store", e))?;
    let start = Instant::now();
    let (mut done, mut bytes, mut since_commit_paths, mut since_commit_bytes) =
        (0u32, 0u64, 0usize, 0u64);
    let result = loop {
        let k = match kind(next()) {
            Ok(k) => k,
            Err(e) => break Err(e),
        };
        match k {
            Kind::Path(wire) => {
                let info = match PathInfo::try_from(&wire) {
                    Ok(i) => i,
                    Err(e) => {
                        break Err(Status::invalid_argument(format!(
                            "{}: {e}",
                            reason::INVALID
                        )))
                    }
                };
                let t0 = Instant::now();
                emit(JobEvent {
                    index: done,
                    total: begin.paths,
                    state: StepState::Started as i32,
                    description: info.path.to_string(),
                    bytes,
                    bytes_total: begin.nar_bytes,
                    ..Default::default()
                });
                if let Err(e) = receive_path(next, &mut installer, &info) {
                    emit(JobEvent {
                        index: done,
                        total: begin.paths,
                        state: StepState::Failed as i32,
                        description: info.path.to_string(),
                        reason: e.message().to_string(),
                        ..Default::default()
                    });
                    break Err(e);
                }
                done += 1;
                bytes += info.nar_size;
                since_commit_paths += 1;
                since_commit_bytes += info.nar_size;
                if since_commit_paths >= COMMIT_EVERY_PATHS
                    || since_commit_bytes >= COMMIT_EVERY_BYTES
                {
                    if let Err(e) = installer.commit() {
                        break Err(store_status("cannot register paths", e));
                    }
                    since_commit_paths = 0;
                    since_commit_bytes = 0;
                }
                emit(JobEvent {
                    index: done - 1,
                    total: begin.paths,
                    state: StepState::Finished as i32,
                    description: info.path.to_string(),
                    duration_ms: t0.elapsed().as_millis() as u64,
                    bytes,
                    bytes_total: begin.nar_bytes,
                    ..Default::default()
                });
            }
            Kind::End(end) => {
                let finish: Result<(), crate::store::InstallError> = if end.toplevel.is_empty() {
                    installer.commit().map(|_| ())
                } else {
                    match StorePath::parse(&end.toplevel) {
                        Ok(top) => installer.commit().and_then(|_| {
                            crate::store::install_system_profile(&root, &top)
                                .map_err(crate::store::InstallError::from)
                        }),
                        Err(_) => {
                            break Err(Status::invalid_argument(format!(
                                "{}: invalid toplevel {:?}",
                                reason::INVALID,
                                end.toplevel
                            )))
                        }
                    }
                };
                break finish
                    .map_err(|e| store_status("cannot register paths", e))
                    .map(|()| {
                        let secs = start.elapsed().as_secs_f64();
                        format!(
                            "{done} path(s), {:.1} MiB of NAR verified and registered in {secs:.1} s ({:.1} MiB/s){}",
                            bytes as f64 / 1048576.0,
                            bytes as f64 / 1048576.0 / secs.max(0.001),
                            if end.toplevel.is_empty() { String::new() } else { format!("; system profile → {}", end.toplevel) }
                        )
                    });
            }
            Kind::Begin(_) | Kind::Data(_) | Kind::PathEnd(_) => {
                break Err(Status::invalid_argument(
                    "invalid-request: closure data outside a path",
                ))
            }
        }
    };
    if result.is_err() {
        // Keep what was verified: a re-run then sends only the rest.
        match installer.commit() {
            Ok(n) if n > 0 => {
                tracing::info!("Registered the {n} path(s) verified before the failure")
            }
            Ok(_) => {}
            Err(e) => tracing::error!("Cannot register the verified paths: {e}"),
        }
    }
    result
}

/// Receives one path's data chunks up to PathEnd and installs them.
fn receive_path(
    next: Next<'_>,
    installer: &mut StoreInstaller,
    info: &PathInfo,
) -> Result<(), Status> {
    let ended = Cell::new(false);
    let broken: Cell<Option<Status>> = Cell::new(None);
    let result = {
        let chunks = ChunkReader::new(|| {
            if ended.get() {
                return None;
            }
            match kind(next()) {
                Ok(Kind::Data(d)) => Some(Ok(d)),
                Ok(Kind::PathEnd(_)) => {
                    ended.set(true);
                    None
                }
                Ok(_) => {
                    broken.set(Some(Status::invalid_argument(
                        "invalid-request: a new message before the path's end",
                    )));
                    Some(Err(io::Error::other("protocol error")))
                }
                Err(s) => {
                    broken.set(Some(s));
                    Some(Err(io::Error::other("stream ended")))
                }
            }
        });
        let decoder = zstd::stream::read::Decoder::new(chunks)
            .map_err(|e| Status::internal(format!("internal: zstd: {e}")))?;
        installer.add(info, decoder.take(info.nar_size.saturating_add(1)))
    };
    if let Some(s) = broken.take() {
        return Err(s);
    }
    if let Err(e) = result {
        // Skip the rest of this path's data so the stream stays in step (a re-run resends it).
        while !ended.get() {
            match kind(next()) {
                Ok(Kind::Data(_)) => {}
                Ok(Kind::PathEnd(_)) => ended.set(true),
                Ok(_) | Err(_) => break,
            }
        }
        return Err(Status::data_loss(format!(
            "rejected: {}: {}",
            info.path,
            chain(&e)
        )));
    }
    // Anything after the NAR's end inside this path's stream is a protocol error.
    while !ended.get() {
        match kind(next())? {
            Kind::Data(d) if d.is_empty() => {}
            Kind::PathEnd(_) => ended.set(true),
            _ => {
                return Err(Status::invalid_argument(format!(
                    "invalid-request: extra data after the NAR of {}",
                    info.path
                )))
            }
        }
    }
    Ok(())
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}
