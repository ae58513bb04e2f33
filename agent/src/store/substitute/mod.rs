//! The substituter: the agent fetches store paths from a Nix binary cache
//! itself (issue 19), verified as strictly as the closure the controller
//! streams.
//!
//! A path is taken from a cache only when
//! - the cache's `nix-cache-info` says `StoreDir: /nix/store`;
//! - its `<hash>.narinfo` parses ([`NarInfo::parse`]) and carries a valid
//!   ed25519 `Sig` by a key of the trusted list ([`TrustedKeys`]) over Nix's
//!   fingerprint `1;<path>;<narHash>;<narSize>;<references>`;
//! - `StorePath`, `NarHash`, `NarSize`, `References` (and `Deriver`/`CA` when
//!   both sides name one) equal what the caller expects, i.e. what the
//!   controller announced: a mismatch is [`SubstituteError::Mismatch`] naming
//!   the field;
//! - the NAR at `URL`, decompressed in a stream (`xz`, `zstd`, `bzip2`,
//!   `none`; any other compression is refused by name), goes through the same
//!   [`StoreInstaller::add`] as the controller's stream: narHash and narSize
//!   are checked before the path is queued for registration, and a failed
//!   path leaves nothing behind.
//!
//! What is registered is the caller's path info with the narinfo's `Sig`
//! lines added. `FileHash`/`FileSize` are not checked: they are not signed,
//! the NAR hash is.
//!
//! bzip2 (Nix's default when a narinfo has no `Compression` line, and what
//! older caches hold) is decoded by the `bzip2` crate on its default backend,
//! `libbz2-rs-sys`: libbzip2 1.0.8 ported to Rust by the Trifecta Tech
//! Foundation and tested against the C library. Being Rust, it builds into
//! the static musl agent with no C toolchain and no system libbz2 (the
//! `bzip2-sys` backend would need `cc` for musl), and it keeps memory flat: a
//! decoder holds one bzip2 block (at most 900 kB, about 3.6 MB of tables).
//!
//! Memory is flat: the body goes through a bounded channel of a few chunks,
//! xz through a bounded pipe, and the unpacker writes as it reads.
//!
//! A fetch can be cancelled ([`Cancel`], [`Substituter::fetch_into_cancellable`]):
//! the download stops at once (also while waiting for the server), the
//! decoder and the unpacker see an error, and the fetch ends with
//! [`SubstituteError::Cancelled`], nothing of the path left behind. PutClosure
//! cancels its fetches when the controller's stream ends or breaks, so the job
//! slot is free for the controller's resume.
//!
//! Use: [`Substituter::new`] → [`Substituter::cache_info`] once →
//! [`Substituter::query`] per path (async; `Ok(None)` when the cache lacks
//! it) → [`Substituter::fetch_into`] (blocking, from a blocking thread, with
//! the runtime's handle) → the installer's `commit` as for streamed paths.
//!
//! # Where it is used
//! - **RPC** (`service::substitute`): `QuerySubstitutes` answers which
//!   missing paths the caches serve (caches in `nix-cache-info` priority
//!   order, 8 narinfos in flight); PutClosure's `begin.substitute` makes 4
//!   workers fetch them into the same installer while the controller's
//!   stream is received. The installer registers references first whatever
//!   the arrival order ([`super::StoreInstaller::expect`]).
//! - **Fallback**: every [`SubstituteError`] of a path ends in a SKIPPED
//!   event with `fallback`; the controller streams that path itself.
//! - **Controller**: `--substituters`, `--trusted-public-keys`,
//!   `--substituters-ca`, `--no-substitute-on-target`, defaults from the
//!   flake's `nix.settings`; the summary counts paths and bytes per source.
//!
//! # Names and proxies
//! The client resolves cache names with musl's getaddrinfo, which reads the
//! /etc/resolv.conf that `net::up` writes from the nameservers captured at
//! kexec or the DHCP lease (tests: a dnsmasq on loopback, and libslirp's
//! DNS forwarding in the VM test). The proxy is the controller's
//! `--substituters-proxy`, else the old system's `http_proxy`/`https_proxy`/
//! `no_proxy` captured at kexec (`net::proxy`). Redirects are followed
//! ([`http::MAX_REDIRECTS`]); `bench/substitute.sh` measures the time ratio
//! and the agent's peak RSS.

