//! PutFiles: the extra-files engine ([`crate::files`]) behind gRPC.
//!
//! The first message is the whole manifest with the `--chown` rules and the
//! host-key request; it is checked against the root before anything is
//! written ([`FilesPlan::prepare`]), so a hostile or mistaken request fails
//! with INVALID_ARGUMENT ("invalid-files: …", naming the entry) and the disk
//! as it was. Then each regular file's bytes arrive as `data` messages in
//! manifest order (a message never spans two files), one FINISHED event per
//! entry; then `end`, after which the `--chown` rules and the host keys are
//! applied and the root's filesystem is flushed. The public host keys
//! installed come back as OUTPUT events `host-key <path> <key line>`.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use landfall_proto::v1::file_chunk::Kind;
use landfall_proto::v1::{FileChunk, FileKind, FilesBegin, JobEvent, StepState};
use tonic::{Status, Streaming};

use super::AgentService;
use crate::files::host_keys::{self, IMAGE_HOST_KEYS_DIR};
use crate::files::writer::ChownRule;
use crate::files::{Entry, EntryKind, FilesError, FilesPlan};
use crate::jobs::{forward_inbound, stream_job, Emit, Reason};
use crate::steps::error_chain;

/// The reason prefix of a request refused before anything was written.
pub const INVALID_FILES: &str = "invalid-files";
/// The reason prefix of a failure while writing.
pub const FILES_FAILED: &str = "files-failed";
/// The reason prefix when host keys are asked for but the agent has none.
pub const NO_HOST_KEYS: &str = "no-host-keys";
/// The OUTPUT event prefix of an installed public host key.
pub const HOST_KEY_EVENT: &str = "host-key ";

impl AgentService {
    pub(super) fn put_files_impl(
        &self,
        inbound: Streaming<FileChunk>,
    ) -> Result<tokio_stream::wrappers::ReceiverStream<Result<JobEvent, Status>>, Status> {
        let guard = self.state.jobs.begin("put-files")?;
        let default_root = self.state.root.clone();
        let mut rx = forward_inbound(inbound);
        Ok(stream_job("put-files", guard, move |emit: Emit<'_>| {
            receive_files(
                &mut || rx.blocking_recv(),
                &default_root,
                Path::new(IMAGE_HOST_KEYS_DIR),
                emit,
            )
        }))
    }
}

/// The next message of the stream: None when the controller went away.
pub type Next<'a> = &'a mut dyn FnMut() -> Option<Result<FileChunk, Status>>;

fn kind(m: Option<Result<FileChunk, Status>>) -> Result<Kind, Status> {
    match m {
        None => Err(Status::aborted(format!(
            "{}: the controller went away",
            Reason::Aborted
        ))),
        Some(Err(s)) => Err(Status::aborted(format!(
            "{}: the files stream broke: {}",
            Reason::Aborted,
            s.message()
        ))),
        Some(Ok(FileChunk { kind: None })) => Err(Status::invalid_argument(format!(
            "{}: an empty files message",
            Reason::InvalidRequest
        ))),
        Some(Ok(FileChunk { kind: Some(k) })) => Ok(k),
    }
}

fn invalid(e: &dyn std::error::Error) -> Status {
    Status::invalid_argument(format!("{INVALID_FILES}: {}", error_chain(e)))
}

fn failed(e: &dyn std::error::Error) -> Status {
    Status::internal(format!("{FILES_FAILED}: {}", error_chain(e)))
}

/// The manifest entries of `begin`, or which one is not a directory, a
/// regular file or a link.
fn entries_of(begin: &FilesBegin) -> Result<Vec<Entry>, Status> {
    begin
        .entries
        .iter()
        .map(|e| {
            let kind = match FileKind::try_from(e.kind) {
                Ok(FileKind::Directory) => EntryKind::Directory,
                Ok(FileKind::Regular) => EntryKind::Regular { size: e.size },
                Ok(FileKind::Symlink) => EntryKind::Symlink {
                    target: e.target.clone(),
                },
                _ => {
                    return Err(invalid(&crate::files::ManifestError::BadKind {
                        path: e.path.clone(),
                    }))
                }
            };
            Ok(Entry {
                path: e.path.clone(),
                kind,
                mode: e.mode,
            })
        })
        .collect()
}

/// A regular file's bytes, pulled from `data` messages; a message past the
/// file's end or any other message is a protocol error kept in `broken`.
struct FileData<'a, 'b> {
    next: &'a mut Next<'b>,
    remaining: u64,
    pending: Vec<u8>,
    pos: usize,
    broken: Option<Status>,
}

