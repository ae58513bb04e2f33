//! PutSecrets: disk keys into the agent's RAM (see `crate::secrets`).

use landfall_proto::v1::{PutSecretsReply, PutSecretsRequest};
use tonic::Status;
use zeroize::Zeroize;

use super::AgentService;
use crate::jobs::{run_blocking, Reason};
use crate::secrets::{self, SecretError, SecretFile};

fn secret_status(e: SecretError) -> Status {
    match e {
        SecretError::Io { .. } => Status::internal(format!("{}: {e}", Reason::Internal)),
        _ => Status::invalid_argument(format!("{}: {e}", Reason::InvalidRequest)),
    }
}

impl AgentService {
    pub(super) async fn put_secrets_impl(
        &self,
        mut req: PutSecretsRequest,
    ) -> Result<PutSecretsReply, Status> {
        let root = self.state.root.clone();
        let written = run_blocking("put-secrets", move || {
            let files: Vec<SecretFile<'_>> = req
                .files
                .iter()
                .map(|f| SecretFile {
                    path: &f.path,
                    content: &f.content,
                })
                .collect();
            let r = secrets::put(&files, &root);
            drop(files);
            for f in &mut req.files {
                f.content.zeroize();
            }
            r
        })
        .await?
        .map_err(secret_status)?;
        let written: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        tracing::info!(
            "Put {} secret file(s) into RAM: {}",
            written.len(),
            written.join(", ")
        );
        Ok(PutSecretsReply { written })
    }
}