pub mod http;
pub mod narinfo;
pub mod trust;

use std::io::{self, BufReader, Read, Write};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::watch;

use bytes::Bytes;
use landfall_proto::nar::{PathInfo, StorePath};
use tokio::runtime::Handle;

pub use self::http::{HttpClient, HttpError};
pub use narinfo::{fingerprint, CacheInfo, Compression, NarInfo, NarInfoError};
pub use trust::{KeyParseError, SignatureError, TrustedKeys};

use super::{AddPath, InstallError, UnpackedPath};

/// Largest `nix-cache-info` or narinfo accepted.
const MAX_DOC: usize = 64 * 1024;
/// Body chunks buffered between the network and the unpacker.
const BODY_CHUNKS: usize = 8;
/// Decompressed chunk size and count in the xz pipe.
const PIPE_CHUNK: usize = 64 * 1024;
const PIPE_CHUNKS: usize = 4;

/// Why a path could not be substituted. After any of these nothing of the
/// path is in the store and nothing was queued for registration.
#[derive(Debug, thiserror::Error)]
pub enum SubstituteError {
    /// The cache URL is not usable.
    #[error("Not a binary cache URL: {0:?}")]
    BadCacheUrl(String),
    /// The network or HTTP side failed (refused, TLS, status, broken body).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// `nix-cache-info` does not parse.
    #[error("Bad nix-cache-info from {cache}")]
    CacheInfo {
        /// The cache.
        cache: String,
        /// What is wrong.
        #[source]
        source: NarInfoError,
    },
    /// The cache serves another store directory.
    #[error("{cache} serves store {store_dir}, not /nix/store")]
    StoreDir {
        /// The cache.
        cache: String,
        /// Its `StoreDir`.
        store_dir: String,
    },
    /// A narinfo that does not parse.
    #[error("Bad narinfo for {path}")]
    NarInfo {
        /// The path asked for.
        path: StorePath,
        /// What is wrong.
        #[source]
        source: NarInfoError,
    },
    /// The narinfo is not signed by a trusted key.
    #[error("Untrusted narinfo for {path}")]
    Signature {
        /// The path.
        path: StorePath,
        /// Why.
        #[source]
        source: SignatureError,
    },
    /// The narinfo disagrees with what the caller expects.
    #[error("The cache's {field} for {path} is {found}, expected {expected}")]
    Mismatch {
        /// The path.
        path: StorePath,
        /// The narinfo field.
        field: &'static str,
        /// Expected (the controller's).
        expected: String,
        /// The cache's.
        found: String,
    },
    /// The NAR's compression is not one the agent decodes.
    #[error("{path}: unsupported NAR compression {compression}")]
    Compression {
        /// The path.
        path: StorePath,
        /// The narinfo's `Compression`.
        compression: String,
    },
    /// The compressed NAR did not decompress.
    #[error("Cannot decompress the {compression} NAR of {path}")]
    Decompress {
        /// The path.
        path: StorePath,
        /// The compression.
        compression: &'static str,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// The decompression thread could not be started.
    #[error("Cannot start the decompression thread")]
    Thread(#[source] io::Error),
    /// Unpacking or verifying the NAR failed (hash or size mismatch, …).
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The fetch was cancelled (the transfer it belonged to ended).
    #[error("Cancelled: the transfer ended")]
    Cancelled,
}

/// Cancels fetches in flight: shared by every fetch of a transfer, set once.
#[derive(Debug, Clone)]
pub struct Cancel(Arc<watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Cancel {
    /// Cancels every fetch that holds this (or a clone), now and later.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`: wait_for ends only by the value.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Runs `f` unless cancelled first.
    pub async fn or_cancelled<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, SubstituteError>>,
    ) -> Result<T, SubstituteError> {
        tokio::select! {
            biased;
            () = self.cancelled() => Err(SubstituteError::Cancelled),
            r = f => r,
        }
    }
}

/// A narinfo that passed every check, and the path info to register.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The cache's narinfo.
    pub narinfo: NarInfo,
    /// The expected info, with the narinfo's signatures added.
    pub info: PathInfo,
    /// The trusted key that signed it.
    pub signed_by: String,
}

/// One binary cache.
#[derive(Debug, Clone)]
pub struct Substituter {
    base: String,
    client: HttpClient,
    keys: TrustedKeys,
}

impl Substituter {
    /// A cache at `url` (`http(s)://host[:port][/prefix]`), trusting `keys`.
    pub fn new(url: &str, keys: TrustedKeys, client: HttpClient) -> Result<Self, SubstituteError> {
        let base = url.trim_end_matches('/');
        let ok = (base.starts_with("http://") || base.starts_with("https://"))
            && base
                .parse::<::http::Uri>()
                .is_ok_and(|u| u.host().is_some());
        if !ok {
            return Err(SubstituteError::BadCacheUrl(url.to_owned()));
        }
        Ok(Self {
            base: base.to_owned(),
            client,
            keys,
        })
    }

