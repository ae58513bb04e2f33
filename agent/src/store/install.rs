//! `StoreInstaller`: the store engine as the service uses it. Paths are
//! unpacked as they arrive and queued; a commit flushes the filesystem
//! (`syncfs`) and then registers the queued paths in one transaction. Only
//! paths this installer verified are ever registered, so a path that failed
//! cannot become valid, and a path is registered only after a `syncfs` that
//! began after its last byte was written.
//! A connection lost before a commit leaves unregistered paths, which
//! [`query_missing`] reports as missing, so the re-run sends them again.
//!
//! Commits run on one registration thread, in order: `commit_in_background`
//! hands a batch over and returns at once (unpacking goes on while the batch
//! is flushed), `commit` waits until every batch handed over is registered.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use landfall_proto::nar::{PathInfo, StorePath};

use super::db::{DbError, NixDb};
use super::missing::query_missing;
use super::profile::{install_system_profile, ProfileError};
use super::unpack::{NarUnpacker, UnpackError, UnpackedPath};

/// Why installing into the store failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Unpacking a path failed (nothing of it was left behind).
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The profile could not be set.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The registration thread could not be started.
    #[error("Cannot start the registration thread")]
    StartCommitter(#[source] io::Error),
    /// The registration thread is gone (it panicked).
    #[error("The registration thread stopped")]
    CommitterGone,
}

type Batch = Vec<PathInfo>;

/// The registration thread: syncfs, then register, one batch at a time.
struct Committer {
    tx: Option<mpsc::SyncSender<Batch>>,
    done: mpsc::Receiver<Result<usize, InstallError>>,
    thread: Option<JoinHandle<()>>,
    in_flight: usize,
}

