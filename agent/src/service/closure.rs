//! QueryMissing and PutClosure: the store engine behind gRPC.
//!
//! The inbound stream is forwarded by an async task into a small bounded
//! channel; a blocking thread pulls from it, decompresses, unpacks and
//! verifies each path, and commits registrations in batches on the installer's
//! registration thread (unpacking goes on meanwhile). Memory stays bounded by
//! the channel, whatever the closure's size.
//!
//! A path's data arrives as blocks (`raw`/`zstd_block`, each decompressed on
//! its own into a buffer of at most 1 MiB); never more than its announced
//! narSize + 1 bytes are read, so a compression bomb cannot expand past what
//! the unpacker will reject anyway.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Instant;

use landfall_proto::nar::{NarHash, PathInfo, StorePath};
use landfall_proto::v1::closure_chunk::Kind;
use landfall_proto::v1::{
    ClosureChunk, JobEvent, QueryMissingReply, QueryMissingRequest, StepState, SubstitutePlan,
};
use tonic::{Status, Streaming};

use super::substitute::{parse_fetch, Fetched, Fetchers};
use super::AgentService;

use crate::disk::error_chain;
use crate::jobs::{forward_inbound, run_blocking, stream_job, Emit, Reason};
use crate::store::{Block, BlockDecompressor, BlockReader, StoreInstaller};

/// Commit registrations after this many paths or bytes, so an interrupted
/// transfer keeps what it verified.
const COMMIT_EVERY_PATHS: usize = 64;
const COMMIT_EVERY_BYTES: u64 = 256 << 20;

fn parse_paths(paths: &[String]) -> Result<Vec<StorePath>, Status> {
    paths
        .iter()
        .map(|p| {
            StorePath::parse(p).map_err(|_| {
                Status::invalid_argument(format!(
                    "{}: invalid store path {p:?}",
                    Reason::InvalidRequest
                ))
            })
        })
        .collect()
}

/// QueryMissing's narHashes: none (an older controller), or one per path.
fn parse_nar_hashes(hashes: &[String], paths: usize) -> Result<Vec<NarHash>, Status> {
    if !hashes.is_empty() && hashes.len() != paths {
        return Err(Status::invalid_argument(format!(
            "{}: {} narHashes for {paths} paths",
            Reason::InvalidRequest,
            hashes.len()
        )));
    }
    hashes
        .iter()
        .map(|h| {
            NarHash::parse(h).map_err(|_| {
                Status::invalid_argument(format!(
                    "{}: invalid narHash {h:?}",
                    Reason::InvalidRequest
                ))
            })
        })
        .collect()
}

fn store_status(what: &str, e: impl std::error::Error) -> Status {
    Status::internal(format!(
        "{}: {what}: {}",
        Reason::StoreFailed,
        error_chain(&e)
    ))
}

