//! QuerySubstitutes, and the cache fetches that run inside PutClosure.
//!
//! The controller asks which of the missing paths the caches serve
//! ([`AgentService::query_substitutes_impl`]: caches in `nix-cache-info`
//! priority order, [`QUERIES_IN_FLIGHT`] narinfos at a time). It then opens
//! PutClosure with the offered paths in `begin.substitute`: [`Fetchers`]
//! starts [`WORKERS`] threads that fetch them into the same installer while
//! the controller's own stream is received. Each fetched path ends in one
//! event: FINISHED with `source = "cache"`, or SKIPPED with `fallback` (and
//! why) — any failure of a cache (unreachable, refused narinfo, bad NAR,
//! broken body, timeout) only means the controller sends that path itself.
//! Nothing of a failed path stays in the store (the unpacker's invariant).
//!
//! When the controller's stream ends or breaks, [`Fetchers::cancel`] stops
//! every download in flight at once (and the queued ones before they start),
//! so the job slot is free within moments for the controller's resume,
//! rather than after the downloads drained or timed out.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use futures::StreamExt;
use landfall_proto::nar::PathInfo;
use landfall_proto::v1::{
    JobEvent, StepState, SubstituteConfig, SubstituteOffer, SubstituteOffers, SubstituteQuery,
};
use tokio::runtime::Handle;
use tonic::Status;

use super::AgentService;
use crate::jobs::Reason;
use crate::steps::error_chain;
use crate::store::receive::{Fetched, ReceiveError};
use crate::store::substitute::{
    Cancel, HttpClient, SubstituteError, Substituter, TrustedKeys, Verified,
};
use crate::store::PathAdder;

/// narinfo requests in flight while answering QuerySubstitutes.
pub const QUERIES_IN_FLIGHT: usize = 8;
/// NAR downloads in flight during PutClosure.
pub const WORKERS: usize = 4;

/// The HTTP client a config asks for (extra CA, proxy: the controller's,
/// else the one the old system's environment named); else why not.
fn client_of(config: &SubstituteConfig) -> Result<HttpClient, String> {
    let client = HttpClient::new(&config.extra_ca_pem).map_err(|e| error_chain(&e))?;
    if config.proxy.is_empty() {
        // No proxy from the controller: the old system's, if it had one.
        Ok(client.with_proxy_settings(crate::net::config::agent_proxy()))
    } else {
        client
            .with_proxy(&config.proxy)
            .map_err(|e| error_chain(&e))
    }
}

/// The caches of a config, usable ones in priority order, and why the others
/// are not used.
pub async fn open_caches(
    config: &SubstituteConfig,
) -> Result<(Vec<Substituter>, Vec<String>), Status> {
    let keys = TrustedKeys::parse(&config.trusted_keys).map_err(|e| {
        Status::invalid_argument(format!("{}: {}", Reason::InvalidRequest, error_chain(&e)))
    })?;
    let client = client_of(config)
        .map_err(|e| Status::invalid_argument(format!("{}: {e}", Reason::InvalidRequest)))?;
    let mut usable = Vec::new();
    let mut errors = Vec::new();
    for url in &config.caches {
        let sub = match Substituter::new(url, keys.clone(), client.clone()) {
            Ok(s) => s,
            Err(e) => {
                errors.push(format!("{url}: {}", error_chain(&e)));
                continue;
            }
        };
        match sub.cache_info().await {
            Ok(info) => usable.push((info.priority, sub)),
            Err(e) => errors.push(format!("{url}: {}", error_chain(&e))),
        }
    }
    // Stable: equal priorities keep the order the controller gave.
    usable.sort_by_key(|(p, _)| *p);
    Ok((usable.into_iter().map(|(_, s)| s).collect(), errors))
}

/// The first cache (in order) with a trusted narinfo for `info`, and the
/// refusals met on the way.
async fn find(caches: &[Substituter], info: &PathInfo) -> (Option<(usize, Verified)>, Vec<String>) {
    let mut refused = Vec::new();
    for (i, c) in caches.iter().enumerate() {
        match c.query(info).await {
            Ok(Some(v)) => return (Some((i, v)), refused),
            Ok(None) => {}
            Err(e) => refused.push(format!("{}: {}: {}", info.path, c.url(), error_chain(&e))),
        }
    }
    (None, refused)
}

fn parse_infos(wire: &[landfall_proto::v1::StorePathInfo]) -> Result<Vec<PathInfo>, Status> {
    wire.iter()
        .map(|w| {
            PathInfo::try_from(w)
                .map_err(|e| Status::invalid_argument(format!("{}: {e}", Reason::InvalidRequest)))
        })
        .collect()
}

impl AgentService {
    pub(super) async fn query_substitutes_impl(
        &self,
        req: SubstituteQuery,
    ) -> Result<SubstituteOffers, Status> {
        let config = req.config.unwrap_or_default();
        let infos = parse_infos(&req.paths)?;
        let (caches, cache_errors) = open_caches(&config).await?;
        let caches = Arc::new(caches);
        let asked = infos.len();
        let queries = infos.into_iter().map(|info| {
            let caches = caches.clone();
            async move {
                let found = find(&caches, &info).await;
                (info, found)
            }
        });
        let found: Vec<_> = futures::stream::iter(queries)
            .buffered(QUERIES_IN_FLIGHT)
            .collect()
            .await;
        let mut reply = SubstituteOffers {
            cache_errors,
            ..Default::default()
        };
        for (info, (hit, refused)) in found {
            reply.refused.extend(refused);
            if let Some((i, v)) = hit {
                reply.offers.push(SubstituteOffer {
                    path: info.path.to_string(),
                    cache: caches[i].url().to_string(),
                    file_size: v.narinfo.file_size.unwrap_or(0),
                });
            }
        }
        tracing::info!(
            "QuerySubstitutes: {} of {} path(s) offered by {} cache(s); {} refused; {} cache(s) unusable",
            reply.offers.len(),
            asked,
            caches.len(),
            reply.refused.len(),
            reply.cache_errors.len()
        );
        Ok(reply)
    }
}

