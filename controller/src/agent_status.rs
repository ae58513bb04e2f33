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
    #[error("Status failed: {}", .0.message())]
    Refused(tonic::Status),
}

/// The agent's Status, waiting at most `timeout` for the answer.
pub async fn ask(
    client: &mut AgentClient<Channel>,
    timeout: Duration,
) -> Result<StatusReply, StatusError> {
    match tokio::time::timeout(timeout, client.status(StatusRequest {})).await {
        Err(_) => Err(StatusError::Timeout(timeout)),
        Ok(Err(s)) => Err(StatusError::Refused(s)),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

/// True when an agent of the session in `tls` answers at `addr` right now
/// (one connection attempt, then at most `timeout` for the Status reply).
pub async fn answers_at(addr: &str, tls: &Path, timeout: Duration) -> bool {
    match crate::client::connect_with_retry(addr, tls, Duration::ZERO).await {
        Ok(mut c) => ask(&mut c, timeout).await.is_ok(),
        Err(_) => false,
    }
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
    fn the_root_itself_must_be_a_mount_point() {
        assert!(root_is_mounted(&status("/mnt", &["/mnt", "/mnt/boot"])));
        assert!(root_is_mounted(&status("/mnt/", &["/mnt"])));
        assert!(!root_is_mounted(&status("/mnt", &[])));
        assert!(!root_is_mounted(&status("/mnt", &["/mnt/boot"])));
        assert!(!root_is_mounted(&status("/mnt", &["/mnt2"])));
    }
}