/// A store that does not fit: RESOURCE_EXHAUSTED "no-space: …" (final, not retried).
fn no_space(e: crate::store::space::SpaceError) -> Status {
    Status::resource_exhausted(format!("{}: {}", Reason::NoSpace, error_chain(&e)))
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
        // While a transfer runs (or is still winding down after its controller went
        // away) the answer would be stale: the caller asks again once it is done.
        if self.state.jobs.current() == "put-closure" {
            return Err(Status::failed_precondition(format!(
                "{}: a closure transfer is still running on the agent; ask again when it has finished",
                Reason::Busy
            )));
        }
        let root = self.closure_root(&req.root);
        let paths = parse_paths(&req.paths)?;
        let hashes = parse_nar_hashes(&req.nar_hashes, paths.len())?;
        run_blocking("query-missing", move || {
            let missing = crate::store::query_missing_with(&root, &paths, &hashes)
                .map_err(|e| store_status("query", e))?;
            Ok(QueryMissingReply {
                missing: missing.iter().map(|p| p.to_string()).collect(),
            })
        })
        .await?
    }

    pub(super) fn put_closure_impl(
        &self,
        inbound: Streaming<ClosureChunk>,
    ) -> Result<tokio_stream::wrappers::ReceiverStream<Result<JobEvent, Status>>, Status> {
        let guard = self.state.jobs.begin("put-closure")?;
        let default_root = self.state.root.clone();
        let rt = tokio::runtime::Handle::current();
        // One inbox for the controller's messages and the fetch workers' events,
        // so a worker's event goes out while the loop waits for the stream.
        let (tx, rx) = tokio::sync::mpsc::channel::<Input>(64);
        let mut inbound = forward_inbound(inbound);
        let forward = tx.clone();
        tokio::spawn(async move {
            while let Some(m) = inbound.recv().await {
                if forward.send(Input::Chunk(m)).await.is_err() {
                    return;
                }
            }
            let _ = forward.send(Input::Closed).await;
        });
        Ok(stream_job("put-closure", guard, move |emit: Emit<'_>| {
            let emit = RefCell::new(emit);
            let rx = RefCell::new(rx);
            let workers_left = Cell::new(0usize);
            let (cached_paths, cached_bytes) = (Cell::new(0usize), Cell::new(0u64));
            let on_event = |e: JobEvent| {
                if e.source == "cache" && e.state == StepState::Finished as i32 {
                    cached_paths.set(cached_paths.get() + 1);
                    cached_bytes.set(e.cache_bytes.max(cached_bytes.get()));
                }
                (emit.borrow_mut())(e);
            };
            let mut next = || loop {
                match rx.borrow_mut().blocking_recv() {
                    Some(Input::Chunk(m)) => return Some(m),
                    Some(Input::Closed) | None => return None,
                    Some(Input::Fetched(Fetched::Event(e))) => on_event(e),
                    Some(Input::Fetched(Fetched::WorkerDone)) => {
                        workers_left.set(workers_left.get().saturating_sub(1))
                    }
                }
            };
            let fetchers: RefCell<Option<Fetchers>> = RefCell::new(None);
            let mut start = |plan: &SubstitutePlan, installer: &mut StoreInstaller| {
                let fetch = parse_fetch(&plan.fetch)?;
                let streamed = parse_paths(&plan.streamed)?;
                installer.expect(fetch.iter().map(|(i, _)| &i.path));
                installer.expect(streamed.iter());
                let config = plan.config.clone().unwrap_or_default();
                let events = tx.clone();
                let f = Fetchers::start(
                    rt.clone(),
                    &config,
                    fetch,
                    || installer.adder(),
                    move |m| events.blocking_send(Input::Fetched(m)).is_ok(),
                )?;
                tracing::info!(
                    "Fetching {} path(s) ({} MiB of NAR) from binary caches with {} worker(s)",
                    f.paths,
                    f.nar_bytes >> 20,
                    f.workers()
                );
                workers_left.set(f.workers());
                *fetchers.borrow_mut() = Some(f);
                Ok(())
            };
            // Every fetch has ended (fetched, or fallen back and its event sent);
            // with `cancel`, the downloads in flight are stopped first (the
            // stream broke: free the job slot now, keep what verified).
            let mut end_fetches = |cancel: bool| {
                if let (true, Some(f)) = (cancel, fetchers.borrow().as_ref()) {
                    f.cancel();
                }
                while workers_left.get() > 0 {
                    match rx.borrow_mut().blocking_recv() {
                        Some(Input::Fetched(Fetched::Event(e))) => on_event(e),
                        Some(Input::Fetched(Fetched::WorkerDone)) => {
                            workers_left.set(workers_left.get() - 1)
                        }
                        Some(Input::Chunk(_) | Input::Closed) => {}
                        None => break,
                    }
                }
            };
            let result = receive_closure_with(
                &mut next,
                &default_root,
                &mut |e| on_event(e),
                &mut start,
                &mut end_fetches,
            );
            // Workers blocked on a full inbox see it gone and stop.
            drop(rx);
            if let Some(f) = fetchers.into_inner() {
                f.stop();
            }
            let (n, b) = (cached_paths.get(), cached_bytes.get());
            result.map(|s| {
                if n == 0 {
                    s
                } else {
                    format!(
                        "{s}; from binary caches: {n} path(s), {:.1} MiB of NAR",
                        b as f64 / 1048576.0
                    )
                }
            })
        }))
    }
}