    /// The cache's base URL (no trailing slash).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Fetches and checks `nix-cache-info`.
    pub async fn cache_info(&self) -> Result<CacheInfo, SubstituteError> {
        let url = format!("{}/nix-cache-info", self.base);
        let text = self
            .client
            .get(&url)
            .await?
            .collect_limited(MAX_DOC)
            .await?;
        let info = CacheInfo::parse(&text).map_err(|source| SubstituteError::CacheInfo {
            cache: self.base.clone(),
            source,
        })?;
        if !narinfo::is_our_store_dir(&info.store_dir) {
            return Err(SubstituteError::StoreDir {
                cache: self.base.clone(),
                store_dir: info.store_dir,
            });
        }
        Ok(info)
    }

    /// Fetches `expected.path`'s narinfo and checks it (signature, fields).
    /// `Ok(None)` when the cache does not have the path (404 or 403, as S3 answers).
    pub async fn query(&self, expected: &PathInfo) -> Result<Option<Verified>, SubstituteError> {
        let url = format!("{}/{}", self.base, narinfo::narinfo_name(&expected.path));
        let body = match self.client.get(&url).await {
            Ok(b) => b,
            Err(HttpError::Status { status, .. })
                if status == ::http::StatusCode::NOT_FOUND
                    || status == ::http::StatusCode::FORBIDDEN =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        };
        let text = body.collect_limited(MAX_DOC).await?;
        let narinfo = NarInfo::parse(&text).map_err(|source| SubstituteError::NarInfo {
            path: expected.path.clone(),
            source,
        })?;
        check(expected, narinfo, &self.keys).map(Some)
    }

    /// The NAR's absolute URL.
    fn nar_url(&self, narinfo: &NarInfo) -> String {
        if narinfo.url.contains("://") {
            narinfo.url.clone()
        } else {
            format!("{}/{}", self.base, narinfo.url.trim_start_matches('/'))
        }
    }

    /// Fetches the NAR of a verified path, decompresses it in a stream into
    /// `installer` (which checks narHash/narSize and queues the path for
    /// registration at its next commit). Blocking: call it from a blocking
    /// thread (not inside the runtime's async context), with the runtime's handle.
    pub fn fetch_into(
        &self,
        rt: &Handle,
        verified: &Verified,
        installer: &mut impl AddPath,
    ) -> Result<UnpackedPath, SubstituteError> {
        self.fetch_into_cancellable(rt, verified, installer, &Cancel::default())
    }

