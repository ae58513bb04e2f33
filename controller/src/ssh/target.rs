//! Who to reach and how: `[USER@]HOST`, port, identity file and extra `-o`
//! options, rendered as arguments of the system's OpenSSH client. The user's
//! ssh_config, agent, ProxyJump and known_hosts all apply because landfall runs
//! `ssh` itself; it only adds `BatchMode=yes` (a password or host-key prompt
//! fails instead of hanging) and never turns host-key checking off.

use std::path::PathBuf;

/// Options every landfall ssh call carries.
const BASE_OPTIONS: &[&str] = &["BatchMode=yes", "ConnectTimeout=15"];

/// An SSH destination with its connection options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub identity: Option<PathBuf>,
    /// Passed as `-o OPTION`, e.g. `UserKnownHostsFile=/tmp/kh`.
    pub options: Vec<String>,
}

/// A destination that is not `[USER@]HOST`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not [USER@]HOST")]
pub struct ParseTargetError(pub String);

impl Target {
    /// `root@203.0.113.7`, `admin@host.example`, `host`, `root@[2001:db8::1]`.
    pub fn parse(s: &str) -> Result<Target, ParseTargetError> {
        let bad = || ParseTargetError(s.to_string());
        let (user, host) = match s.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, s),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        // Only the characters names and addresses are made of: a user or host
        // with shell metacharacters reaches the local shell through a
        // ProxyCommand or `Match exec` using %r/%h on OpenSSH before 9.6
        // (CVE-2023-51385), so it is refused here whatever the ssh version.
        let valid = |t: &str, extra: &[char]| {
            !t.is_empty()
                && !t.starts_with('-')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c) || extra.contains(&c))
        };
        // A host: a name, IPv4, or IPv6 with an optional %zone. A user: a login
        // name, or user@domain as directory logins have.
        if !valid(host, &[':', '%']) || user.is_some_and(|u| !valid(u, &['@'])) {
            return Err(bad());
        }
        Ok(Target {
            user: user.map(str::to_string),
            host: host.to_string(),
            port: None,
            identity: None,
            options: Vec::new(),
        })
    }

    pub fn port(mut self, port: Option<u16>) -> Self {
        self.port = port;
        self
    }

    pub fn identity(mut self, key: Option<PathBuf>) -> Self {
        self.identity = key;
        self
    }

    pub fn option(mut self, o: impl Into<String>) -> Self {
        self.options.push(o.into());
        self
    }

    /// `user@host` (or `host`) as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// The host as known_hosts names it: `host`, or `[host]:port` for a port other than 22.
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(p) if p != 22 => format!("[{}]:{p}", self.host),
            _ => self.host.clone(),
        }
    }

    /// The options part of an ssh command line (everything before the destination).
    pub fn ssh_options(&self) -> Vec<String> {
        let mut a = Vec::new();
        for o in BASE_OPTIONS {
            a.push("-o".into());
            a.push((*o).into());
        }
        for o in &self.options {
            a.push("-o".into());
            a.push(o.clone());
        }
        if let Some(p) = self.port {
            a.push("-p".into());
            a.push(p.to_string());
        }
        if let Some(i) = &self.identity {
            a.push("-i".into());
            a.push(i.display().to_string());
        }
        a
    }

    /// `ssh OPTIONS -T -- DEST COMMAND`: the full argument list after `ssh`.
    pub fn ssh_args(&self, remote_command: &str) -> Vec<String> {
        let mut a = self.ssh_options();
        a.push("-T".into());
        a.push("--".into());
        a.push(self.destination());
        a.push(remote_command.into());
        a
    }
}

/// Quotes `s` for a POSIX shell on the target.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        let t = Target::parse("root@203.0.113.7").unwrap();
        assert_eq!(t.user.as_deref(), Some("root"));
        assert_eq!(t.host, "203.0.113.7");
        assert_eq!(Target::parse("host.example").unwrap().user, None);
        assert_eq!(
            Target::parse("root@[2001:db8::1]").unwrap().host,
            "2001:db8::1"
        );
        assert_eq!(Target::parse("a@b@c").unwrap().user.as_deref(), Some("a@b"));
        assert_eq!(
            Target::parse("[fe80::1%eth0]").unwrap().host,
            "fe80::1%eth0"
        );
        assert_eq!(
            Target::parse("deploy_user@my-host_1").unwrap().host,
            "my-host_1"
        );
        for bad in [
            "",
            "root@",
            "-oProxyCommand=x",
            "root@-p",
            "a b@c",
            "@host",
            "root@host;touch /tmp/x",
            "$(id)@host",
            "`id`@host",
            "root@host|id",
            "ro'ot@host",
            "root@ho\"st",
            "root@host\nid",
            "root@host/x",
            "root@h&st",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments_keep_checking_on() {
        let t = Target::parse("root@127.0.0.1")
            .unwrap()
            .port(Some(2222))
            .identity(Some("/k/id".into()))
            .option("UserKnownHostsFile=/k/known_hosts");
        assert_eq!(
            t.ssh_args("uname -sm"),
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=15",
                "-o",
                "UserKnownHostsFile=/k/known_hosts",
                "-p",
                "2222",
                "-i",
                "/k/id",
                "-T",
                "--",
                "root@127.0.0.1",
                "uname -sm"
            ]
        );
        assert!(!t
            .ssh_args("x")
            .iter()
            .any(|a| a.contains("StrictHostKeyChecking=no")));
    }

    #[test]
    fn known_hosts_names() {
        let t = Target::parse("root@10.0.0.1").unwrap();
        assert_eq!(t.clone().port(Some(22)).known_hosts_name(), "10.0.0.1");
        assert_eq!(t.port(Some(2222)).known_hosts_name(), "[10.0.0.1]:2222");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/run/landfall/initrd"), "/run/landfall/initrd");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
