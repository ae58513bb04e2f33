//! The SSH bootstrap: check the target, upload agent + kernel + initrd (when
//! changed) into a checked upload folder (see [`super::upload_dir`]), and run
//! `landfall-agent kexec` there with the kernel's and initrd's SHA-256 on its
//! command line.
//!
//! The session files (CA certificate, this boot's agent certificate, key and
//! boot ID, issued just before by [`crate::certs::issue_agent`]) go on the
//! SSH channel's stdin (`--session-stdin`, `landfall_proto::session_stream`):
//! the agent puts them into the in-memory initrd, and they never touch the
//! target's filesystem.

use std::path::{Path, PathBuf};

use landfall_proto::session_stream::{self, SESSION_FILES};

use super::error::SshError;
use super::facts::{self, FactsError, TargetFacts};
use super::target::{shell_quote, Target};
use super::upload::{Upload, UploadError, Uploaded};
use super::upload_dir::UnsafeDir;

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
    /// The session folder (`landfall certs init`); its ca.pem, agent.pem, agent.key and boot-id are sent.
    pub session: PathBuf,
    /// Extra kernel parameters for the image.
    pub append: Option<String>,
    /// Carry the target's SSH host keys into the image (`--copy-host-keys`).
    pub copy_host_keys: bool,
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
            copy_host_keys: false,
        }
    }
}

/// What the bootstrap did.
#[derive(Debug, Clone)]
pub struct KexecReport {
    pub facts: TargetFacts,
    pub upload_dir: String,
    /// True when `upload_dir` is an earlier run's folder that passed the checks.
    pub reused_dir: bool,
    /// Earlier runs' folders not used, with why.
    pub refused_dirs: Vec<(String, UnsafeDir)>,
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
                crate::sanitize::line(m.strip_prefix("kexec refused: ").unwrap_or(m)).into_owned()
            })
        })
        .unwrap_or_else(|| super::error::tail(stderr))
}

/// What the remote kexec command needs besides the folder.
#[derive(Debug, Clone, Default)]
pub struct KexecCommand<'a> {
    pub sudo: bool,
    pub append: Option<&'a str>,
    /// SHA-256 (hex) of the uploaded bzImage and initrd.
    pub kernel_sha256: &'a str,
    pub initrd_sha256: &'a str,
    /// `--copy-host-keys`: the target's /etc/ssh/ssh_host_* go into the image.
    pub copy_host_keys: bool,
}

/// The remote command that runs the kexec (as root or through `sudo -n`); the
/// session stream comes on its stdin.
pub fn kexec_command(dir: &str, k: &KexecCommand) -> String {
    let q = |name: &str| shell_quote(&format!("{dir}/{name}"));
    let mut cmd = format!(
        "{}{} kexec --kernel {} --kernel-sha256 {} --initrd {} --initrd-sha256 {} --session-stdin --detach",
        if k.sudo { "sudo -n " } else { "" },
        q("landfall-agent"),
        q("bzImage"),
        shell_quote(k.kernel_sha256),
        q("initrd"),
        shell_quote(k.initrd_sha256),
    );
    if k.copy_host_keys {
        cmd.push_str(" --copy-host-keys");
    }
    if let Some(a) = k.append {
        cmd.push_str(&format!(" --append {}", shell_quote(a)));
    }
    cmd
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

    /// Checks the target, finds or makes a checked upload folder, and uploads
    /// agent, kernel and initrd (when changed).
    pub fn prepare_kexec(&self, plan: &KexecPlan) -> Result<KexecReport, KexecError> {
        let facts = self.check()?;
        let sudo = !facts.root;
        let image_bytes = size(&plan.kernel)? + size(&plan.initrd)?;
        let agent_bytes = size(&plan.agent)?;
        facts.check_ram(image_bytes)?;
        let base = facts.upload_base(image_bytes + agent_bytes)?;
        let earlier = self.earlier_upload_dirs(sudo).map_err(KexecError::Upload)?;
        let refused_dirs = earlier.refused;
        let (dir, reused_dir) = match earlier.usable.into_iter().next() {
            Some(d) => (d, true),
            None => (
                self.make_upload_dir(base, sudo)
                    .map_err(KexecError::Upload)?,
                false,
            ),
        };
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
        self.check_upload_dir(&dir, sudo)
            .map_err(KexecError::Upload)?;
        let uploaded = self
            .upload_if_changed(&dir, &files, facts.has_sha256sum, sudo)
            .map_err(KexecError::Upload)?;
        Ok(KexecReport {
            facts,
            upload_dir: dir,
            reused_dir,
            refused_dirs,
            uploaded,
            image_bytes,
        })
    }

    /// Checks the folder [`Target::prepare_kexec`] filled again and runs
    /// `landfall-agent kexec` in it, the session's agent files on its stdin.
    pub fn start_kexec(&self, report: &KexecReport, plan: &KexecPlan) -> Result<(), KexecError> {
        let dir = &report.upload_dir;
        let mut session = Vec::new();
        for name in SESSION_FILES {
            let p = plan.session.join(name);
            session.push(std::fs::read(&p).map_err(|e| KexecError::Local(p, e))?);
        }
        let stream = session_stream::encode([
            &session[0][..],
            &session[1][..],
            &session[2][..],
            &session[3][..],
        ]);
        let sha = |name: &str| {
            report
                .uploaded
                .iter()
                .find(|u| u.name == name)
                .map(|u| u.sha256.clone())
                .unwrap_or_default()
        };
        let (kernel_sha256, initrd_sha256) = (sha("bzImage"), sha("initrd"));
        let sudo = !report.facts.root;
        self.check_upload_dir(dir, sudo)
            .map_err(KexecError::Upload)?;
        let cmd = kexec_command(
            dir,
            &KexecCommand {
                sudo,
                append: plan.append.as_deref(),
                kernel_sha256: &kernel_sha256,
                initrd_sha256: &initrd_sha256,
                copy_host_keys: plan.copy_host_keys,
            },
        );
        let out = self.run_with_input(&cmd, &stream)?;
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
        let h = "a".repeat(64);
        let k = KexecCommand {
            kernel_sha256: &h,
            initrd_sha256: &h,
            ..Default::default()
        };
        assert_eq!(
            kexec_command("/run/landfall.Ab12Cd", &k),
            format!(
                "/run/landfall.Ab12Cd/landfall-agent kexec --kernel /run/landfall.Ab12Cd/bzImage \
                 --kernel-sha256 {h} --initrd /run/landfall.Ab12Cd/initrd --initrd-sha256 {h} \
                 --session-stdin --detach"
            )
        );
        let c = kexec_command(
            "/tmp/landfall.Ab12Cd",
            &KexecCommand {
                sudo: true,
                append: Some("console=ttyS1 debug"),
                ..k
            },
        );
        assert!(
            c.starts_with("sudo -n /tmp/landfall.Ab12Cd/landfall-agent kexec"),
            "{c}"
        );
        assert!(c.ends_with("--append 'console=ttyS1 debug'"), "{c}");
        let c = kexec_command(
            "/tmp/landfall.Ab12Cd",
            &KexecCommand {
                copy_host_keys: true,
                ..k
            },
        );
        assert!(
            c.ends_with("--session-stdin --detach --copy-host-keys"),
            "{c}"
        );
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
