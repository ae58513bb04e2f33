//! One long job at a time: a second request while one runs is refused as busy.
//! Also runs blocking engine work on a worker thread and turns a panic there into
//! an error reply, so one bug never takes the agent (PID 1) down.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use landfall_proto::v1::{JobEvent, StepState};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// The reasons the agent's status messages start with (`"<reason>: <text>"`):
/// one list, shared with the controller through proto.
pub use landfall_proto::Reason;

#[derive(Default)]
struct Current {
    name: String,
    since: Option<Instant>,
}

/// The job slot shared by all requests.
#[derive(Clone, Default)]
pub struct JobSlot(Arc<Mutex<Current>>);

/// Held while a job runs; frees the slot when dropped (also on panic or cancel).
pub struct JobGuard(JobSlot);

impl Drop for JobGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = (self.0).0.lock() {
            *c = Current::default();
        }
    }
}

impl JobSlot {
    /// Takes the slot for `name`, or refuses with FAILED_PRECONDITION "busy".
    pub fn begin(&self, name: &str) -> Result<JobGuard, Status> {
        let mut c = self
            .0
            .lock()
            .map_err(|_| Status::internal(format!("{}: job slot poisoned", Reason::Internal)))?;
        if !c.name.is_empty() {
            let secs = c.since.map(|s| s.elapsed().as_secs()).unwrap_or(0);
            return Err(Status::failed_precondition(format!(
                "{}: the agent is already running '{}' (for {secs} s); wait for it to finish",
                Reason::Busy,
                c.name
            )));
        }
        *c = Current {
            name: name.to_string(),
            since: Some(Instant::now()),
        };
        Ok(JobGuard(self.clone()))
    }

    /// The running job's name, or "".
    pub fn current(&self) -> String {
        self.0.lock().map(|c| c.name.clone()).unwrap_or_default()
    }
}

/// Forwards a client stream's messages to a bounded channel (16 messages), so
/// a blocking job reads them with `blocking_recv` while tokio receives.
pub fn forward_inbound<T: Send + 'static>(
    mut inbound: tonic::Streaming<T>,
) -> mpsc::Receiver<Result<T, Status>> {
    let (tx, rx) = mpsc::channel::<Result<T, Status>>(16);
    tokio::spawn(async move {
        loop {
            let m = inbound.message().await.transpose();
            let Some(m) = m else { break };
            if tx.send(m).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `f` on the blocking pool; a panic becomes an INTERNAL error reply.
pub async fn run_blocking<T, F>(what: &str, f: F) -> Result<T, Status>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => {
            let msg = e
                .into_panic()
                .downcast::<String>()
                .map(|s| *s)
                .or_else(|p| p.downcast::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|_| "unknown panic".into());
            tracing::error!(
                "{what} failed with an internal error (the agent keeps serving): {msg}"
            );
            Err(Status::internal(format!(
                "{}: {what} hit an internal error: {msg}",
                Reason::Internal
            )))
        }
        Err(e) => Err(Status::internal(format!(
            "{}: {what} was cancelled: {e}",
            Reason::Internal
        ))),
    }
}

/// A job's event sink, handed to the blocking engine code.
pub type Emit<'a> = &'a mut dyn FnMut(JobEvent);

/// Runs a long job on a blocking thread and streams its events. The job returns
/// its summary (sent as a DONE event) or a Status (sent as the stream's error).
/// A panic becomes an INTERNAL error at the end of the stream; the guard keeps
/// the job slot until the job has really finished.
pub fn stream_job<F>(
    job: &'static str,
    guard: JobGuard,
    f: F,
) -> ReceiverStream<Result<JobEvent, Status>>
where
    F: FnOnce(Emit<'_>) -> Result<String, Status> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(256);
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let events = tx.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let mut emit = |mut e: JobEvent| {
                e.job = job.to_string();
                // A client that went away is not a failure of the job: keep going.
                let _ = events.blocking_send(Ok(e));
            };
            f(&mut emit)
        }));
        let last = match result {
            Ok(Ok(summary)) => {
                tracing::info!("{job}: done. {summary}");
                Ok(JobEvent {
                    job: job.to_string(),
                    state: StepState::Done as i32,
                    summary,
                    ..Default::default()
                })
            }
            Ok(Err(status)) => {
                tracing::error!("{job} failed: {}", status.message());
                Err(status)
            }
            Err(p) => {
                let msg = p
                    .downcast::<String>()
                    .map(|s| *s)
                    .or_else(|p| p.downcast::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|_| "unknown panic".into());
                tracing::error!("{job} hit an internal error (the agent keeps serving): {msg}");
                Err(Status::internal(format!(
                    "{}: {job} hit an internal error: {msg}",
                    Reason::Internal
                )))
            }
        };
        let _ = tx.blocking_send(last);
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_job_is_busy_and_slot_frees_on_drop() {
        let slot = JobSlot::default();
        let g = slot.begin("apply-layout").unwrap();
        let err = slot.begin("put-closure").err().unwrap();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(err.message().starts_with("busy: "), "{}", err.message());
        assert!(err.message().contains("apply-layout"));
        drop(g);
        assert_eq!(slot.current(), "");
        assert!(slot.begin("put-closure").is_ok());
    }

    #[tokio::test]
    async fn panic_becomes_internal_error() {
        let r: Result<(), _> = run_blocking("test step", || panic!("boom")).await;
        let e = r.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Internal);
        assert!(e.message().contains("boom"));
    }

    #[tokio::test]
    async fn job_stream_ends_with_done_or_error() {
        use tokio_stream::StreamExt;
        let slot = JobSlot::default();
        let s = stream_job("demo", slot.begin("demo").unwrap(), |emit| {
            emit(JobEvent {
                description: "step".into(),
                state: StepState::Started as i32,
                ..Default::default()
            });
            Ok("all good".into())
        });
        let v: Vec<_> = s.collect().await;
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].as_ref().unwrap().job, "demo");
        assert_eq!(v[1].as_ref().unwrap().summary, "all good");
        assert_eq!(slot.current(), "");

        let s = stream_job("boom", slot.begin("boom").unwrap(), |_| panic!("kaput"));
        let v: Vec<_> = s.collect().await;
        assert_eq!(v.len(), 1);
        assert!(v[0].as_ref().unwrap_err().message().contains("kaput"));
        assert_eq!(slot.current(), "", "the slot is free after a panic");
    }
}
