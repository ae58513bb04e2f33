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

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
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

/// Unpacks, verifies and registers store paths in one root.
pub struct StoreInstaller {
    root: PathBuf,
    unpacker: NarUnpacker,
    committer: Committer,
    pending: Vec<PathInfo>,
}

impl StoreInstaller {
    /// Opens (creating as needed) the root's store directory and database.
    pub fn open(root: &Path) -> Result<Self, InstallError> {
        let unpacker = NarUnpacker::open(root)?;
        let committer = Committer::start(root, NixDb::open(root)?)?;
        Ok(Self {
            root: root.to_path_buf(),
            unpacker,
            committer,
            pending: Vec::new(),
        })
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

    /// Paths unpacked but not yet registered.
    pub fn pending(&self) -> &[PathInfo] {
        &self.pending
    }

    /// Hands the queued paths to the registration thread (flush, then one
    /// transaction) and returns without waiting for it, unless a batch is
    /// already waiting there. Reports the failure of an earlier batch, if any.
    /// Send paths references-first, so every reference is valid already or
    /// in the same or an earlier batch.
    pub fn commit_in_background(&mut self) -> Result<(), InstallError> {
        self.committer.collect_ready()?;
        if !self.pending.is_empty() {
            self.committer.submit(std::mem::take(&mut self.pending))?;
        }
        Ok(())
    }

    /// Flushes the filesystem, then registers every queued path valid, and
    /// waits for every batch handed over before. Returns how many paths this
    /// call saw registered (including background batches finished since the
    /// last call).
    pub fn commit(&mut self) -> Result<usize, InstallError> {
        let ready = self.committer.collect_ready();
        if !self.pending.is_empty() {
            self.committer.submit(std::mem::take(&mut self.pending))?;
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