    /// [`Substituter::fetch_into`] that ends with
    /// [`SubstituteError::Cancelled`] soon after `cancel` is set (the
    /// download is dropped; the unpacker removes what it wrote).
    pub fn fetch_into_cancellable(
        &self,
        rt: &Handle,
        verified: &Verified,
        installer: &mut impl AddPath,
        cancel: &Cancel,
    ) -> Result<UnpackedPath, SubstituteError> {
        let path = &verified.info.path;
        if cancel.is_cancelled() {
            return Err(SubstituteError::Cancelled);
        }
        let compression = match &verified.narinfo.compression {
            Compression::None => "none",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Other(c) => {
                return Err(SubstituteError::Compression {
                    path: path.clone(),
                    compression: c.clone(),
                })
            }
        };
        let url = self.nar_url(&verified.narinfo);
        let failure: Arc<Mutex<Option<SubstituteError>>> = Arc::default();
        let (body, task) = spawn_body(
            rt,
            self.client.clone(),
            url,
            failure.clone(),
            cancel.clone(),
        );
        let (mut reader, xz_thread): (Box<dyn Read>, _) = match compression {
            "none" => (Box::new(body), None),
            "zstd" => {
                let dec = zstd::stream::read::Decoder::new(body).map_err(|source| {
                    SubstituteError::Decompress {
                        path: path.clone(),
                        compression,
                        source,
                    }
                })?;
                (
                    Box::new(DecodeErrors::new(dec, failure.clone(), path, "zstd")),
                    None,
                )
            }
            "bzip2" => {
                // Multi-stream, as pbzip2 writes and Nix (libarchive) reads.
                let dec = bzip2::read::MultiBzDecoder::new(body);
                (
                    Box::new(DecodeErrors::new(dec, failure.clone(), path, "bzip2")),
                    None,
                )
            }
            _ => {
                let (pipe, thread) = spawn_xz(body, failure.clone(), path.clone())?;
                (Box::new(pipe), Some(thread))
            }
        };
        let result = installer.add_path(&verified.info, &mut reader);
        // A transport or decoder failure was recorded before the unpacker saw it.
        let first = failure.lock().map(|mut f| f.take()).unwrap_or(None);
        if result.is_err() {
            // Stop the download (a stalled server must not keep the xz thread).
            task.abort();
        }
        if let Some(t) = xz_thread {
            let _ = t.join();
        }
        match (result, first) {
            (Ok(done), _) => Ok(done),
            // The transport or decoder failure is the cause of the unpacker's error.
            (Err(_), Some(cause)) => Err(cause),
            (Err(e), None) => Err(e.into()),
        }
    }
}

/// Checks a narinfo against the expected info and the trusted keys.
pub fn check(
    expected: &PathInfo,
    narinfo: NarInfo,
    keys: &TrustedKeys,
) -> Result<Verified, SubstituteError> {
    let path = &expected.path;
    let mismatch = |field, expected: String, found: String| SubstituteError::Mismatch {
        path: path.clone(),
        field,
        expected,
        found,
    };
    if narinfo.store_path != *path {
        return Err(mismatch(
            "StorePath",
            path.to_string(),
            narinfo.store_path.to_string(),
        ));
    }
    let signed_by = keys
        .verify(&narinfo.fingerprint(), &narinfo.sigs)
        .map_err(|source| SubstituteError::Signature {
            path: path.clone(),
            source,
        })?;
    if narinfo.nar_hash != expected.nar_hash {
        return Err(mismatch(
            "NarHash",
            expected.nar_hash.to_nix32(),
            narinfo.nar_hash.to_nix32(),
        ));
    }
    if narinfo.nar_size != expected.nar_size {
        return Err(mismatch(
            "NarSize",
            expected.nar_size.to_string(),
            narinfo.nar_size.to_string(),
        ));
    }
    let mut want_refs = expected.references.clone();
    want_refs.sort();
    if narinfo.references != want_refs {
        let show = |v: &[StorePath]| {
            v.iter()
                .map(StorePath::base_name)
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Err(mismatch(
            "References",
            show(&want_refs),
            show(&narinfo.references),
        ));
    }
    if let (Some(want), Some(got)) = (&expected.deriver, &narinfo.deriver) {
        if want != got {
            return Err(mismatch("Deriver", want.to_string(), got.to_string()));
        }
    }
    if let (Some(want), Some(got)) = (&expected.ca, &narinfo.ca) {
        if want != got {
            return Err(mismatch("CA", want.clone(), got.clone()));
        }
    }
    let mut info = expected.clone();
    for s in &narinfo.sigs {
        if !info.signatures.contains(s) {
            info.signatures.push(s.clone());
        }
    }
    Ok(Verified {
        narinfo,
        info,
        signed_by,
    })
}

/// Records the first failure.
fn record(slot: &Mutex<Option<SubstituteError>>, e: SubstituteError) {
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(e);
    }
}

/// The response body as a blocking `Read`: a task on the runtime pumps
/// chunks into a bounded channel. Cancelled, the task drops the download
/// (its channel closes) and every read fails.
struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, ()>>,
    cur: Bytes,
    failed: bool,
    cancel: Cancel,
    failure: Arc<Mutex<Option<SubstituteError>>>,
}

