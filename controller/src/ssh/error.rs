//! What can go wrong talking to the target over SSH, read from the OpenSSH
//! client's exit status (255 = ssh itself failed) and its stderr.

/// Why an SSH step failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SshError {
    #[error("Cannot run the ssh client ({0}); install OpenSSH's client (Debian: openssh-client)")]
    NoClient(String),
    #[error("Cannot reach {dest}: {detail}. Check the address and port (-p), and that an SSH server runs there")]
    Unreachable { dest: String, detail: String },
    #[error("The host key of {dest} has CHANGED{}. This may be a reinstalled machine or an attack; if you trust the change, remove the old key with `ssh-keygen -R '{host}'{}` and try again. Nothing was uploaded", offending.as_ref().map(|o| format!(" (the old key is {o})")).unwrap_or_default(), known_hosts_file.as_ref().map(|f| format!(" -f {f}")).unwrap_or_default())]
    HostKeyChanged {
        dest: String,
        host: String,
        /// `FILE:LINE` of the stored key, from ssh's "Offending … key in FILE:LINE".
        offending: Option<String>,
        known_hosts_file: Option<String>,
    },
    #[error("The host key of {dest} is not known (ssh in BatchMode does not ask). Check its fingerprint and add it to known_hosts (e.g. `ssh {dest}` once), or pass --ssh-option StrictHostKeyChecking=accept-new")]
    HostKeyUnknown { dest: String },
    #[error("Permission denied by {dest}: {detail}. Pass the right key with -i or load it into ssh-agent")]
    PermissionDenied { dest: String, detail: String },
    #[error("ssh to {dest} failed: {detail}")]
    Other { dest: String, detail: String },
}

/// The last non-empty lines of ssh's stderr, joined (for messages), escaped
/// by [`crate::sanitize`]: the remote side writes them.
pub fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("@@@") && !l.starts_with("Warning: Permanently added")
        })
        .collect();
    crate::sanitize::line(&lines[lines.len().saturating_sub(2)..].join(" / ")).into_owned()
}

/// Classifies a failure of the ssh client itself (exit status 255).
pub fn classify(dest: &str, host: &str, stderr: &str) -> SshError {
    let dest = dest.to_string();
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        // "Offending ECDSA key in /root/.ssh/known_hosts:3"
        let offending = stderr
            .lines()
            .find_map(|l| l.split_once("Offending ").map(|(_, r)| r))
            .and_then(|r| {
                r.split_once(" key in ")
                    .map(|(_, loc)| loc.trim().to_string())
            });
        let known_hosts_file = offending
            .as_ref()
            .and_then(|o| o.rsplit_once(':').map(|(f, _)| f.to_string()));
        return SshError::HostKeyChanged {
            dest,
            host: host.to_string(),
            offending,
            known_hosts_file,
        };
    }
    if stderr.contains("Host key verification failed")
        || stderr.contains("No ED25519 host key is known")
        || stderr.contains("host key is known for")
    {
        return SshError::HostKeyUnknown { dest };
    }
    if stderr.contains("Permission denied") {
        return SshError::PermissionDenied {
            dest,
            detail: tail(stderr),
        };
    }
    const UNREACHABLE: &[&str] = &[
        "Connection refused",
        "Connection timed out",
        "No route to host",
        "Network is unreachable",
        "Could not resolve hostname",
        "Name or service not known",
        "kex_exchange_identification",
        "Connection reset by peer",
        "Connection closed by",
        "Operation timed out",
    ];
    if UNREACHABLE.iter().any(|p| stderr.contains(p)) {
        return SshError::Unreachable {
            dest,
            detail: tail(stderr),
        };
    }
    SshError::Other {
        dest,
        detail: tail(stderr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANGED: &str = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:abc.
Please contact your system administrator.
Add correct host key in /tmp/t/known_hosts to get rid of this message.
Offending ED25519 key in /tmp/t/known_hosts:1
Host key for [127.0.0.1]:40022 has changed and you have requested strict checking.
Host key verification failed.
";

    #[test]
    fn changed_host_key_names_the_line() {
        let e = classify("root@127.0.0.1", "127.0.0.1", CHANGED);
        assert_eq!(
            e,
            SshError::HostKeyChanged {
                dest: "root@127.0.0.1".into(),
                host: "127.0.0.1".into(),
                offending: Some("/tmp/t/known_hosts:1".into()),
                known_hosts_file: Some("/tmp/t/known_hosts".into()),
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("/tmp/t/known_hosts:1"), "{msg}");
        assert!(
            msg.contains("ssh-keygen -R '127.0.0.1' -f /tmp/t/known_hosts"),
            "{msg}"
        );
    }

    #[test]
    fn other_failures() {
        assert!(matches!(
            classify(
                "r@h",
                "h",
                "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n"
            ),
            SshError::Unreachable { .. }
        ));
        assert!(matches!(
            classify(
                "r@h",
                "h",
                "ssh: Could not resolve hostname nowhere: Name or service not known"
            ),
            SshError::Unreachable { .. }
        ));
        assert!(matches!(
            classify("r@h", "h", "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\n"),
            SshError::HostKeyUnknown { .. }
        ));
        let e = classify("r@h", "h", "r@h: Permission denied (publickey).\n");
        assert!(matches!(e, SshError::PermissionDenied { .. }));
        assert!(e.to_string().contains("(publickey)"));
        assert!(matches!(
            classify("r@h", "h", "weird"),
            SshError::Other { .. }
        ));
    }
}
