//! The files phase on the wire: one `PutFiles` stream — the manifest with
//! the `--chown` rules and the host-key request first, then each regular
//! file's bytes in manifest order (pieces of at most [`PIECE_BYTES`], never
//! spanning two files), then `end` — and the agent's events back: one per
//! entry (a progress bar, or JSON lines with `--json`), then the `--chown`
//! counts and the public host keys installed.

use std::io::Read;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use landfall_proto::files_manifest::EntryKind;
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::file_chunk::Kind;
use landfall_proto::v1::{FileChunk, FileEntry, FileKind, FilesBegin, FilesEnd, StepState};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::ExtraFiles;

/// Largest `data` message.
pub const PIECE_BYTES: usize = 1 << 20;
/// The agent's OUTPUT event prefix of an installed public host key.
const HOST_KEY_EVENT: &str = "host-key ";

/// What the files phase wrote (the `files` object of `--json`'s summary).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FilesReport {
    /// The extra files' entries written, in order (relative to the root).
    pub paths: Vec<String>,
    pub bytes: u64,
    /// `PATH OWNER[:GROUP]` of each `--chown` rule applied.
    pub chown: Vec<String>,
    /// Each public host key installed: `etc/ssh/NAME.pub <key line>`.
    pub host_keys: Vec<String>,
    pub seconds: f64,
    pub agent_summary: String,
}

fn wire_entry(e: &landfall_proto::files_manifest::Entry) -> FileEntry {
    let (kind, size, target) = match &e.kind {
        EntryKind::Directory => (FileKind::Directory, 0, String::new()),
        EntryKind::Regular { size } => (FileKind::Regular, *size, String::new()),
        EntryKind::Symlink { target } => (FileKind::Symlink, 0, target.clone()),
    };
    FileEntry {
        path: e.path.clone(),
        kind: kind as i32,
        mode: e.mode,
        size,
        target,
    }
}

/// Streams `extra` to the agent and follows its events.
pub async fn put_files(
    client: &mut AgentClient<Channel>,
    extra: &ExtraFiles,
    json: bool,
) -> anyhow::Result<FilesReport> {
    let start = Instant::now();
    let (entries, sources, bytes_total) = match &extra.tree {
        Some(t) => (t.entries.clone(), t.sources.clone(), t.data_bytes()),
        None => (Vec::new(), Vec::new(), 0),
    };
    let begin = FilesBegin {
        root: String::new(),
        entries: entries.iter().map(wire_entry).collect(),
        chown: extra.chown.clone(),
        host_keys: extra.host_keys,
    };
    let (tx, rx) = mpsc::channel::<FileChunk>(8);
    let sizes: Vec<(Option<std::path::PathBuf>, u64)> = entries
        .iter()
        .zip(sources)
        .map(|(e, s)| match e.kind {
            EntryKind::Regular { size } => (s, size),
            _ => (None, 0),
        })
        .collect();
    let producer = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let send = |k: Kind| {
            tx.blocking_send(FileChunk { kind: Some(k) })
                .map_err(|_| anyhow::anyhow!("the agent closed the stream"))
        };
        send(Kind::Begin(begin))?;
        for (src, size) in sizes {
            let Some(src) = src else { continue };
            let mut f = std::fs::File::open(&src)
                .with_context(|| format!("Cannot open {}", src.display()))?;
            let mut sent = 0u64;
            loop {
                let mut buf = vec![0u8; PIECE_BYTES.min((size - sent) as usize + 1)];
                let n = f
                    .read(&mut buf)
                    .with_context(|| format!("Cannot read {}", src.display()))?;
                if n == 0 {
                    break;
                }
                sent += n as u64;
                if sent > size {
                    bail!("{} grew since it was walked", src.display());
                }
                buf.truncate(n);
                send(Kind::Data(buf))?;
            }
            if sent != size {
                bail!("{} shrank since it was walked", src.display());
            }
        }
        send(Kind::End(FilesEnd {}))
    });
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(bytes_total)
    };
    let mut events = client
        .put_files(ReceiverStream::new(rx))
        .await
        .map_err(crate::agent_error::AgentError::from)
        .context("The agent refused the extra files")?
        .into_inner();
    let mut report = FilesReport::default();
    let mut failure = None;
    loop {
        match events.message().await {
            Ok(Some(e)) => {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                }
                match StepState::try_from(e.state).unwrap_or(StepState::Unspecified) {
                    StepState::Finished => {
                        bar.set_position(e.bytes);
                        report.paths.push(e.description.clone());
                        report.bytes = e.bytes;
                    }
                    StepState::Output => {
                        if let Some(k) = e.description.strip_prefix(HOST_KEY_EVENT) {
                            report.host_keys.push(k.to_string());
                        }
                        if !json {
                            bar.println(format!("  | {}", e.description));
                        }
                    }
                    StepState::Failed => {
                        bar.println(format!("{} FAILED: {}", e.description, e.reason))
                    }
                    StepState::Done => report.agent_summary = e.summary.clone(),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(s) => {
                failure = Some(s);
                break;
            }
        }
    }
    bar.finish_and_clear();
    let produced = producer.await;
    if let Some(s) = failure {
        return Err(crate::agent_error::AgentError::from(s))
            .context("Writing the extra files failed");
    }
    match produced {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context("Sending the extra files failed")),
        Err(e) => bail!("The extra files' sender crashed: {e}"),
    }
    if report.agent_summary.is_empty() {
        bail!("The agent's stream ended before the extra files were written");
    }
    report.chown = extra
        .chown
        .iter()
        .map(|c| {
            let path = if c.path.is_empty() {
                "/".to_string()
            } else {
                format!("/{}", c.path)
            };
            if c.group.is_empty() {
                format!("{path} {}", c.owner)
            } else {
                format!("{path} {}:{}", c.owner, c.group)
            }
        })
        .collect();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}