fn spawn_body(
    rt: &Handle,
    client: HttpClient,
    url: String,
    failure: Arc<Mutex<Option<SubstituteError>>>,
    cancel: Cancel,
) -> (BodyReader, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::mpsc::channel(BODY_CHUNKS);
    let (task_failure, task_cancel) = (failure.clone(), cancel.clone());
    let reader_failure = failure.clone();
    let pump = async move {
        let mut body = match client.get(&url).await {
            Ok(b) => b,
            Err(e) => {
                record(&failure, e.into());
                let _ = tx.send(Err(())).await;
                return;
            }
        };
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => {
                    if tx.send(Ok(c)).await.is_err() {
                        return; // The reader gave up: drop the connection.
                    }
                }
                Err(e) => {
                    record(&failure, e.into());
                    let _ = tx.send(Err(())).await;
                    return;
                }
            }
        }
    };
    let task = rt.spawn(async move {
        tokio::select! {
            biased;
            // Dropping `pump` drops the connection and the channel's sender.
            () = task_cancel.cancelled() => record(&task_failure, SubstituteError::Cancelled),
            () = pump => {}
        }
    });
    let reader = BodyReader {
        rx,
        cur: Bytes::new(),
        failed: false,
        cancel,
        failure: reader_failure,
    };
    (reader, task)
}

impl BodyReader {
    fn cancelled(&mut self) -> io::Error {
        self.failed = true;
        record(&self.failure, SubstituteError::Cancelled);
        io::Error::other("the fetch was cancelled")
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("the download failed"));
        }
        if self.cancel.is_cancelled() {
            return Err(self.cancelled());
        }
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.cur = c,
                Some(Err(())) => {
                    self.failed = true;
                    return Err(io::Error::other("the download failed"));
                }
                // A cancelled pump closes the channel: that is no end of file.
                None if self.cancel.is_cancelled() => return Err(self.cancelled()),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Records a decoder's error (unless the transport failed first) as the cause.
struct DecodeErrors<R> {
    inner: R,
    failure: Arc<Mutex<Option<SubstituteError>>>,
    path: StorePath,
    compression: &'static str,
}

impl<R> DecodeErrors<R> {
    fn new(
        inner: R,
        failure: Arc<Mutex<Option<SubstituteError>>>,
        path: &StorePath,
        compression: &'static str,
    ) -> Self {
        Self {
            inner,
            failure,
            path: path.clone(),
            compression,
        }
    }
}

impl<R: Read> Read for DecodeErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            record(
                &self.failure,
                SubstituteError::Decompress {
                    path: self.path.clone(),
                    compression: self.compression,
                    source: io::Error::new(e.kind(), e.to_string()),
                },
            )
        })
    }
}