/// What the receive loop reads: the controller's messages and the fetch
/// workers' events, in one queue.
enum Input {
    Chunk(Result<ClosureChunk, Status>),
    /// The controller's stream ended.
    Closed,
    Fetched(Fetched),
}

type Next<'a> = &'a mut dyn FnMut() -> Option<Result<ClosureChunk, Status>>;

fn kind(m: Option<Result<ClosureChunk, Status>>) -> Result<Kind, Status> {
    match m {
        None => Err(Status::aborted(format!(
            "{}: the controller went away",
            Reason::Aborted
        ))),
        Some(Err(s)) => Err(Status::aborted(format!(
            "{}: the closure stream broke: {}",
            Reason::Aborted,
            s.message()
        ))),
        Some(Ok(ClosureChunk { kind: None })) => Err(Status::invalid_argument(format!(
            "{}: an empty closure message",
            Reason::InvalidRequest
        ))),
        Some(Ok(ClosureChunk { kind: Some(k) })) => Ok(k),
    }
}

type StartFetches<'a> =
    &'a mut dyn FnMut(&SubstitutePlan, &mut StoreInstaller) -> Result<(), Status>;

/// The blocking receive loop, without binary caches (tests).
#[cfg(test)]
fn receive_closure(
    next: Next<'_>,
    default_root: &std::path::Path,
    emit: Emit<'_>,
) -> Result<String, Status> {
    receive_closure_with(
        next,
        default_root,
        emit,
        &mut |_, _| {
            Err(Status::invalid_argument(format!(
                "{}: no binary caches here",
                Reason::InvalidRequest
            )))
        },
        &mut |_| {},
    )
}

