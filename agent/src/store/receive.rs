//! The PutClosure receiver: reads a closure's stream (`begin`, then per path
//! `path` → `raw`/`zstd_block` blocks → `path_end`, then `end`), unpacks and
//! verifies each path with a [`StoreInstaller`], commits registrations in
//! batches, and at `end` sets the system profile and flushes the root
//! (`syncfs`) before it returns the job's summary.
//!
//! One inbox carries the controller's messages and the binary-cache fetch
//! workers' events ([`Input`]), so a worker's event goes out while the loop
//! waits for the stream; the workers themselves are started and cancelled
//! through [`Fetches`]. Memory stays bounded by the inbox, whatever the
//! closure's size.
//!
//! A path's data arrives as blocks, each decompressed on its own into a
//! buffer of at most 1 MiB; never more than its announced narSize + 1 bytes
//! are read, so a compression bomb cannot expand past what the unpacker
//! will reject anyway. On any failure the fetches are cancelled and what
//! verified (streamed or fetched) is registered: a re-run sends only the rest.
//!
//! Failures are a [`ReceiveError`], one variant per step, each with one
//! [`Reason`] ([`ReceiveError::reason`]).

use std::cell::Cell;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use landfall_proto::nar::{PathInfo, StorePath};
use landfall_proto::v1::closure_chunk::Kind;
use landfall_proto::v1::{
    ClosureChunk, JobEvent, StepState, SubstituteConfig, SubstituteFetch, SubstitutePlan,
};
use landfall_proto::Reason;

use super::space::{self, SpaceError};
use super::{Block, BlockDecompressor, BlockReader, InstallError, ProfileError, StoreInstaller};
use crate::steps::error_chain;

/// Commit registrations after this many paths or bytes, so an interrupted
/// transfer keeps what it verified.
const COMMIT_EVERY_PATHS: usize = 64;
const COMMIT_EVERY_BYTES: u64 = 256 << 20;

