//! InstallBootloader and Reboot: the boot engine behind gRPC.
//!
//! Invariant: after a failed bootloader install, Reboot is refused unless
//! forced, so the controller never reboots the machine into a system that
//! cannot boot (nixos-anywhere issues #159, #291). A later successful install
//! lifts the refusal.

use std::path::PathBuf;
use std::time::Duration;

use landfall_proto::v1::{
    BootloaderPolicy, BootloaderRequest, JobEvent, RebootReply, RebootRequest, StepState,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::AgentService;
use crate::boot::{self, BootEvent, BootPolicy};
use crate::jobs::{run_blocking, stream_job, Emit, Reason};
use crate::steps::error_chain;

/// Reason prefix: the bootloader could not be planned or installed.
pub const BOOTLOADER_FAILED: &str = "bootloader-failed";
/// Reason prefix: a reboot was refused (failed bootloader, not PID 1).
pub const REBOOT_REFUSED: &str = "reboot-refused";
/// How long after the Reboot reply reboot(2) is called.
const REBOOT_DELAY: Duration = Duration::from_millis(1000);
/// systemd-boot's menu timeout when the request does not say (NixOS's default).
const DEFAULT_LOADER_TIMEOUT: u32 = 5;

fn policy(p: i32) -> Result<BootPolicy, Status> {
    match BootloaderPolicy::try_from(p) {
        Ok(BootloaderPolicy::Auto) => Ok(BootPolicy::Auto),
        Ok(BootloaderPolicy::SystemdBoot) => Ok(BootPolicy::SystemdBoot),
        Ok(BootloaderPolicy::Closure) => Ok(BootPolicy::Closure),
        Ok(BootloaderPolicy::None) => Ok(BootPolicy::None),
        Err(_) => Err(Status::invalid_argument(format!(
            "{}: unknown bootloader policy {p}",
            Reason::InvalidRequest
        ))),
    }
}

/// A boot engine event as a job event.
pub fn job_event(e: &BootEvent) -> JobEvent {
    match e {
        BootEvent::Output(line) => JobEvent {
            state: StepState::Output as i32,
            description: line.clone(),
            ..Default::default()
        },
        BootEvent::Step(step) => step.into(),
    }
}

impl AgentService {
    fn boot_root(&self, root: &str) -> PathBuf {
        if root.is_empty() {
            self.state.root.clone()
        } else {
            PathBuf::from(root)
        }
    }

    fn set_boot_failure(&self, failure: Option<String>) {
        if let Ok(mut f) = self.state.bootloader_failure.lock() {
            *f = failure;
        }
    }

    pub(super) fn install_bootloader_impl(
        &self,
        req: BootloaderRequest,
    ) -> Result<ReceiverStream<Result<JobEvent, Status>>, Status> {
        let policy = policy(req.policy)?;
        let guard = self.state.jobs.begin("install-bootloader")?;
        let root = self.boot_root(&req.root);
        let esp = if req.esp.is_empty() {
            root.join("boot")
        } else {
            PathBuf::from(&req.esp)
        };
        let this = self.clone();
        Ok(stream_job(
            "install-bootloader",
            guard,
            move |emit: Emit<'_>| {
                let toplevel = (!req.toplevel.is_empty()).then(|| PathBuf::from(&req.toplevel));
                let timeout = req.loader_timeout_secs.unwrap_or(DEFAULT_LOADER_TIMEOUT);
                let fail = |what: &str, e: &dyn std::error::Error| {
                    let msg = format!("{BOOTLOADER_FAILED}: {what}: {}", error_chain(e));
                    if !req.plan_only {
                        this.set_boot_failure(Some(msg.clone()));
                    }
                    Status::aborted(msg)
                };
                let plan = boot::plan_bootloader(&root, toplevel.as_deref(), policy, &esp, timeout)
                    .map_err(|e| fail("planning", &e))?;
                let description = plan.describe();
                tracing::info!("{description}");
                for line in description.lines() {
                    emit(job_event(&BootEvent::Output(line.to_string())));
                }
                if req.plan_only {
                    return Ok(format!(
                        "plan: {} for {}",
                        plan.method_name(),
                        plan.toplevel.display()
                    ));
                }
                let mut on_event = |e: BootEvent| {
                    tracing::info!("{e}");
                    emit(job_event(&e));
                };
                let summary = boot::install_bootloader(&plan, true, &mut on_event)
                    .map_err(|e| fail("installing", &e))?;
                this.set_boot_failure(None);
                Ok(format!("{}: {summary}", plan.method_name()))
            },
        ))
    }

    pub(super) async fn reboot_impl(&self, req: RebootRequest) -> Result<RebootReply, Status> {
        let failure = self
            .state
            .bootloader_failure
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default();
        if let (Some(f), false, false) = (&failure, req.force, req.unmount_only) {
            return Err(Status::failed_precondition(format!(
                "{REBOOT_REFUSED}: the bootloader install failed, the machine would not boot; \
                 fix it and install the bootloader again, or force the reboot. The failure: {f}"
            )));
        }
        if !req.unmount_only && !self.state.pid1 {
            return Err(Status::failed_precondition(format!(
                "{REBOOT_REFUSED}: the agent is not PID 1 here, so it does not reboot this \
                 machine; ask for unmount_only"
            )));
        }
        let guard = self.state.jobs.begin("reboot")?;
        let root = self.boot_root(&req.root);
        let swapoff = self.state.pid1;
        let report = run_blocking("reboot", move || boot::prepare_reboot(&root, swapoff))
            .await?
            .map_err(|e| Status::internal(format!("{REBOOT_REFUSED}: {}", error_chain(&e))))?;
        for (m, why) in &report.refused {
            tracing::warn!("{} refused to unmount: {why}", m.display());
        }
        let rebooting = !req.unmount_only;
        if rebooting {
            tracing::info!("Rebooting in {} ms", REBOOT_DELAY.as_millis());
            // The reply goes out first; the job slot stays taken until the end.
            tokio::spawn(async move {
                let _guard = guard;
                tokio::time::sleep(REBOOT_DELAY).await;
                if let Ok(e) = tokio::task::spawn_blocking(boot::reboot_now).await {
                    tracing::error!("{}", error_chain(&e));
                }
            });
        }
        let s = |p: &PathBuf| p.display().to_string();
        Ok(RebootReply {
            swaps_off: report.swaps_off.iter().map(s).collect(),
            unmounted: report.unmounted.iter().map(s).collect(),
            refused: report
                .refused
                .iter()
                .map(|(m, why)| format!("{}: {why}", m.display()))
                .collect(),
            dm_closed: report.dm_closed.iter().map(s).collect(),
            rebooting,
            delay_ms: if rebooting {
                REBOOT_DELAY.as_millis() as u32
            } else {
                0
            },
        })
    }
}
