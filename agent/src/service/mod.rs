//! The `landfall.v1.Agent` tonic service: translates requests into engine calls.
//! Thin by design — engines know nothing of gRPC.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use landfall_proto::v1::agent_server::Agent;
use landfall_proto::v1::{
    BootloaderRequest, ClosureChunk, FileChunk, InventoryReply, InventoryRequest, JobEvent,
    LayoutRequest, LogLine, LogsRequest, Mount, PlanReply, PutSecretsReply, PutSecretsRequest,
    QueryMissingReply, QueryMissingRequest, RebootReply, RebootRequest, StatusReply, StatusRequest,
    StepState,
};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::jobs::{run_blocking, JobSlot};
use crate::steps::StepEvent;

mod boot;
mod closure;
pub mod files;
mod layout;
mod secrets;
mod substitute;

/// An engine's step event as the job event the controller follows.
impl From<&StepEvent> for JobEvent {
    fn from(e: &StepEvent) -> Self {
        let (index, total, description, state) = match e {
            StepEvent::Started {
                index,
                total,
                description,
            } => (index, total, description, StepState::Started),
            StepEvent::Finished {
                index,
                total,
                description,
                ..
            } => (index, total, description, StepState::Finished),
            StepEvent::Skipped {
                index,
                total,
                description,
                ..
            } => (index, total, description, StepState::Skipped),
            StepEvent::Failed {
                index,
                total,
                description,
                ..
            } => (index, total, description, StepState::Failed),
        };
        let (duration_ms, reason) = match e {
            StepEvent::Finished { duration, .. } => (duration.as_millis() as u64, ""),
            StepEvent::Skipped { reason, .. } | StepEvent::Failed { reason, .. } => {
                (0, reason.as_str())
            }
            StepEvent::Started { .. } => (0, ""),
        };
        JobEvent {
            index: *index as u32,
            total: *total as u32,
            state: state as i32,
            description: description.clone(),
            duration_ms,
            reason: reason.to_string(),
            ..Default::default()
        }
    }
}

/// State shared by every request.
pub struct AgentState {
    pub started: Instant,
    /// CLOCK_MONOTONIC at the start (of PID 1 when running under it).
    pub started_mono_ns: u64,
    pub pid1: bool,
    pub boot_to_serve_ms: AtomicU64,
    pub root: PathBuf,
    pub jobs: JobSlot,
    /// Set when a bootloader install failed: Reboot is refused unless forced.
    pub bootloader_failure: std::sync::Mutex<Option<String>>,
    /// This boot's ID from the session (`Status` reports it), "" when none.
    pub boot_id: String,
}

impl AgentState {
    pub fn new(root: PathBuf, pid1: bool, started_mono_ns: u64, boot_id: String) -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            started_mono_ns,
            pid1,
            boot_to_serve_ms: AtomicU64::new(0),
            root,
            jobs: JobSlot::default(),
            bootloader_failure: std::sync::Mutex::new(None),
            boot_id,
        })
    }
}

/// The service object handed to tonic.
#[derive(Clone)]
pub struct AgentService {
    state: Arc<AgentState>,
}

impl AgentService {
    pub fn new(state: Arc<AgentState>) -> Self {
        Self { state }
    }
}

type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for AgentService {
    async fn inventory(
        &self,
        _req: Request<InventoryRequest>,
    ) -> Result<Response<InventoryReply>, Status> {
        let inv = run_blocking("inventory", crate::inventory::collect).await?;
        Ok(Response::new(inv))
    }

    async fn status(&self, _req: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let root = self.state.root.clone();
        let mounts = run_blocking("status", move || {
            crate::inventory::mountinfo()
                .into_iter()
                .filter(|m| m.mount_point.starts_with(&root))
                .map(|m| Mount {
                    source: m.source,
                    target: m.mount_point.display().to_string(),
                    fstype: m.fs_type,
                    options: m.options,
                })
                .collect()
        })
        .await?;
        Ok(Response::new(StatusReply {
            job: self.state.jobs.current(),
            uptime_ms: self.state.started.elapsed().as_millis() as u64,
            pid1: self.state.pid1,
            boot_to_serve_ms: self.state.boot_to_serve_ms.load(Ordering::Relaxed),
            mounts,
            root: self.state.root.display().to_string(),
            boot_id: self.state.boot_id.clone(),
        }))
    }

    type LogsStream = LogStream;

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let buf = crate::logbuf::buffer();
        // Subscribe before taking the backlog so no line falls between the two.
        let rx = buf.subscribe();
        let head = futures::stream::iter(buf.backlog().into_iter().map(Ok));
        if !req.into_inner().follow {
            return Ok(Response::new(Box::pin(head)));
        }
        let tail = BroadcastStream::new(rx).filter_map(|r| async move { r.ok().map(Ok) });
        Ok(Response::new(Box::pin(head.chain(tail))))
    }

    async fn plan_layout(
        &self,
        req: Request<LayoutRequest>,
    ) -> Result<Response<PlanReply>, Status> {
        Ok(Response::new(
            self.plan_layout_impl(req.into_inner()).await?,
        ))
    }

    type ApplyLayoutStream = ReceiverStream<Result<JobEvent, Status>>;

    async fn apply_layout(
        &self,
        req: Request<LayoutRequest>,
    ) -> Result<Response<Self::ApplyLayoutStream>, Status> {
        Ok(Response::new(self.apply_layout_impl(req.into_inner())?))
    }

    async fn put_secrets(
        &self,
        req: Request<PutSecretsRequest>,
    ) -> Result<Response<PutSecretsReply>, Status> {
        Ok(Response::new(
            self.put_secrets_impl(req.into_inner()).await?,
        ))
    }

    async fn query_missing(
        &self,
        req: Request<QueryMissingRequest>,
    ) -> Result<Response<QueryMissingReply>, Status> {
        Ok(Response::new(
            self.query_missing_impl(req.into_inner()).await?,
        ))
    }

    type PutClosureStream = ReceiverStream<Result<JobEvent, Status>>;

    async fn put_closure(
        &self,
        req: Request<tonic::Streaming<ClosureChunk>>,
    ) -> Result<Response<Self::PutClosureStream>, Status> {
        Ok(Response::new(self.put_closure_impl(req.into_inner())?))
    }

    async fn query_substitutes(
        &self,
        req: Request<landfall_proto::v1::SubstituteQuery>,
    ) -> Result<Response<landfall_proto::v1::SubstituteOffers>, Status> {
        Ok(Response::new(
            self.query_substitutes_impl(req.into_inner()).await?,
        ))
    }

    type InstallBootloaderStream = ReceiverStream<Result<JobEvent, Status>>;

    async fn install_bootloader(
        &self,
        req: Request<BootloaderRequest>,
    ) -> Result<Response<Self::InstallBootloaderStream>, Status> {
        Ok(Response::new(
            self.install_bootloader_impl(req.into_inner())?,
        ))
    }

    async fn reboot(&self, req: Request<RebootRequest>) -> Result<Response<RebootReply>, Status> {
        Ok(Response::new(self.reboot_impl(req.into_inner()).await?))
    }

    type PutFilesStream = ReceiverStream<Result<JobEvent, Status>>;

    async fn put_files(
        &self,
        req: Request<tonic::Streaming<FileChunk>>,
    ) -> Result<Response<Self::PutFilesStream>, Status> {
        Ok(Response::new(self.put_files_impl(req.into_inner())?))
    }
}