impl Committer {
    fn start(root: &Path, mut db: NixDb) -> Result<Self, InstallError> {
        let fs = File::open(root).map_err(|e| InstallError::Unpack(UnpackError::Sync(e)))?;
        // One batch queued while one is being flushed: memory stays bounded.
        let (tx, rx) = mpsc::sync_channel::<Batch>(1);
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || {
                for batch in rx {
                    let r = nix::unistd::syncfs(&fs)
                        .map_err(|e| InstallError::Unpack(UnpackError::Sync(e.into())))
                        .and_then(|()| Ok(db.register(&batch)?))
                        .map(|()| batch.len());
                    if done_tx.send(r).is_err() {
                        break;
                    }
                }
            })
            .map_err(InstallError::StartCommitter)?;
        Ok(Self {
            tx: Some(tx),
            done,
            thread: Some(thread),
            in_flight: 0,
        })
    }

    fn submit(&mut self, batch: Batch) -> Result<(), InstallError> {
        let tx = self.tx.as_ref().ok_or(InstallError::CommitterGone)?;
        tx.send(batch).map_err(|_| InstallError::CommitterGone)?;
        self.in_flight += 1;
        Ok(())
    }

    /// Results of the batches already done (without waiting); the first error wins.
    fn collect_ready(&mut self) -> Result<usize, InstallError> {
        let mut n = 0;
        let mut first_err = None;
        while self.in_flight > 0 {
            match self.done.try_recv() {
                Ok(r) => {
                    self.in_flight -= 1;
                    match r {
                        Ok(k) => n += k,
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return Err(InstallError::CommitterGone),
            }
        }
        first_err.map_or(Ok(n), Err)
    }

    /// Waits for every batch handed over; returns how many paths they registered.
    fn wait_all(&mut self) -> Result<usize, InstallError> {
        let mut n = 0;
        let mut first_err = None;
        while self.in_flight > 0 {
            let r = self.done.recv().map_err(|_| InstallError::CommitterGone)?;
            self.in_flight -= 1;
            match r {
                Ok(k) => n += k,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(n), Err)
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Let queued batches finish (they are verified), then stop the thread.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Something that unpacks and verifies one path's NAR and queues it for
/// registration: the installer itself, or a [`PathAdder`] on another thread.
pub trait AddPath {
    /// Unpacks `nar` as `info.path`, verified against `info`, and queues it.
    fn add_path(
        &mut self,
        info: &PathInfo,
        nar: &mut dyn Read,
    ) -> Result<UnpackedPath, InstallError>;
}

/// Adds paths to a [`StoreInstaller`] from another thread (a substitution
/// worker): the same unpacker verifies them, and they are registered at the
/// installer's next commit.
pub struct PathAdder {
    unpacker: Arc<NarUnpacker>,
    verified: mpsc::Sender<PathInfo>,
}

impl AddPath for PathAdder {
    fn add_path(
        &mut self,
        info: &PathInfo,
        nar: &mut dyn Read,
    ) -> Result<UnpackedPath, InstallError> {
        let done = self
            .unpacker
            .unpack(&info.path, &info.nar_hash, info.nar_size, nar)?;
        // The installer gone means the job ended: the path stays unregistered,
        // which query_missing reports as missing.
        let _ = self.verified.send(info.clone());
        Ok(done)
    }
}

impl AddPath for StoreInstaller {
    fn add_path(
        &mut self,
        info: &PathInfo,
        nar: &mut dyn Read,
    ) -> Result<UnpackedPath, InstallError> {
        self.add(info, nar)
    }
}

/// Unpacks, verifies and registers store paths in one root.
///
/// Paths announced with [`StoreInstaller::expect`] may arrive in any order
/// (from the stream and from caches at once): a verified path whose
/// reference is expected but not registered yet waits, so every batch is
/// references-first.
pub struct StoreInstaller {
    root: PathBuf,
    unpacker: Arc<NarUnpacker>,
    committer: Committer,
    pending: Vec<PathInfo>,
    /// Expected in this job and not yet handed to the committer.
    awaited: HashSet<StorePath>,
    verified_tx: mpsc::Sender<PathInfo>,
    verified_rx: mpsc::Receiver<PathInfo>,
}

impl StoreInstaller {
    /// Opens (creating as needed) the root's store directory and database.
    pub fn open(root: &Path) -> Result<Self, InstallError> {
        let unpacker = NarUnpacker::open(root)?;
        let committer = Committer::start(root, NixDb::open(root)?)?;
        let (verified_tx, verified_rx) = mpsc::channel();
        Ok(Self {
            root: root.to_path_buf(),
            unpacker: Arc::new(unpacker),
            committer,
            pending: Vec::new(),
            awaited: HashSet::new(),
            verified_tx,
            verified_rx,
        })
    }

    /// Announces paths this job will add, in any order: a path referring to
    /// one of them is registered only after it.
    pub fn expect<'a>(&mut self, paths: impl IntoIterator<Item = &'a StorePath>) {
        self.awaited.extend(paths.into_iter().cloned());
    }

    /// A handle that adds paths from another thread.
    pub fn adder(&self) -> PathAdder {
        PathAdder {
            unpacker: self.unpacker.clone(),
            verified: self.verified_tx.clone(),
        }
    }

    /// Takes in what the adders verified, then removes from `pending` every
    /// path whose expected references are registered or go first in the
    /// batch, keeping their order.
    fn take_ready(&mut self) -> Batch {
        while let Ok(info) = self.verified_rx.try_recv() {
            self.pending.push(info);
        }
        if self.awaited.is_empty() {
            return std::mem::take(&mut self.pending);
        }
        let mut batch = Vec::new();
        loop {
            let before = batch.len();
            let mut rest = Vec::with_capacity(self.pending.len());
            for info in std::mem::take(&mut self.pending) {
                let ready = info
                    .references
                    .iter()
                    .all(|r| *r == info.path || !self.awaited.contains(r));
                if ready {
                    self.awaited.remove(&info.path);
                    batch.push(info);
                } else {
                    rest.push(info);
                }
            }
            self.pending = rest;
            if batch.len() == before || self.pending.is_empty() {
                return batch;
            }
        }
    }

    /// The paths of `paths` the root does not have yet (valid and on disk).
    pub fn missing(&self, paths: &[StorePath]) -> Result<Vec<StorePath>, InstallError> {
        Ok(query_missing(&self.root, paths)?)
    }

    /// Unpacks one path's NAR (exactly its bytes), verifies it against
    /// `info.nar_hash`/`info.nar_size`, and queues it for registration.
    pub fn add(&mut self, info: &PathInfo, nar: impl Read) -> Result<UnpackedPath, InstallError> {
        let done = self
            .unpacker
            .unpack(&info.path, &info.nar_hash, info.nar_size, nar)?;
        self.pending.push(info.clone());
        Ok(done)
    }

    /// The root the store is written under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Paths unpacked but not handed to registration yet (after a commit:
    /// the ones still waiting for an expected reference).
    pub fn pending(&self) -> &[PathInfo] {
        &self.pending
    }

    /// For a path still waiting after a commit: a reference that never came.
    pub fn first_missing_reference(&self) -> Option<(&StorePath, &StorePath)> {
        self.pending.iter().find_map(|info| {
            info.references
                .iter()
                .find(|r| **r != info.path && self.awaited.contains(*r))
                .map(|r| (&info.path, r))
        })
    }

    /// Hands the queued paths to the registration thread (flush, then one
    /// transaction) and returns without waiting for it, unless a batch is
    /// already waiting there. Reports the failure of an earlier batch, if any.
    /// Send paths references-first, so every reference is valid already or
    /// in the same or an earlier batch.
    pub fn commit_in_background(&mut self) -> Result<(), InstallError> {
        self.committer.collect_ready()?;
        let batch = self.take_ready();
        if !batch.is_empty() {
            self.committer.submit(batch)?;
        }
        Ok(())
    }

    /// Flushes the filesystem, then registers every queued path valid, and
    /// waits for every batch handed over before. Returns how many paths this
    /// call saw registered (including background batches finished since the
    /// last call).
    pub fn commit(&mut self) -> Result<usize, InstallError> {
        let ready = self.committer.collect_ready();
        let batch = self.take_ready();
        if !batch.is_empty() {
            self.committer.submit(batch)?;
        }
        let rest = self.committer.wait_all();
        Ok(ready? + rest?)
    }

    /// Commits, then points the system profile at `toplevel` and creates `/etc/NIXOS`.
    pub fn finish(mut self, toplevel: &StorePath) -> Result<(), InstallError> {
        self.commit()?;
        install_system_profile(&self.root, toplevel)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use landfall_proto::nar::{dump_path, NarHash};
    use sha2::Digest;

    const A: &str = "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-a";
    const B: &str = "/nix/store/1mdqa9w1p6cmli6976v4wi0sw9r4p5pr-b";
    const C: &str = "/nix/store/2mdqa9w1p6cmli6976v4wi0sw9r4p5pr-c";

    fn nar_info(path: &str, refs: &[&str]) -> (PathInfo, Vec<u8>) {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, path.as_bytes()).unwrap();
        let mut nar = Vec::new();
        dump_path(&f, &mut nar).unwrap();
        let info = PathInfo {
            path: StorePath::parse(path).unwrap(),
            nar_hash: NarHash(sha2::Sha256::digest(&nar).into()),
            nar_size: nar.len() as u64,
            references: refs.iter().map(|r| StorePath::parse(r).unwrap()).collect(),
            deriver: None,
            signatures: vec![],
            ca: None,
        };
        (info, nar)
    }

    fn valid(root: &Path, p: &str) -> bool {
        query_missing(root, &[StorePath::parse(p).unwrap()])
            .unwrap()
            .is_empty()
    }

    #[test]
    fn referrers_wait_for_expected_references_from_any_source() {
        let root = tempfile::tempdir().unwrap();
        let (a, nar_a) = nar_info(A, &[]);
        let (b, nar_b) = nar_info(B, &[A, B]);
        let (c, nar_c) = nar_info(C, &[B]);
        let mut installer = StoreInstaller::open(root.path()).unwrap();
        installer.expect([&a.path, &b.path, &c.path]);
        // The referrer first (as a cache worker may deliver it), from another thread.
        let mut adder = installer.adder();
        let c2 = c.clone();
        std::thread::spawn(move || adder.add_path(&c2, &mut &nar_c[..]).map(|_| ()))
            .join()
            .unwrap()
            .unwrap();
        installer.add(&b, &nar_b[..]).unwrap();
        installer.commit().unwrap();
        // Nothing could be registered: both wait for A.
        assert_eq!(installer.pending().len(), 2);
        assert_eq!(
            installer.first_missing_reference().map(|(_, r)| r.as_str()),
            Some(A)
        );
        assert!(!valid(root.path(), B) && !valid(root.path(), C));
        installer.add(&a, &nar_a[..]).unwrap();
        installer.commit().unwrap();
        assert!(installer.pending().is_empty());
        for p in [A, B, C] {
            assert!(valid(root.path(), p), "{p}");
        }
    }
}
