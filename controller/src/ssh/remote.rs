//! Running commands on the target with the system's `ssh` (set `LANDFALL_SSH`
//! to use another client binary), and uploading files through the same
//! channel (`cat > FILE` on the target: works with any POSIX shell, also on
//! rescue systems without an sftp-server or scp binary).

use std::path::Path;
use std::process::{Command, Stdio};

use super::error::{classify, SshError};
use super::target::Target;

/// What a remote command printed and returned.
#[derive(Debug, Clone)]
pub struct RemoteOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

fn ssh_binary() -> String {
    std::env::var("LANDFALL_SSH").unwrap_or_else(|_| "ssh".into())
}

impl Target {
    /// Runs `script` with the target's login shell. An ssh failure (exit
    /// status 255) is an error; the command's own status is returned.
    pub fn run(&self, script: &str, stdin: Option<&Path>) -> Result<RemoteOutput, SshError> {
        let mut cmd = Command::new(ssh_binary());
        cmd.args(self.ssh_args(script))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match stdin {
            Some(p) => {
                let f = std::fs::File::open(p).map_err(|e| SshError::Other {
                    dest: self.destination(),
                    detail: format!("cannot read {}: {e}", p.display()),
                })?;
                cmd.stdin(f);
            }
            None => {
                cmd.stdin(Stdio::null());
            }
        }
        let out = cmd
            .output()
            .map_err(|e| SshError::NoClient(format!("{}: {e}", ssh_binary())))?;
        let r = RemoteOutput {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if r.status == 255 {
            return Err(classify(
                &self.destination(),
                &self.known_hosts_name(),
                &r.stderr,
            ));
        }
        Ok(r)
    }
}