/// xz: lzma-rs decodes into a writer, so it runs on its own thread, writing
/// into a bounded pipe the unpacker reads.
fn spawn_xz(
    body: BodyReader,
    failure: Arc<Mutex<Option<SubstituteError>>>,
    path: StorePath,
) -> Result<(PipeReader, std::thread::JoinHandle<()>), SubstituteError> {
    let (tx, rx) = mpsc::sync_channel(PIPE_CHUNKS);
    let thread = std::thread::Builder::new()
        .name("nar-xz".into())
        .spawn(move || {
            let mut input = BufReader::with_capacity(PIPE_CHUNK, body);
            let mut out = PipeWriter {
                tx,
                buf: Vec::with_capacity(PIPE_CHUNK),
            };
            let r = lzma_rs::xz_decompress(&mut input, &mut out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
                .and_then(|()| out.flush());
            if let Err(e) = r {
                // A reader that hung up is not a decoding failure.
                if e.kind() != io::ErrorKind::BrokenPipe {
                    record(
                        &failure,
                        SubstituteError::Decompress {
                            path,
                            compression: "xz",
                            source: e,
                        },
                    );
                }
                let _ = out.tx.send(Err(()));
            }
        })
        .map_err(SubstituteError::Thread)?;
    Ok((
        PipeReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            failed: false,
        },
        thread,
    ))
}

struct PipeWriter {
    tx: mpsc::SyncSender<Result<Vec<u8>, ()>>,
    buf: Vec<u8>,
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIPE_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIPE_CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(PIPE_CHUNK));
        self.tx
            .send(Ok(chunk))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