impl Read for FileData<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.pending.len() {
            if self.remaining == 0 {
                return Ok(0);
            }
            match kind((self.next)()) {
                Ok(Kind::Data(d)) if d.len() as u64 <= self.remaining => {
                    self.remaining -= d.len() as u64;
                    self.pending = d;
                    self.pos = 0;
                }
                Ok(Kind::Data(_)) => {
                    self.broken = Some(Status::invalid_argument(format!(
                        "{}: a data message runs past the end of its file",
                        Reason::InvalidRequest
                    )));
                    return Err(io::Error::other("protocol error"));
                }
                Ok(_) => {
                    self.broken = Some(Status::invalid_argument(format!(
                        "{}: a file's data ends before the size the manifest gave",
                        Reason::InvalidRequest
                    )));
                    return Err(io::Error::other("protocol error"));
                }
                Err(s) => {
                    self.broken = Some(s);
                    return Err(io::Error::other("stream ended"));
                }
            }
        }
        let rest = &self.pending[self.pos..];
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// The blocking receive loop; `host_keys_dir` is where the kexec put the
/// captured host keys. Returns the job summary.
pub fn receive_files(
    next: Next<'_>,
    default_root: &Path,
    host_keys_dir: &Path,
    emit: Emit<'_>,
) -> Result<String, Status> {
    let mut next = next;
    let start = Instant::now();
    let begin = match kind(next())? {
        Kind::Begin(b) => b,
        _ => {
            return Err(Status::invalid_argument(format!(
                "{}: the files stream must start with `begin`",
                Reason::InvalidRequest
            )))
        }
    };
    let root = if begin.root.is_empty() {
        default_root.to_path_buf()
    } else {
        PathBuf::from(&begin.root)
    };
    let entries = entries_of(&begin)?;
    let chown: Vec<ChownRule> = begin
        .chown
        .iter()
        .map(|c| ChownRule {
            path: c.path.clone(),
            owner: c.owner.clone(),
            group: c.group.clone(),
        })
        .collect();
    let keys = if begin.host_keys {
        host_keys::read_dir(host_keys_dir).map_err(|e| {
            Status::failed_precondition(format!(
                "{NO_HOST_KEYS}: {}; the agent was not started by `landfall-agent kexec --copy-host-keys`",
                error_chain(&e)
            ))
        })?
    } else {
        Vec::new()
    };
    let plan = FilesPlan::prepare(&root, entries, &chown, keys).map_err(|e| match e {
        FilesError::Beneath(
            crate::files::beneath::BeneathError::Io { .. }
            | crate::files::beneath::BeneathError::Root(..),
        ) => failed(&e),
        _ => invalid(&e),
    })?;
    let total = plan.entries().len() as u32;
    let bytes_total = plan.data_bytes();
    tracing::info!(
        "Writing {total} extra file(s) ({bytes_total} bytes) into {}",
        root.display()
    );
    let mut bytes = 0u64;
    for (i, e) in plan.entries().iter().enumerate() {
        let t0 = Instant::now();
        let size = match e.kind {
            EntryKind::Regular { size } => size,
            _ => 0,
        };
        let mut data = FileData {
            next: &mut next,
            remaining: size,
            pending: Vec::new(),
            pos: 0,
            broken: None,
        };
        let r = plan.write_entry(i, &mut data);
        if let Err(err) = r {
            let status = data.broken.take().unwrap_or_else(|| failed(&err));
            emit(JobEvent {
                index: i as u32,
                total,
                state: StepState::Failed as i32,
                description: e.path.clone(),
                reason: status.message().to_string(),
                ..Default::default()
            });
            return Err(status);
        }
        bytes += size;
        emit(JobEvent {
            index: i as u32,
            total,
            state: StepState::Finished as i32,
            description: e.path.clone(),
            duration_ms: t0.elapsed().as_millis() as u64,
            bytes,
            bytes_total,
            ..Default::default()
        });
    }
    match kind(next())? {
        Kind::End(_) => {}
        _ => {
            return Err(Status::invalid_argument(format!(
            "{}: more messages after the last file (the manifest's sizes do not match the data)",
            Reason::InvalidRequest
        )))
        }
    }
    let chowned = plan.apply_chown().map_err(|e| failed(&e))?;
    for (path, n) in &chowned {
        emit(JobEvent {
            state: StepState::Output as i32,
            description: format!("chown {path}: {n} name(s)"),
            ..Default::default()
        });
    }
    let keys = plan.install_host_keys().map_err(|e| failed(&e))?;
    for k in plan.host_keys().iter().filter(|k| k.is_public()) {
        emit(JobEvent {
            state: StepState::Output as i32,
            description: format!(
                "{HOST_KEY_EVENT}etc/ssh/{} {}",
                k.name,
                String::from_utf8_lossy(&k.data).trim()
            ),
            ..Default::default()
        });
    }
    for skipped in plan.skipped_host_keys() {
        emit(JobEvent {
            state: StepState::Output as i32,
            description: format!(
                "{skipped}: brought by the extra files, the captured key is not installed"
            ),
            ..Default::default()
        });
    }
    plan.sync().map_err(|e| failed(&e))?;
    Ok(format!(
        "{total} entr{} ({bytes} bytes) written, {} --chown rule(s) applied, {} host key file(s) installed in {:.1} s",
        if total == 1 { "y" } else { "ies" },
        chowned.len(),
        keys.len(),
        start.elapsed().as_secs_f64()
    ))
}
