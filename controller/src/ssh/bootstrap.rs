//! The SSH bootstrap: check the target, upload agent + kernel + initrd (when
//! changed) and the session's agent files, and run `landfall-agent kexec` there.
//!
//! The session files (CA certificate, agent certificate and key) go into
//! `<upload dir>/session` (mode 0700, files 0600). The agent reads them into
//! the in-memory initrd and deletes them before the load; the remote command
//! also removes the folder when the kexec fails. /run is a tmpfs on most
//! systems, so the key normally never reaches the target's disk; with the
//! /tmp fallback it may, until the old disk is wiped by the install.

use std::path::{Path, PathBuf};

use landfall_proto::tlsnames::{AGENT_CERT, AGENT_KEY, CA_CERT};

use super::error::SshError;
use super::facts::{self, FactsError, TargetFacts};
use super::target::{shell_quote, Target};
use super::upload::{Upload, UploadError, Uploaded};

/// The marker `landfall-agent kexec` prints once the image is loaded.
pub const LOADED_MARKER: &str = "landfall-agent: image loaded";

/// Local files of a kexec.
#[derive(Debug, Clone)]
pub struct KexecPlan {
    /// The static landfall-agent binary.
    pub agent: PathBuf,
    /// The image's kernel (bzImage).
    pub kernel: PathBuf,
    /// The image's initrd.
    pub initrd: PathBuf,
    /// The session folder (`landfall certs init`); its ca.pem, agent.pem and agent.key are sent.
    pub session: PathBuf,
    /// Extra kernel parameters for the image.
    pub append: Option<String>,
}

impl KexecPlan {
    /// The plan for an image folder (`bzImage` + `initrd`, as `landfall image build` writes).
    pub fn from_image_dir(image: &Path, agent: PathBuf, session: PathBuf) -> Self {
        KexecPlan {
            agent,
            kernel: image.join("bzImage"),
            initrd: image.join("initrd"),
            session,
            append: None,
        }
    }
}

/// What the bootstrap did.
#[derive(Debug, Clone)]
pub struct KexecReport {
    pub facts: TargetFacts,
    pub upload_dir: String,
    pub uploaded: Vec<Uploaded>,
    /// Kernel + initrd bytes.
    pub image_bytes: u64,
}

