//! The order of the install flow, and its one owner. The invariant this
//! module keeps: nothing reaches the target before [`Steps::evaluate`] has
//! succeeded — the flake evaluated, the system built — so a broken flake, a
//! failing build or a missing `disko.devices` stops the run with the target
//! untouched. Then [`Steps::bootstrap`] (SSH checks, upload, kexec — or an
//! agent of this session already answering), [`Steps::connect`] (the TLS
//! session), the root check after a restart, and the phases in their order.
//!
//! The one exception: with a generated hardware configuration
//! (`--generate-hardware-config`), the file comes from the running agent's
//! inventory and the flake imports it, so the order is bootstrap, connect,
//! [`Steps::hardware_config`], then evaluate; the disks are still touched
//! only after the evaluation succeeded.
//!
//! The steps are a trait so the order can be checked without a target; the
//! real steps are [`super::install::TargetSteps`].

use std::time::Instant;

use super::evaluate::Evaluated;
use crate::closure::TransferSummary;
use crate::phase::{in_order, Phase};

/// What the flow does, step by step.
#[allow(async_fn_in_trait)]
pub trait Steps {
    /// Laptop only: evaluate the layout and build the system.
    fn evaluate(&mut self) -> anyhow::Result<Evaluated>;
    /// Whether a hardware configuration is generated from the agent (then
    /// the evaluation follows the bootstrap).
    fn generates_hardware_config(&self) -> bool;
    /// Read the agent's inventory and write the hardware configuration;
    /// returns the path written.
    async fn hardware_config(&mut self) -> anyhow::Result<String>;
    /// Make an agent run on the target (kexec over SSH, unless one of this
    /// session already answers); Some(seconds) when a kexec ran.
    async fn bootstrap(&mut self) -> anyhow::Result<Option<f64>>;
    /// Open the TLS session to the agent.
    async fn connect(&mut self) -> anyhow::Result<()>;
    /// Mount the root again if an agent restarted since the disko phase
    /// (only when `phases` write without disko).
    async fn ensure_root(&mut self, ev: &Evaluated, phases: &[Phase]) -> anyhow::Result<()>;
    /// One agent phase (disko, install, bootloader or reboot); the install
    /// phase returns its transfer summary.
    async fn phase(
        &mut self,
        phase: Phase,
        ev: &Evaluated,
    ) -> anyhow::Result<Option<TransferSummary>>;
}

/// Timings of each step, for the summary (`--json` prints it as the last line).
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub phases: Vec<(String, f64)>,
    pub closure: Option<TransferSummary>,
    /// The hardware configuration written (`--generate-hardware-config`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware_config: Option<String>,
    /// What the files phase wrote (with --extra-files, --chown or --copy-host-keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<crate::files::FilesReport>,
}

fn timed_evaluate<S: Steps>(s: &mut S, report: &mut Report) -> anyhow::Result<Evaluated> {
    let t = Instant::now();
    let ev = s.evaluate()?;
    report
        .phases
        .push(("evaluate".into(), t.elapsed().as_secs_f64()));
    Ok(ev)
}

