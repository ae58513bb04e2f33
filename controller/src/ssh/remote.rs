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

    /// Runs `script` with `input` on its stdin (written from a thread, so a
    /// large output cannot stall it); as [`Target::run`] otherwise. The bytes
    /// travel only through the SSH channel.
    pub fn run_with_input(&self, script: &str, input: &[u8]) -> Result<RemoteOutput, SshError> {
        use std::io::Write;
        let mut child = Command::new(ssh_binary())
            .args(self.ssh_args(script))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SshError::NoClient(format!("{}: {e}", ssh_binary())))?;
        let mut stdin = child.stdin.take();
        let data = input.to_vec();
        // A remote command that exits without reading is seen in its status.
        let writer = std::thread::spawn(move || {
            if let Some(s) = stdin.as_mut() {
                let _ = s.write_all(&data);
            }
        });
        let out = child
            .wait_with_output()
            .map_err(|e| SshError::NoClient(format!("{}: {e}", ssh_binary())))?;
        let _ = writer.join();
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

    /// The address ssh really connects to (`ssh -G`: `Host` aliases and
    /// `HostName` in the user's ssh_config applied), for reaching the agent
    /// at the same machine after the kexec. Falls back to the given host.
    pub fn resolved_host(&self) -> String {
        let mut args = self.ssh_options();
        args.push("-G".into());
        args.push(self.destination());
        Command::new(ssh_binary())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| parse_ssh_g_hostname(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_else(|| self.host.clone())
    }
}

/// The `hostname` line of `ssh -G` output.
pub fn parse_ssh_g_hostname(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("hostname "))
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_g_output() {
        let out = "user root\nhostname 203.0.113.7\nport 22\n";
        assert_eq!(parse_ssh_g_hostname(out).as_deref(), Some("203.0.113.7"));
        assert_eq!(parse_ssh_g_hostname("port 22\n"), None);
    }

    #[test]
    fn ssh_config_alias_is_resolved() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("config");
        std::fs::write(&cfg, "Host office-box\n  HostName 192.0.2.44\n").unwrap();
        let t = Target::parse("root@office-box").unwrap().option(format!(
            "UserKnownHostsFile={}",
            d.path().join("kh").display()
        ));
        // The user's ssh_config (given with -F here) maps the alias to an address.
        let mut args = vec!["-F".to_string(), cfg.display().to_string()];
        args.extend(t.ssh_options());
        args.push("-G".into());
        args.push(t.destination());
        let out = Command::new("ssh")
            .args(&args)
            .output()
            .expect("ssh (openssh-client)");
        assert_eq!(
            parse_ssh_g_hostname(&String::from_utf8_lossy(&out.stdout)).as_deref(),
            Some("192.0.2.44")
        );
        // Without the config the name stays as given.
        assert_eq!(
            Target::parse("root@203.0.113.9").unwrap().resolved_host(),
            "203.0.113.9"
        );
    }
}