/// Why the kexec over SSH did not happen.
#[derive(Debug, thiserror::Error)]
pub enum KexecError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Target(#[from] FactsError),
    #[error("Cannot read {0}")]
    Local(PathBuf, #[source] std::io::Error),
    #[error("Uploading to the target failed")]
    Upload(#[source] UploadError),
    #[error("The target refused the kexec: {0}")]
    Refused(String),
    #[error("`landfall-agent kexec` failed on the target (exit status {status}): {message}")]
    AgentFailed { status: i32, message: String },
}

/// The agent's own message out of its stderr (its last `landfall-agent kexec:` line).
pub fn agent_message(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find_map(|l| {
            l.split_once("landfall-agent kexec: ").map(|(_, m)| {
                let m = m.trim();
                m.strip_prefix("kexec refused: ").unwrap_or(m).to_string()
            })
        })
        .unwrap_or_else(|| super::error::tail(stderr))
}

/// The remote command that runs the kexec (as root or through `sudo -n`).
pub fn kexec_command(dir: &str, sudo: bool, append: Option<&str>) -> String {
    let q = |name: &str| shell_quote(&format!("{dir}/{name}"));
    let mut cmd = format!(
        "{}{} kexec --kernel {} --initrd {} --session {} --detach",
        if sudo { "sudo -n " } else { "" },
        q("landfall-agent"),
        q("bzImage"),
        q("initrd"),
        q("session"),
    );
    if let Some(a) = append {
        cmd.push_str(&format!(" --append {}", shell_quote(a)));
    }
    format!("{cmd}; rc=$?; rm -rf {}; exit $rc", q("session"))
}

fn size(p: &Path) -> Result<u64, KexecError> {
    std::fs::metadata(p)
        .map(|m| m.len())
        .map_err(|e| KexecError::Local(p.to_path_buf(), e))
}

impl Target {
    /// Asks the target what it is; fails on a non-Linux, non-x86_64 target or
    /// one where we are neither root nor allowed passwordless sudo.
    pub fn check(&self) -> Result<TargetFacts, KexecError> {
        let out = self.run(facts::PROBE_SCRIPT, None)?;
        let f = facts::parse(&out.stdout)?;
        f.check_platform()?;
        Ok(f)
    }

    /// The whole bootstrap: [`Target::prepare_kexec`] then [`Target::start_kexec`].
    /// (The one-call API for `landfall install`; `landfall kexec` prints between the two.)
    /// Returns once the target has loaded the image (it reboots into it a second later).
    #[allow(dead_code)]
    pub fn kexec(&self, plan: &KexecPlan) -> Result<KexecReport, KexecError> {
        let report = self.prepare_kexec(plan)?;
        self.start_kexec(&report, plan)?;
        Ok(report)
    }

    /// Checks the target and uploads agent, kernel and initrd (when changed).
    pub fn prepare_kexec(&self, plan: &KexecPlan) -> Result<KexecReport, KexecError> {
        let facts = self.check()?;
        let image_bytes = size(&plan.kernel)? + size(&plan.initrd)?;
        let agent_bytes = size(&plan.agent)?;
        facts.check_ram(image_bytes)?;
        let dir = facts.upload_dir(image_bytes + agent_bytes)?;
        let files = [
            Upload {
                local: plan.agent.clone(),
                name: "landfall-agent".into(),
                mode: 0o755,
            },
            Upload {
                local: plan.kernel.clone(),
                name: "bzImage".into(),
                mode: 0o644,
            },
            Upload {
                local: plan.initrd.clone(),
                name: "initrd".into(),
                mode: 0o644,
            },
        ];
        let uploaded = self
            .upload_if_changed(&dir, &files, facts.has_sha256sum)
            .map_err(KexecError::Upload)?;
        Ok(KexecReport {
            facts,
            upload_dir: dir,
            uploaded,
            image_bytes,
        })
    }

    /// Sends the session's agent files and runs `landfall-agent kexec` in the
    /// folder [`Target::prepare_kexec`] filled.
    pub fn start_kexec(&self, report: &KexecReport, plan: &KexecPlan) -> Result<(), KexecError> {
        let dir = &report.upload_dir;
        let session: Vec<Upload> = [CA_CERT, AGENT_CERT, AGENT_KEY]
            .iter()
            .map(|n| Upload {
                local: plan.session.join(n),
                name: format!("session/{n}"),
                mode: 0o600,
            })
            .collect();
        for s in &session {
            size(&s.local)?;
        }
        let qs = shell_quote(&format!("{dir}/session"));
        self.run(&format!("rm -rf {qs}; umask 077; mkdir -p {qs}"), None)?;
        self.upload_if_changed(dir, &session, false)
            .map_err(KexecError::Upload)?;
        let out = self.run(
            &kexec_command(dir, !report.facts.root, plan.append.as_deref()),
            None,
        )?;
        match out.status {
            0 if out.stderr.contains(LOADED_MARKER) => Ok(()),
            3 => Err(KexecError::Refused(agent_message(&out.stderr))),
            status => Err(KexecError::AgentFailed {
                status,
                message: agent_message(&out.stderr),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_as_root_and_with_sudo() {
        assert_eq!(
            kexec_command("/run/landfall", false, None),
            "/run/landfall/landfall-agent kexec --kernel /run/landfall/bzImage --initrd /run/landfall/initrd \
             --session /run/landfall/session --detach; rc=$?; rm -rf /run/landfall/session; exit $rc"
        );
        let c = kexec_command("/tmp/landfall", true, Some("console=ttyS1 debug"));
        assert!(
            c.starts_with("sudo -n /tmp/landfall/landfall-agent kexec"),
            "{c}"
        );
        assert!(c.contains("--append 'console=ttyS1 debug'"), "{c}");
    }

    #[test]
    fn agent_message_is_found() {
        let err = "WARN kexec_file_load: ...\nlandfall-agent kexec: kexec refused: kexec is disabled on this system\n";
        assert_eq!(agent_message(err), "kexec is disabled on this system");
        assert_eq!(
            agent_message("sh: landfall-agent: not found\n"),
            "sh: landfall-agent: not found"
        );
    }
}