/// Runs the flow: evaluate, bootstrap (only when `phases` hold kexec or an
/// agent is needed at all), connect, root check, then each phase in order.
/// With a generated hardware configuration: bootstrap, connect, write the
/// file, then evaluate, root check and the phases.
pub async fn drive<S: Steps>(s: &mut S, phases: &[Phase]) -> anyhow::Result<Report> {
    let total = Instant::now();
    let mut report = Report::default();
    let phases = in_order(phases);
    let generate = s.generates_hardware_config();

    let early = if generate {
        None
    } else {
        Some(timed_evaluate(s, &mut report)?)
    };
    if let Some(k) = s.bootstrap().await? {
        report.phases.push((Phase::Kexec.name().into(), k));
    }
    s.connect().await?;
    let ev = match early {
        Some(ev) => ev,
        None => {
            let t = Instant::now();
            report.hardware_config = Some(s.hardware_config().await?);
            report
                .phases
                .push(("hardware-config".into(), t.elapsed().as_secs_f64()));
            timed_evaluate(s, &mut report)?
        }
    };
    let agent_phases: Vec<Phase> = phases
        .iter()
        .copied()
        .filter(|p| *p != Phase::Kexec)
        .collect();
    s.ensure_root(&ev, &agent_phases).await?;
    for phase in agent_phases {
        let t = Instant::now();
        if let Some(summary) = s.phase(phase, &ev).await? {
            report.closure = Some(summary);
        }
        report
            .phases
            .push((phase.name().into(), t.elapsed().as_secs_f64()));
    }
    report
        .phases
        .push(("total".into(), total.elapsed().as_secs_f64()));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that records what was asked of it.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        evaluate_fails: bool,
        kexec: bool,
        generate: bool,
    }

    impl Steps for Recorder {
        fn evaluate(&mut self) -> anyhow::Result<Evaluated> {
            self.calls.push("evaluate".into());
            if self.evaluate_fails {
                anyhow::bail!("error: syntax error, unexpected end of file");
            }
            Ok(Evaluated::default())
        }
        fn generates_hardware_config(&self) -> bool {
            self.generate
        }
        async fn hardware_config(&mut self) -> anyhow::Result<String> {
            self.calls.push("hardware_config".into());
            Ok("/flake/hardware-configuration.nix".into())
        }
        async fn bootstrap(&mut self) -> anyhow::Result<Option<f64>> {
            self.calls.push("bootstrap".into());
            Ok(self.kexec.then_some(1.0))
        }
        async fn connect(&mut self) -> anyhow::Result<()> {
            self.calls.push("connect".into());
            Ok(())
        }
        async fn ensure_root(&mut self, _: &Evaluated, phases: &[Phase]) -> anyhow::Result<()> {
            self.calls.push(format!("ensure_root {}", phases.len()));
            Ok(())
        }
        async fn phase(
            &mut self,
            phase: Phase,
            _: &Evaluated,
        ) -> anyhow::Result<Option<TransferSummary>> {
            self.calls.push(phase.name().into());
            Ok(None)
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_broken_flake_stops_before_the_target_is_touched() {
        let mut r = Recorder {
            evaluate_fails: true,
            ..Default::default()
        };
        let e = block_on(drive(&mut r, &[Phase::Kexec, Phase::Disko])).unwrap_err();
        assert!(e.to_string().contains("syntax error"), "{e}");
        assert_eq!(r.calls, ["evaluate"], "nothing after the evaluation ran");
    }

    #[test]
    fn evaluation_comes_first_then_the_kexec_then_the_phases_in_order() {
        let mut r = Recorder {
            kexec: true,
            ..Default::default()
        };
        let phases = [Phase::Reboot, Phase::Install, Phase::Kexec, Phase::Disko];
        let report = block_on(drive(&mut r, &phases)).unwrap();
        assert_eq!(
            r.calls,
            [
                "evaluate",
                "bootstrap",
                "connect",
                "ensure_root 3",
                "disko",
                "install",
                "reboot"
            ]
        );
        let names: Vec<&str> = report.phases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["evaluate", "kexec", "disko", "install", "reboot", "total"]
        );
    }

    #[test]
    fn a_generated_hardware_configuration_is_written_after_the_kexec_and_before_the_evaluation() {
        let mut r = Recorder {
            kexec: true,
            generate: true,
            ..Default::default()
        };
        let phases = [Phase::Kexec, Phase::Disko, Phase::Install];
        let report = block_on(drive(&mut r, &phases)).unwrap();
        assert_eq!(
            r.calls,
            [
                "bootstrap",
                "connect",
                "hardware_config",
                "evaluate",
                "ensure_root 2",
                "disko",
                "install"
            ]
        );
        let names: Vec<&str> = report.phases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "kexec",
                "hardware-config",
                "evaluate",
                "disko",
                "install",
                "total"
            ]
        );
        assert_eq!(
            report.hardware_config.as_deref(),
            Some("/flake/hardware-configuration.nix")
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            json.contains("\"hardware_config\":\"/flake/hardware-configuration.nix\""),
            "{json}"
        );
    }

    #[test]
    fn a_broken_flake_after_the_hardware_configuration_stops_before_the_disks() {
        let mut r = Recorder {
            kexec: true,
            generate: true,
            evaluate_fails: true,
            ..Default::default()
        };
        let e = block_on(drive(&mut r, &[Phase::Kexec, Phase::Disko])).unwrap_err();
        assert!(e.to_string().contains("syntax error"), "{e}");
        assert_eq!(
            r.calls,
            ["bootstrap", "connect", "hardware_config", "evaluate"]
        );
    }

    #[test]
    fn the_json_summary_reports_what_the_files_phase_wrote() {
        let mut report = Report::default();
        let v: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert!(v.get("files").is_none(), "no files phase, no files object");
        report.files = Some(crate::files::FilesReport {
            paths: vec!["etc".into(), "etc/motd".into()],
            bytes: 6,
            chown: vec!["/home/alice 1000:100".into()],
            host_keys: vec!["etc/ssh/ssh_host_ed25519_key.pub ssh-ed25519 AAAA".into()],
            seconds: 0.1,
            agent_summary: "2 entries".into(),
        });
        let v: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(v["files"]["paths"][1], "etc/motd");
        assert_eq!(v["files"]["bytes"], 6);
        assert_eq!(v["files"]["chown"][0], "/home/alice 1000:100");
        assert_eq!(
            v["files"]["host_keys"][0],
            "etc/ssh/ssh_host_ed25519_key.pub ssh-ed25519 AAAA"
        );
    }

    #[test]
    fn no_kexec_no_kexec_timing() {
        let mut r = Recorder::default();
        let report = block_on(drive(&mut r, &[Phase::Install])).unwrap();
        let names: Vec<&str> = report.phases.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["evaluate", "install", "total"]);
    }
}
