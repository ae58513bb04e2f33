//! Asking an agent its `Status`: the one place the controller does it. The
//! install flow asks whether an agent of this session already answers (no
//! kexec then) and whether its root is mounted (remount after a restart); the
//! kexec waits for the first answer; the transfer's resume asks whether the
//! agent came back without its root; `landfall status` prints the reply.

use std::path::Path;
use std::time::Duration;

use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::{StatusReply, StatusRequest};
use tonic::transport::Channel;

/// Why no Status reply came.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("The agent gave no Status answer within {0:?}")]
    Timeout(Duration),
    #[error("Status failed: {0}")]
    Refused(crate::agent_error::AgentError),
}

/// The agent's Status, waiting at most `timeout` for the answer.
pub async fn ask(
    client: &mut AgentClient<Channel>,
    timeout: Duration,
) -> Result<StatusReply, StatusError> {
    match tokio::time::timeout(timeout, client.status(StatusRequest {})).await {
        Err(_) => Err(StatusError::Timeout(timeout)),
        Ok(Err(s)) => Err(StatusError::Refused(s.into())),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

/// True when the agent of this boot of the session in `tls` answers at `addr`
/// right now (one connection attempt, then at most `timeout` for the Status
/// reply): its key is the pinned one (checked while connecting) and its boot
/// ID is the session's. An agent of an older boot, or one started without a
/// boot ID, does not count.
pub async fn answers_at(addr: &str, tls: &Path, timeout: Duration) -> bool {
    let Some(expected) = crate::certs::boot_id(tls) else {
        return false;
    };
    match crate::client::connect_with_retry(addr, tls, Duration::ZERO).await {
        Ok(mut c) => match ask(&mut c, timeout).await {
            Ok(st) => is_this_boot(&st, &expected),
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// Whether the reply comes from the boot whose ID is `expected`.
pub fn is_this_boot(status: &StatusReply, expected: &str) -> bool {
    landfall_proto::boot_id::parse(&status.boot_id).is_some_and(|id| id == expected)
}

/// Why the agent that answered is not the boot the session in `tls` last
/// started, if it is not (None when it is, or the session has no boot ID).
pub fn other_boot(status: &StatusReply, tls: &Path) -> Option<String> {
    let expected = crate::certs::boot_id(tls)?;
    (!is_this_boot(status, &expected)).then(|| {
        format!(
            "the agent reports boot ID {:?}, but the session in {} last started boot {expected}",
            crate::sanitize::line(&status.boot_id),
            tls.display()
        )
    })
}

/// True when the agent's install root is a mount point.
pub fn root_is_mounted(status: &StatusReply) -> bool {
    let root = status.root.trim_end_matches('/');
    status
        .mounts
        .iter()
        .any(|m| m.target.trim_end_matches('/') == root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use landfall_proto::v1::Mount;

    fn status(root: &str, mounts: &[&str]) -> StatusReply {
        StatusReply {
            pid1: true,
            root: root.into(),
            mounts: mounts
                .iter()
                .map(|t| Mount {
                    target: t.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn only_the_sessions_boot_id_counts() {
        let mut st = status("/mnt", &[]);
        assert!(!is_this_boot(&st, "00ff"), "an agent without a boot ID");
        st.boot_id = "00ff".into();
        assert!(is_this_boot(&st, "00ff"));
        assert!(!is_this_boot(&st, "00fe"), "another boot");
        st.boot_id = "00ff\n".into();
        assert!(is_this_boot(&st, "00ff"));
        st.boot_id = "00ff zz".into();
        assert!(!is_this_boot(&st, "00ff"));
    }

    #[test]
    fn the_root_itself_must_be_a_mount_point() {
        assert!(root_is_mounted(&status("/mnt", &["/mnt", "/mnt/boot"])));
        assert!(root_is_mounted(&status("/mnt/", &["/mnt"])));
        assert!(!root_is_mounted(&status("/mnt", &[])));
        assert!(!root_is_mounted(&status("/mnt", &["/mnt/boot"])));
        assert!(!root_is_mounted(&status("/mnt", &["/mnt2"])));
    }
}