/// The blocking receive loop. `start` begins the fetches of
/// `begin.substitute`; `end_fetches(cancel)` returns once every fetch has
/// ended (called at `end` before the final commit, and with `cancel` after a
/// failure, before what verified is committed). Returns the job summary.
fn receive_closure_with(
    next: Next<'_>,
    default_root: &std::path::Path,
    emit: Emit<'_>,
    start_fetches: StartFetches<'_>,
    end_fetches: &mut dyn FnMut(bool),
) -> Result<String, Status> {
    let begin = match kind(next())? {
        Kind::Begin(b) => b,
        _ => {
            return Err(Status::invalid_argument(format!(
                "{}: the closure stream must start with `begin`",
                Reason::InvalidRequest
            )))
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
    crate::store::space::check_room(&root, begin.nar_bytes, begin.paths).map_err(no_space)?;
    let mut installer =
        StoreInstaller::open(&root).map_err(|e| store_status("cannot open the store", e))?;
    if let Some(plan) = begin.substitute.as_ref().filter(|p| !p.fetch.is_empty()) {
        start_fetches(plan, &mut installer)?;
    }
    let mut blocks = BlockDecompressor::new()
        .map_err(|e| Status::internal(format!("{}: zstd: {e}", Reason::Internal)))?;
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
                            Reason::InvalidRequest
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
                if let Err(e) = receive_path(next, &mut installer, &info, &mut blocks) {
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
                    if let Err(e) = installer.commit_in_background() {
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
                end_fetches(false);
                let top = if end.toplevel.is_empty() {
                    None
                } else {
                    match StorePath::parse(&end.toplevel) {
                        Ok(top) => Some(top),
                        Err(_) => {
                            break Err(Status::invalid_argument(format!(
                                "{}: invalid toplevel {:?}",
                                Reason::InvalidRequest,
                                end.toplevel
                            )))
                        }
                    }
                };
                let finish = installer
                    .commit()
                    .map_err(|e| store_status("cannot register paths", e))
                    .and_then(|_| match installer.first_missing_reference() {
                        None => Ok(()),
                        Some((path, missing)) => Err(Status::failed_precondition(format!(
                            "{}: {} path(s) wait for a reference that never came ({path} refers to {missing})",
                            Reason::InvalidRequest,
                            installer.pending().len()
                        ))),
                    })
                    .and_then(|()| match &top {
                        None => Ok(()),
                        Some(top) => crate::store::install_system_profile(&root, top)
                            .map_err(|e| store_status("cannot set the system profile", e)),
                    })
                    .and_then(|()| {
                        // The profile links and /etc/NIXOS are durable before we say done.
                        std::fs::File::open(&root)
                            .and_then(|f| nix::unistd::syncfs(&f).map_err(io::Error::from))
                            .map_err(|e| store_status("cannot flush the new root to disk", e))
                    });
                break finish
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
            Kind::Begin(_) | Kind::Raw(_) | Kind::ZstdBlock(_) | Kind::PathEnd(_) => {
                break Err(Status::invalid_argument(format!(
                    "{}: closure data outside a path",
                    Reason::InvalidRequest
                )))
            }
        }
    };
    if result.is_err() {
        // Stop the cache downloads in flight, then keep what was verified
        // (streamed or fetched): a re-run then sends only the rest.
        end_fetches(true);
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

/// Receives one path's data up to PathEnd and installs it: blocks
/// (`raw`/`zstd_block`, decompressed with `blocks`, reused across paths).
fn receive_path(
    next: Next<'_>,
    installer: &mut StoreInstaller,
    info: &PathInfo,
    blocks: &mut BlockDecompressor,
) -> Result<(), Status> {
    let ended = Cell::new(false);
    let broken: Cell<Option<Status>> = Cell::new(None);
    let result = {
        let pull = || -> Option<io::Result<Block>> {
            if ended.get() {
                return None;
            }
            let k = kind(next());
            let protocol = |what: &str| {
                broken.set(Some(Status::invalid_argument(format!(
                    "{}: {what}",
                    Reason::InvalidRequest
                ))));
                Some(Err(io::Error::other("protocol error")))
            };
            match k {
                Ok(Kind::Raw(d)) => Some(Ok(Block::Raw(d))),
                Ok(Kind::ZstdBlock(d)) => Some(Ok(Block::Zstd(d))),
                Ok(Kind::PathEnd(_)) => {
                    ended.set(true);
                    None
                }
                Ok(_) => protocol("a new message before the path's end"),
                Err(s) => {
                    broken.set(Some(s));
                    Some(Err(io::Error::other("stream ended")))
                }
            }
        };
        let limit = info.nar_size.saturating_add(1);
        installer.add(info, BlockReader::new(blocks, pull).take(limit))
    };
    if let Some(s) = broken.take() {
        return Err(s);
    }
    if let Err(e) = result {
        // Skip the rest of this path's data so the stream stays in step (a re-run resends it).
        while !ended.get() {
            match kind(next()) {
                Ok(Kind::Raw(_) | Kind::ZstdBlock(_)) => {}
                Ok(Kind::PathEnd(_)) => ended.set(true),
                Ok(_) | Err(_) => break,
            }
        }
        if crate::store::space::is_out_of_space(&e) {
            let full = crate::store::space::disk_full(installer.root(), &info.path, None);
            return Err(no_space(full));
        }
        return Err(Status::data_loss(format!(
            "{}: {}: {}",
            Reason::Rejected,
            info.path,
            error_chain(&e)
        )));
    }
    // Anything after the NAR's end inside this path's stream is a protocol error.
    while !ended.get() {
        match kind(next())? {
            Kind::Raw(d) if d.is_empty() => {}
            Kind::PathEnd(_) => ended.set(true),
            _ => {
                return Err(Status::invalid_argument(format!(
                    "{}: extra data after the NAR of {}",
                    Reason::InvalidRequest,
                    info.path
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use landfall_proto::nar::{dump_path, NarHash};
    use landfall_proto::v1::{ClosureBegin, ClosureEnd, PathEnd, StorePathInfo};

    const H1: &str = "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-first";
    const H2: &str = "/nix/store/1mdqa9w1p6cmli6976v4wi0sw9r4p5pr-second";

    fn nar_of(content: &[u8]) -> Vec<u8> {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, content).unwrap();
        let mut nar = Vec::new();
        dump_path(&f, &mut nar).unwrap();
        nar
    }

    fn info(path: &str, nar: &[u8]) -> StorePathInfo {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(nar).into();
        StorePathInfo {
            path: path.into(),
            nar_hash: NarHash(digest).to_nix32(),
            nar_size: nar.len() as u64,
            ..Default::default()
        }
    }

    fn m(k: Kind) -> Option<Result<ClosureChunk, Status>> {
        Some(Ok(ClosureChunk { kind: Some(k) }))
    }

    fn run(
        msgs: Vec<Option<Result<ClosureChunk, Status>>>,
        root: &std::path::Path,
    ) -> (Result<String, Status>, Vec<JobEvent>) {
        let mut it = msgs.into_iter();
        let mut next = move || it.next().flatten();
        let mut events = Vec::new();
        let r = receive_closure(&mut next, root, &mut |e| events.push(e));
        (r, events)
    }

    fn begin(n: u32) -> Option<Result<ClosureChunk, Status>> {
        m(Kind::Begin(ClosureBegin {
            root: String::new(),
            paths: n,
            nar_bytes: 0,
            substitute: None,
        }))
    }

    fn missing(root: &std::path::Path, p: &str) -> bool {
        !crate::store::query_missing(root, &[StorePath::parse(p).unwrap()])
            .unwrap()
            .is_empty()
    }

    #[test]
    fn good_paths_are_unpacked_and_registered() {
        let root = tempfile::tempdir().unwrap();
        let nar = nar_of(b"hello");
        let mut msgs = vec![begin(1)];
        msgs.extend(block_msgs(info(H1, &nar), &nar));
        msgs.push(m(Kind::End(ClosureEnd {
            toplevel: String::new(),
        })));
        let (r, events) = run(msgs, root.path());
        assert!(r.unwrap().starts_with("1 path(s)"));
        assert!(events.iter().any(|e| e.state == StepState::Finished as i32));
        assert!(!missing(root.path(), H1));
    }

    /// The block format: the NAR cut in pieces, alternately raw and zstd frames.
    fn block_msgs(info: StorePathInfo, nar: &[u8]) -> Vec<Option<Result<ClosureChunk, Status>>> {
        let mut v = vec![m(Kind::Path(info))];
        for (i, c) in nar.chunks(300).enumerate() {
            v.push(m(if i % 2 == 0 {
                Kind::Raw(c.to_vec())
            } else {
                Kind::ZstdBlock(zstd::bulk::compress(c, 3).unwrap())
            }));
        }
        v.push(m(Kind::PathEnd(PathEnd {})));
        v
    }

    #[test]
    fn paths_in_the_block_format_are_unpacked_and_registered() {
        let root = tempfile::tempdir().unwrap();
        let first = nar_of(&vec![b'a'; 5000]);
        let second = nar_of(b"second");
        let mut msgs = vec![begin(2)];
        msgs.extend(block_msgs(info(H1, &first), &first));
        msgs.extend(block_msgs(info(H2, &second), &second));
        msgs.push(m(Kind::End(ClosureEnd {
            toplevel: String::new(),
        })));
        let (r, _) = run(msgs, root.path());
        assert!(r.unwrap().starts_with("2 path(s)"));
        assert!(!missing(root.path(), H1));
        assert!(!missing(root.path(), H2));
        assert_eq!(
            std::fs::read(root.path().join(&H1[1..])).unwrap(),
            vec![b'a'; 5000]
        );
    }

    #[test]
    fn a_tampered_raw_block_is_rejected() {
        let root = tempfile::tempdir().unwrap();
        let nar = nar_of(&vec![b'a'; 5000]);
        let mut msgs = block_msgs(info(H1, &nar), &nar);
        if let Some(Some(Ok(ClosureChunk {
            kind: Some(Kind::Raw(d)),
        }))) = msgs.get_mut(3)
        {
            d[10] ^= 1;
        } else {
            panic!("expected a raw block");
        }
        let mut all = vec![begin(1)];
        all.extend(msgs);
        let (r, _) = run(all, root.path());
        assert_eq!(r.unwrap_err().code(), tonic::Code::DataLoss);
        assert!(missing(root.path(), H1));
        assert!(!root.path().join(&H1[1..]).exists());
    }

    #[test]
    fn a_byte_tampered_in_flight_is_rejected_and_earlier_paths_are_kept() {
        let root = tempfile::tempdir().unwrap();
        let good = nar_of(b"good");
        let bad = nar_of(b"tampered later");
        let mut tampered = bad.clone();
        let at = tampered.len() - 20;
        tampered[at] ^= 0x01;
        let mut msgs = vec![begin(2)];
        msgs.extend(block_msgs(info(H1, &good), &good));
        msgs.extend(block_msgs(info(H2, &bad), &tampered));
        msgs.push(m(Kind::End(ClosureEnd {
            toplevel: String::new(),
        })));
        let (r, events) = run(msgs, root.path());
        let e = r.unwrap_err();
        assert_eq!(e.code(), tonic::Code::DataLoss);
        assert!(e.message().contains(H2), "{}", e.message());
        assert!(events.iter().any(|e| e.state == StepState::Failed as i32));
        assert!(!missing(root.path(), H1), "the verified path was not kept");
        assert!(missing(root.path(), H2));
        assert!(
            !root.path().join(&H2[1..]).exists(),
            "the rejected path left files behind"
        );
    }

    #[test]
    fn a_stream_cut_mid_path_keeps_what_was_verified() {
        let root = tempfile::tempdir().unwrap();
        let good = nar_of(b"good");
        let second = nar_of(&vec![7u8; 100_000]);
        let mut msgs = vec![begin(2)];
        msgs.extend(block_msgs(info(H1, &good), &good));
        let mut cut = block_msgs(info(H2, &second), &second);
        cut.truncate(2);
        msgs.extend(cut);
        let (r, _) = run(msgs, root.path());
        assert_eq!(r.unwrap_err().code(), tonic::Code::Aborted);
        assert!(!missing(root.path(), H1));
        assert!(missing(root.path(), H2));
    }

    #[test]
    fn a_compression_bomb_is_cut_at_the_announced_size() {
        let root = tempfile::tempdir().unwrap();
        let small = nar_of(b"x");
        // 64 blocks of 1 MiB of zeros, a few KiB on the wire; the path claims a tiny NAR.
        let frame = zstd::bulk::compress(
            &vec![0u8; landfall_proto::nar::block::MAX_BLOCK_DECOMPRESSED],
            19,
        )
        .unwrap();
        assert!(frame.len() < 4 << 10);
        let mut msgs = vec![begin(1), m(Kind::Path(info(H1, &small)))];
        msgs.extend((0..64).map(|_| m(Kind::ZstdBlock(frame.clone()))));
        msgs.push(m(Kind::PathEnd(PathEnd {})));
        let (r, _) = run(msgs, root.path());
        assert_eq!(r.unwrap_err().code(), tonic::Code::DataLoss);
        assert!(missing(root.path(), H1));
    }

    #[test]
    fn hostile_metadata_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let nar = nar_of(b"x");
        let mut i = info(H1, &nar);
        i.path = "/nix/store/../../etc/passwd".into();
        let (r, _) = run(vec![begin(1), m(Kind::Path(i))], root.path());
        assert_eq!(r.unwrap_err().code(), tonic::Code::InvalidArgument);
        let (r, _) = run(vec![m(Kind::PathEnd(PathEnd {}))], root.path());
        assert_eq!(r.unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