struct PipeReader {
    rx: mpsc::Receiver<Result<Vec<u8>, ()>>,
    cur: Vec<u8>,
    pos: usize,
    failed: bool,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("decompression failed"));
        }
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(c)) => (self.cur, self.pos) = (c, 0),
                Ok(Err(())) => {
                    self.failed = true;
                    return Err(io::Error::other("decompression failed"));
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64ct::{Base64, Encoding};
    use ed25519_dalek::{Signer, SigningKey};
    use landfall_proto::nar::NarHash;

    const A: &str = "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-hello-2.12";
    const B: &str = "/nix/store/1fz0n5dl2dw9bqcrqg0jvgb1nksh1ab0-glibc-2.35";
    const D: &str = "/nix/store/2a3b4c5d6f7g8h9i0j1k2l3m4n5p6q7r-hello-2.12.drv";

    fn expected() -> PathInfo {
        PathInfo {
            path: StorePath::parse(A).unwrap(),
            nar_hash: NarHash([7; 32]),
            nar_size: 1000,
            references: vec![StorePath::parse(B).unwrap(), StorePath::parse(A).unwrap()],
            deriver: Some(StorePath::parse(D).unwrap()),
            signatures: vec![],
            ca: None,
        }
    }

    /// A narinfo for `info`, signed by `sk` as `cache-1`.
    fn signed(info: &PathInfo, sk: &SigningKey) -> NarInfo {
        let mut refs = info.references.clone();
        refs.sort();
        let mut n = NarInfo {
            store_path: info.path.clone(),
            url: "nar/x.nar".into(),
            compression: Compression::None,
            file_hash: None,
            file_size: None,
            nar_hash: info.nar_hash,
            nar_size: info.nar_size,
            references: refs,
            deriver: info.deriver.clone(),
            sigs: vec![],
            ca: info.ca.clone(),
        };
        let sig = sk.sign(n.fingerprint().as_bytes()).to_bytes();
        n.sigs
            .push(format!("cache-1:{}", Base64::encode_string(&sig)));
        n
    }

    fn keys(sk: &SigningKey) -> TrustedKeys {
        let pk = Base64::encode_string(sk.verifying_key().as_bytes());
        TrustedKeys::parse(&[format!("cache-1:{pk}")]).unwrap()
    }

    fn field(e: SubstituteError) -> &'static str {
        match e {
            SubstituteError::Mismatch { field, .. } => field,
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn accepts_a_matching_signed_narinfo_and_keeps_its_signature() {
        let sk = SigningKey::from_bytes(&[3; 32]);
        let want = expected();
        let n = signed(&want, &sk);
        let v = check(&want, n.clone(), &keys(&sk)).unwrap();
        assert_eq!(v.signed_by, "cache-1");
        assert_eq!(v.info.signatures, n.sigs);
        assert_eq!(v.info.path, want.path);
        // The narinfo may omit the deriver (Deriver is not signed).
        let mut no_deriver = n;
        no_deriver.deriver = None;
        assert!(check(&want, no_deriver, &keys(&sk)).is_ok());
    }

    #[test]
    fn every_mismatch_names_its_field() {
        let sk = SigningKey::from_bytes(&[3; 32]);
        let k = keys(&sk);
        let want = expected();
        // Signed by the cache for what it serves; the controller expected `want`.
        let mut other = want.clone();
        other.path = StorePath::parse(B).unwrap();
        assert_eq!(
            field(check(&want, signed(&other, &sk), &k).unwrap_err()),
            "StorePath"
        );
        let mut other = want.clone();
        other.nar_hash = NarHash([8; 32]);
        assert_eq!(
            field(check(&want, signed(&other, &sk), &k).unwrap_err()),
            "NarHash"
        );
        let mut other = want.clone();
        other.nar_size += 1;
        assert_eq!(
            field(check(&want, signed(&other, &sk), &k).unwrap_err()),
            "NarSize"
        );
        let mut other = want.clone();
        other.references.pop();
        assert_eq!(
            field(check(&want, signed(&other, &sk), &k).unwrap_err()),
            "References"
        );
        let mut other = want.clone();
        other.deriver = Some(
            StorePath::parse("/nix/store/2a3b4c5d6f7g8h9i0j1k2l3m4n5p6q7r-other.drv").unwrap(),
        );
        assert_eq!(
            field(check(&want, signed(&other, &sk), &k).unwrap_err()),
            "Deriver"
        );
        let mut want_ca = want.clone();
        want_ca.ca = Some("fixed:r:sha256:abc".into());
        let mut other = want_ca.clone();
        other.ca = Some("fixed:r:sha256:def".into());
        assert_eq!(
            field(check(&want_ca, signed(&other, &sk), &k).unwrap_err()),
            "CA"
        );
    }

    #[test]
    fn the_signature_comes_before_the_fields() {
        let sk = SigningKey::from_bytes(&[3; 32]);
        let want = expected();
        let mut n = signed(&want, &sk);
        n.nar_size += 1; // changed after signing
        assert!(matches!(
            check(&want, n, &keys(&sk)).unwrap_err(),
            SubstituteError::Signature {
                source: SignatureError::Invalid(_),
                ..
            }
        ));
        let other = SigningKey::from_bytes(&[4; 32]);
        assert!(matches!(
            check(&want, signed(&want, &sk), &keys(&other)).unwrap_err(),
            SubstituteError::Signature {
                source: SignatureError::Invalid(_),
                ..
            }
        ));
    }

    #[test]
    fn an_extra_ca_must_hold_a_certificate() {
        assert!(HttpClient::new(b"").is_ok());
        assert!(HttpClient::new(b"\n").is_ok());
        assert!(matches!(
            HttpClient::new(b"this is not PEM\n").unwrap_err(),
            HttpError::BadCa(_)
        ));
    }

    #[test]
    fn cache_urls() {
        let k = TrustedKeys::default();
        let c = HttpClient::new(b"").unwrap();
        for bad in [
            "file:///tmp/cache",
            "s3://bucket",
            "http://",
            "cache.nixos.org",
        ] {
            assert!(
                Substituter::new(bad, k.clone(), c.clone()).is_err(),
                "{bad}"
            );
        }
        let s = Substituter::new("https://cache.example.org/prefix/", k, c).unwrap();
        assert_eq!(s.url(), "https://cache.example.org/prefix");
        let mut n = signed(&expected(), &SigningKey::from_bytes(&[3; 32]));
        assert_eq!(s.nar_url(&n), "https://cache.example.org/prefix/nar/x.nar");
        n.url = "https://cdn.example.org/nar/y.nar".into();
        assert_eq!(s.nar_url(&n), "https://cdn.example.org/nar/y.nar");
    }
}
