//! QueryMissing and PutClosure over gRPC: a thin adapter around the store
//! engine. PutClosure's inbound stream and the fetch workers' events go into
//! one small bounded inbox; [`crate::store::receive_closure`] reads it on a
//! blocking thread and its events go out as the job's stream; its
//! [`ReceiveError`] becomes the status (the code chosen here, the reason by
//! the error).

use std::path::PathBuf;

use landfall_proto::nar::{NarHash, PathInfo, StorePath};
use landfall_proto::v1::{
    ClosureChunk, JobEvent, QueryMissingReply, QueryMissingRequest, SubstituteConfig,
};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::substitute::Fetchers;
use super::AgentService;

use crate::jobs::{forward_inbound, run_blocking, stream_job, Emit, Reason};
use crate::steps::error_chain;
use crate::store::receive::{Fetches, Input};
use crate::store::{ReceiveError, StoreInstaller};

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

/// A failed transfer's status: the message is the error's
/// `"<reason>: …"`; the code follows the reason (a missing reference is a
/// failed precondition; no space is RESOURCE_EXHAUSTED, final, not retried).
fn status_of(e: &ReceiveError) -> Status {
    let code = match (e, e.reason()) {
        (ReceiveError::MissingReference { .. }, _) => tonic::Code::FailedPrecondition,
        (_, Reason::Aborted) => tonic::Code::Aborted,
        (_, Reason::NoSpace) => tonic::Code::ResourceExhausted,
        (_, Reason::Rejected) => tonic::Code::DataLoss,
        (_, Reason::InvalidRequest) => tonic::Code::InvalidArgument,
        _ => tonic::Code::Internal,
    };
    Status::new(code, e.message())
}

/// The binary-cache fetch workers of one PutClosure; their events go into
/// the receive loop's inbox.
struct CacheFetches {
    rt: tokio::runtime::Handle,
    inbox: mpsc::Sender<Input>,
    workers: Option<Fetchers>,
}

impl Fetches for CacheFetches {
    fn start(
        &mut self,
        config: &SubstituteConfig,
        fetch: Vec<(PathInfo, String)>,
        installer: &StoreInstaller,
    ) -> Result<usize, ReceiveError> {
        let events = self.inbox.clone();
        let f = Fetchers::start(
            self.rt.clone(),
            config,
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
        let n = f.workers();
        self.workers = Some(f);
        Ok(n)
    }

    fn cancel(&self) {
        if let Some(f) = &self.workers {
            f.cancel();
        }
    }
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
            let missing =
                crate::store::query_missing_with(&root, &paths, &hashes).map_err(|e| {
                    Status::internal(format!(
                        "{}: query: {}",
                        Reason::StoreFailed,
                        error_chain(&e)
                    ))
                })?;
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
        let (tx, mut rx) = mpsc::channel::<Input>(64);
        let mut inbound = forward_inbound(inbound);
        let forward = tx.clone();
        tokio::spawn(async move {
            while let Some(m) = inbound.recv().await {
                let input = match m {
                    Ok(chunk) => Input::Chunk(chunk),
                    Err(s) => Input::Broken(s.message().to_string()),
                };
                if forward.send(input).await.is_err() {
                    return;
                }
            }
            let _ = forward.send(Input::Closed).await;
        });
        Ok(stream_job("put-closure", guard, move |emit: Emit<'_>| {
            let mut fetches = CacheFetches {
                rt,
                inbox: tx,
                workers: None,
            };
            let result = {
                let mut inbox = move || rx.blocking_recv();
                crate::store::receive_closure(&mut inbox, &default_root, emit, &mut fetches)
            };
            // The inbox is gone: workers blocked on a full inbox see it and stop.
            if let Some(f) = fetches.workers {
                f.stop();
            }
            result.map_err(|e| status_of(&e))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::space::SpaceError;

    /// Each step's error keeps the status code the controller acts on
    /// (retry on ABORTED, stop on RESOURCE_EXHAUSTED, …) and its reason prefix.
    #[test]
    fn each_receive_error_has_its_status_code_and_reason() {
        let path = StorePath::parse("/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-first").unwrap();
        let cases = [
            (
                ReceiveError::ControllerGone,
                tonic::Code::Aborted,
                "aborted: the controller went away",
            ),
            (
                ReceiveError::StreamBroke("h2 reset".into()),
                tonic::Code::Aborted,
                "aborted: the closure stream broke: h2 reset",
            ),
            (
                ReceiveError::NoBegin,
                tonic::Code::InvalidArgument,
                "invalid-request: the closure stream must start with `begin`",
            ),
            (
                ReceiveError::MissingReference {
                    waiting: 2,
                    path: path.clone(),
                    missing: path.clone(),
                },
                tonic::Code::FailedPrecondition,
                "invalid-request: 2 path(s) wait for a reference that never came",
            ),
            (
                ReceiveError::NoSpace(SpaceError::Statvfs {
                    dir: PathBuf::from("/x"),
                    source: std::io::Error::other("EIO"),
                }),
                tonic::Code::ResourceExhausted,
                "no-space: ",
            ),
            (
                ReceiveError::Rejected {
                    path: path.clone(),
                    source: crate::store::InstallError::CommitterGone,
                },
                tonic::Code::DataLoss,
                "rejected: /nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-first: The registration thread stopped",
            ),
            (
                ReceiveError::Sync(std::io::Error::other("EIO")),
                tonic::Code::Internal,
                "store-failed: cannot flush the new root to disk: EIO",
            ),
            (
                ReceiveError::Zstd(std::io::Error::other("no memory")),
                tonic::Code::Internal,
                "internal: zstd: no memory",
            ),
        ];
        for (e, code, prefix) in cases {
            let s = status_of(&e);
            assert_eq!(s.code(), code, "{e:?}");
            assert!(s.message().starts_with(prefix), "{}", s.message());
            assert_eq!(Reason::of(s.message()), Some(e.reason()));
        }
    }
}
