//! PlanLayout and ApplyLayout: the disk engine behind gRPC.

use std::collections::BTreeMap;
use std::path::PathBuf;

use landfall_proto::layout::{render, Layout, PlanOptions};
use landfall_proto::v1::{JobEvent, LayoutRequest, PlanReply};
use tonic::Status;

use super::AgentService;
use crate::disk::{self, ApplyOptions, DiskError, OpenDisk};
use crate::jobs::{run_blocking, stream_job, Emit, Reason};
use crate::steps::{error_chain, StepEvent};

fn disk_status(e: DiskError) -> Status {
    let chain = error_chain(&e);
    match e {
        DiskError::Layout(_) => {
            Status::invalid_argument(format!("{}: {chain}", Reason::InvalidLayout))
        }
        DiskError::Resolve(_) => Status::not_found(format!("{}: {chain}", Reason::DiskFailed)),
        DiskError::Keys(_) => {
            Status::failed_precondition(format!("{}: {chain}", Reason::DiskFailed))
        }
        DiskError::Busy { .. } | DiskError::ReadOnly { .. } => {
            Status::failed_precondition(format!("{}: {chain}", Reason::DiskFailed))
        }
        _ => Status::internal(format!("{}: {chain}", Reason::DiskFailed)),
    }
}

fn open(
    req: &LayoutRequest,
    writable: bool,
) -> Result<(Layout, BTreeMap<String, OpenDisk>), Status> {
    let layout = Layout::from_json(&req.layout_json)
        .map_err(|e| Status::invalid_argument(format!("{}: {e}", Reason::InvalidLayout)))?;
    let args: Vec<String> = req.disks.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let overrides = disk::parse_overrides(&layout, &args).map_err(|e| disk_status(e.into()))?;
    let disks =
        disk::open_disks(&layout, &overrides, writable, 512).map_err(|e| disk_status(e.into()))?;
    Ok((layout, disks))
}

/// The request's install: only disks carrying its ID count as applied.
fn plan_options(req: &LayoutRequest) -> PlanOptions {
    PlanOptions::install(&req.install_id, req.keep_existing)
}

impl AgentService {
    fn layout_root(&self, req: &LayoutRequest) -> PathBuf {
        if req.root.is_empty() {
            self.state.root.clone()
        } else {
            PathBuf::from(&req.root)
        }
    }

    pub(super) async fn plan_layout_impl(&self, req: LayoutRequest) -> Result<PlanReply, Status> {
        let root = self.layout_root(&req);
        run_blocking("plan-layout", move || {
            let (layout, disks) = open(&req, false)?;
            let plan =
                disk::plan_layout(&layout, &disks, &plan_options(&req)).map_err(disk_status)?;
            Ok(PlanReply {
                plan_json: plan.to_json(),
                rendered: render(&plan, &root.to_string_lossy()),
                destructive: plan.is_destructive(),
                already_applied: plan.already_applied(),
            })
        })
        .await?
    }

    pub(super) fn apply_layout_impl(
        &self,
        req: LayoutRequest,
    ) -> Result<tokio_stream::wrappers::ReceiverStream<Result<JobEvent, Status>>, Status> {
        let guard = self.state.jobs.begin("apply-layout")?;
        let opts = ApplyOptions {
            root: self.layout_root(&req),
            mount: req.mount,
            swapon: req.swapon || self.state.pid1,
            force: req.force,
        };
        Ok(stream_job("apply-layout", guard, move |emit: Emit<'_>| {
            let (layout, disks) = open(&req, true)?;
            let plan =
                disk::plan_layout(&layout, &disks, &plan_options(&req)).map_err(disk_status)?;
            if !req.confirmed_plan.is_empty() && plan.digest() != req.confirmed_plan {
                return Err(Status::failed_precondition(format!(
                    "{}: the disks changed since the plan you confirmed was made; nothing was \
                     written. The plan now is:\n{}",
                    Reason::ConfirmationRequired,
                    render(&plan, &opts.root.to_string_lossy())
                )));
            }
            if (plan.is_destructive() || req.force) && !req.confirm_destroy {
                return Err(Status::failed_precondition(format!(
                    "{}: applying this layout destroys data; confirm it:\n{}",
                    Reason::ConfirmationRequired,
                    render(&plan, &opts.root.to_string_lossy())
                )));
            }
            tracing::info!(
                "Applying the layout:\n{}",
                render(&plan, &opts.root.to_string_lossy())
            );
            let mut on_event = |e: &StepEvent| {
                tracing::info!("{e}");
                emit(JobEvent::from(e));
            };
            let mut keys = disk::LuksPassphrases::new();
            for (name, passphrase) in &req.luks_passwords {
                keys.insert(name.clone(), zeroize::Zeroizing::new(passphrase.clone()));
            }
            let report = disk::apply_with_keys(&plan, &disks, &opts, &keys, &mut on_event)
                .map_err(disk_status)?;
            Ok(if report.already_applied {
                format!(
                    "already applied: nothing destroyed; {} step(s) run, {} skipped",
                    report.executed, report.skipped
                )
            } else {
                format!(
                    "applied: {} step(s) run, {} skipped",
                    report.executed, report.skipped
                )
            })
        }))
    }
}