/// The fetch workers of one PutClosure.
pub struct Fetchers {
    cancel: Cancel,
    threads: Vec<JoinHandle<()>>,
    /// Paths to fetch, in total.
    pub paths: usize,
    /// Their NAR bytes.
    pub nar_bytes: u64,
}

struct Job {
    info: PathInfo,
    cache: String,
}

impl Fetchers {
    /// Starts the workers for `fetch` (infos with the cache that offered
    /// each). Their events go to `events` (a send fails only when the job
    /// is over, and then the worker stops).
    pub fn start(
        rt: Handle,
        config: &SubstituteConfig,
        fetch: Vec<(PathInfo, String)>,
        adder: impl Fn() -> PathAdder,
        events: impl Fn(Fetched) -> bool + Send + Sync + 'static,
    ) -> Result<Self, ReceiveError> {
        let keys = TrustedKeys::parse(&config.trusted_keys)
            .map_err(|e| ReceiveError::InvalidCacheConfig(error_chain(&e)))?;
        let client = client_of(config).map_err(ReceiveError::InvalidCacheConfig)?;
        let mut caches: HashMap<String, Option<Substituter>> = HashMap::new();
        for (_, url) in &fetch {
            caches
                .entry(url.clone())
                .or_insert_with(|| Substituter::new(url, keys.clone(), client.clone()).ok());
        }
        let paths = fetch.len();
        let nar_bytes = fetch.iter().map(|(i, _)| i.nar_size).sum();
        let queue: VecDeque<Job> = fetch
            .into_iter()
            .map(|(info, cache)| Job { info, cache })
            .collect();
        let queue = Arc::new(Mutex::new(queue));
        let caches = Arc::new(caches);
        let cancel = Cancel::default();
        let fetched_bytes = Arc::new(AtomicU64::new(0));
        let events = Arc::new(events);
        let mut threads = Vec::new();
        for n in 0..WORKERS.min(paths) {
            let (queue, caches, cancel, fetched, events, rt) = (
                queue.clone(),
                caches.clone(),
                cancel.clone(),
                fetched_bytes.clone(),
                events.clone(),
                rt.clone(),
            );
            let mut adder = adder();
            let t = std::thread::Builder::new()
                .name(format!("substitute-{n}"))
                .spawn(move || {
                    loop {
                        if cancel.is_cancelled() {
                            break;
                        }
                        let Some(job) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                            break;
                        };
                        let t0 = std::time::Instant::now();
                        let outcome = fetch_one(&rt, &caches, &job, &mut adder, &cancel);
                        let event = match outcome {
                            Ok(()) => {
                                let total = fetched.fetch_add(job.info.nar_size, Ordering::Relaxed)
                                    + job.info.nar_size;
                                JobEvent {
                                    state: StepState::Finished as i32,
                                    description: job.info.path.to_string(),
                                    duration_ms: t0.elapsed().as_millis() as u64,
                                    source: "cache".into(),
                                    cache_bytes: total,
                                    bytes_total: job.info.nar_size,
                                    ..Default::default()
                                }
                            }
                            Err(why) => {
                                if cancel.is_cancelled() {
                                    tracing::info!(
                                        "{}: the download from {} was cancelled (the transfer ended)",
                                        job.info.path,
                                        job.cache
                                    );
                                } else {
                                    tracing::warn!(
                                        "{}: not from {}: {why}; the controller sends it",
                                        job.info.path,
                                        job.cache
                                    );
                                }
                                JobEvent {
                                    state: StepState::Skipped as i32,
                                    description: job.info.path.to_string(),
                                    reason: why,
                                    source: "cache".into(),
                                    fallback: true,
                                    cache_bytes: fetched.load(Ordering::Relaxed),
                                    ..Default::default()
                                }
                            }
                        };
                        if !events(Fetched::Event(event)) {
                            return;
                        }
                    }
                    events(Fetched::WorkerDone);
                })
                .map_err(ReceiveError::FetchWorker)?;
            threads.push(t);
        }
        Ok(Self {
            cancel,
            threads,
            paths,
            nar_bytes,
        })
    }

    /// How many workers run (each sends one WorkerDone).
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Cancels the downloads in flight and the queued ones: each worker
    /// soon sends a SKIPPED event per path it had started, then WorkerDone.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Cancels, and waits for the workers (call after the event receiver is
    /// gone or drained, so no worker blocks on it).
    pub fn stop(mut self) {
        self.cancel.cancel();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn fetch_one(
    rt: &Handle,
    caches: &HashMap<String, Option<Substituter>>,
    job: &Job,
    adder: &mut PathAdder,
    cancel: &Cancel,
) -> Result<(), String> {
    let sub = caches
        .get(&job.cache)
        .and_then(|s| s.as_ref())
        .ok_or_else(|| format!("not a binary cache URL: {:?}", job.cache))?;
    let verified = rt
        .block_on(cancel.or_cancelled(sub.query(&job.info)))
        .map_err(|e: SubstituteError| error_chain(&e))?
        .ok_or_else(|| format!("{} no longer has it", sub.url()))?;
    sub.fetch_into_cancellable(rt, &verified, adder, cancel)
        .map(|_| ())
        .map_err(|e| error_chain(&e))
}