/// Why receiving a closure failed, by step.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The controller's stream ended before `end`.
    #[error("the controller went away")]
    ControllerGone,
    /// The controller's stream broke (its error's message).
    #[error("the closure stream broke: {0}")]
    StreamBroke(String),
    /// A message without a kind.
    #[error("an empty closure message")]
    EmptyMessage,
    /// The first message is not `begin`.
    #[error("the closure stream must start with `begin`")]
    NoBegin,
    /// Block data, `path_end` or a second `begin` outside a path.
    #[error("closure data outside a path")]
    DataOutsidePath,
    /// `path`, `begin` or `end` before the current path's `path_end`.
    #[error("a new message before the path's end")]
    UnendedPath,
    /// Data after the NAR's end, inside its path.
    #[error("extra data after the NAR of {0}")]
    ExtraData(StorePath),
    /// A path's metadata does not parse (path, narHash, references…).
    #[error("{0}")]
    InvalidPathInfo(String),
    /// The substitution plan names an invalid streamed store path.
    #[error("invalid store path {0:?}")]
    InvalidStreamedPath(String),
    /// The substitution plan has a fetch without its path's info.
    #[error("a fetch without path info")]
    FetchWithoutInfo,
    /// The substitution config is unusable (trusted keys, CA, proxy).
    #[error("{0}")]
    InvalidCacheConfig(String),
    /// The stream asks for fetches where no binary caches can be used.
    #[error("no binary caches here")]
    NoCaches,
    /// A fetch worker thread could not be started.
    #[error("cannot start a fetch worker: {0}")]
    FetchWorker(io::Error),
    /// The store does not fit (checked at `begin`, or the disk filled up).
    #[error(transparent)]
    NoSpace(#[from] SpaceError),
    /// The root's store or database cannot be opened.
    #[error("cannot open the store")]
    OpenStore(#[source] InstallError),
    /// The zstd decoder cannot be set up.
    #[error("zstd: {0}")]
    Zstd(io::Error),
    /// A path failed verification (narHash, narSize, NAR format).
    #[error("{path}")]
    Rejected {
        path: StorePath,
        #[source]
        source: InstallError,
    },
    /// Registering verified paths failed.
    #[error("cannot register paths")]
    Register(#[source] InstallError),
    /// `end` names an invalid toplevel.
    #[error("invalid toplevel {0:?}")]
    InvalidToplevel(String),
    /// At `end`, paths still wait for a reference that was never sent.
    #[error("{waiting} path(s) wait for a reference that never came ({path} refers to {missing})")]
    MissingReference {
        waiting: usize,
        path: StorePath,
        missing: StorePath,
    },
    /// Setting the system profile failed.
    #[error("cannot set the system profile")]
    Profile(#[source] ProfileError),
    /// Flushing the new root to disk failed.
    #[error("cannot flush the new root to disk")]
    Sync(#[source] io::Error),
}

impl ReceiveError {
    /// The reason a status or event for this error carries.
    pub fn reason(&self) -> Reason {
        use ReceiveError::*;
        match self {
            ControllerGone | StreamBroke(_) => Reason::Aborted,
            EmptyMessage
            | NoBegin
            | DataOutsidePath
            | UnendedPath
            | ExtraData(_)
            | InvalidPathInfo(_)
            | InvalidStreamedPath(_)
            | FetchWithoutInfo
            | InvalidCacheConfig(_)
            | NoCaches
            | InvalidToplevel(_)
            | MissingReference { .. } => Reason::InvalidRequest,
            FetchWorker(_) | Zstd(_) => Reason::Internal,
            NoSpace(_) => Reason::NoSpace,
            OpenStore(_) | Register(_) | Profile(_) | Sync(_) => Reason::StoreFailed,
            Rejected { .. } => Reason::Rejected,
        }
    }

    /// `"<reason>: <the error and its causes>"`, as statuses and events carry it.
    pub fn message(&self) -> String {
        format!("{}: {}", self.reason(), error_chain(self))
    }
}

/// What a fetch worker tells the receive loop.
pub enum Fetched {
    /// An event to forward (FINISHED from a cache, or SKIPPED with fallback).
    Event(JobEvent),
    /// A worker has no more paths.
    WorkerDone,
}

/// What the receive loop reads: the controller's messages and the fetch
/// workers' events, in one inbox.
pub enum Input {
    Chunk(ClosureChunk),
    /// The controller's stream broke (its error's message).
    Broken(String),
    /// The controller's stream ended.
    Closed,
    Fetched(Fetched),
}

/// The binary-cache fetch workers of one transfer.
pub trait Fetches {
    /// Starts fetching `fetch` (infos with the cache that offered each) into
    /// adders of `installer`; returns how many workers run. Each worker
    /// sends [`Fetched`] events into the inbox, and one `WorkerDone` last.
    fn start(
        &mut self,
        config: &SubstituteConfig,
        fetch: Vec<(PathInfo, String)>,
        installer: &StoreInstaller,
    ) -> Result<usize, ReceiveError>;
    /// Stops the downloads in flight and the queued ones (each worker then
    /// sends a SKIPPED event per path it had started, and `WorkerDone`).
    fn cancel(&self);
}

/// No binary caches: a plan with fetches is refused.
pub struct NoFetches;

impl Fetches for NoFetches {
    fn start(
        &mut self,
        _: &SubstituteConfig,
        _: Vec<(PathInfo, String)>,
        _: &StoreInstaller,
    ) -> Result<usize, ReceiveError> {
        Err(ReceiveError::NoCaches)
    }
    fn cancel(&self) {}
}

/// The plan's fetch list, parsed.
pub fn parse_fetch(fetch: &[SubstituteFetch]) -> Result<Vec<(PathInfo, String)>, ReceiveError> {
    fetch
        .iter()
        .map(|f| {
            let w = f.info.as_ref().ok_or(ReceiveError::FetchWithoutInfo)?;
            let info =
                PathInfo::try_from(w).map_err(|e| ReceiveError::InvalidPathInfo(e.to_string()))?;
            Ok((info, f.cache.clone()))
        })
        .collect()
}

/// Receives one closure from `inbox` (blocking; `None` when the inbox is
/// closed) into `begin.root`, or `default_root` when that is empty. Events
/// (per path, and the fetch workers') go to `emit`. Returns the job summary.
pub fn receive_closure(
    inbox: &mut dyn FnMut() -> Option<Input>,
    default_root: &Path,
    emit: &mut dyn FnMut(JobEvent),
    fetches: &mut dyn Fetches,
) -> Result<String, ReceiveError> {
    let mut s = Session {
        inbox,
        emit,
        fetches,
        workers_left: 0,
        cached_paths: 0,
        cached_bytes: 0,
    };
    let summary = s.receive(default_root)?;
    Ok(if s.cached_paths == 0 {
        summary
    } else {
        format!(
            "{summary}; from binary caches: {} path(s), {:.1} MiB of NAR",
            s.cached_paths,
            s.cached_bytes as f64 / 1048576.0
        )
    })
}

struct Session<'a> {
    inbox: &'a mut dyn FnMut() -> Option<Input>,
    emit: &'a mut dyn FnMut(JobEvent),
    fetches: &'a mut dyn Fetches,
    workers_left: usize,
    cached_paths: usize,
    cached_bytes: u64,
}

fn kind(m: ClosureChunk) -> Result<Kind, ReceiveError> {
    m.kind.ok_or(ReceiveError::EmptyMessage)
}

impl Session<'_> {
    fn on_event(&mut self, e: JobEvent) {
        if e.source == "cache" && e.state == StepState::Finished as i32 {
            self.cached_paths += 1;
            self.cached_bytes = e.cache_bytes.max(self.cached_bytes);
        }
        (self.emit)(e);
    }

    /// The controller's next message; workers' events met on the way go out.
    fn next(&mut self) -> Result<Kind, ReceiveError> {
        loop {
            match (self.inbox)() {
                Some(Input::Chunk(m)) => return kind(m),
                Some(Input::Broken(why)) => return Err(ReceiveError::StreamBroke(why)),
                Some(Input::Closed) | None => return Err(ReceiveError::ControllerGone),
                Some(Input::Fetched(Fetched::Event(e))) => self.on_event(e),
                Some(Input::Fetched(Fetched::WorkerDone)) => {
                    self.workers_left = self.workers_left.saturating_sub(1)
                }
            }
        }
    }

    /// Returns once every fetch has ended (fetched, or fallen back and its
    /// event sent); with `cancel`, the downloads in flight are stopped first
    /// (the stream broke: free the job slot now, keep what verified).
    fn end_fetches(&mut self, cancel: bool) {
        if cancel {
            self.fetches.cancel();
        }
        while self.workers_left > 0 {
            match (self.inbox)() {
                Some(Input::Fetched(Fetched::Event(e))) => self.on_event(e),
                Some(Input::Fetched(Fetched::WorkerDone)) => self.workers_left -= 1,
                Some(Input::Chunk(_) | Input::Broken(_) | Input::Closed) => {}
                None => break,
            }
        }
    }

    fn start_fetches(
        &mut self,
        plan: &SubstitutePlan,
        installer: &mut StoreInstaller,
    ) -> Result<(), ReceiveError> {
        let fetch = parse_fetch(&plan.fetch)?;
        let streamed = plan
            .streamed
            .iter()
            .map(|p| StorePath::parse(p).map_err(|_| ReceiveError::InvalidStreamedPath(p.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        installer.expect(fetch.iter().map(|(i, _)| &i.path));
        installer.expect(streamed.iter());
        let config = plan.config.clone().unwrap_or_default();
        self.workers_left = self.fetches.start(&config, fetch, installer)?;
        Ok(())
    }

    fn receive(&mut self, default_root: &Path) -> Result<String, ReceiveError> {
        let begin = match self.next()? {
            Kind::Begin(b) => b,
            _ => return Err(ReceiveError::NoBegin),
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
        space::check_room(&root, begin.nar_bytes, begin.paths)?;
        let mut installer = StoreInstaller::open(&root).map_err(ReceiveError::OpenStore)?;
        if let Some(plan) = begin.substitute.as_ref().filter(|p| !p.fetch.is_empty()) {
            self.start_fetches(plan, &mut installer)?;
        }
        let mut blocks = BlockDecompressor::new().map_err(ReceiveError::Zstd)?;
        let start = Instant::now();
        let (mut done, mut bytes, mut since_commit_paths, mut since_commit_bytes) =
            (0u32, 0u64, 0usize, 0u64);
        let result = loop {
            let k = match self.next() {
                Ok(k) => k,
                Err(e) => break Err(e),
            };
            match k {
                Kind::Path(wire) => {
                    let info = match PathInfo::try_from(&wire) {
                        Ok(i) => i,
                        Err(e) => break Err(ReceiveError::InvalidPathInfo(e.to_string())),
                    };
                    let t0 = Instant::now();
                    self.on_event(JobEvent {
                        index: done,
                        total: begin.paths,
                        state: StepState::Started as i32,
                        description: info.path.to_string(),
                        bytes,
                        bytes_total: begin.nar_bytes,
                        ..Default::default()
                    });
                    if let Err(e) = self.receive_path(&mut installer, &info, &mut blocks) {
                        self.on_event(JobEvent {
                            index: done,
                            total: begin.paths,
                            state: StepState::Failed as i32,
                            description: info.path.to_string(),
                            reason: e.message(),
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
                            break Err(ReceiveError::Register(e));
                        }
                        since_commit_paths = 0;
                        since_commit_bytes = 0;
                    }
                    self.on_event(JobEvent {
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
                    self.end_fetches(false);
                    break finish(&root, &mut installer, &end.toplevel).map(|()| {
                        let secs = start.elapsed().as_secs_f64();
                        let mib = bytes as f64 / 1048576.0;
                        format!(
                            "{done} path(s), {mib:.1} MiB of NAR verified and registered in {secs:.1} s ({:.1} MiB/s){}",
                            mib / secs.max(0.001),
                            if end.toplevel.is_empty() {
                                String::new()
                            } else {
                                format!("; system profile → {}", end.toplevel)
                            }
                        )
                    });
                }
                Kind::Begin(_) | Kind::Raw(_) | Kind::ZstdBlock(_) | Kind::PathEnd(_) => {
                    break Err(ReceiveError::DataOutsidePath)
                }
            }
        };
        if result.is_err() {
            // Stop the cache downloads in flight, then keep what was verified
            // (streamed or fetched): a re-run then sends only the rest.
            self.end_fetches(true);
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

    /// Receives one path's data up to `path_end` and installs it: blocks
    /// (`raw`/`zstd_block`, decompressed with `blocks`, reused across paths).
    fn receive_path(
        &mut self,
        installer: &mut StoreInstaller,
        info: &PathInfo,
        blocks: &mut BlockDecompressor,
    ) -> Result<(), ReceiveError> {
        let ended = Cell::new(false);
        let broken: Cell<Option<ReceiveError>> = Cell::new(None);
        let result = {
            let pull = || -> Option<io::Result<Block>> {
                if ended.get() {
                    return None;
                }
                match self.next() {
                    Ok(Kind::Raw(d)) => Some(Ok(Block::Raw(d))),
                    Ok(Kind::ZstdBlock(d)) => Some(Ok(Block::Zstd(d))),
                    Ok(Kind::PathEnd(_)) => {
                        ended.set(true);
                        None
                    }
                    Ok(_) => {
                        broken.set(Some(ReceiveError::UnendedPath));
                        Some(Err(io::Error::other("protocol error")))
                    }
                    Err(e) => {
                        broken.set(Some(e));
                        Some(Err(io::Error::other("stream ended")))
                    }
                }
            };
            let limit = info.nar_size.saturating_add(1);
            installer.add(info, BlockReader::new(blocks, pull).take(limit))
        };
        if let Some(e) = broken.take() {
            return Err(e);
        }
        if let Err(e) = result {
            // Skip the rest of this path's data so the stream stays in step (a re-run resends it).
            while !ended.get() {
                match self.next() {
                    Ok(Kind::Raw(_) | Kind::ZstdBlock(_)) => {}
                    Ok(Kind::PathEnd(_)) => ended.set(true),
                    Ok(_) | Err(_) => break,
                }
            }
            if space::is_out_of_space(&e) {
                return Err(space::disk_full(installer.root(), &info.path, None).into());
            }
            return Err(ReceiveError::Rejected {
                path: info.path.clone(),
                source: e,
            });
        }
        // Anything after the NAR's end inside this path's stream is a protocol error.
        while !ended.get() {
            match self.next()? {
                Kind::Raw(d) if d.is_empty() => {}
                Kind::PathEnd(_) => ended.set(true),
                _ => return Err(ReceiveError::ExtraData(info.path.clone())),
            }
        }
        Ok(())
    }
}

/// At `end`: the final commit, every reference present, the system profile
/// (when `toplevel` is not empty), and the root flushed to disk.
fn finish(root: &Path, installer: &mut StoreInstaller, toplevel: &str) -> Result<(), ReceiveError> {
    let top = if toplevel.is_empty() {
        None
    } else {
        Some(
            StorePath::parse(toplevel)
                .map_err(|_| ReceiveError::InvalidToplevel(toplevel.to_string()))?,
        )
    };
    installer.commit().map_err(ReceiveError::Register)?;
    if let Some((path, missing)) = installer.first_missing_reference() {
        return Err(ReceiveError::MissingReference {
            waiting: installer.pending().len(),
            path: path.clone(),
            missing: missing.clone(),
        });
    }
    if let Some(top) = &top {
        super::install_system_profile(root, top).map_err(ReceiveError::Profile)?;
    }
    // The profile links and /etc/NIXOS are durable before we say done.
    std::fs::File::open(root)
        .and_then(|f| nix::unistd::syncfs(&f).map_err(io::Error::from))
        .map_err(ReceiveError::Sync)
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

    fn m(k: Kind) -> Option<Input> {
        Some(Input::Chunk(ClosureChunk { kind: Some(k) }))
    }

    fn run(
        msgs: Vec<Option<Input>>,
        root: &std::path::Path,
    ) -> (Result<String, ReceiveError>, Vec<JobEvent>) {
        let mut it = msgs.into_iter();
        let mut next = move || it.next().flatten();
        let mut events = Vec::new();
        let r = receive_closure(&mut next, root, &mut |e| events.push(e), &mut NoFetches);
        (r, events)
    }

    fn begin(n: u32) -> Option<Input> {
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
    fn block_msgs(info: StorePathInfo, nar: &[u8]) -> Vec<Option<Input>> {
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
        if let Some(Some(Input::Chunk(ClosureChunk {
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
        let e = r.unwrap_err();
        assert!(matches!(e, ReceiveError::Rejected { .. }), "{e:?}");
        assert_eq!(e.reason(), Reason::Rejected);
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
        assert!(matches!(e, ReceiveError::Rejected { .. }), "{e:?}");
        assert!(e.message().starts_with("rejected: "), "{}", e.message());
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
        let e = r.unwrap_err();
        assert!(matches!(e, ReceiveError::ControllerGone), "{e:?}");
        assert_eq!(e.reason(), Reason::Aborted);
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
        let e = r.unwrap_err();
        assert!(matches!(e, ReceiveError::Rejected { .. }), "{e:?}");
        assert!(missing(root.path(), H1));
    }

    #[test]
    fn hostile_metadata_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let nar = nar_of(b"x");
        let mut i = info(H1, &nar);
        i.path = "/nix/store/../../etc/passwd".into();
        let (r, _) = run(vec![begin(1), m(Kind::Path(i))], root.path());
        let e = r.unwrap_err();
        assert!(matches!(e, ReceiveError::InvalidPathInfo(_)), "{e:?}");
        assert_eq!(e.reason(), Reason::InvalidRequest);
        let (r, _) = run(vec![m(Kind::PathEnd(PathEnd {}))], root.path());
        let e = r.unwrap_err();
        assert!(matches!(e, ReceiveError::NoBegin), "{e:?}");
        assert_eq!(e.reason(), Reason::InvalidRequest);
    }

    /// Stands in for the cache workers: counts starts and cancels; their
    /// events are put in the inbox by the test.
    #[derive(Default)]
    struct FakeFetches {
        started: usize,
        cancelled: Cell<bool>,
    }

    impl Fetches for FakeFetches {
        fn start(
            &mut self,
            _: &SubstituteConfig,
            fetch: Vec<(PathInfo, String)>,
            _: &StoreInstaller,
        ) -> Result<usize, ReceiveError> {
            self.started += fetch.len();
            Ok(1)
        }
        fn cancel(&self) {
            self.cancelled.set(true);
        }
    }

    fn begin_fetching(n: u32, fetched: StorePathInfo) -> Option<Input> {
        m(Kind::Begin(ClosureBegin {
            root: String::new(),
            paths: n,
            nar_bytes: 0,
            substitute: Some(SubstitutePlan {
                config: None,
                fetch: vec![SubstituteFetch {
                    info: Some(fetched),
                    cache: "http://cache.invalid".into(),
                }],
                streamed: vec![],
            }),
        }))
    }

    fn from_cache(state: StepState, cache_bytes: u64) -> Option<Input> {
        Some(Input::Fetched(Fetched::Event(JobEvent {
            state: state as i32,
            description: H2.into(),
            source: "cache".into(),
            cache_bytes,
            ..Default::default()
        })))
    }

    #[test]
    fn cache_events_are_forwarded_waited_for_and_summed_up() {
        let root = tempfile::tempdir().unwrap();
        let nar = nar_of(b"streamed");
        let mut msgs = vec![begin_fetching(2, info(H2, &nar_of(b"cached")))];
        msgs.extend(block_msgs(info(H1, &nar), &nar));
        msgs.push(m(Kind::End(ClosureEnd {
            toplevel: String::new(),
        })));
        // The worker's event and its end arrive only after `end`: the loop waits for them.
        msgs.push(from_cache(StepState::Finished, 3 << 20));
        msgs.push(Some(Input::Fetched(Fetched::WorkerDone)));
        let mut it = msgs.into_iter();
        let mut next = move || it.next().flatten();
        let mut events = Vec::new();
        let mut fetches = FakeFetches::default();
        let summary = receive_closure(
            &mut next,
            root.path(),
            &mut |e| events.push(e),
            &mut fetches,
        )
        .unwrap();
        assert_eq!(fetches.started, 1);
        assert!(!fetches.cancelled.get());
        assert!(summary.starts_with("1 path(s)"), "{summary}");
        assert!(
            summary.ends_with("; from binary caches: 1 path(s), 3.0 MiB of NAR"),
            "{summary}"
        );
        assert!(events.iter().any(|e| e.source == "cache"));
    }

    #[test]
    fn a_broken_stream_cancels_the_fetches_and_forwards_their_fallbacks() {
        let root = tempfile::tempdir().unwrap();
        let msgs = vec![
            begin_fetching(1, info(H2, &nar_of(b"cached"))),
            Some(Input::Broken("connection reset".into())),
            from_cache(StepState::Skipped, 0),
            Some(Input::Fetched(Fetched::WorkerDone)),
        ];
        let mut it = msgs.into_iter();
        let mut next = move || it.next().flatten();
        let mut events = Vec::new();
        let mut fetches = FakeFetches::default();
        let e = receive_closure(
            &mut next,
            root.path(),
            &mut |e| events.push(e),
            &mut fetches,
        )
        .unwrap_err();
        assert!(matches!(e, ReceiveError::StreamBroke(_)), "{e:?}");
        assert_eq!(
            e.message(),
            "aborted: the closure stream broke: connection reset"
        );
        assert!(
            fetches.cancelled.get(),
            "the downloads in flight were not cancelled"
        );
        assert!(events
            .iter()
            .any(|e| e.source == "cache" && e.state == StepState::Skipped as i32));
    }

    #[test]
    fn a_plan_with_fetches_is_refused_without_caches() {
        let root = tempfile::tempdir().unwrap();
        let (r, _) = run(
            vec![begin_fetching(1, info(H2, &nar_of(b"x")))],
            root.path(),
        );
        let e = r.unwrap_err();
        assert!(matches!(e, ReceiveError::NoCaches), "{e:?}");
        assert_eq!(e.message(), "invalid-request: no binary caches here");
    }
}
